"""The whole platform on one machine: stack, producer, stream job and dashboard as processes.

``up`` starts what is not running, in dependency order, each pipeline part as a detached
``wikipulse`` child with a pid file and a log under ``<state_dir>/run``; ``down`` stops them in
the reverse order with SIGTERM, so the producer flushes and persists its position and the
stream job finishes its batch before the stack goes away. A second ``up`` resumes from those
saved positions.
"""

from __future__ import annotations

import os
import signal
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from wiki_lib.config import Settings
from wiki_lib.errors import StackError
from wiki_lib.sources.replay import SAMPLE_CAPTURE
from wiki_lib.stack import LocalStack
from wiki_lib.stack._proc import pid_alive, port_open, spawn, stop_pid, wait_until

__all__ = ["PART_ORDER", "Part", "Platform", "live_stream_reachable", "settings_env"]

PART_ORDER = ("producer", "stream", "dashboard", "lab")


@dataclass(frozen=True)
class Part:
    """One long-running pipeline process."""

    name: str
    pid: int | None
    running: bool
    log_file: Path
    url: str | None = None


def live_stream_reachable(settings: Settings, timeout_s: float = 5.0) -> tuple[bool, str]:
    """Whether EventStreams answers (status 200) within ``timeout_s``; and why not."""
    request = urllib.request.Request(
        settings.producer.url,
        headers={"User-Agent": settings.producer.user_agent, "Accept": "text/event-stream"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status == 200, f"HTTP {response.status}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return False, str(getattr(exc, "reason", exc))


class Platform:
    """The local stack plus the pipeline processes, under one state directory."""

    def __init__(self, settings: Settings) -> None:
        self.stack = LocalStack(settings)
        self.run_dir = settings.stack.state_dir / "run"

    def _pidfile(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def _pid(self, name: str) -> int | None:
        path = self._pidfile(name)
        return int(path.read_text()) if path.exists() else None

    def _start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        pid = spawn(
            [sys.executable, "-m", "wiki_lib.cli", *args], self.run_dir / f"{name}.log", env=env
        )
        self._pidfile(name).write_text(str(pid))
        return pid

    def parts(self) -> list[Part]:
        """Every pipeline part that was ever started here, with its state."""
        settings = self.stack.settings
        urls = {"dashboard": f"http://127.0.0.1:{settings.dashboard.port}/"}
        out = []
        for name in PART_ORDER:
            pid = self._pid(name)
            if pid is not None:
                out.append(
                    Part(name, pid, pid_alive(pid), self.run_dir / f"{name}.log", urls.get(name))
                )
        return out

    def up(self, source: str, *, speed: float = 1.0, dashboard: bool = True) -> list[str]:
        """Start the stack, then the producer, the stream job and the dashboard."""
        self.stack.up()
        settings = self.stack.settings
        env = settings_env(settings)
        started = []
        if not pid_alive(self._pid("stream")):
            self._start("stream", ["stream", "run"], env)
            started.append("stream")
        if not pid_alive(self._pid("producer")):
            self._start("producer", _produce_args(source, speed), env)
            started.append("producer")
        if dashboard and not pid_alive(self._pid("dashboard")):
            port = settings.dashboard.port
            if port_open(port):
                raise StackError(
                    f"port {port} for the dashboard is already in use; set WIKI__DASHBOARD__PORT"
                )
            pid = self._start("dashboard", ["dashboard"], env)
            wait_until(
                lambda: port_open(port),
                120,
                "the Voila dashboard",
                alive=lambda: pid_alive(pid),
                log_file=self.run_dir / "dashboard.log",
            )
            started.append("dashboard")
        return started

    def down(self) -> list[str]:
        """Stop the parts (producer first, so nothing is in flight), then the stack."""
        stopped = []
        for name in PART_ORDER:
            pid = self._pid(name)
            if stop_pid(pid, timeout=90, sig=signal.SIGTERM):
                stopped.append(name)
            self._pidfile(name).unlink(missing_ok=True)
        stopped += self.stack.down()
        return stopped


def _produce_args(source: str, speed: float) -> list[str]:
    """``produce`` arguments for ``live``, ``replay:PATH``, ``synth:N`` or ``sample``."""
    if source == "sample":
        # The shipped capture, re-timed to the present with fresh ids, at about live rate.
        return [
            "produce",
            "synth:100000000",
            "--corpus",
            str(SAMPLE_CAPTURE),
            "--rate",
            "50",
            "--speed",
            str(speed or 1.0),
            "--no-progress",
        ]
    args = ["produce", source, "--no-progress"]
    if source.startswith(("replay:", "synth:")):
        args += ["--speed", str(speed)]
    return args


def settings_env(settings: Settings) -> dict[str, str]:
    """This environment with the effective settings as WIKI__ variables (for child processes)."""
    env: dict[str, str] = {}
    for section, values in settings.model_dump().items():
        for field, value in values.items():
            if value is None:
                continue
            if hasattr(value, "get_secret_value"):
                value = value.get_secret_value()
            env[f"WIKI__{section.upper()}__{field.upper()}"] = str(value)
    return {**{k: v for k, v in os.environ.items() if not k.startswith("WIKI__")}, **env}
