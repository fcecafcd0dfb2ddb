"""One-line errors for files a user wrote (campaigns, profiles, presets, tables)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's walltime, ``kill``), raised in the main thread as Ctrl-C raises KeyboardInterrupt: the
    same ``finally`` blocks run (workers stopped, descriptors cached, the store closed)."""


class CampaignStopped(RuntimeError):
    """A campaign stopped because going on would spend its budget for nothing (every job of a batch failed: the
    machine or the setup, not the polymers); one line, exit code 3."""


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
    return f"key '{loc}': {err['msg']} (got {shorten(repr(err.get('input')))})"


def shorten(value: object, limit: int = 60) -> str:
    """A user's value for a one-line message or a log: escaped (no newlines or control characters) and at
    most ``limit`` characters."""
    text = value if isinstance(value, str) else repr(value)
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else f"{text[:limit - 15]}... ({len(text)} chars)"


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (the second would silently win)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: key {shorten(repr(key))} is given twice")
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_yaml_mapping(path: Path, what: str) -> dict:
    """The mapping in a YAML file, or a :class:`ConfigError` naming the file (and line)."""
    if not path.is_file():
        raise ConfigError(f"{what} file {path} does not exist")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except ConfigError as exc:
        raise ConfigError(f"{what} file {path} {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} file {path} cannot be read ({type(exc).__name__})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{what} file {path}{where}: not valid YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} file {path}: expected a mapping of keys, got {type(data).__name__}")
    return data
