"""Helpers for the deployment tests: render overlays, walk pods and containers, read env."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
TOOLS = ROOT / ".tools"
OVERLAYS = ("dev", "prod")
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
OWN_IMAGES = ("wikipulse/pipeline", "wikipulse/notebook")
POD_KINDS = ("Deployment", "StatefulSet", "Job", "CronJob")
_SETUP_HINT = "run `bash .ci/tools.sh` (make setup) to install the deployment tools"


def tool(name: str) -> str:
    """A tool .ci/tools.sh installs (or the venv provides); fails with how to get it."""
    candidates = [
        TOOLS / "bin" / name,
        ROOT / ".venv-tools" / "bin" / name,
        ROOT / ".venv" / "bin" / name,
    ]
    for path in candidates:
        if path.is_file():
            return str(path)
    found = shutil.which(name)
    if found is None:
        raise AssertionError(f"{name} not found; {_SETUP_HINT}")
    return found


def render(overlay: str) -> list[dict[str, Any]]:
    """``kustomize build k8s/overlays/<overlay>`` as a list of objects."""
    out = subprocess.run(
        [tool("kustomize"), "build", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one object of ``kind`` called ``name`` (ConfigMaps by their name before the hash)."""
    for doc in docs:
        if doc["kind"] != kind:
            continue
        actual = doc["metadata"]["name"]
        hashed = kind == "ConfigMap" and re.fullmatch(rf"{name}-[a-z0-9]{{10}}", actual)
        if actual == name or hashed:
            return doc
    raise AssertionError(f"no {kind} {name}")


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    """The pod template spec of a workload."""
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"]["spec"])


def pod_labels(doc: dict[str, Any]) -> dict[str, str]:
    """The labels of a workload's pods."""
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"]["metadata"].get("labels", {}))


@dataclass(frozen=True)
class Container:
    """One container of a workload, with what it runs and sees."""

    workload: dict[str, Any]
    spec: dict[str, Any]
    init: bool

    @property
    def name(self) -> str:
        """``<workload>/<container>``, for messages."""
        return f"{self.workload['metadata']['name']}/{self.spec['name']}"

    @property
    def image(self) -> str:
        """The image reference."""
        return str(self.spec["image"])

    @property
    def own_image(self) -> bool:
        """Whether the container runs one of the wikipulse images."""
        return self.image.split(":")[0] in OWN_IMAGES

    @property
    def argv(self) -> list[str]:
        """command + args, as the container runs them (entrypoint not included)."""
        return [*self.spec.get("command", []), *self.spec.get("args", [])]


def workloads(docs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every object that runs pods."""
    return (doc for doc in docs if doc["kind"] in POD_KINDS)


def containers(docs: list[dict[str, Any]]) -> Iterator[Container]:
    """Every container (init containers included) of every workload."""
    for doc in workloads(docs):
        spec = pod_spec(doc)
        for item in spec.get("initContainers", []):
            yield Container(doc, item, True)
        for item in spec["containers"]:
            yield Container(doc, item, False)


def environment(docs: list[dict[str, Any]], container: Container) -> dict[str, Any]:
    """A container's variables: ConfigMap values as strings, Secret references as dicts."""
    env: dict[str, Any] = {}
    for source in container.spec.get("envFrom", []):
        configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
        env.update(configmaps[source["configMapRef"]["name"]]["data"])
    for item in container.spec.get("env", []):
        env[item["name"]] = item["valueFrom"] if "valueFrom" in item else item["value"]
    return env


def expand(text: str, env: dict[str, Any]) -> str:
    """Kubernetes' ``$(VAR)`` expansion of command and args."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: str(env[m.group(1)]), text)


def spark_properties(text: str) -> dict[str, str]:
    """A spark-defaults style file as a dict."""
    props = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            props[key] = value.strip()
    return props
