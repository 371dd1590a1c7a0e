"""The local stack: a real Kafka (KRaft) and a real PostgreSQL, started by wikipulse itself.

Optionally also a Spark standalone cluster (``LocalStack(settings, spark_workers=2)``), so the
stream job can run against ``spark://...`` with executors in their own JVMs.

One launcher serves the README's demo, the notebooks and the pytest fixtures::

    stack = LocalStack(load_settings())
    report = stack.up()          # idempotent: a second call starts nothing
    clients = stack.settings     # settings pointing at the real ports
    stack.down()

State (ports, pids, data and log paths) lives in ``<state_dir>/stack.json`` so that
``wikipulse stack down`` in another shell finds what ``stack up`` started.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wiki_lib import db
from wiki_lib.config import Settings
from wiki_lib.errors import PrerequisiteError, StackError, WikiError
from wiki_lib.jvm import broker_classpath, require_java
from wiki_lib.stack._proc import free_port, pid_alive, port_open
from wiki_lib.stack.kafka import KafkaCluster, KafkaNode
from wiki_lib.stack.postgres import PostgresServer, find_postgres_bin
from wiki_lib.stack.spark_cluster import SparkStandalone

__all__ = [
    "KafkaCluster",
    "LocalStack",
    "PostgresServer",
    "ServiceStatus",
    "SparkStandalone",
    "UpReport",
    "scratch_state_dir",
]


@dataclass(frozen=True)
class ServiceStatus:
    """Health of one service as ``stack status`` shows it."""

    name: str
    running: bool
    pid: int | None
    endpoint: str
    log_file: str
    data_dir: str


@dataclass
class UpReport:
    """What ``up`` did: which services it started, and where everything is."""

    started: list[str] = field(default_factory=list)
    services: list[ServiceStatus] = field(default_factory=list)
    migrations: list[str] = field(default_factory=list)
    seconds: float = 0.0


class LocalStack:
    """Kafka and PostgreSQL (and optionally a Spark cluster) under ``settings.stack.state_dir``.

    ``spark_workers=0`` (the default) starts no Spark cluster, but a stack that was started
    with one keeps it: ``LocalStack(settings).down()`` stops it too.
    """

    def __init__(
        self, settings: Settings, *, brokers: int | None = None, spark_workers: int = 0
    ) -> None:
        self._base = settings
        self.state_dir = settings.stack.state_dir
        self.state_file = self.state_dir / "stack.json"
        self.brokers = brokers or settings.stack.kafka_brokers
        self.spark_workers = spark_workers
        self.kafka = KafkaCluster(settings, self.state_dir / "kafka")
        self.postgres = PostgresServer(settings, self.state_dir / "postgres", port=0)
        self.spark = SparkStandalone(settings, self.state_dir / "spark")
        self._load_state()

    def _load_state(self) -> None:
        if not self.state_file.exists():
            return
        state = json.loads(self.state_file.read_text())
        self.kafka.cluster_id = state["kafka"]["cluster_id"]
        self.kafka.nodes = [KafkaNode.from_json(n) for n in state["kafka"]["nodes"]]
        self.postgres.port = int(state["postgres"]["port"])
        self.postgres.pid = state["postgres"].get("pid")
        if state.get("spark"):
            self.spark.load(state["spark"])

    def _save_state(self) -> None:
        state: dict[str, Any] = {
            "kafka": {
                "cluster_id": self.kafka.cluster_id,
                "nodes": [n.to_json() for n in self.kafka.nodes],
            },
            "postgres": {"port": self.postgres.port, "pid": self.postgres.pid},
        }
        if self.spark.planned:
            state["spark"] = self.spark.to_json()
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)

    @property
    def settings(self) -> Settings:
        """The settings with the real bootstrap servers, PostgreSQL port (and master) filled in."""
        spark = {"spark": {"master": self.spark.url}} if self.spark.planned else {}
        return self._base.with_overrides(
            kafka={"bootstrap": self.kafka.bootstrap},
            postgres={"host": "127.0.0.1", "port": self.postgres.port},
            **spark,
        )

    def check_prerequisites(self) -> None:
        """Fail before starting anything if Java, the jars or PostgreSQL are missing."""
        require_java(self._base.jvm.java)
        broker_classpath(self._base.jvm)
        find_postgres_bin(self._base.stack.postgres_bin)
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            probe = self.state_dir / ".write-probe"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise PrerequisiteError(
                f"state directory {self.state_dir} is not writable: {exc}"
            ) from exc

    def _check_ports(self) -> None:
        wanted: list[tuple[str, int]] = []
        if not pid_alive(self.postgres.pid):
            wanted.append(("PostgreSQL", self.postgres.port))
        for node in self.kafka.nodes:
            if not pid_alive(node.pid):
                wanted += [
                    (f"Kafka node {node.node_id}", node.port),
                    (f"Kafka controller {node.node_id}", node.controller_port),
                ]
        for what, port in wanted:
            if port_open(port):
                raise StackError(
                    f"port {port} wanted by {what} is already in use by another program"
                )

    def up(self) -> UpReport:
        """Start whatever is not running; a no-op when everything already runs."""
        t0 = time.monotonic()
        report = UpReport()
        if self.running():
            report.services = self.status()
            report.seconds = time.monotonic() - t0
            return report
        self.check_prerequisites()
        if not self.kafka.nodes or len(self.kafka.nodes) != self.brokers:
            if self.kafka.nodes:
                raise StackError(
                    f"the stack in {self.state_dir} has {len(self.kafka.nodes)} broker(s), "
                    f"{self.brokers} asked; run `wikipulse stack down --purge` first"
                )
            self.kafka.plan(self.brokers)
        if self.spark_workers and len(self.spark.workers) != self.spark_workers:
            if self.spark.planned:
                raise StackError(
                    f"the stack in {self.state_dir} has {len(self.spark.workers)} Spark worker(s), "
                    f"{self.spark_workers} asked; run `wikipulse stack down --purge` first"
                )
            self.spark.plan(self.spark_workers)
        if not self.postgres.port:
            self.postgres.port = self._base.postgres.port or free_port()
        self._check_ports()
        started: list[str] = []
        try:
            if not pid_alive(self.postgres.pid):
                self.postgres.init()
                self.postgres.start()
                started.append("postgres")
            self._save_state()
            if not self.kafka.running():
                self.kafka.start()
                started.append("kafka")
            self._save_state()
            if self.spark.planned and not self.spark.running():
                self.spark.start()
                started.append("spark")
                self._save_state()
            pg = self.settings.postgres
            db.ensure_database(pg)
            db.create_roles(pg)
            report.migrations = db.migrate(pg)
        except (WikiError, OSError) as exc:
            if started:
                self.down()
            if isinstance(exc, WikiError):
                raise
            raise StackError(f"starting the local stack failed: {exc}") from exc
        report.started = started
        report.services = self.status()
        report.seconds = time.monotonic() - t0
        return report

    def running(self) -> bool:
        """Whether every service of the stack runs."""
        spark_ok = self.spark.running() if self.spark.planned else not self.spark_workers
        return pid_alive(self.postgres.pid) and self.kafka.running() and spark_ok

    def status(self) -> list[ServiceStatus]:
        """One line per service: pid, endpoint, log, data."""
        services = [
            ServiceStatus(
                name="postgres",
                running=pid_alive(self.postgres.pid) and port_open(self.postgres.port),
                pid=self.postgres.pid,
                endpoint=f"127.0.0.1:{self.postgres.port}/{self._base.postgres.database}",
                log_file=str(self.postgres.log_file),
                data_dir=str(self.postgres.data_dir),
            )
        ]
        for node in self.kafka.nodes:
            services.append(
                ServiceStatus(
                    name=f"kafka-{node.node_id}",
                    running=pid_alive(node.pid) and port_open(node.port),
                    pid=node.pid,
                    endpoint=f"127.0.0.1:{node.port}",
                    log_file=str(node.log_file),
                    data_dir=str(node.data_dir),
                )
            )
        if self.spark.master is not None:
            master = self.spark.master
            services.append(
                ServiceStatus(
                    name="spark-master",
                    running=pid_alive(master.pid) and port_open(master.port),
                    pid=master.pid,
                    endpoint=self.spark.url,
                    log_file=str(master.log_file),
                    data_dir=str(master.work_dir),
                )
            )
        services += [
            ServiceStatus(
                name=f"spark-{worker.name}",
                running=pid_alive(worker.pid) and port_open(worker.port),
                pid=worker.pid,
                endpoint=f"127.0.0.1:{worker.port}",
                log_file=str(worker.log_file),
                data_dir=str(worker.work_dir),
            )
            for worker in self.spark.workers
        ]
        return services

    def down(self, *, purge: bool = False) -> list[str]:
        """Stop Spark (if any), Kafka, then PostgreSQL; with ``purge`` also delete their data."""
        stopped = []
        if self.spark.stop():
            stopped.append("spark")
        if self.kafka.stop():
            stopped.append("kafka")
        if self.postgres.stop():
            stopped.append("postgres")
        if self.state_file.parent.exists() and (self.kafka.nodes or self.postgres.port):
            self._save_state()
        if purge:
            import shutil

            for path in (
                self.state_dir / "kafka",
                self.state_dir / "postgres",
                self.state_dir / "spark",
                self.state_file,
            ):
                if isinstance(path, Path) and path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
            self.kafka.nodes = []
            self.postgres.port = 0
            self.spark = SparkStandalone(self._base, self.state_dir / "spark")
        return stopped


def scratch_state_dir(prefix: str) -> Path:
    """A fresh state dir under /tmp for a throw-away stack.

    Mode 0711: when wikipulse runs as root, PostgreSQL runs as an unprivileged OS user who
    must be able to enter the directory (but need not list it).
    """
    path = Path(tempfile.mkdtemp(prefix=f"wikipulse-{prefix}-", dir="/tmp"))
    path.chmod(0o711)
    return path
