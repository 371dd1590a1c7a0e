"""A real Spark standalone cluster (one master, N workers) run from pyspark's own jars.

Scale-out on one machine: the stream job runs against ``spark://127.0.0.1:<port>`` with
executors in separate JVMs, so losing a worker mid-stream behaves as on a real cluster
(tasks are retried elsewhere, state is reloaded from the checkpoint). No Spark download is
needed: pyspark's package folder is a complete ``SPARK_HOME`` (``jars/``, ``bin/``).

Each daemon runs in its own session, so its executors share its process group and killing
a worker's group takes its executors with it, as a crashed machine would.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wiki_lib.config import Settings
from wiki_lib.errors import StackError
from wiki_lib.jvm import require_java
from wiki_lib.stack._proc import free_port, pid_alive, port_open, spawn, stop_pid, wait_until

__all__ = ["SparkDaemon", "SparkStandalone", "spark_home"]

_MASTER_CLASS = "org.apache.spark.deploy.master.Master"
_WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
_DAEMON_HEAP = "256m"


def spark_home() -> Path:
    """pyspark's package folder, which holds the jars of a full Spark distribution."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def _scala_version() -> str:
    """The Scala binary version pyspark's jars were built for (``2.13``)."""
    for jar in (spark_home() / "jars").glob("spark-core_*.jar"):
        return jar.name.removeprefix("spark-core_").split("-", 1)[0]
    raise StackError(f"no spark-core jar in {spark_home() / 'jars'}; is pyspark installed?")


@dataclass
class SparkDaemon:
    """One master or worker JVM: its ports (0 until its first start), folders and pid."""

    name: str
    port: int
    webui_port: int
    log_file: Path
    work_dir: Path
    pid: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain data for the stack's state file."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SparkDaemon:
        """Inverse of :meth:`to_json`."""
        return cls(
            name=str(data["name"]),
            port=int(data["port"]),
            webui_port=int(data["webui_port"]),
            log_file=Path(str(data["log_file"])),
            work_dir=Path(str(data["work_dir"])),
            pid=int(data["pid"]) if data.get("pid") else None,
        )


