"""The one caching rule of the property job, for its stages and for each LAMMPS run inside the MD stage.

A step is done when its manifest ``stages/<name>.json`` holds the same key and every output it
lists is present. The key is a hash of what made the outputs: the step's inputs (canonical
PSMILES, the seed, and the typed slice of the preset the step reads: every field of the slice,
so a field added to it changes the key) and the keys of the steps it reads from. The same rule
serves the job's stages, its LAMMPS segments and the cap reference jobs share. Outputs are
written atomically before the manifest, so a killed job leaves either a complete step or none; a
directory made for another polymer or preset is never reused (its keys differ), and its steps are
computed again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from workflow.common.files import read_json, stable_hash, write_json_atomic


def step_key(name: str, inputs: Any, upstream: tuple[str, ...] = ()) -> str:
    """The key of a step: its name, its inputs (typed settings slices are hashed field by field) and the keys of
    the steps it reads."""
    return stable_hash({"step": name, "inputs": _plain(inputs), "upstream": list(upstream)})


def _plain(value: Any) -> Any:
    """``value`` with every pydantic model replaced by its JSON fields (all of them, defaults included)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


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
