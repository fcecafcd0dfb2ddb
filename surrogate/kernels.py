"""GP covariance modules by the name a campaign gives (``kernel:``): the one list of kernels.

Each entry makes a GPyTorch kernel (imported only then), or None for BoTorch's default.
"""

from __future__ import annotations

from typing import Any, Callable


def _isotropic() -> Any:
    from gpytorch.kernels import RBFKernel, ScaleKernel

    return ScaleKernel(RBFKernel())


def _matern() -> Any:
    from gpytorch.kernels import MaternKernel, ScaleKernel

    return ScaleKernel(MaternKernel(nu=2.5))


KERNELS: dict[str, Callable[[], Any]] = {
    "ard": lambda: None,  # BoTorch's default: one RBF lengthscale per input, dimension-scaled priors
    "isotropic": _isotropic,  # one lengthscale for all inputs, times an output scale (the published model)
    "matern": _matern,  # Matern-5/2 with one lengthscale, times an output scale (rougher functions than the RBF)
}
