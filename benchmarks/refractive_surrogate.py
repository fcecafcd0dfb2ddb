"""Held-out refractive index on PI1070: the direct GP (today's one-fidelity model) against the physics-informed one.

    python benchmarks/refractive_surrogate.py [--data PATH] [--seeds 10] [--sizes 20,50,100,200]

For each training size t and seed, t polymers drawn at random are "simulated" (their density and refractive index
known) and every other polymer is held out. Three predictions of the held-out n:

``direct``
    one GP on n over the descriptors (``surrogate.gp.fit_model``, isotropic kernel), as the campaigns fit it today;
``composite, equal data``
    :class:`surrogate.physics.RefractiveIndexModel` with the QM of the same t polymers only: a GP on the density and
    one on the specific polarizability s = alpha / M, through Lorentz-Lorenz;
``composite, pool screened``
    the same with every polymer's QM known (a QM-first campaign's screen): only the density is predicted.

Figures per prediction: RMSE, the share of held-out polymers inside the 68% and 95% intervals (a calibrated model:
0.68 and 0.95), and the mean squared z-score (1 when calibrated). Ends with a JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._pi1070 import data_argument  # noqa: E402
from benchmarks._two_fidelity import load  # noqa: E402


def figures(pred_mean: torch.Tensor, pred_sd: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    z = (truth - pred_mean) / pred_sd.clamp_min(1e-12)
    return {"rmse": float(((truth - pred_mean) ** 2).mean().sqrt()), "in_68": float((z.abs() <= 1).double().mean()),
            "in_95": float((z.abs() <= 1.96).double().mean()), "mean_z2": float((z**2).mean())}


def one_split(table, t: int, seed: int) -> dict[str, dict[str, float]]:
    from surrogate.acquisition import posterior_moments
    from surrogate.gp import fit_model
    from surrogate.physics import Fidelities, RefractiveIndexModel

    n = len(table.ids)
    perm = torch.as_tensor(np.random.default_rng([seed, t]).permutation(n))
    train, test = perm[:t], perm[t:]
    truth = table.md["refractive_index"][test]
    out = {}
    torch.manual_seed(seed)
    direct = fit_model(table.X[train], table.md["refractive_index"][train].reshape(-1, 1))
    mean, sd = posterior_moments(direct, table.X, test, observation_noise=True)
    out["direct"] = figures(mean[:, 0], sd[:, 0], truth)
    md_values = {"refractive_index": table.md["refractive_index"][train]}
    for label, qm_rows in (("composite, equal data", train), ("composite, pool screened", perm)):
        torch.manual_seed(seed)
        data = Fidelities(qm_rows=qm_rows, s=table.s[qm_rows], md_rows=train, density=table.md["density"][train],
                          md_values=md_values)
        mean, sd = RefractiveIndexModel(table.X, data, ["refractive_index"]).predict(test)
        out[label] = figures(mean[:, 0], sd[:, 0], truth)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_argument(parser)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--sizes", default="20,50,100,200")
    args = parser.parse_args()
    torch.set_num_threads(1)
    table = load(args.data)
    sizes = [int(x) for x in args.sizes.split(",")]
    t0 = time.perf_counter()
    summary: dict = {"seeds": args.seeds, "polymers": len(table.ids)}
    print(f"\n{'train':>5}  {'model':<25} {'RMSE':>7} {'in 68%':>7} {'in 95%':>7} {'mean z^2':>9}   (mean over seeds)")
    for t in sizes:
        runs = [one_split(table, t, seed) for seed in range(args.seeds)]
        for label in runs[0]:
            f = {k: float(np.mean([r[label][k] for r in runs])) for k in runs[0][label]}
            sd_rmse = float(np.std([r[label]["rmse"] for r in runs]))
            print(f"{t:>5}  {label:<25} {f['rmse']:>7.4f} {f['in_68']:>7.3f} {f['in_95']:>7.3f} {f['mean_z2']:>9.2f}"
                  f"   (RMSE sd {sd_rmse:.4f})")
            summary[f"{label} @ {t}"] = {k: round(v, 4) for k, v in f.items()}
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
