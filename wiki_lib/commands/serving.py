"""``wikipulse batch``, ``maintain`` and ``query``: the serving and batch layers from a shell.

``batch`` and ``maintain`` are what a cron job or a Kubernetes CronJob runs (nightly, and
every few minutes); ``query`` is a quick look at what a dashboard would show.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, timedelta
from typing import Any

from wiki_lib.commands._common import add_command, plain_flag, print_json, setting_flag
from wiki_lib.config import Settings
from wiki_lib.errors import ConfigError

__all__ = ["register"]


def _day(text: str) -> date:
    if text == "yesterday":
        return datetime.now(UTC).date() - timedelta(days=1)
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"--date {text!r} is neither YYYY-MM-DD nor 'yesterday'") from exc


def _batch(args: argparse.Namespace, settings: Settings) -> int:
    from wiki_lib.batch import recompute_day
    from wiki_lib.spark import session

    day = _day(args.date)
    spark = session(settings, app_name=f"wikipulse-batch-{day}", with_kafka=False)
    try:
        report = recompute_day(
            settings, spark, day, allow_open=args.allow_open, allow_empty=args.allow_empty
        )
    finally:
        spark.stop()
    if args.json:
        print_json(report.to_json())
    else:
        print(report.summary())
    return 0


def _maintain(args: argparse.Namespace, settings: Settings) -> int:
    from wiki_lib.maintenance import maintain

    report = maintain(settings, lake=not args.no_lake)
    if args.json:
        print_json(report.to_json())
        return 0
    if report.rolled:
        start, stop = report.rolled
        print(f"rolled up {start:%Y-%m-%d %H:%M} .. {stop:%Y-%m-%d %H:%M} UTC")
    else:
        print("no new hours to roll up")
    deleted = {k: v for k, v in report.deleted.items() if v}
    print("deleted: " + (", ".join(f"{k} {v}" for k, v in deleted.items()) or "nothing"))
    if report.compaction is not None:
        c = report.compaction
        print(f"compacted {c.partitions} hour partitions ({c.files_replaced} files, {c.rows} rows)")
    return 0


def _split(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def _query(args: argparse.Namespace, settings: Settings) -> int:
    import pandas as pd

    from wiki_lib import query

    filters = query.Filters(
        wiki=_split(args.wiki),
        project=_split(args.project),
        language=_split(args.language),
        bot={"all": None, "bot": True, "human": False}[args.who],
        namespace=[int(n) for n in _split(args.namespace) or []],
        type=_split(args.type),
    )
    fn = query.QUERIES.get(args.name)
    if fn is None:
        raise ConfigError(f"no query {args.name!r}; choose from {', '.join(sorted(query.QUERIES))}")
    kwargs: dict[str, Any] = {"end": args.end, "filters": filters}
    if args.name in ("traffic", "bot_human", "minor_major", "additions_deletions"):
        kwargs["bucket"] = args.bucket
    if args.name.startswith("top_") or args.name == "namespaces":
        kwargs["n"] = args.n
    if args.name in ("recent_changes", "watchlist"):
        kwargs["limit"] = args.n
    with query.connect(settings) as reader:
        if args.name == "pipeline_health":
            frame = fn(reader)
        elif args.name == "watchlist":
            frame = fn(reader, _split(args.terms) or [], args.lookback, **kwargs)
        else:
            frame = fn(reader, args.lookback, **kwargs)
    if args.json:
        sys.stdout.write(frame.to_json(orient="records", date_format="iso") + "\n")
        return 0
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(frame.to_string(index=False))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``batch``, ``maintain`` and ``query``."""
    p = add_command(
        sub, "batch", _batch, "recompute a day from the lake, replace its speed-layer rows"
    )
    plain_flag(
        p,
        "batch",
        "--date",
        "the day to recompute: YYYY-MM-DD (UTC) or 'yesterday'",
        default="yesterday",
    )
    plain_flag(
        p,
        "batch",
        "--allow-open",
        "recompute a day the stream may still change",
        action="store_true",
    )
    plain_flag(
        p,
        "batch",
        "--allow-empty",
        "clear the day's rows even when the lake has no events for it",
        action="store_true",
    )
    plain_flag(p, "batch", "--json", "print the reconciliation report as JSON", action="store_true")
    setting_flag(p, "--schema", "postgres.schema_name", "PostgreSQL schema")
    setting_flag(p, "--lake-path", "lake.path", "Parquet lake root")
    setting_flag(p, "--master", "spark.master", "Spark master URL")

    p = add_command(
        sub, "maintain", _maintain, "roll up hours, apply retention, compact the lake (cron)"
    )
    plain_flag(p, "maintain", "--no-lake", "skip the lake compaction", action="store_true")
    plain_flag(p, "maintain", "--json", "machine-readable output", action="store_true")
    setting_flag(p, "--schema", "postgres.schema_name", "PostgreSQL schema")
    setting_flag(p, "--lake-path", "lake.path", "Parquet lake root")

    p = add_command(sub, "query", _query, "run one query function and print its DataFrame")
    p.add_argument("name", help="the query function (kpis, traffic, top_pages, watchlist, ...)")
    plain_flag(p, "query", "--lookback", "how far back from --end", default="15m")
    plain_flag(p, "query", "--end", "end of the window, ISO 8601 (default: now)")
    plain_flag(p, "query", "--wiki", "only these wikis (comma-separated)")
    plain_flag(p, "query", "--project", "only these projects (comma-separated)")
    plain_flag(p, "query", "--language", "only these languages (comma-separated)")
    plain_flag(
        p, "query", "--who", "bots, humans or both", choices=("all", "bot", "human"), default="all"
    )
    plain_flag(p, "query", "--namespace", "only these namespaces (comma-separated numbers)")
    plain_flag(p, "query", "--type", "only these event types (comma-separated)")
    plain_flag(p, "query", "--bucket", "time-series bucket, e.g. 1m, 1h (default: by lookback)")
    plain_flag(p, "query", "--n", "rows of top lists and feeds", type=int, default=10)
    plain_flag(p, "query", "--terms", "watchlist terms (comma-separated)")
    plain_flag(p, "query", "--json", "print JSON records", action="store_true")
    setting_flag(p, "--schema", "postgres.schema_name", "PostgreSQL schema")
