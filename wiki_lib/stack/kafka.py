"""A real Apache Kafka (KRaft mode, no ZooKeeper) run from the Maven-resolved jars.

Each node is a combined controller+broker JVM with its own generated
``server.properties``, data directory and log file. One node is the normal local stack;
three give a quorum for fault tests (kill one, the others carry on).
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from wiki_lib.config import Settings
from wiki_lib.errors import StackError
from wiki_lib.jvm import broker_classpath, require_java
from wiki_lib.stack._proc import free_port, pid_alive, port_open, spawn, stop_pid, wait_until

__all__ = ["KafkaCluster", "KafkaNode"]

_LOG4J2 = """\
Configuration:
  status: warn
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: org.apache.kafka.controller
        level: INFO
      - name: state.change.logger
        level: WARN
"""


@dataclass
class KafkaNode:
    """One combined broker+controller process and where its things are."""

    node_id: int
    port: int
    controller_port: int
    data_dir: Path
    log_file: Path
    config_file: Path
    pid: int | None = None

    def to_json(self) -> dict[str, object]:
        """Plain data for the stack's state file."""
        data = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> KafkaNode:
        """Inverse of :meth:`to_json`."""
        return cls(
            node_id=int(data["node_id"]),  # type: ignore[arg-type]
            port=int(data["port"]),  # type: ignore[arg-type]
            controller_port=int(data["controller_port"]),  # type: ignore[arg-type]
            data_dir=Path(str(data["data_dir"])),
            log_file=Path(str(data["log_file"])),
            config_file=Path(str(data["config_file"])),
            pid=int(data["pid"]) if data.get("pid") else None,  # type: ignore[arg-type]
        )


