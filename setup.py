"""The packages, with the top-level ``hpc_profiles/`` and ``pools/`` shipped inside ``workflow`` (a wheel has no
top-level data folders); everything else is in pyproject.toml."""

from setuptools import find_packages, setup

SHIPPED = {"workflow.shipped.hpc_profiles": "hpc_profiles", "workflow.shipped.pools": "pools"}

setup(packages=find_packages(include=["workflow*", "surrogate*"]) + list(SHIPPED), package_dir=SHIPPED)
