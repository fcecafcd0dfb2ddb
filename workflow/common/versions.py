"""Installed versions of PolyScout and the libraries it stands on (records, reports, ``--version``)."""

from __future__ import annotations

from importlib import metadata


def package_versions(dists: tuple[str, ...]) -> dict[str, str]:
    """Each distribution's installed version, or "not installed"."""
    versions = {}
    for dist in dists:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions
