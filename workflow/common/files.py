"""Files that a reader never sees half-written, and names safe for a directory."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from workflow.common.errors import ConfigError


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write, renamed onto ``path`` when the block ends: a reader sees the old
    file or the whole new one. When the block fails (a full disk) the temporary file is removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary file and a rename: a reader sees the old file or the whole new one."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def output_file(path: str | Path, what: str, example: str) -> Path:
    """Where a command writes ``what``: its folder is made; a folder in the file's place is refused in one line
    naming ``example``, a file name that would do."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a directory: name a file (e.g. {path / example})")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    write_bytes_atomic(path, json.dumps(data, indent=1, sort_keys=True, default=str).encode())


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None where it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_pickle_atomic(path: Path, obj: Any) -> None:
    write_bytes_atomic(path, pickle.dumps(obj))


def read_pickle(path: Path) -> Any:
    with open(path, "rb") as fh:
        return pickle.load(fh)


def safe_name(text: str, limit: int = 40) -> str:
    """``text`` reduced to letters, digits and ``_.-`` (a hash where nothing is left), for directory names."""
    s = re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:limit]
    return s or hashlib.sha256(text.encode()).hexdigest()[:12]


def stable_hash(obj: Any) -> str:
    """A short hash of a JSON-serialisable object, the same in every process and session."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_hash(path: Path) -> str:
    """The SHA-256 of a file's bytes (a pool's identity, whatever its name)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shipped_dir(name: str) -> Path:
    """A data folder that ships with PolyScout (``hpc_profiles``, ``pools``): inside the installed package
    (``workflow/shipped/NAME``, where ``setup.py`` puts it in a wheel), else the repository's top-level folder (a
    source checkout or an editable install)."""
    package = Path(__file__).resolve().parents[1]
    inside = package / "shipped" / name
    return inside if inside.is_dir() else package.parent / name
