"""What a wheel holds: a sub-package missing from pyproject's list installs without it (found
when `pip install .` left out sharedppo.pack, which an editable install had hidden)."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="Python 3.11's tomllib reads pyproject.toml")
ROOT = Path(__file__).resolve().parents[1]


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_with_an_init_is_in_the_wheel():
    listed = set(_setuptools()["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("sharedppo", "hydra_plugins")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"


def test_every_config_file_is_in_the_wheel():
    globs = _setuptools()["package-data"]["sharedppo.conf"]
    conf = ROOT / "conf"
    covered = {f for g in globs for f in conf.glob(g)}
    assert set(conf.rglob("*.yaml")) - covered == set()