@dataclass
class SparkStandalone:
    """A master and ``len(workers)`` workers under ``root``, all bound to 127.0.0.1."""

    settings: Settings
    root: Path
    master: SparkDaemon | None = None
    workers: list[SparkDaemon] = field(default_factory=list)
    worker_cores: int = 1
    worker_memory: str = "1g"

    @property
    def url(self) -> str:
        """The master URL jobs connect to (``spark://127.0.0.1:<port>``)."""
        if self.master is None:
            raise StackError("the Spark cluster is not planned; call plan() first")
        return f"spark://127.0.0.1:{self.master.port}"

    def plan(self, n_workers: int, *, cores: int = 1, memory: str = "1g") -> None:
        """Name the master and ``n_workers`` workers and their folders; ports come at start."""
        if n_workers < 1:
            raise StackError("a Spark standalone cluster needs at least one worker")
        self.worker_cores, self.worker_memory = cores, memory
        self.master = self._daemon("master")
        self.workers = [self._daemon(f"worker-{i + 1}") for i in range(n_workers)]

    def _daemon(self, name: str) -> SparkDaemon:
        base = self.root / name
        return SparkDaemon(
            name=name,
            port=0,
            webui_port=0,
            log_file=base / f"{name}.log",
            work_dir=base / "work",
        )

    def to_json(self) -> dict[str, Any]:
        """Plain data for the stack's state file."""
        return {
            "master": self.master.to_json() if self.master else None,
            "workers": [w.to_json() for w in self.workers],
            "worker_cores": self.worker_cores,
            "worker_memory": self.worker_memory,
        }

    def load(self, data: dict[str, Any]) -> None:
        """Restore what :meth:`to_json` saved."""
        self.master = SparkDaemon.from_json(data["master"]) if data.get("master") else None
        self.workers = [SparkDaemon.from_json(w) for w in data.get("workers", [])]
        self.worker_cores = int(data.get("worker_cores", 1))
        self.worker_memory = str(data.get("worker_memory", "1g"))

    @property
    def planned(self) -> bool:
        """Whether this stack has a Spark cluster at all."""
        return self.master is not None

    def _command(self, main: str, *args: str) -> list[str]:
        home = spark_home()
        return [
            self.settings.jvm.java,
            f"-Xmx{_DAEMON_HEAP}",
            "-Duser.timezone=UTC",
            "-cp",
            f"{home / 'conf'}:{home / 'jars'}/*",
            main,
            *args,
        ]

    def _env(self) -> dict[str, str]:
        # Workers build executor command lines from SPARK_HOME and need the Scala version a
        # distribution's bin/load-spark-env.sh would export; binding everything to the
        # loopback keeps the cluster private to this machine.
        return {
            "SPARK_HOME": str(spark_home()),
            "SPARK_SCALA_VERSION": _scala_version(),
            "SPARK_LOCAL_IP": "127.0.0.1",
        }

    def start(self) -> None:
        """Start the master and every worker not running; wait until all workers registered."""
        require_java(self.settings.jvm.java)
        master = self._require_master()
        if not pid_alive(master.pid):
            _pick_ports(master)
            self._launch(
                master,
                self._command(
                    _MASTER_CLASS,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(master.port),
                    "--webui-port",
                    str(master.webui_port),
                ),
            )
            wait_until(
                lambda: self.alive_workers() is not None,
                self.settings.stack.start_timeout_s,
                f"Spark master (port {master.port})",
                alive=lambda: pid_alive(master.pid),
                log_file=master.log_file,
            )
        for worker in self.workers:
            if not pid_alive(worker.pid):
                self._launch_worker(worker)
        self.wait_for_workers(len(self.workers))

    def _require_master(self) -> SparkDaemon:
        if self.master is None:
            raise StackError("the Spark cluster is not planned; call plan() first")
        return self.master

    def _launch(self, daemon: SparkDaemon, cmd: list[str]) -> None:
        daemon.work_dir.mkdir(parents=True, exist_ok=True)
        daemon.pid = spawn(cmd, daemon.log_file, env=self._env(), cwd=daemon.work_dir)

    def _launch_worker(self, worker: SparkDaemon) -> None:
        _pick_ports(worker)
        self._launch(
            worker,
            self._command(
                _WORKER_CLASS,
                self.url,
                "--host",
                "127.0.0.1",
                "--port",
                str(worker.port),
                "--webui-port",
                str(worker.webui_port),
                "--cores",
                str(self.worker_cores),
                "--memory",
                self.worker_memory,
                "--work-dir",
                str(worker.work_dir),
            ),
        )

    def alive_workers(self) -> int | None:
        """How many workers the master counts as alive, or ``None`` if it does not answer."""
        master = self._require_master()
        if not port_open(master.webui_port):
            return None
        url = f"http://127.0.0.1:{master.webui_port}/json/"
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                state = json.load(resp)
        except (urllib.error.URLError, OSError, ValueError):
            return None
        if state.get("status") != "ALIVE":
            return None
        return int(state.get("aliveworkers", 0))

    def wait_for_workers(self, n: int) -> None:
        """Block until the master counts ``n`` alive workers."""
        master = self._require_master()
        wait_until(
            lambda: (self.alive_workers() or 0) >= n,
            self.settings.stack.start_timeout_s,
            f"{n} Spark worker(s) registered with the master",
            alive=lambda: pid_alive(master.pid),
            log_file=master.log_file,
        )

    def worker(self, number: int) -> SparkDaemon:
        """Worker ``number`` (1-based, as in its name ``worker-<number>``)."""
        for worker in self.workers:
            if worker.name == f"worker-{number}":
                return worker
        raise StackError(f"no Spark worker {number} in this cluster")

    def kill_worker(self, number: int) -> None:
        """SIGKILL a worker and its executors at once, as if its machine died."""
        worker = self.worker(number)
        if pid_alive(worker.pid):
            assert worker.pid is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGKILL)
            stop_pid(worker.pid, timeout=10, sig=signal.SIGKILL)
        worker.pid = None

    def start_worker(self, number: int) -> None:
        """Start a stopped worker again and wait until the master counts every worker."""
        worker = self.worker(number)
        if not pid_alive(worker.pid):
            self._launch_worker(worker)
        self.wait_for_workers(len(self.workers))

    def stop(self) -> list[str]:
        """Stop the workers (their executors with them), then the master; return their names."""
        stopped = []
        for daemon in [*self.workers, *([self.master] if self.master else [])]:
            if stop_pid(daemon.pid, timeout=30):
                stopped.append(daemon.name)
            daemon.pid = None
        return stopped

    def running(self) -> bool:
        """Whether the master and every worker process is alive."""
        return (
            self.master is not None
            and pid_alive(self.master.pid)
            and all(pid_alive(w.pid) for w in self.workers)
        )


def _pick_ports(daemon: SparkDaemon) -> None:
    """Free ports for a daemon about to start: new ones, or those it had if still free.

    Picked at launch, not when the stack is planned: the JVMs started in between (brokers,
    the master, other workers) bind ephemeral ports from the same range. A restarted
    daemon keeps its ports where it can, so workers still find their master. The stack
    saves its state after the start, so the recorded ports are the ones in use.
    """
    if not daemon.port or port_open(daemon.port):
        daemon.port = free_port()
    if not daemon.webui_port or port_open(daemon.webui_port):
        daemon.webui_port = free_port()
