"""`wikipulse up` / `status` / `down`: the whole pipeline as processes, from a fresh state dir."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support import read_topic, stack_settings

from wiki_lib.analysis.evaluate import read_contract_table
from wiki_lib.config import Settings
from wiki_lib.lake import read_events
from wiki_lib.stack import LocalStack, scratch_state_dir
from wiki_lib.stack._proc import pid_alive
from wiki_lib.testing.oracle import TABLE_KEYS, compute_tables, deduplicated_events, load_events

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(state: Path, **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("WIKI__")},
        "WIKI__STACK__STATE_DIR": str(state),
        "WIKI__STACK__KAFKA_PORT": "0",
        "WIKI__STACK__KAFKA_CONTROLLER_PORT": "0",
        "WIKI__POSTGRES__PORT": "0",
        "WIKI__SPARK__UI_PORT": "0",
        "WIKI__PRODUCER__URL": "http://127.0.0.1:9/unreachable",
        "WIKI__DASHBOARD__PORT": str(_free_port()),
        "WIKI__LAB__PORT": str(_free_port()),
        **extra,
    }


def _status(env: dict[str, str]) -> tuple[int, dict]:
    result = _cli(env, "status", "--json")
    return result.returncode, json.loads(result.stdout) if result.stdout else {}


def _wait(env: dict[str, str], done: Callable[[dict], bool], what: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    report: dict = {}
    while time.monotonic() < deadline:
        _, report = _status(env)
        if done(report):
            return report
        time.sleep(3)
    raise AssertionError(f"{what} within {timeout:.0f}s: {report.get('pipeline')}")


def _differences(settings: Settings) -> dict[str, int]:
    """Rows on which PostgreSQL and the oracle over the whole raw topic disagree, per table."""
    want = compute_tables(
        [r.value for r in read_topic(settings.kafka.bootstrap, settings.kafka.topic_raw)]
    )
    out = {}
    for table in TABLE_KEYS:
        got = read_contract_table(settings, table)
        expected = {k: {c: _plain(v) for c, v in r.items()} for k, r in want[table].items()}
        wrong = expected.keys() ^ got.keys()
        wrong |= {k for k in expected.keys() & got.keys() if got[k] | expected[k] != got[k]}
        if wrong:
            out[table] = len(wrong)
    return out


def _plain(value: object) -> object:
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def _processes(state: Path, env: dict[str, str]) -> list[int]:
    """Pids of every part and stack service this state dir ever started."""
    _, report = _status(env)
    pids = [p["pid"] for p in report.get("parts", [])]
    pids += [s["pid"] for s in report.get("services", []) if s.get("pid")]
    return pids


def test_demo_up_answers_counts_exactly_stops_and_resumes(tmp_path: Path) -> None:
    state = scratch_state_dir("platform")
    env = _env(state)
    try:
        up = _cli(env, "up", "--lab", "--watch", "0")
        assert up.returncode == 0, up.stderr
        assert "is not reachable" in up.stderr and "shipped with the package" in up.stderr
        assert "started: stream, producer, alerts, dashboard, lab" in up.stdout
        assert re.search(r"ready in \d+ s", up.stdout), up.stdout
        urls = dict(line.split(": ", 1) for line in up.stdout.splitlines()[1:])
        for name in ("dashboard", "lab"):
            with urllib.request.urlopen(urls[name], timeout=60) as response:
                assert response.status == 200, name
        report = _wait(  # the lag is known once Spark reported the committed batch's progress
            env,
            lambda r: (
                r.get("pipeline", {}).get("events_in", 0) >= 100
                and r["pipeline"].get("kafka_lag") is not None
            ),
            "100 events and the lag",
            240,
        )
        parts = {p["name"]: p for p in report["parts"]}
        assert all(p["running"] for p in parts.values()), parts
        pipeline = report["pipeline"]
        assert pipeline["raw_topic_records"] >= pipeline["events_in"], pipeline  # Kafka was read
        assert pipeline["dead_letters_topic_records"] >= 0 and pipeline["kafka_lag"] >= 0
        pids = _processes(state, env)

        down = _cli(env, "down")
        assert down.returncode == 0, down.stderr
        for name in ("producer", "stream", "alerts", "dashboard", "lab", "kafka", "postgres"):
            assert name in down.stdout
        assert [pid for pid in pids if pid_alive(pid)] == []
        assert _status(env)[0] == 3

        again = _cli(env, "up", "--no-dashboard", "--no-alerts", "--watch", "0")
        assert again.returncode == 0, again.stderr
        first = report["pipeline"]["events_in"]
        report = _wait(
            env, lambda r: r.get("pipeline", {}).get("events_in", 0) > first + 100, "resume", 240
        )
        producer = {p["name"]: p for p in report["parts"]}["producer"]["pid"]
        os.kill(producer, signal.SIGTERM)  # the topic stops growing; the job drains it
        _wait(
            env,
            lambda r: (
                r.get("pipeline", {}).get("kafka_lag") == 0
                and not {p["name"]: p for p in r["parts"]}["producer"]["running"]
            ),
            "the stream job catching up",
            240,
        )
        settings = LocalStack(stack_settings(state)).settings
        assert _differences(settings) == {}
    finally:
        _cli(env, "down")
        shutil.rmtree(state, ignore_errors=True)


def _refused(env: dict[str, str], state: Path) -> str:
    """Run ``up``; it must fail with one error line and leave nothing running."""
    result = _cli(env, "up", "--lab", "--watch", "0", timeout=120)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("wikipulse: error")]
    assert len(lines) == 1, result.stderr
    assert not list(state.glob("run/*.pid")), "a part was started"
    assert not LocalStack(stack_settings(state)).running()
    assert not list(state.glob("**/*.pid")), "a service was started"
    return lines[0]


def test_up_refuses_an_unwritable_state_dir(tmp_path: Path) -> None:
    state = Path("/proc/wikipulse-cannot-be-here")
    env = _env(state)
    result = _cli(env, "up", "--no-dashboard", "--watch", "0", timeout=120)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("wikipulse: error")]
    assert len(lines) == 1 and "not writable" in lines[0]


def test_up_refuses_a_taken_port_before_starting_anything() -> None:
    state = scratch_state_dir("port")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _refused(_env(state, WIKI__LAB__PORT=str(port)), state)
    assert f"port {port}" in line and "JupyterLab" in line
    shutil.rmtree(state, ignore_errors=True)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("WIKI__JVM__JAVA", "/nonexistent/bin/java", "java"),
        ("WIKI__STACK__POSTGRES_BIN", "/nonexistent/postgres/bin", "PostgreSQL"),
    ],
)
def test_up_refuses_missing_binaries(setting: str, value: str, message: str) -> None:
    state = scratch_state_dir("missing")
    line = _refused(_env(state, **{setting: value}), state)
    assert message.lower() in line.lower() and value in line
    shutil.rmtree(state, ignore_errors=True)


def test_a_replay_stopped_midway_resumes_and_counts_every_event_once(data_dir: Path) -> None:
    """2,387 real events spanning 128 s, replayed at twice their pace, stopped halfway."""
    recording = (
        data_dir / "recentchange" / "yearfunla_wikiMedia_stream_monitor__recentchange_raw.jsonl"
    )
    state = scratch_state_dir("replay")
    env = _env(state)
    args = ("--source", f"replay:{recording}", "--speed", "2", "--no-dashboard", "--no-alerts")
    try:
        up = _cli(env, "up", *args, "--watch", "0")
        assert up.returncode == 0, up.stderr
        _wait(env, lambda r: r.get("pipeline", {}).get("events_in", 0) >= 500, "500 events", 240)
        assert _cli(env, "down").returncode == 0

        again = _cli(env, "up", *args, "--watch", "0")
        assert again.returncode == 0, again.stderr
        _wait(
            env,
            lambda r: (
                r.get("pipeline", {}).get("kafka_lag") == 0
                and not {p["name"]: p for p in r["parts"]}["producer"]["running"]
            ),
            "the replay to finish and the job to catch up",
            300,
        )
        settings = LocalStack(stack_settings(state)).settings
        values = [r.value for r in read_topic(settings.kafka.bootstrap, settings.kafka.topic_raw)]
        lines = load_events([recording])
        assert len(values) == len(lines), "the second run resent nothing and missed nothing"
        assert _differences(settings) == {}
        lake = read_events(settings, "2000-01-01", "2100-01-01", columns=["event_id"])
        ids = lake.column("event_id").to_pylist()
        assert len(ids) == len(set(ids)) == len(deduplicated_events(lines))
    finally:
        _cli(env, "down")
        shutil.rmtree(state, ignore_errors=True)
