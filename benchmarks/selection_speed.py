"""Selection speed: GP fitting, EHVI over 10^4 and 10^6 candidates, against a per-candidate loop.

    python benchmarks/selection_speed.py [--n-large 1000000] [--loop-n 10000]

Synthetic data with the real shapes: 170-d inputs in [0, 1], two smooth objectives plus noise,
200 training points. Timed side by side in one run:

* ``fit_200_s``: fitting the two GPs (``surrogate.gp.fit_model``) on 200 points;
* ``select_1e4_s``: ``ehvi-topk`` choosing 10 of 10^4 candidates with the model fitted;
* ``loop_1e4_s``: the published style on the same candidates: one posterior call and a Python
  loop over the front's cells per candidate (the loop's EHVI is checked against ours);
* ``select_1e6_s``, ``peak_gib_1e6``: 10 of 10^6, in a fresh process whose peak resident memory
  (the 1.3 GiB candidate matrix included) is reported;
* ``greedy_1e4_s``: ``qlognehvi-greedy`` choosing 10 of 10^4.

Where CUDA is available the 10^6 selection is also timed on the GPU (``select_1e6_gpu_s``).
Ends with one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from surrogate.acquisition import ehvi, posterior_moments  # noqa: E402
from surrogate.gp import DTYPE, fit_model  # noqa: E402
from surrogate.pareto import pareto_mask, reference_point  # noqa: E402
from surrogate.strategies import SelectionProblem, make_strategy  # noqa: E402


def select(name, X, rng, model, X_train, Y_train):
    """Strategy ``name`` picking 10 of every row of ``X`` with a fitted ``model``."""
    problem = SelectionProblem(10, X, np.arange(X.shape[0]), X_train, Y_train, rng)
    return make_strategy(name).select(problem, model=model)

D = 170


def objectives(X: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    f1 = torch.sin(3 * X[:, :10].sum(-1) / 10) + X[:, 10:20].mean(-1)
    f2 = torch.cos(2 * X[:, 20:40].mean(-1)) - X[:, :10].mean(-1) ** 2
    Y = torch.stack([f1, f2], -1)
    return Y + 0.05 * torch.randn(Y.shape, generator=gen, dtype=Y.dtype)


def training_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    X = torch.rand(200, D, generator=gen, dtype=DTYPE)
    return X, objectives(X, gen)


def candidates(n: int, seed: int, device: str = "cpu") -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    X = torch.empty(n, D, dtype=DTYPE, device=device)
    for start in range(0, n, 100_000):  # filled in slices: no second full-size temporary
        stop = min(start + 100_000, n)
        X[start:stop] = torch.rand(stop - start, D, generator=gen, dtype=DTYPE).to(device)
    return X


def loop_ehvi(model, X: torch.Tensor, Y_train: torch.Tensor, ref: torch.Tensor) -> np.ndarray:
    """The published style: per candidate, a posterior call and a loop over the front's cells."""
    from scipy.stats import norm

    front = Y_train[pareto_mask(Y_train)].numpy()
    front = front[np.argsort(front[:, 0])]  # y1 ascending, so y2 descending
    r1, r2 = ref.tolist()
    # non-dominated cells: [a_{i-1}, a_i) x [b_i, inf) and [a_k, inf) x [r2, inf)
    cells = [(front[i - 1, 0] if i else r1, front[i, 0], front[i, 1]) for i in range(len(front))]
    cells.append((front[-1, 0], math.inf, r2))

    def up(mu, sd, a):  # E[(Y - a)^+] for Y ~ N(mu, sd^2)
        z = (mu - a) / sd
        return sd * norm.pdf(z) + (mu - a) * norm.cdf(z)

    out = np.empty(X.shape[0])
    with torch.no_grad():
        for n in range(X.shape[0]):
            post = model.posterior(X[n : n + 1])
            mu = post.mean[0].tolist()
            sd = post.variance[0].clamp_min(1e-12).sqrt().tolist()
            total = 0.0
            for lo1, hi1, lo2 in cells:
                e1 = up(mu[0], sd[0], lo1) - (up(mu[0], sd[0], hi1) if math.isfinite(hi1) else 0.0)
                total += e1 * up(mu[1], sd[1], lo2)
            out[n] = total
    return out


