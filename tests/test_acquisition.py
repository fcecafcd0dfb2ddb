import math

import numpy as np
import pytest
import torch

from surrogate.acquisition import (
    JointPosteriorModel,
    _believe,
    _lazy_argmax,
    ehvi,
    non_domination_probability,
    posterior_moments,
    prune_baseline,
)
from surrogate.gp import fit_model
from surrogate.pareto import hypervolume, pareto_mask, reference_point, to_max_form
from surrogate.strategies import STRATEGIES, SelectionProblem, make_strategy

D = torch.float64


def select(name, q, X, rng, model=None, Y_train=None, X_train=None, candidates=None, settings=None):
    """Strategy ``name`` (with ``settings``) picking ``q`` of ``candidates`` (all rows of ``X`` if None)."""
    rows = np.arange(X.shape[0]) if candidates is None else np.asarray(candidates)
    Y_train = torch.zeros(0, 2, dtype=D) if Y_train is None else Y_train
    X_train = X[:0] if X_train is None else X_train
    problem = SelectionProblem(q, X, rows, X_train, Y_train, rng)
    return make_strategy({"name": name, **(settings or {})}).select(problem, model=model)


def test_ehvi_matches_hand_computed_two_objective_case():
    # front {(1, 1)}, reference (0, 0): the improvement of a point y is
    # y1+ * y2+ - min(1, y1+) * min(1, y2+)   (y+ = max(y, 0)); EHVI is its expectation.
    Y_train = torch.tensor([[1.0, 1.0]], dtype=D)
    ref = torch.zeros(2, dtype=D)
    mean = torch.tensor([[2.0, 2.0], [1.5, 0.5], [0.8, 1.6]], dtype=D)
    std = torch.tensor([[1e-9, 1e-9], [0.3, 0.4], [0.5, 0.2]], dtype=D)
    got = ehvi(mean, std, Y_train, ref)
    assert abs(got[0].item() - 3.0) < 1e-6  # a near-certain point at (2, 2): 2*2 - 1*1
    g = torch.Generator().manual_seed(0)
    for i in (1, 2):
        y = mean[i] + std[i] * torch.randn(2_000_000, 2, generator=g, dtype=D)
        yp = y.clamp_min(0)
        imp = yp[:, 0] * yp[:, 1] - yp[:, 0].clamp_max(1) * yp[:, 1].clamp_max(1)
        assert abs(got[i].item() - imp.mean().item()) < 3e-3


def test_pareto_and_hypervolume_by_hand():
    Y = torch.tensor([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [1.5, 1.5]], dtype=D)
    assert pareto_mask(Y).tolist() == [True, True, True, False]
    # staircase above (0,0): 1*3 + 1*2 + 1*1 = 6
    assert hypervolume(Y, torch.zeros(2, dtype=D)) == 6.0
    assert to_max_form(Y[:1], [True, False]).tolist() == [[1.0, -3.0]]
    assert reference_point(Y).tolist() == [1.0 - 0.2, 1.0 - 0.2]


def test_two_objective_pareto_mask_is_botorchs_with_ties_and_batches():
    from botorch.utils.multi_objective.pareto import is_non_dominated

    g = torch.Generator().manual_seed(0)
    for _ in range(300):  # small integers: many ties in one objective and identical rows
        b, n = int(torch.randint(1, 4, (1,), generator=g)), int(torch.randint(1, 30, (1,), generator=g))
        Y = torch.randint(0, 5, (b, n, 2), generator=g).to(D)
        assert torch.equal(pareto_mask(Y), is_non_dominated(Y, deduplicate=False))
    Y = torch.randn(64, 200, 2, generator=g, dtype=D)  # the size of a pruning's samples (2,048 there)
    assert torch.equal(pareto_mask(Y), is_non_dominated(Y, deduplicate=False))
    Y[0, 5, 1] = float("nan")  # NaN: BoTorch's own comparisons
    assert torch.equal(pareto_mask(Y), is_non_dominated(Y, deduplicate=False))
    Y3 = torch.randint(0, 4, (2, 20, 3), generator=g).to(D)  # three objectives: BoTorch's own
    assert torch.equal(pareto_mask(Y3), is_non_dominated(Y3, deduplicate=False))


