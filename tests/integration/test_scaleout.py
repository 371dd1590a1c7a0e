"""Scale-out on one machine: 3 Kafka brokers, a Spark standalone cluster, exact tables.

The corpus is replayed once into a topic with replication factor 3 and min.insync.replicas=2,
in one partition like the other stream tests: the speed layer's watermark follows the newest
event time read, so only an event-time ordered topic makes "equal to the oracle" exact. The
parallel part is Spark's: deduplication state and the aggregations are shuffled over both
executors.
The stream job then runs twice as its own driver process against ``spark://...``: once
undisturbed, and once while a partition leader broker and a Spark worker (with its executor)
are killed mid-stream. Both runs must give exactly the oracle's tables.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaError
from streamtools import CorpusTopic, corpus_topic, job_settings, progress_rows, table_differences
from support import stack_settings

from wiki_lib import db
from wiki_lib.config import Settings
from wiki_lib.stack import LocalStack, scratch_state_dir

pytestmark = pytest.mark.integration

BROKERS = 3
WORKERS = 2


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalStack]:
    """A 3-broker Kafka, PostgreSQL and a Spark master with two workers, for this module."""
    state_dir = scratch_state_dir("scaleout")
    settings = stack_settings(state_dir, kafka={"replication_factor": 3, "min_insync_replicas": 2})
    stack = LocalStack(settings, brokers=BROKERS, spark_workers=WORKERS)
    stack.up()
    try:
        yield stack
    finally:
        stack.down()
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def replicated(cluster: LocalStack, data_dir: Path) -> CorpusTopic:
    """The corpus replayed once through the real producer into a replicated topic."""
    return corpus_topic(cluster.settings, sorted((data_dir / "recentchange").glob("*.jsonl")))


def _driver_env(settings: Settings) -> dict[str, str]:
    """What a `wikipulse stream run` driver process gets: WIKI__ variables only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIKI__")}
    values = {
        "KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
        "KAFKA__TOPIC_RAW": settings.kafka.topic_raw,
        "POSTGRES__PORT": str(settings.postgres.port),
        "POSTGRES__SCHEMA_NAME": settings.postgres.schema_name,
        "STREAM__QUERY_NAME": settings.stream.query_name,
        "STREAM__CHECKPOINT_DIR": str(settings.checkpoint_dir),
        "STREAM__TRIGGER": "availableNow",
        "STREAM__MAX_OFFSETS_PER_TRIGGER": str(settings.stream.max_offsets_per_trigger),
        "LAKE__PATH": str(settings.lake_path),
        "SPARK__MASTER": settings.spark.master,
        "SPARK__UI_PORT": "0",
        "SPARK__SHUFFLE_PARTITIONS": "2",
        "STACK__STATE_DIR": str(settings.stack.state_dir),
    }
    env.update({f"WIKI__{k}": v for k, v in values.items()})
    return env


def _start_driver(settings: Settings, workdir: Path) -> subprocess.Popen[bytes]:
    log = open(workdir / "driver.log", "wb")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [sys.executable, "-m", "wiki_lib.cli", "stream", "run"],
        env=_driver_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _run_settings(corpus: CorpusTopic, workdir: Path, max_offsets: int) -> Settings:
    schema = f"scale_{uuid.uuid4().hex[:8]}"
    db.migrate(corpus.settings.postgres, schema)
    settings = job_settings(corpus, schema, workdir, max_offsets_per_trigger=max_offsets)
    settings.checkpoint_dir.mkdir(parents=True)
    return settings


def _wait_for_batches(settings: Settings, proc: subprocess.Popen[bytes], batches: int) -> None:
    deadline = time.monotonic() + 600
    name = settings.stream.query_name
    while time.monotonic() < deadline:
        if len(progress_rows(settings, settings.postgres.schema_name, name)) >= batches:
            return
        assert proc.poll() is None, f"the driver exited ({proc.returncode}) before {batches}"
        time.sleep(0.2)
    raise AssertionError(f"the job never reached {batches} committed batches")


