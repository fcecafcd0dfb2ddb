import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
PLUMBING = REPO / "tests" / "presets" / "plumbing.yaml"
"""The preset of the tests that check what surrounds a real property job (Parsl, SLURM), not its numbers."""


@pytest.fixture(autouse=True)
def _venv_bin_on_path(monkeypatch):
    """Tests call `workflow`, `lmp` and `mpirun` from this interpreter's environment."""
    bin_dir = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", bin_dir + os.pathsep + os.environ.get("PATH", ""))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def pytest_configure(config):
    """Under pytest-xdist (`pytest -n 2`) each worker has one core's share: one OpenMP/BLAS/torch thread each, not
    one per core (two workers of two threads on two cores spend their time waiting on each other). Set before any
    test module imports numpy or torch, which read it once."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = "1"