def test_pruning_keeps_the_rows_that_can_be_pareto_optimal():
    # a nearly certain posterior: the front (rows 0-2) above the reference point; row 3 is dominated by row 1,
    # row 4 is non-dominated but below the reference in its second objective
    mean = torch.tensor([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [1.5, 1.5], [4.0, -1.0]], dtype=D)
    X = torch.arange(5, dtype=D).unsqueeze(-1)
    ref = torch.zeros(2, dtype=D)
    sure = _FixedModel(mean, torch.full_like(mean, 1e-6))
    assert prune_baseline(sure, X, ref, 256, seed=0).flatten().tolist() == [0.0, 1.0, 2.0]
    # with an sd of 1 every row has some chance of being on the front and above the reference
    unsure = _FixedModel(mean, torch.ones_like(mean))
    assert prune_baseline(unsure, X, ref, 256, seed=0).flatten().tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


class _FixedModel(JointPosteriorModel):
    """Independent Gaussians per row and objective: ``mean``, ``std`` (``s x m``); inputs are row indices."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        torch.nn.Module.__init__(self)
        self._mean, self._cov = mean.T.contiguous(), torch.diag_embed(std.T ** 2)


def test_selection_returns_distinct_rows():
    torch.manual_seed(0)
    X = torch.rand(20, 8, dtype=D)
    Y = torch.stack([X[:, 0] + X[:, 1], X[:, 2] - X[:, 3]], dim=1)
    model = fit_model(X, Y)
    X_cand = torch.rand(300, 8, dtype=D)
    sel = select("ehvi-topk", 10, X_cand, np.random.default_rng(0), model=model, Y_train=Y)
    assert len(set(sel.indices)) == 10
    assert sel.acquisition == sorted(sel.acquisition, reverse=True) and sel.acquisition[0] > 0
    assert len(sel.mean) == 10 and len(sel.std[0]) == 2
    rnd = select("random", 50, X_cand, np.random.default_rng(1), candidates=np.arange(30))
    assert sorted(rnd.indices) == list(range(30))  # q larger than the pool: every row once


def test_selection_only_picks_open_candidates():
    torch.manual_seed(1)
    X = torch.rand(60, 6, dtype=D)
    Y = torch.stack([X[:, 0] - X[:, 1], X[:, 2] + X[:, 3]], dim=1)
    model = fit_model(X[:20], Y[:20])
    open_rows = np.arange(20, 60)[::2]  # rows already evaluated or taken are not candidates
    assert set(STRATEGIES) == {"ehvi-topk", "qlognehvi-greedy", "ehvi-believer", "random"}
    for strategy in STRATEGIES:
        sel = select(strategy, 8, X, np.random.default_rng(3), model=model, Y_train=Y[:20], X_train=X[:20],
                     candidates=open_rows)
        assert len(sel.indices) == 8 and len(set(sel.indices)) == 8, strategy
        assert all(0 <= i < len(open_rows) for i in sel.indices), strategy
    with pytest.raises(ValueError, match="unknown strategy"):
        select("ucb", 2, X, np.random.default_rng(0), model=model, Y_train=Y[:20])


def test_greedy_batch_does_not_crowd_one_spot():
    # two conflicting objectives; ten copies of one very promising mid-front candidate. Analytic
    # EHVI ranks every copy on top; the greedy batch conditions each pick on the earlier ones, so
    # a second copy adds nothing and the batch spreads along the front
    torch.manual_seed(2)
    f = lambda X: torch.stack([X[:, 0] + 0.3 * X[:, 1], 1 - X[:, 0] + 0.3 * X[:, 2]], dim=1)
    X_train = torch.rand(40, 3, dtype=D) * torch.tensor([1.0, 0.6, 0.6], dtype=D)
    model = fit_model(X_train, f(X_train))
    spot = torch.tensor([[0.5, 1.0, 1.0]], dtype=D)
    X = torch.cat([spot.repeat(10, 1), torch.rand(200, 3, dtype=D) * torch.tensor([1.0, 0.8, 0.8], dtype=D)])
    topk = select("ehvi-topk", 10, X, np.random.default_rng(0), model=model, Y_train=f(X_train))
    greedy = select("qlognehvi-greedy", 10, X, np.random.default_rng(0), model=model, Y_train=f(X_train),
                    X_train=X_train)
    assert sum(i < 10 for i in topk.indices) == 10
    assert sum(i < 10 for i in greedy.indices) == 1 and len(set(greedy.indices)) == 10
    logei = select("qlognehvi-greedy", 10, X, np.random.default_rng(0), model=model, Y_train=f(X_train),
                   X_train=X_train, settings={"log_values": True})  # by qLogNEHVI instead of qNEHVI: the same
    assert sum(i < 10 for i in logei.indices) == 1 and len(set(logei.indices)) == 10
    # the believer: once one copy is believed at its predicted value, the others add (almost) nothing
    believer = select("ehvi-believer", 10, X, np.random.default_rng(0), model=model, Y_train=f(X_train),
                      X_train=X_train)
    assert sum(i < 10 for i in believer.indices) == 1 and len(set(believer.indices)) == 10
    assert believer.indices[0] < 10  # its first pick is the best by EHVI: a copy of the spot
    # a running job at the spot is believed too: no copy is picked while it runs
    problem = SelectionProblem(10, X, np.arange(10, X.shape[0]), X_train, f(X_train), np.random.default_rng(0),
                               X_pending=spot)
    pending = make_strategy("ehvi-believer").select(problem, model=model)
    assert len(set(pending.indices)) == 10
    solo = make_strategy("ehvi-believer").select(
        SelectionProblem(10, X, np.arange(10, X.shape[0]), X_train, f(X_train), np.random.default_rng(0)), model=model)
    assert pending.indices != solo.indices


def test_joint_posterior_stand_in_gives_the_gps_qlognehvi():
    # the greedy strategy evaluates qLogNEHVI on row indices into one stored joint posterior; with the same
    # quasi-random samples it must give the GP's own values, with pending points too, and the GP's joint
    # posterior (means and covariances, cross terms included) for any set of rows
    from botorch.acquisition.multi_objective.logei import (
        qLogNoisyExpectedHypervolumeImprovement,
    )
    from botorch.sampling.normal import SobolQMCNormalSampler

    torch.manual_seed(4)
    X_train = torch.rand(25, 4, dtype=D)
    f = lambda X: torch.stack([X[:, 0] + 0.5 * X[:, 1], 1 - X[:, 0] + 0.5 * X[:, 2]], dim=1)
    model = fit_model(X_train, f(X_train) + 0.01 * torch.randn(25, 2, dtype=D))
    X_cand = torch.rand(40, 4, dtype=D)
    stand_in = JointPosteriorModel(model, torch.cat([X_train, X_cand]))
    rows = torch.tensor([[30.0], [3.0], [61.0]], dtype=D)
    got, want = stand_in.posterior(rows), model.posterior(torch.cat([X_train, X_cand])[rows[:, 0].long()])
    assert torch.allclose(got.mean, want.mean, atol=1e-9)
    assert torch.allclose(got.distribution.covariance_matrix, want.distribution.covariance_matrix, atol=1e-9)
    with pytest.raises(NotImplementedError):  # not stored: refused, not answered with the latent posterior
        stand_in.posterior(rows, observation_noise=True)
    ref = reference_point(f(X_train)).tolist()
    index = torch.arange(65, dtype=D).unsqueeze(-1)
    values = []
    for m, baseline, cand in ((model, X_train, X_cand), (stand_in, index[:25], index[25:])):
        acqf = qLogNoisyExpectedHypervolumeImprovement(m, ref, baseline, prune_baseline=False,
                                                       sampler=SobolQMCNormalSampler(torch.Size([64]), seed=7))
        with torch.no_grad():
            first = acqf(cand.unsqueeze(1))
            acqf.set_X_pending(cand[[int(first.argmax())]])
            values.append((first, acqf(cand.unsqueeze(1))))
    for a, b in zip(*values):  # log values near the best decide a pick (far below it, e.g. at e^-7 of the best
        band = a > a.max() - 5  # improvement, the two differ in rounding of the near-singular training block)
        assert band.sum() >= 2 and int(a.argmax()) == int(b.argmax())
        assert torch.allclose(a[band], b[band], atol=1e-5), float((a - b)[band].abs().max())
    assert not torch.allclose(values[0][0], values[0][1])  # the pending point changed the values


def test_lazy_argmax_finds_the_best_free_choice_and_skips_the_hopeless():
    # values that only shrink between calls (as a pick's expected improvement does when picks join):
    # the lazy search must return the true best free choice each time, evaluating fewer rows after the first
    value = torch.linspace(0.0, 1.0, 200, dtype=D)[torch.randperm(200, generator=torch.Generator().manual_seed(0))]
    seen = []

    def acqf(X):  # b x 1 x 1 row indices -> b values
        rows = X[:, 0, 0].long()
        seen.append(rows.shape[0])
        return value[rows]

    choices = torch.arange(200, dtype=D).unsqueeze(-1)
    free, last = torch.ones(200, dtype=torch.bool), torch.full((200,), float("inf"), dtype=D)
    for step in range(5):
        seen.clear()
        i, best = _lazy_argmax(acqf, choices, free, last, chunk=8)
        assert i == int(value.masked_fill(~free, -1).argmax()) and best == float(value[i])
        assert sum(seen) == (200 if step == 0 else 8)  # first: every row; then one chunk suffices
        free[i] = False
        value = value * torch.where(torch.arange(200) % 2 == 0, 0.9, 1.0).to(D)  # some values shrink


def test_greedy_scores_the_measurement_unless_told_otherwise():
    # the prefilter and the front completion see a candidate's measurement (GP noise included) by default, the
    # latent function with observation_noise: false; the recorded std says which
    torch.manual_seed(5)
    X = torch.rand(80, 3, dtype=D)
    Y = torch.stack([X[:, 0] + 0.2 * torch.randn(80, dtype=D), 1 - X[:, 0] + 0.2 * torch.randn(80, dtype=D)], dim=1)
    model = fit_model(X[:30], Y[:30])
    rows = np.arange(30, 80)
    for noise in (True, False):
        sel = select("qlognehvi-greedy", 4, X, np.random.default_rng(0), model=model, Y_train=Y[:30], X_train=X[:30],
                     candidates=rows, settings={"observation_noise": noise})
        _, want = posterior_moments(model, X, torch.as_tensor(rows[sel.indices]), observation_noise=noise)
        assert torch.allclose(torch.tensor(sel.std, dtype=D), want, rtol=1e-6), noise
    _, latent = posterior_moments(model, X, torch.as_tensor(rows))
    _, measured = posterior_moments(model, X, torch.as_tensor(rows), observation_noise=True)
    assert (measured > 1.2 * latent).all()  # so the two settings score differently


def test_kernels_by_name_reach_the_gp():
    # each name in KERNELS fits: isotropic and matern with one lengthscale, ard with one per input; an unknown
    # name is refused
    from gpytorch.kernels import MaternKernel, RBFKernel

    torch.manual_seed(6)
    X = torch.rand(25, 3, dtype=D)
    Y = torch.stack([torch.sin(3 * X[:, 0]) + X[:, 1], X[:, 2] ** 2], dim=1)
    models = {k: fit_model(X, Y, kernel=k) for k in ("isotropic", "matern", "ard")}
    covar = {k: m.models[0].covar_module for k, m in models.items()}
    base = {k: getattr(c, "base_kernel", c) for k, c in covar.items()}  # BoTorch's ARD default has no output scale
    assert type(base["isotropic"]) is RBFKernel and base["isotropic"].lengthscale.numel() == 1
    assert type(base["matern"]) is MaternKernel and base["matern"].nu == 2.5 and base["matern"].lengthscale.numel() == 1
    assert base["ard"].lengthscale.numel() == 3
    probe = torch.rand(5, 3, dtype=D)
    means = {k: posterior_moments(m, probe)[0] for k, m in models.items()}
    assert not torch.allclose(means["matern"], means["isotropic"], atol=1e-6)
    with pytest.raises(ValueError, match="unknown kernel"):
        fit_model(X, Y, kernel="linear")


def test_believing_keeps_the_mean_and_shrinks_the_variance():
    # kriging believer: conditioning each GP on its own predicted mean at x leaves every posterior mean
    # as it was (outcome standardisation included) and shrinks the variance at x and near it, not far away
    torch.manual_seed(5)
    X = torch.rand(30, 2, dtype=D)
    Y = torch.stack([10 * X[:, 0] + 3, torch.sin(4 * X[:, 1]) * 100], dim=1)
    model = fit_model(X, Y, kernel="isotropic")
    x = torch.tensor([[0.9, 0.1]], dtype=D)
    probe = torch.cat([x, x + 0.05, torch.tensor([[5.0, 5.0]], dtype=D)])
    m0, s0 = posterior_moments(model, probe)
    m1, s1 = posterior_moments(_believe(model, x), probe)
    assert torch.allclose(m1, m0, rtol=1e-6, atol=1e-6 * m0.abs().max().item())
    assert (s1[0] < 0.9 * s0[0]).all() and (s1[1] < s0[1]).all()
    assert torch.allclose(s1[2], s0[2], rtol=1e-3)


def test_non_domination_probability_by_hand_and_by_sampling():
    normal = torch.distributions.Normal(0.0, 1.0)
    # one front point at (0, 0): dominated means both objectives below it
    mean = torch.tensor([[0.0, 0.0], [1.0, -0.5], [-3.0, -3.0]], dtype=D)
    std = torch.tensor([[1.0, 1.0], [0.5, 2.0], [0.1, 0.1]], dtype=D)
    got = non_domination_probability(mean, std, torch.zeros(1, 2, dtype=D))
    want = 1 - normal.cdf(-mean[:, 0] / std[:, 0]) * normal.cdf(-mean[:, 1] / std[:, 1])
    assert torch.allclose(got, want.to(D), atol=1e-12)
    assert got[0].item() == pytest.approx(0.75) and got[2].item() < 1e-12
    # a staircase front plus a dominated training point (ignored): compare with sampling
    Y = torch.tensor([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [1.5, 1.5]], dtype=D)
    mean = torch.tensor([[2.2, 1.8], [1.0, 1.0], [2.5, 2.5]], dtype=D)
    std = torch.tensor([[0.4, 0.6], [1.0, 1.5], [0.3, 0.2]], dtype=D)
    got = non_domination_probability(mean, std, Y)
    g = torch.Generator().manual_seed(0)
    for i in range(3):
        y = mean[i] + std[i] * torch.randn(1_000_000, 2, generator=g, dtype=D)
        dominated = ((y[:, None, :] <= Y[None, :3, :]).all(dim=-1)).any(dim=-1)
        assert abs(got[i].item() - (1 - dominated.double().mean().item())) < 2e-3


def test_greedy_completes_a_saturated_front_by_non_domination():
    # when no pick is expected to add enough hypervolume (here: any pick, saturation = 1), the
    # batch (all of it with completion_share = 1) goes to the candidates most likely to be
    # non-dominated, the first being the most likely; by default half of it stays greedy
    torch.manual_seed(4)
    f = lambda X: torch.stack([X[:, 0] + 0.2 * X[:, 1], 1 - X[:, 0] + 0.2 * X[:, 2]], dim=1)
    X = torch.rand(200, 3, dtype=D)
    X_train = X[:40]
    model = fit_model(X_train, f(X_train))
    open_rows = np.arange(40, 200)
    kw = dict(model=model, Y_train=f(X_train), X_train=X_train, candidates=open_rows)
    sat = select("qlognehvi-greedy", 6, X, np.random.default_rng(0), settings={"saturation": 1.0, "completion_share": 1.0}, **kw)
    assert "last 6 by non-domination probability" in sat.strategy
    assert len(set(sat.indices)) == 6 and all(0 <= i < len(open_rows) for i in sat.indices)
    mean, std = posterior_moments(model, X, torch.as_tensor(open_rows))
    assert sat.indices[0] == int(torch.argmax(non_domination_probability(mean, std, f(X_train))))
    half = select("qlognehvi-greedy", 6, X, np.random.default_rng(0), settings={"saturation": 1.0}, **kw)
    assert "last 3 by non-domination probability" in half.strategy and len(set(half.indices)) == 6
    plain = select("qlognehvi-greedy", 6, X, np.random.default_rng(0), settings={"saturation": 0.0}, **kw)
    assert plain.strategy == "qlognehvi-greedy" and len(set(plain.indices)) == 6
    for saturation, label in ((1.0, "qlognehvi-greedy (hypervolume saturated: last 3 by non-domination probability)"),
                              (0.0, "qlognehvi-greedy")):  # the floor on qLogNEHVI's log scale
        sel = select("qlognehvi-greedy", 6, X, np.random.default_rng(0),
                     settings={"saturation": saturation, "log_values": True}, **kw)
        assert sel.strategy == label and len(set(sel.indices)) == 6


def test_greedy_does_not_evaluate_again_a_candidate_no_sample_improved(monkeypatch):
    # a candidate whose qNEHVI is 0 (no sample improves the front) can only stay at 0 as picks join the pending
    # set: it is not evaluated again for the batch, and picks tied at 0 go in prefilter order
    import surrogate.acquisition as acquisition

    torch.manual_seed(4)
    f = lambda X: torch.stack([X[:, 0] + 0.2 * X[:, 1], 1 - X[:, 0] + 0.2 * X[:, 2]], dim=1)
    X = torch.rand(200, 3, dtype=D)
    X_train = X[:40]
    model = fit_model(X_train, f(X_train))
    calls, real = [], acquisition._lazy_argmax

    def recording(acqf, choices, free, last, chunk, first_chunk=512, settled=-math.inf):
        seen = {}

        def recorded(Xc):  # Xc: positions 0..k-1 in the candidate list
            values = acqf(Xc + choices[0])
            seen.update(zip(Xc[:, 0, 0].long().tolist(), values.tolist()))
            return values
        result = real(recorded, choices - choices[0], free, last, chunk, first_chunk, settled)
        calls.append((free.clone(), seen, result))
        return result

    monkeypatch.setattr(acquisition, "_lazy_argmax", recording)
    sel = select("qlognehvi-greedy", 24, X, np.random.default_rng(0), model=model, Y_train=f(X_train),
                 X_train=X_train, candidates=np.arange(40, 200), settings={"saturation": 0.0, "prefilter": 100})
    assert len(set(sel.indices)) == 24 and len(calls) == 24  # the last few picks improve nothing (below)
    zero = set()
    for n, (free, seen, _) in enumerate(calls):
        assert not zero & set(seen), f"pick {n}: a candidate at 0 was evaluated again: {sorted(zero & set(seen))} {len(seen)}"
        # every free candidate not yet at 0 is evaluated (the first pick: all 100)
        assert len(seen) == int(free.sum()) - len(zero & set(torch.nonzero(free)[:, 0].tolist()))
        zero |= {i for i, v in seen.items() if v <= 0}
        assert zero or n > 0  # some are at 0 from the first pick on
    ties = 0
    for free, seen, (pick, value) in calls:
        if value <= 0:  # nothing improves: the first free candidate at 0 (prefilter order)
            assert pick == min(i for i in torch.nonzero(free)[:, 0].tolist() if i in zero)
            ties += 1
    assert ties >= 2
