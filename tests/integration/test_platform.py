"""`wikipulse up` / `status` / `down`: the whole pipeline as processes, from a fresh state dir."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import make_state_dir

from wiki_lib.stack._proc import pid_alive

pytestmark = pytest.mark.integration


def _cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wiki_lib.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def test_up_status_down_with_the_shipped_capture(tmp_path: Path) -> None:
    state = make_state_dir("platform")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WIKI__")},
        "WIKI__STACK__STATE_DIR": str(state),
        "WIKI__STACK__KAFKA_PORT": "0",
        "WIKI__STACK__KAFKA_CONTROLLER_PORT": "0",
        "WIKI__POSTGRES__PORT": "0",
        "WIKI__SPARK__UI_PORT": "0",
        "WIKI__PRODUCER__URL": "http://127.0.0.1:9/unreachable",
    }
    try:
        up = _cli(env, "up", "--no-dashboard", "--speed", "20", "--watch", "0")
        assert up.returncode == 0, up.stderr
        assert "is not reachable" in up.stderr and "shipped with the package" in up.stderr
        assert "started: stream, producer" in up.stdout
        deadline = time.monotonic() + 240
        pipeline: dict = {}
        while time.monotonic() < deadline:
            status = _cli(env, "status", "--json")
            pipeline = json.loads(status.stdout)["pipeline"] if status.stdout else {}
            if pipeline.get("events_in", 0) >= 50:
                break
            time.sleep(3)
        assert pipeline.get("events_in", 0) >= 50, pipeline
        assert status.returncode == 0, status.stdout
        parts = {p["name"]: p for p in json.loads(status.stdout)["parts"]}
        assert parts["producer"]["running"] and parts["stream"]["running"]
        pids = [p["pid"] for p in parts.values()]

        down = _cli(env, "down")
        assert down.returncode == 0, down.stderr
        assert "producer" in down.stdout and "stream" in down.stdout and "kafka" in down.stdout
        for pid in pids:
            assert not pid_alive(pid)
        again = _cli(env, "status", "--json")
        assert again.returncode == 3
    finally:
        _cli(env, "down")
        shutil.rmtree(state, ignore_errors=True)


def test_up_refuses_an_unwritable_state_dir(tmp_path: Path) -> None:
    env = {**os.environ, "WIKI__STACK__STATE_DIR": "/proc/wikipulse-cannot-be-here"}
    result = _cli(env, "up", "--no-dashboard", "--watch", "0", timeout=120)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("wikipulse: error")]
    assert len(lines) == 1 and "not writable" in lines[0]
