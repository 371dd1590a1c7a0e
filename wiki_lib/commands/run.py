"""``wikipulse up``, ``down`` and ``status``: the whole platform with one command each."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from wiki_lib.commands._common import add_command, plain_flag, print_json
from wiki_lib.config import Settings
from wiki_lib.errors import SinkError
from wiki_lib.kafka_admin import OffsetReader
from wiki_lib.services import Platform, live_stream_reachable

__all__ = ["pipeline_status", "register"]


def pipeline_status(settings: Settings) -> dict[str, Any]:
    """Events in, rate, Kafka lag, last batch, latency and dead letters, from the sources."""
    from psycopg2 import sql

    from wiki_lib import db

    out: dict[str, Any] = {}
    schema = sql.Identifier(settings.postgres.schema_name)
    try:
        conn = db.connect(settings.postgres, "reader")
    except Exception as exc:  # status must report, not fail
        return {"database": f"unreachable: {exc}"}
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "SELECT count(*), coalesce(sum(rows_read), 0), max(batch_id),"
                    " max(committed_at),"
                    " extract(epoch FROM now() - max(max_event_time)),"
                    " coalesce(sum(rows_invalid), 0), coalesce(sum(rows_late), 0)"
                    " FROM {}.pipeline_progress WHERE query_name = %s"
                ).format(schema),
                (settings.stream.query_name,),
            )
            batches, rows, last_batch, last_commit, behind, invalid, late = cur.fetchone()
            cur.execute(
                sql.SQL("SELECT progress FROM {}.stream_status WHERE query_name = %s").format(
                    schema
                ),
                (settings.stream.query_name,),
            )
            row = cur.fetchone()
    finally:
        conn.close()
    progress = (row[0] if isinstance(row[0], dict) else json.loads(row[0])) if row else {}
    out.update(
        batches=batches,
        events_in=int(rows),
        last_batch=last_batch,
        last_commit=last_commit,
        seconds_behind_newest_event=round(float(behind), 1) if behind is not None else None,
        quarantined=int(invalid),
        late_events=int(late),
        input_rows_per_s=progress.get("inputRowsPerSecond"),
        processed_rows_per_s=progress.get("processedRowsPerSecond"),
    )
    out.update(_kafka_figures(settings, progress))
    return out


def _kafka_figures(settings: Settings, progress: dict[str, Any]) -> dict[str, Any]:
    """Kafka lag of the stream job (topic end offsets minus the last batch's end offsets)."""
    try:
        with OffsetReader(settings.kafka.bootstrap) as offsets:
            figures = {
                f"{name}_topic_records": sum(offsets.ends(topic).values())
                for name, topic in (
                    ("raw", settings.kafka.topic_raw),
                    ("dead_letters", settings.kafka.topic_dlq),
                )
            }
    except SinkError as exc:
        return {"kafka": f"unreachable: {exc}"}
    consumed = 0
    for source in progress.get("sources", []):
        end = source.get("endOffset")
        end = json.loads(end) if isinstance(end, str) else end
        for partitions in (end or {}).values():
            consumed += sum(int(v) for v in partitions.values())
    figures["kafka_lag"] = figures["raw_topic_records"] - consumed if progress else None
    return figures


def _status(args: argparse.Namespace, settings: Settings) -> int:
    platform = Platform(settings)
    services = platform.stack.status()
    parts = platform.parts()
    pipeline = pipeline_status(platform.stack.settings) if platform.stack.running() else {}
    if args.json:
        print_json(
            {
                "services": [s.__dict__ for s in services],
                "parts": [p.__dict__ for p in parts],
                "pipeline": pipeline,
            }
        )
    else:
        for svc in services:
            state = "up" if svc.running else "DOWN"
            print(f"{svc.name:<10} {state:<5} {svc.endpoint:<28} log {svc.log_file}")
        for part in parts:
            state = "up" if part.running else "DOWN"
            print(f"{part.name:<10} {state:<5} {part.url or '':<28} log {part.log_file}")
        for key, value in pipeline.items():
            print(f"  {key}: {value}")
    healthy = all(s.running for s in services) and all(p.running for p in parts)
    return 0 if healthy else 3


def _up(args: argparse.Namespace, settings: Settings) -> int:
    source = args.source
    if source == "auto":
        ok, why = live_stream_reachable(settings)
        if ok:
            source = "live"
        else:
            print(
                f"wikipulse: EventStreams ({settings.producer.url}) is not reachable ({why}); "
                "replaying the recording shipped with the package instead",
                file=sys.stderr,
            )
            source = "sample"
    platform = Platform(settings)
    began = time.monotonic()
    started = platform.up(
        source,
        speed=args.speed,
        dashboard=not args.no_dashboard,
        lab=args.lab,
        alerts=not args.no_alerts,
    )
    print(
        f"started: {', '.join(started) or 'nothing (already running)'}; source: {source}; "
        f"ready in {time.monotonic() - began:.0f} s"
    )
    for part in platform.parts():
        if part.url:
            print(f"{part.name}: {part.url}")
    if args.watch and sys.stdout.isatty():
        try:
            while True:
                time.sleep(args.watch)
                _status(argparse.Namespace(json=False), settings)
        except KeyboardInterrupt:
            print("stopping...", file=sys.stderr)
            platform.down()
    return 0


def _down(args: argparse.Namespace, settings: Settings) -> int:
    stopped = Platform(settings).down()
    print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``up``, ``down`` and ``status``."""
    p = add_command(
        sub, "up", _up, "start the platform: stack, producer, stream job, alerts, dashboard (+ lab)"
    )
    plain_flag(
        p,
        "up",
        "--source",
        "auto (live, else the shipped recording), live, sample, replay:PATH or synth:N",
        default="auto",
    )
    plain_flag(p, "up", "--speed", "pacing of replay/synthetic sources", type=float, default=1.0)
    plain_flag(p, "up", "--no-dashboard", "do not start the Voila dashboard", action="store_true")
    plain_flag(p, "up", "--lab", "also start JupyterLab (WIKI__LAB__PORT)", action="store_true")
    plain_flag(p, "up", "--no-alerts", "do not start the alerting service", action="store_true")
    plain_flag(
        p,
        "up",
        "--watch",
        "on a terminal, print the status every N seconds (0: off)",
        type=float,
        default=5.0,
    )
    add_command(sub, "down", _down, "stop the whole platform in order, without losing data")
    p = add_command(sub, "status", _status, "health of every service and of the pipeline")
    plain_flag(p, "status", "--json", "machine-readable output", action="store_true")