def _finish(proc: subprocess.Popen[bytes], workdir: Path) -> None:
    try:
        code = proc.wait(600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    log = (workdir / "driver.log").read_text(errors="replace")
    assert code == 0, f"driver exited with {code}:\n{log[-3000:]}"


def _master_apps(stack: LocalStack) -> list[dict]:
    assert stack.spark.master is not None
    url = f"http://127.0.0.1:{stack.spark.master.webui_port}/json/"
    with urllib.request.urlopen(url, timeout=5) as resp:
        state = json.load(resp)
    return [*state.get("activeapps", []), *state.get("completedapps", [])]


def _eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout:.0f}s: {what}"
        time.sleep(0.5)


def _leader_of_partition_zero(bootstrap: str, topic: str) -> int | None:
    """The broker leading partition 0, or None while the cluster cannot say."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    except KafkaError:
        return None
    try:
        (described,) = admin.describe_topics([topic])
        return next(p["leader_id"] for p in described["partitions"] if p["partition_index"] == 0)
    except KafkaError:
        return None
    finally:
        admin.close()


def test_topic_is_replicated_three_times_with_two_in_sync(replicated: CorpusTopic) -> None:
    kafka = replicated.settings.kafka
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap.split(","))
    try:
        (described,) = admin.describe_topics([kafka.topic_raw])
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, kafka.topic_raw)], config_filter="all"
        )
    finally:
        admin.close()
    assert len(described["partitions"]) == 1
    assert all(len(p["replica_nodes"]) == BROKERS for p in described["partitions"])
    assert configs["topic"][kafka.topic_raw]["min.insync.replicas"]["value"] == "2"
    assert replicated.produced >= len(replicated.oracle["recent_changes"]) > 0


def test_standalone_cluster_gives_the_oracle_tables(
    cluster: LocalStack, replicated: CorpusTopic, tmp_path: Path
) -> None:
    settings = _run_settings(replicated, tmp_path, max_offsets=2500)
    assert settings.spark.master == cluster.spark.url
    _finish(_start_driver(settings, tmp_path), tmp_path)

    assert table_differences(settings, settings.postgres.schema_name, replicated.oracle) == {}
    apps = [a for a in _master_apps(cluster) if a["name"].endswith(settings.stream.query_name)]
    assert apps, "the job did not run on the standalone master"


def test_broker_and_worker_killed_mid_stream_still_exact(
    cluster: LocalStack, replicated: CorpusTopic, tmp_path: Path
) -> None:
    settings = _run_settings(replicated, tmp_path, max_offsets=800)
    name, schema = settings.stream.query_name, settings.postgres.schema_name
    victim = _leader_of_partition_zero(settings.kafka.bootstrap, settings.kafka.topic_raw)
    assert victim is not None
    driver = _start_driver(settings, tmp_path)
    try:
        _wait_for_batches(settings, driver, 2)
        cluster.kafka.stop_broker(victim, kill=True)
        survivors = ",".join(
            f"127.0.0.1:{n.port}" for n in cluster.kafka.nodes if n.node_id != victim
        )
        _eventually(
            lambda: (
                _leader_of_partition_zero(survivors, settings.kafka.topic_raw) not in (None, victim)
            ),
            f"a new leader for partition 0 after broker {victim} died",
        )
        _wait_for_batches(settings, driver, 4)
        batches_before_worker_kill = len(progress_rows(settings, schema, name))
        cluster.spark.kill_worker(1)
        _eventually(
            lambda: cluster.spark.alive_workers() == WORKERS - 1,
            "the master noticing the dead worker",
        )
        _finish(driver, tmp_path)
    finally:
        cluster.kafka.start_broker(victim)
        cluster.spark.start_worker(1)

    assert table_differences(settings, schema, replicated.oracle) == {}
    rows = progress_rows(settings, schema, name)
    assert [r["batch_id"] for r in rows] == list(range(len(rows)))
    assert len(rows) > batches_before_worker_kill, "the worker kill did not land mid-stream"
