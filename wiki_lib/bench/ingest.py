"""Ingest throughput: replay and synthetic events into Kafka, next to Kafka's own perf tool.

Every figure is end to end: records read from the source, validated, routed, and
acknowledged by the broker (``acks=all``, idempotent), measured over the whole run including
the final flush. Kafka's ``ProducerPerformance``, sending the corpus's own events with the same
producer settings (acks, idempotence, compression, linger, batch size), shows what the broker
and the JVM client manage on the same machine, i.e. the ceiling.
"""

from __future__ import annotations

import logging
import multiprocessing
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from wiki_lib.config import Settings
from wiki_lib.errors import PrerequisiteError, SinkError
from wiki_lib.jvm import broker_classpath
from wiki_lib.kafka_admin import delete_topics, ensure_topics, ingest_topic_specs
from wiki_lib.producer import IngestProducer, freeze_startup_heap
from wiki_lib.sources import DEFAULT_CORPUS, ReplaySource, Source, SyntheticSource

__all__ = ["ingest", "kafka_producer_perf", "synthetic_worker"]

log = logging.getLogger(__name__)

_PERF_LINE = re.compile(
    r"(?P<records>\d+) records sent, (?P<rps>[\d.]+) records/sec \((?P<mbps>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency"
)


def _topics(settings: Settings, label: str) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return settings.with_overrides(
        kafka={"topic_raw": f"bench_{label}_{tag}", "topic_dlq": f"bench_{label}_dlq_{tag}"}
    )


def _machine_ticks() -> tuple[int, int] | None:
    """(stolen, all) CPU ticks of the machine so far, from Linux's /proc/stat (else None).

    Stolen ticks are those the hypervisor gave to other guests while this one wanted to run.
    """
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def _run(settings: Settings, source: Source, events: int) -> dict[str, Any]:
    """One producer run as ``wikipulse produce`` makes it (startup heap frozen).

    Wall-clock bounds let parallel runs be added up; the process's CPU time (every thread)
    gives the events per second of one core, and the stolen share of the machine's CPU says
    whether other guests of the host slowed the run down.
    """
    with IngestProducer(settings, create_topics=False, log_interval_s=3600) as producer:
        freeze_startup_heap()
        ticks = _machine_ticks()
        cpu = time.process_time()
        started = time.time()
        stats = producer.run(source, max_events=events, progress=False)
        finished = time.time()
        cpu = time.process_time() - cpu
        after = _machine_ticks()
    stolen = None
    if ticks is not None and after is not None and after[1] > ticks[1]:
        stolen = (after[0] - ticks[0]) / (after[1] - ticks[1])
    return {
        "produced": stats.produced,
        "started": started,
        "finished": finished,
        "cpu_s": cpu,
        "stolen_share": stolen,
    }


def _cpu_figures(label: str, run: dict[str, Any]) -> dict[str, Any]:
    """Events per CPU second of one run's process, and the CPU share stolen meanwhile."""
    stolen = run["stolen_share"]
    return {
        f"{label}_events_per_cpu_s": round(run["produced"] / run["cpu_s"], 1),
        f"{label}_stolen_cpu_share": None if stolen is None else round(stolen, 3),
    }


def synthetic_worker(
    settings: Settings, corpus: list[str], events: int, seed: int
) -> dict[str, Any]:
    """One producer run of ``events`` synthetic events; module level, so that a process pool
    can start it (the stream benchmark loads its topic this way too)."""
    return _run(settings, SyntheticSource(events, corpus=corpus, seed=seed), events)


def _rate(runs: Sequence[dict[str, Any]]) -> float:
    produced = sum(r["produced"] for r in runs)
    span = max(r["finished"] for r in runs) - min(r["started"] for r in runs)
    return round(produced / span, 1) if span > 0 else 0.0


