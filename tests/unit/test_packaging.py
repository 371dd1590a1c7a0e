"""Packaging: environment.yml agrees with pyproject.toml; the public surface is explicit."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
import tomllib
from pathlib import Path

import yaml

import wiki_lib

ROOT = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_pip_part_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_part = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    declared = {_name(r): r.replace(" ", "") for r in project["dependencies"]}
    listed = {_name(r): r.replace(" ", "") for r in pip_part if not r.startswith("-e")}
    assert listed == declared
    assert any(r.startswith("-e .") for r in pip_part), "environment.yml must install the package"
    conda = {str(d).split("=")[0] for d in env["dependencies"] if isinstance(d, str)}
    assert {"python", "openjdk", "maven", "postgresql", "pip"} <= conda


def test_every_module_declares_all() -> None:
    missing = []
    for info in pkgutil.walk_packages(wiki_lib.__path__, "wiki_lib."):
        module = importlib.import_module(info.name)
        if not hasattr(module, "__all__"):
            missing.append(info.name)
            continue
        for name in module.__all__:
            present = hasattr(module, name) or (
                info.ispkg and importlib.util.find_spec(f"{info.name}.{name}") is not None
            )
            assert present, f"{info.name}.__all__ names missing {name}"
    assert missing == []


def test_py_typed_is_shipped() -> None:
    assert (Path(wiki_lib.__file__).parent / "py.typed").exists()