def new_cluster_id() -> str:
    """A KRaft cluster id: URL-safe base64 of a random UUID, never starting with '-'.

    Kafka's own generator skips such ids too: ``kafka-storage format -t -abc`` would read the
    id as an option and fail.
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cid.startswith("-"):
            return cid


@dataclass
class KafkaCluster:
    """N KRaft nodes under ``root``; ports fixed by settings or picked free on first start."""

    settings: Settings
    root: Path
    nodes: list[KafkaNode] = field(default_factory=list)
    cluster_id: str = ""

    @property
    def bootstrap(self) -> str:
        """The bootstrap string clients use."""
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def plan(self, n_brokers: int) -> None:
        """Choose ports and directories for ``n_brokers`` nodes (first start only)."""
        stack = self.settings.stack
        self.cluster_id = self.cluster_id or new_cluster_id()
        self.nodes = []
        for i in range(n_brokers):
            node_id = i + 1
            port = stack.kafka_port + 2 * i if stack.kafka_port else free_port()
            cport = (
                stack.kafka_controller_port + 2 * i if stack.kafka_controller_port else free_port()
            )
            base = self.root / f"node-{node_id}"
            self.nodes.append(
                KafkaNode(
                    node_id=node_id,
                    port=port,
                    controller_port=cport,
                    data_dir=base / "data",
                    log_file=base / "broker.log",
                    config_file=base / "server.properties",
                )
            )

    def _properties(self, node: KafkaNode) -> str:
        n = len(self.nodes)
        voters = ",".join(f"{x.node_id}@127.0.0.1:{x.controller_port}" for x in self.nodes)
        internal_rf = min(3, n)
        props = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": node.data_dir,
            "num.partitions": self.settings.kafka.partitions,
            "default.replication.factor": min(self.settings.kafka.replication_factor, n),
            "offsets.topic.replication.factor": internal_rf,
            "transaction.state.log.replication.factor": internal_rf,
            "transaction.state.log.min.isr": min(2, internal_rf),
            "share.coordinator.state.topic.replication.factor": internal_rf,
            "share.coordinator.state.topic.min.isr": min(2, internal_rf),
            "group.initial.rebalance.delay.ms": 0,
            "auto.create.topics.enable": "false",
            "log.retention.hours": 168,
            "log.segment.bytes": 64 * 1024 * 1024,
            "message.max.bytes": 2 * 1024 * 1024,
            "num.network.threads": 2,
            "num.io.threads": 4,
            "log.flush.interval.messages": 10_000,
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _java_cmd(self, main: str, *args: str, heap: str) -> list[str]:
        return [
            self.settings.jvm.java,
            f"-Xms{heap}" if heap else "-Xms128m",
            f"-Xmx{heap}" if heap else "-Xmx256m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.root / 'log4j2.yaml'}",
            "-cp",
            broker_classpath(self.settings.jvm),
            main,
            *args,
        ]

    def _format(self, node: KafkaNode) -> None:
        if (node.data_dir / "meta.properties").exists():
            return
        node.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = self._java_cmd(
            "kafka.tools.StorageTool",
            "format",
            "-t",
            self.cluster_id,
            "-c",
            str(node.config_file),
            "--ignore-formatted",
            heap="",
        )
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise StackError(
                f"formatting KRaft storage of node {node.node_id} failed: "
                f"{(proc.stdout + proc.stderr).strip()[-800:]}"
            )

    def start(self) -> None:
        """Format storage where needed, start every node not running, wait for metadata."""
        require_java(self.settings.jvm.java)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "log4j2.yaml").write_text(_LOG4J2)
        for node in self.nodes:
            node.config_file.parent.mkdir(parents=True, exist_ok=True)
            node.config_file.write_text(self._properties(node))
            self._format(node)
        for node in self.nodes:
            if not pid_alive(node.pid):
                self._launch(node)
        for node in self.nodes:
            self.wait_ready(node)

    def _launch(self, node: KafkaNode) -> None:
        for port in (node.port, node.controller_port):
            if port_open(port):
                raise StackError(
                    f"port {port} for Kafka node {node.node_id} is already in use; "
                    "free it or set WIKI__STACK__KAFKA_PORT (0 picks a free port)"
                )
        cmd = self._java_cmd(
            "kafka.Kafka", str(node.config_file), heap=self.settings.stack.kafka_heap
        )
        node.pid = spawn(cmd, node.log_file)

    def wait_ready(self, node: KafkaNode) -> None:
        """Block until ``node`` answers a metadata request with a cluster that has a controller."""
        wait_until(
            lambda: self._answers_metadata(node),
            self.settings.stack.start_timeout_s,
            f"Kafka node {node.node_id} (port {node.port})",
            alive=lambda: pid_alive(node.pid),
            log_file=node.log_file,
        )

    @staticmethod
    def _answers_metadata(node: KafkaNode) -> bool:
        if not port_open(node.port):
            return False
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(
                bootstrap_servers=f"127.0.0.1:{node.port}",
                client_id="wikipulse-stack-probe",
                request_timeout_ms=3000,
            )
        except (KafkaError, OSError, ValueError):
            return False
        try:
            cluster = admin.describe_cluster()
            return cluster.get("controller_id") not in (None, -1) and any(
                b["broker_id"] == node.node_id and not b.get("is_fenced")
                for b in cluster.get("brokers", [])
            )
        except (KafkaError, OSError, ValueError):
            return False
        finally:
            admin.close()

    def stop_broker(self, node_id: int, *, kill: bool = False) -> None:
        """Stop one node: SIGTERM (controlled shutdown) or, with ``kill``, SIGKILL."""
        import signal

        node = self.node(node_id)
        stop_pid(node.pid, timeout=60, sig=signal.SIGKILL if kill else signal.SIGTERM)
        node.pid = None

    def start_broker(self, node_id: int) -> None:
        """Restart one stopped node and wait until it serves metadata again."""
        node = self.node(node_id)
        if not pid_alive(node.pid):
            self._launch(node)
        self.wait_ready(node)

    def node(self, node_id: int) -> KafkaNode:
        """The node with ``node_id``."""
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise StackError(f"no Kafka node {node_id} in this cluster")

    def stop(self) -> list[int]:
        """Stop every node cleanly (controlled shutdown); return the pids that were running."""
        stopped = []
        for node in reversed(self.nodes):
            if stop_pid(node.pid, timeout=60):
                stopped.append(node.pid or 0)
            node.pid = None
        return stopped

    def running(self) -> bool:
        """Whether every node's process is alive."""
        return bool(self.nodes) and all(pid_alive(n.pid) for n in self.nodes)