def kafka_producer_perf(
    settings: Settings, topic: str, records: int, payloads: Sequence[bytes]
) -> dict[str, Any]:
    """Kafka's ``ProducerPerformance`` (unthrottled) sending ``payloads`` (picked at random)
    into ``topic`` with the settings our producer uses, so that compression sees real events.
    """
    cfg = settings.producer
    with tempfile.NamedTemporaryFile(prefix="perf-payloads-", suffix=".jsonl") as file:
        file.write(b"\n".join(payloads))
        file.flush()
        cmd = [
            settings.jvm.java,
            "-Xmx512m",
            "-cp",
            broker_classpath(settings.jvm),
            "org.apache.kafka.tools.ProducerPerformance",
            "--topic",
            topic,
            "--num-records",
            str(records),
            "--payload-file",
            file.name,
            "--throughput",
            "-1",
            "--producer-props",
            f"bootstrap.servers={settings.kafka.bootstrap}",
            "acks=all",
            "enable.idempotence=true",
            f"compression.type={cfg.compression or 'none'}",
            f"linger.ms={cfg.linger_ms}",
            f"batch.size={cfg.batch_size}",
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PrerequisiteError(f"running Kafka's ProducerPerformance failed: {exc}") from exc
    matches = list(_PERF_LINE.finditer(proc.stdout))
    if proc.returncode != 0 or not matches:
        raise SinkError(
            f"ProducerPerformance exited {proc.returncode}: {(proc.stdout + proc.stderr)[-600:]}"
        )
    last = matches[-1]
    return {
        "kafka_perf_records_per_s": float(last["rps"]),
        "kafka_perf_mb_per_s": float(last["mbps"]),
        "kafka_perf_avg_latency_ms": float(last["avg"]),
        "kafka_perf_max_latency_ms": float(last["max"]),
    }


def ingest(
    settings: Settings,
    *,
    events: int = 100_000,
    workers: int = 2,
    corpus: Sequence[str | Path] = (DEFAULT_CORPUS,),
    perf_tool: bool = True,
    cleanup: bool = True,
) -> dict[str, Any]:
    """Measure ingest throughput (events/s) and return the figures as a flat dict.

    ``replay`` loops the corpus until ``events`` records; ``synthetic`` generates ``events``
    records in one producer process, then in ``workers`` processes at once (the producer
    scales out by process, since kafka-python does its per-record work in Python).
    """
    patterns = [str(p) for p in corpus]
    figures: dict[str, Any] = {
        "events": events,
        "workers": workers,
        "compression": settings.producer.compression,
        "linger_ms": settings.producer.linger_ms,
        "batch_size": settings.producer.batch_size,
    }
    created: list[str] = []

    def fresh(label: str) -> Settings:
        bench = _topics(settings, label)
        ensure_topics(bench.kafka.bootstrap, ingest_topic_specs(bench))
        created.extend([bench.kafka.topic_raw, bench.kafka.topic_dlq])
        return bench

    try:
        replay = ReplaySource(patterns, loop=True)
        payloads = [raw.data for _, raw in replay.records()]
        figures["mean_event_bytes"] = round(sum(map(len, payloads)) / len(payloads))
        replayed = _run(fresh("replay"), replay, events)
        figures["replay_events_per_s"] = _rate([replayed])
        figures.update(_cpu_figures("replay", replayed))

        generator = SyntheticSource(events, corpus=patterns, seed=1)
        started = time.perf_counter()
        for _ in generator:
            pass
        figures["synthetic_generate_per_s"] = round(events / (time.perf_counter() - started), 1)
        single = synthetic_worker(fresh("synth"), patterns, events, seed=2)
        figures["synthetic_events_per_s"] = _rate([single])
        figures.update(_cpu_figures("synthetic", single))

        parallel = fresh("synthpar")
        share = events // workers
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            runs = list(
                pool.map(
                    synthetic_worker,
                    [parallel] * workers,
                    [patterns] * workers,
                    [share] * workers,
                    [100 + i for i in range(workers)],
                )
            )
        figures["synthetic_parallel_events_per_s"] = _rate(runs)

        if perf_tool:
            perf = fresh("perf")
            figures.update(kafka_producer_perf(perf, perf.kafka.topic_raw, events, payloads))
    finally:
        if cleanup and created:
            delete_topics(settings.kafka.bootstrap, created)
    log.info("ingest benchmark: %s", figures)
    return figures
