"""A physics-informed surrogate for the refractive index: GPs on what is uncertain, Lorentz-Lorenz for the rest.

The refractive index follows from the repeat unit's polarizability and the cell's density,

    phi = (n^2 - 1) / (n^2 + 2) = K * rho * s,    s = alpha / M,    K = 4 pi N_A / 3 (alpha in A^3, rho in g/cm^3),

so a polymer whose QM stage has run has an exact ``s`` (its specific polarizability, A^3 mol/g) and only its
density is uncertain until its MD runs. :class:`RefractiveIndexModel` fits one GP on the densities of the
polymers with MD and one on ``s`` of the polymers with QM (every polymer with MD has QM), and predicts for any
pool polymer, whatever fidelity it has reached:

* MD done: the measured n (sd 0);
* QM only: ``s`` exact, rho from its GP: sd from the density alone;
* nothing yet: both from their GPs (independent).

Objectives computed by the QM alone (``qm_objectives``, e.g. the Abbe number, which depends on the dispersion of
the polarizability and only weakly on the density) are exact once the QM has run and come from a GP over the
QM-screened polymers otherwise; every other objective (``md_objectives``: Cp, a modulus, the density itself) has
its direct GP over the polymers with MD, as in the one-fidelity loop. Means and standard deviations of n are
propagated through Lorentz-Lorenz to second order in the mean and first order in the variance
(:func:`index_moments`); a test checks both against a hand computation and against sampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

AVOGADRO = 6.02214076e23
LL_K = 4.0 * math.pi * AVOGADRO * 1e-24 / 3.0
"""phi = LL_K * rho[g/cm^3] * alpha[A^3] / M[g/mol] (RadonPy's Lorentz-Lorenz, :func:`workflow.job.optics.lorentz_lorenz`)."""
QM_INFORMED = ("refractive_index", "abbe_number")
"""Objectives a QM screen informs: n through the polarizability, the Abbe number through its dispersion."""


def product_moments(mean_a: torch.Tensor, sd_a: torch.Tensor, mean_b: torch.Tensor,
                    sd_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact mean and variance of ``a * b`` for independent ``a`` and ``b`` (any equal shapes).

    E[ab] = mu_a mu_b; Var[ab] = mu_a^2 s_b^2 + mu_b^2 s_a^2 + s_a^2 s_b^2.
    """
    mean = mean_a * mean_b
    var = mean_a**2 * sd_b**2 + mean_b**2 * sd_a**2 + sd_a**2 * sd_b**2
    return mean, var


def index_of_phi(phi: torch.Tensor) -> torch.Tensor:
    """n = sqrt((1 + 2 phi) / (1 - phi)), elementwise (phi in [0, 1))."""
    return torch.sqrt((1 + 2 * phi) / (1 - phi))


def index_moments(phi_mean: torch.Tensor, phi_var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of n = sqrt((1 + 2 phi) / (1 - phi)) for phi with the given moments.

    With g = (1 + 2 phi) / (1 - phi): g' = 3 / (1 - phi)^2, g'' = 6 / (1 - phi)^3, n' = g' / (2 sqrt g),
    n'' = g'' / (2 sqrt g) - g'^2 / (4 g^1.5). Mean n(mu) + n''(mu) var / 2, variance n'(mu)^2 var.
    ``phi_mean`` is clamped below 1 - 1e-6 (phi >= 1 has no real n).

    Args:
        phi_mean, phi_var: tensors of one shape (``n x 1`` or ``n``).

    Returns:
        ``(mean, sd)`` of n, the same shape.
    """
    mu = phi_mean.clamp(0.0, 1.0 - 1e-6)
    one_minus = 1 - mu
    g = (1 + 2 * mu) / one_minus
    g1, g2 = 3 / one_minus**2, 6 / one_minus**3
    n1 = g1 / (2 * g.sqrt())
    n2 = g2 / (2 * g.sqrt()) - g1**2 / (4 * g**1.5)
    return g.sqrt() + 0.5 * n2 * phi_var, (n1**2 * phi_var).clamp_min(0).sqrt()


def index_from(rho_mean: torch.Tensor, rho_sd: torch.Tensor, s_mean: torch.Tensor,
               s_sd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and sd of n for independent density (g/cm^3) and specific polarizability s = alpha / M (A^3 mol/g)."""
    phi_mean, phi_var = product_moments(rho_mean, rho_sd, s_mean, s_sd)
    return index_moments(LL_K * phi_mean, LL_K**2 * phi_var)


@dataclass(frozen=True)
class Fidelities:
    """What a campaign knows of its pool, by fidelity (rows index the pool matrix ``X``).

    Attributes:
        qm_rows: ``a`` rows whose QM stage has run; ``s``: their specific polarizability alpha_D / M (``a``).
        qm_values: objective name -> ``a`` values the QM alone gives (e.g. the Abbe number); may be empty.
        md_rows: ``b`` rows whose MD has run (each also in ``qm_rows``); ``density``: their densities (``b``).
        md_values: objective name -> ``b`` measured values (the refractive index among them when it is one).
    """

    qm_rows: torch.Tensor
    s: torch.Tensor
    md_rows: torch.Tensor
    density: torch.Tensor
    md_values: dict[str, torch.Tensor]
    qm_values: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self):
        missing = set(self.md_rows.tolist()) - set(self.qm_rows.tolist())
        if missing:
            raise ValueError(f"{len(missing)} row(s) with MD but no QM (e.g. row {min(missing)})")


def _gp_moments(X: torch.Tensor, rows: torch.Tensor, y: torch.Tensor, query: torch.Tensor,
                kernel: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A GP fitted on ``y`` (``t``) at ``X[rows]``, its predictive mean and sd of a measurement at ``X[query]``."""
    from surrogate.acquisition import posterior_moments
    from surrogate.gp import fit_model

    model = fit_model(X[rows], y.reshape(-1, 1).to(X.dtype), kernel=kernel)
    mean, sd = posterior_moments(model, X, query, observation_noise=True)
    return mean[:, 0], sd[:, 0]


class RefractiveIndexModel:
    """Predictive moments of a campaign's objectives at any pool row (see the module docstring).

    ``objectives`` are names in order; ``"refractive_index"`` is composed through Lorentz-Lorenz, names in
    ``qm_objectives`` come from the QM, every other name from its MD values (``"density"`` shares the density GP).
    """

    def __init__(self, X: torch.Tensor, data: Fidelities, objectives: list[str],
                 qm_objectives: tuple[str, ...] = ("abbe_number",), kernel: str = "isotropic"):
        self.X, self.data, self.objectives, self.kernel = X, data, list(objectives), kernel
        self.qm_objectives = tuple(o for o in objectives if o in qm_objectives)

    def predict(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and sds (natural units, not maximisation form) of every objective: ``k`` rows -> two ``k x m``."""
        mean, sd = self._assemble(rows, self._parts(rows), None)
        return mean[0], sd[0]

    def predict_with_screens(self, rows: torch.Tensor, nodes: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """:meth:`predict` (two ``k x m``) and the moments each row would have once its QM has run, if the QM's
        results came out at ``nodes`` (``J`` standard-normal quantiles of their present predictive): two
        ``J x k x m``. The QM fixes the specific polarizability (n then spreads by the density alone) and the QM
        objectives; MD objectives are unchanged; rows already screened keep their present moments at every node.
        The GPs are fitted once for both."""
        parts = self._parts(rows)
        mean, sd = self._assemble(rows, parts, None)
        after_mean, after_sd = self._assemble(rows, parts, nodes)
        return mean[0], sd[0], after_mean, after_sd

    def _assemble(self, rows: torch.Tensor, parts: dict, nodes: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``J x k x m`` moments from the GPs' ``parts``: as they are (``nodes`` None, J = 1) or after screens."""
        exact = nodes is not None
        nodes = nodes if nodes is not None else torch.zeros(1, dtype=self.X.dtype)
        J, k = len(nodes), len(rows)
        means, sds = [], []
        z = nodes.to(self.X.dtype).view(J, 1)
        for name in self.objectives:
            if name == "refractive_index":
                (rho_m, rho_s), (s_m, s_s), (measured, value) = parts["rho"], parts["s"], parts["n"]
                s_node = (s_m + z * s_s) if exact else s_m.expand(J, k)
                m, sd = index_from(rho_m.expand(J, k), rho_s.expand(J, k), s_node,
                                   torch.zeros_like(s_node) if exact else s_s.expand(J, k))
                m, sd = torch.where(measured, value, m), torch.where(measured, torch.zeros_like(sd), sd)
            elif name in self.qm_objectives:
                qm_m, qm_s = parts[name]
                m = (qm_m + z * qm_s) if exact else qm_m.expand(J, k)
                sd = torch.zeros_like(m) if exact else qm_s.expand(J, k)
            else:
                m, sd = (x.expand(J, k) for x in parts[name])
            means.append(m)
            sds.append(sd)
        return torch.stack(means, dim=-1), torch.stack(sds, dim=-1)

    def _parts(self, rows: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Every GP's moments at ``rows`` (each fitted once): the density, s, measured n, each objective."""
        d, parts = self.data, {}
        if "refractive_index" in self.objectives or "density" in self.objectives:
            parts["rho"] = parts["density"] = self._fitted(rows, d.md_rows, d.density)
        if "refractive_index" in self.objectives:
            parts["s"] = self._fitted(rows, d.qm_rows, d.s)
            parts["n"] = self._known(rows, d.md_rows, d.md_values["refractive_index"])
        for name in self.objectives:
            if name in self.qm_objectives:
                parts[name] = self._fitted(rows, d.qm_rows, d.qm_values[name])
            elif name not in parts and name != "refractive_index":
                parts[name] = self._fitted(rows, d.md_rows, d.md_values[name])
        return parts

    def _known(self, rows: torch.Tensor, known_rows: torch.Tensor, values: torch.Tensor):
        """For each of ``rows``: its value where it is in ``known_rows`` (mask, values; NaN elsewhere)."""
        where = {int(r): i for i, r in enumerate(known_rows.tolist())}
        idx = torch.tensor([where.get(int(r), -1) for r in rows.tolist()], dtype=torch.long)
        mask = idx >= 0
        out = torch.full((len(rows),), float("nan"), dtype=self.X.dtype)
        out[mask] = values.to(self.X.dtype)[idx[mask]]
        return mask, out

    def _fitted(self, rows: torch.Tensor, known_rows: torch.Tensor, values: torch.Tensor):
        """Known values (sd 0) where measured, the GP's predictive moments elsewhere."""
        mask, mean = self._known(rows, known_rows, values)
        sd = torch.zeros_like(mean)
        if (~mask).any():
            m, s = _gp_moments(self.X, known_rows, values, rows[~mask], self.kernel)
            mean[~mask], sd[~mask] = m, s
        return mean, sd
