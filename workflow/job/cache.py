"""The one caching rule of the property job, for its stages and for each LAMMPS run inside the MD stage.

A step is done when its manifest ``stages/<name>.json`` holds the same key and every output it
lists is present. The key is a hash of what made the outputs: the step's inputs (canonical
PSMILES, the preset's settings it reads, the seed), the code version of the step and the keys of
the steps it reads from. Outputs are written atomically before the manifest, so a killed job
leaves either a complete step or none; a directory made for another polymer or preset is never
reused (its keys differ), and its steps are computed again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from workflow.common.files import read_json, stable_hash, write_json_atomic


def step_key(name: str, version: int, inputs: Any, upstream: tuple[str, ...] = ()) -> str:
    """The key of a step: its name, code version, inputs and the keys of the steps it reads."""
    return stable_hash({"step": name, "version": version, "inputs": inputs, "upstream": list(upstream)})


class StepCache:
    """Manifests of finished steps under ``directory/stages/``."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.manifests = self.directory / "stages"

    def done(self, name: str, key: str) -> dict[str, Any] | None:
        """The manifest of step ``name`` when it was finished with ``key`` and its outputs are all present."""
        manifest = read_json(self.manifests / f"{name}.json")
        if manifest is None or manifest.get("key") != key:
            return None
        if not all((self.directory / f).is_file() for f in manifest.get("outputs", [])):
            return None
        return manifest

    def mark(self, name: str, key: str, outputs: list[str], seconds: float) -> None:
        """Record step ``name`` as finished (after its outputs, relative to the directory, were written)."""
        self.manifests.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.manifests / f"{name}.json",
                          {"key": key, "outputs": outputs, "seconds": seconds, "finished": time.time()})