def large_child(n: int, device: str) -> None:
    """Run in a fresh process: fit on the training data, select 10 of ``n``, report time and peak."""
    X_train, Y_train = training_data()
    model = fit_model(X_train, Y_train).to(device)
    X = candidates(n, seed=2, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    sel = select("ehvi-topk", X, np.random.default_rng(0), model, X_train.to(device), Y_train.to(device))
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps({"seconds": seconds, "peak_gib": peak_gib, "picks": sel.indices}))


def run_large(n: int, device: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(n), "--device", device],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-large", type=int, default=1_000_000)
    parser.add_argument("--loop-n", type=int, default=10_000, help="candidates for the Python-loop baseline")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        large_child(args.child, args.device)
        return

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    X_train, Y_train = training_data()
    t0 = time.perf_counter()
    model = fit_model(X_train, Y_train)
    fit_s = time.perf_counter() - t0
    print(f"fit two GPs on 200 x {D}: {fit_s:.2f} s")

    X = candidates(10_000, seed=1)
    rng = np.random.default_rng(0)
    select("ehvi-topk", X[:100], rng, model, X_train, Y_train)  # warm-up
    t0 = time.perf_counter()
    sel = select("ehvi-topk", X, rng, model, X_train, Y_train)
    select_s = time.perf_counter() - t0
    print(f"ehvi-topk, 10 of 10^4: {select_s:.3f} s")

    ref = reference_point(Y_train)
    n_loop = min(args.loop_n, X.shape[0])
    t0 = time.perf_counter()
    looped = loop_ehvi(model, X[:n_loop], Y_train, ref)
    loop_s = (time.perf_counter() - t0) * X.shape[0] / n_loop
    mean, std = posterior_moments(model, X[:n_loop])
    ours = ehvi(mean, std, Y_train, ref).numpy()
    agree = float(np.max(np.abs(ours - looped)) / max(np.max(np.abs(looped)), 1e-300))
    print(f"Python loop, 10^4 candidates: {loop_s:.1f} s ({loop_s / X.shape[0] * 1e3:.2f} ms per candidate"
          f"{'' if n_loop == X.shape[0] else f', timed on {n_loop}'}); speed-up {loop_s / select_s:.0f}x; "
          f"max relative difference of the two EHVIs {agree:.1e}")

    t0 = time.perf_counter()
    greedy = select("qlognehvi-greedy", X, rng, model, X_train, Y_train)
    greedy_s = time.perf_counter() - t0
    print(f"qlognehvi-greedy, 10 of 10^4: {greedy_s:.1f} s; {len(set(greedy.indices) & set(sel.indices))} "
          f"picks shared with ehvi-topk")

    big = run_large(args.n_large, "cpu")
    print(f"ehvi-topk, 10 of {args.n_large:.0e}: {big['seconds']:.1f} s, peak memory {big['peak_gib']:.2f} GiB")
    figures = {"fit_200_s": round(fit_s, 2), "select_1e4_s": round(select_s, 3), "loop_1e4_s": round(loop_s, 1),
               "speedup_1e4": round(loop_s / select_s), "select_1e6_s": round(big["seconds"], 2),
               "peak_gib_1e6": round(big["peak_gib"], 2), "greedy_1e4_s": round(greedy_s, 1),
               "loop_ehvi_max_rel_diff": agree, "n_large": args.n_large}
    if torch.cuda.is_available():
        gpu = run_large(args.n_large, "cuda")
        print(f"ehvi-topk on {torch.cuda.get_device_name()}, 10 of {args.n_large:.0e}: {gpu['seconds']:.2f} s")
        figures["select_1e6_gpu_s"] = round(gpu["seconds"], 3)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
