"""One exact GP per objective (GPyTorch via BoTorch), combined in a ``ModelListGP``."""

from __future__ import annotations

import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import ModelListGP, SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from gpytorch.mlls import SumMarginalLogLikelihood

from surrogate.kernels import KERNELS

DTYPE = torch.float64


def _covar(kernel: str):
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}: use one of {', '.join(KERNELS)}")
    return KERNELS[kernel]()


def fit_model(X: torch.Tensor, Y: torch.Tensor, kernel: str = "isotropic") -> ModelListGP:
    """Fit GPs by marginal likelihood.

    Args:
        X: ``n x d`` inputs, used as given (descriptors are already in [0, 1]).
        Y: ``n x m`` outcomes in maximisation form; each column is standardised by its GP.
        kernel: a name in :data:`KERNELS`.

    Returns:
        A ``ModelListGP`` of ``m`` ``SingleTaskGP``s.
    """
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"expected X n x d and Y n x m with equal n, got {tuple(X.shape)} and {tuple(Y.shape)}")
    if X.shape[0] < 2:
        raise ValueError(f"need at least 2 training points, got {X.shape[0]}")
    if not torch.isfinite(Y).all():
        raise ValueError("training outcomes contain NaN or inf")
    X, Y = X.to(DTYPE), Y.to(DTYPE)
    models = [SingleTaskGP(X, Y[:, i : i + 1], covar_module=_covar(kernel),
                           outcome_transform=Standardize(m=1)) for i in range(Y.shape[1])]
    model = ModelListGP(*models)
    fit_gpytorch_mll(SumMarginalLogLikelihood(model.likelihood, model))
    model.eval()
    return model
