"""The whole platform on one machine: stack, producer, stream job, alerts, dashboard, JupyterLab.

``up`` checks everything it can before starting anything (prerequisites of the stack, ports of
the dashboard and JupyterLab), then starts what is not running, in dependency order, each part
as a detached child with a pid file and a log under ``<state_dir>/run``; ``down`` stops them in
order with SIGTERM, the producer first, so it flushes and persists its position and the stream
job finishes its batch before the stack goes away. A second ``up`` resumes from those saved
positions.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from wiki_lib.config import REPO_ROOT, Settings, settings_env
from wiki_lib.errors import StackError
from wiki_lib.sources.replay import SAMPLE_CAPTURE
from wiki_lib.stack import LocalStack
from wiki_lib.stack._proc import pid_alive, port_open, spawn, stop_pid, wait_until

__all__ = ["PART_ORDER", "Part", "Platform", "live_stream_reachable"]

PART_ORDER = ("producer", "stream", "alerts", "dashboard", "lab")
"""Start order is stream, producer, alerts, dashboard, lab; ``down`` stops in this order."""


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

    def _start(self, name: str, argv: list[str], env: dict[str, str]) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        pid = spawn([sys.executable, "-m", *argv], self.run_dir / f"{name}.log", env=env)
        self._pidfile(name).write_text(str(pid))
        return pid

    def _lab_token(self) -> str:
        """The configured token, else the one generated at the first ``up`` (kept 0600)."""
        if self.stack.settings.lab.token is not None:
            return self.stack.settings.lab.token.get_secret_value()
        path = self.run_dir / "lab.token"
        if not path.exists():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(24))
        return path.read_text().strip()

    def urls(self) -> dict[str, str]:
        """Where the dashboard and JupyterLab answer (JupyterLab's with its login token)."""
        settings = self.stack.settings
        urls = {"dashboard": f"http://{settings.dashboard.host}:{settings.dashboard.port}/"}
        if self._pid("lab") is not None:
            urls["lab"] = (
                f"http://{settings.lab.host}:{settings.lab.port}/lab?token={self._lab_token()}"
            )
        return urls

    def parts(self) -> list[Part]:
        """Every pipeline part that was ever started here, with its state."""
        urls = self.urls()
        out = []
        for name in PART_ORDER:
            pid = self._pid(name)
            if pid is not None:
                out.append(
                    Part(name, pid, pid_alive(pid), self.run_dir / f"{name}.log", urls.get(name))
                )
        return out

    def _wanted_ports(self, dashboard: bool, lab: bool) -> list[tuple[str, int]]:
        settings = self.stack.settings
        wanted = []
        if dashboard and not pid_alive(self._pid("dashboard")):
            wanted.append(("the dashboard (WIKI__DASHBOARD__PORT)", settings.dashboard.port))
        if lab and not pid_alive(self._pid("lab")):
            wanted.append(("JupyterLab (WIKI__LAB__PORT)", settings.lab.port))
        return wanted

    def preflight(self, *, dashboard: bool = True, lab: bool = False) -> None:
        """Everything that can be checked before starting anything: nothing is half-started."""
        if not self.stack.running():
            self.stack.check_prerequisites()
        for what, port in self._wanted_ports(dashboard, lab):
            if port_open(port):
                raise StackError(f"port {port} wanted by {what} is already in use")

    def up(
        self,
        source: str,
        *,
        speed: float = 1.0,
        dashboard: bool = True,
        lab: bool = False,
        alerts: bool = True,
    ) -> list[str]:
        """Start the stack, then the stream job, the producer, alerts, dashboard and lab."""
        self.preflight(dashboard=dashboard, lab=lab)
        stack_was_up = self.stack.running()
        self.stack.up()
        settings = self.stack.settings
        env = settings_env(settings)
        wanted: list[tuple[str, list[str], int | None]] = [
            ("stream", ["wiki_lib.cli", "stream", "run"], None),
            ("producer", ["wiki_lib.cli", *_produce_args(source, speed)], None),
        ]
        if alerts:
            wanted.append(("alerts", ["wiki_lib.cli", "alerts", "run"], None))
        if dashboard:
            wanted.append(("dashboard", ["wiki_lib.cli", "dashboard"], settings.dashboard.port))
        if lab:
            wanted.append(("lab", self._lab_argv(), settings.lab.port))
        started: list[str] = []
        try:
            for name, argv, port in wanted:
                if pid_alive(self._pid(name)):
                    continue
                pid = self._start(name, argv, env)
                started.append(name)
                if port is not None:
                    wait_until(
                        lambda port=port: port_open(port),
                        120,
                        name,
                        alive=lambda pid=pid: pid_alive(pid),
                        log_file=self.run_dir / f"{name}.log",
                    )
        except BaseException:
            # A part that cannot start takes this call's other parts (and stack) with it.
            self._stop([n for n in PART_ORDER if n in started])
            if not stack_was_up:
                self.stack.down()
            raise
        return started

    def _lab_argv(self) -> list[str]:
        cfg = self.stack.settings.lab
        return [
            "jupyterlab",
            "--no-browser",
            f"--ServerApp.ip={cfg.host}",
            f"--ServerApp.port={cfg.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self._lab_token()}",
            f"--ServerApp.root_dir={REPO_ROOT}",
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ]

    def down(self) -> list[str]:
        """Stop the parts (producer first, so nothing is in flight), then the stack."""
        stopped = self._stop(list(PART_ORDER))
        stopped += self.stack.down()
        return stopped

    def _stop(self, names: list[str]) -> list[str]:
        stopped = []
        for name in names:
            if stop_pid(self._pid(name), timeout=90, sig=signal.SIGTERM):
                stopped.append(name)
            self._pidfile(name).unlink(missing_ok=True)
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
