"""One-line errors for files a user wrote (campaigns, profiles, presets, tables)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError


class ConfigError(ValueError):
    """A campaign, profile, preset or table that cannot be used; the message is one line."""


def one_line(exc: ValidationError) -> str:
    """The first problem of a pydantic validation error, naming its key."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    if not loc:  # a check across keys: its message names them
        return str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"unknown key '{loc}'"
    if err["type"] == "missing":
        return f"missing key '{loc}'"
    return f"key '{loc}': {err['msg']} (got {err.get('input')!r})"


def load_yaml_mapping(path: Path, what: str) -> dict:
    """The mapping in a YAML file, or a :class:`ConfigError` naming the file (and line)."""
    if not path.is_file():
        raise ConfigError(f"{what} file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{what} file {path}{where}: not valid YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} file {path}: expected a mapping of keys, got {type(data).__name__}")
    return data
