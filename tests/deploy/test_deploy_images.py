"""The Dockerfiles: hadolint-clean, multi-stage, pinned, non-root, and in step with the code.

No Docker engine is needed: hadolint parses the files, the structure is read directly, and
the pipeline image's entrypoint is run here against stand-ins for java and spark-submit.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml
from k8stools import K8S, ROOT, find, render, tool
from packaging.requirements import Requirement

from wiki_lib.stack.spark_cluster import spark_home

DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|make|build-essential|mvn|maven|apt-get|apk|npm)\b")


def _stages(dockerfile: Path) -> list[dict[str, object]]:
    """Stages with their resolved base image, name and instructions (continuations joined)."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    args: dict[str, str] = {}
    stages: list[dict[str, object]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word == "ARG" and not stages and "=" in rest:
            name, value = rest.split("=", 1)
            args[name] = value
        elif word == "FROM":
            image, _, name = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest).partition(
                " AS "
            )
            stages.append({"image": image.strip(), "name": name.strip(), "lines": []})
        elif stages:
            stages[-1]["lines"].append((word, rest))  # type: ignore[union-attr]
    return stages


def test_there_are_the_two_images() -> None:
    assert [p.name for p in DOCKERFILES] == ["notebook.Dockerfile", "pipeline.Dockerfile"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_is_clean(dockerfile: Path) -> None:
    out = subprocess.run(
        [tool("hadolint"), "--format", "json", "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0 and json.loads(out.stdout) == [], out.stdout


def test_hadolint_flags_a_careless_dockerfile(tmp_path: Path) -> None:
    careless = tmp_path / "careless.Dockerfile"
    careless.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y gcc\n")
    out = subprocess.run(
        [tool("hadolint"), "--format", "json", str(careless)],
        capture_output=True,
        text=True,
        check=False,
    )
    codes = {finding["code"] for finding in json.loads(out.stdout)}
    assert {"DL3007", "DL3008"} <= codes and out.returncode != 0


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_multi_stage_pinned_non_root_without_build_tools(dockerfile: Path) -> None:
    stages = _stages(dockerfile)
    assert len(stages) >= 3, "builder stages and a final stage"
    for stage in stages:
        image = str(stage["image"])
        assert re.fullmatch(r"[a-z0-9./-]+:\d+\.\d+\.\d+[-_.a-z0-9]*", image), image
    final = stages[-1]
    assert "slim" in str(final["image"])
    lines = final["lines"]
    users = [rest for word, rest in lines if word == "USER"]  # type: ignore[union-attr]
    assert users, "the final stage must switch to an unprivileged user"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000
    for word, rest in lines:  # type: ignore[union-attr]
        if word == "RUN":
            assert not BUILD_TOOLS.search(rest), f"build tooling in the final stage: {rest}"
        if word == "COPY" and not rest.startswith("--from="):
            source = rest.split()[0]
            assert (ROOT / source).exists(), f"COPY of a missing {source}"
            ignored = (ROOT / ".dockerignore").read_text().split()
            assert source.split("/")[0] not in ignored, f"{source} is excluded from the context"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_match_the_project(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    pyspark = next(Requirement(r) for r in PROJECT["dependencies"] if r.startswith("pyspark"))
    (spark_version,) = set(re.findall(r"ARG SPARK_VERSION=(\S+)", text))
    assert pyspark.specifier.contains(spark_version) and str(pyspark.specifier).startswith("==")
    python = re.search(r"python:(\d+\.\d+)\.\d+", text)
    assert python and Requirement(f"x{PROJECT['requires-python']}").specifier.contains(
        python.group(1)
    )
    for match in re.findall(r"python(\d+\.\d+)/site-packages", text):
        assert match == python.group(1)
    for pinned in re.findall(r'"jupyterhub==([\d.]+)"', text):
        deploy = next(
            Requirement(r) for r in PROJECT["optional-dependencies"]["deploy"] if "jupyterhub" in r
        )
        assert deploy.specifier.contains(pinned)


def test_images_and_manifests_agree_on_users_and_paths() -> None:
    pipeline = (ROOT / "docker" / "pipeline.Dockerfile").read_text()
    notebook = (ROOT / "docker" / "notebook.Dockerfile").read_text()
    assert "USER 10001:10001" in pipeline and "USER 1000:100" in notebook
    values = yaml.safe_load((K8S / "jupyterhub" / "values.yaml").read_text())
    assert (values["singleuser"]["uid"], values["singleuser"]["fsGid"]) == (1000, 100)
    assert "SPARK_CONF_DIR=/etc/wikipulse/spark" in pipeline
    docs = render("dev")
    driver = find(docs, "Deployment", "stream-driver")
    mounts = driver["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "spark-conf", "mountPath": "/etc/wikipulse/spark", "readOnly": True} in mounts
    assert "/opt/wikipulse/streaming/jobs" in pipeline
    assert (ROOT / "streaming" / "jobs" / "speed_layer.py").is_file()


def test_spark_classes_the_entrypoint_starts_exist() -> None:
    jars = list((spark_home() / "jars").glob("spark-kubernetes_*.jar"))
    assert jars, "pyspark ships without its Kubernetes backend"
    with zipfile.ZipFile(jars[0]) as jar:
        assert (
            "org/apache/spark/scheduler/cluster/k8s/KubernetesExecutorBackend.class"
            in jar.namelist()
        )
    text = ENTRYPOINT.read_text()
    assert "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend" in text


def _stub(folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    stub = folder / name
    stub.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    stub.chmod(0o755)


def test_entrypoint_starts_an_executor_as_spark_asks(tmp_path: Path) -> None:
    _stub(tmp_path / "jdk" / "bin", "java")
    env = {
        "PATH": "/usr/bin:/bin",
        "JAVA_HOME": str(tmp_path / "jdk"),
        "SPARK_HOME": "/opt/spark",
        "SPARK_CONF_DIR": "/etc/spark",
        "SPARK_EXECUTOR_MEMORY": "1g",
        "SPARK_DRIVER_URL": "spark://CoarseGrainedScheduler@spark-driver:7078",
        "SPARK_EXECUTOR_ID": "3",
        "SPARK_EXECUTOR_CORES": "2",
        "SPARK_APPLICATION_ID": "spark-app-1",
        "SPARK_EXECUTOR_POD_IP": "10.0.0.7",
        "SPARK_EXECUTOR_POD_NAME": "wikipulse-stream-exec-3",
        "SPARK_RESOURCE_PROFILE_ID": "0",
        "SPARK_JAVA_OPT_10": "-Dlater=10",
        "SPARK_JAVA_OPT_2": "-Dearlier=2",
    }
    out = subprocess.run(
        ["bash", str(ENTRYPOINT), "executor"], env=env, capture_output=True, text=True, check=True
    )
    argv = out.stdout.splitlines()
    assert argv[:4] == ["-Dearlier=2", "-Dlater=10", "-Xms1g", "-Xmx1g"]
    assert argv[4:6] == ["-cp", "/etc/spark:/opt/spark/jars/*"]
    assert argv[6] == "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend"
    options = dict(zip(argv[7::2], argv[8::2], strict=True))
    assert options == {
        "--driver-url": env["SPARK_DRIVER_URL"],
        "--executor-id": "3",
        "--cores": "2",
        "--app-id": "spark-app-1",
        "--hostname": "10.0.0.7",
        "--resourceProfileId": "0",
        "--podName": "wikipulse-stream-exec-3",
    }


def test_entrypoint_driver_mode_names_its_pod(tmp_path: Path) -> None:
    _stub(tmp_path / "bin", "spark-submit")
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "HOSTNAME": "stream-driver-7f9c-x2"}
    out = subprocess.run(
        ["bash", str(ENTRYPOINT), "driver", "--master", "k8s://https://k", "job.py"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.splitlines() == [
        "--deploy-mode",
        "client",
        "--conf",
        "spark.kubernetes.driver.pod.name=stream-driver-7f9c-x2",
        "--master",
        "k8s://https://k",
        "job.py",
    ]
    plain = subprocess.run(
        ["bash", str(ENTRYPOINT), "echo", "wikipulse"],
        env={**os.environ},
        capture_output=True,
        text=True,
        check=True,
    )
    assert plain.stdout == "wikipulse\n"


def test_entrypoint_and_tool_scripts_pass_shellcheck() -> None:
    scripts = [ENTRYPOINT, ROOT / ".ci" / "tools.sh", ROOT / ".ci" / "system-packages.sh"]
    out = subprocess.run(
        [tool("shellcheck"), *map(str, scripts)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout
