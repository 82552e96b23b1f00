"""The package list, computed (everything else is in pyproject.toml).

Each import package of ``[tool.setuptools.package-dir]`` (``accord`` ← ``daemon/``, ``accord.actors`` ←
``actors/``, ...) is packaged with every sub-package under its folder. A folder that is not in the source
tree is left out: the production image copies no ``sandboxes/`` into its build context (Dockerfile), so its
wheel holds no simulator, while a checkout packages them all (``pip install -e .``).
"""

import tomllib
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent


def packages() -> list[str]:
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-dir"]
    found: list[str] = []
    for package, folder in mapping.items():
        if (ROOT / folder / "__init__.py").is_file():
            found += [package, *(f"{package}.{sub}" for sub in find_packages(where=str(ROOT / folder)))]
    return found


setup(packages=packages())
