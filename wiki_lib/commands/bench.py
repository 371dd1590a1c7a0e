"""``wikipulse bench``: run the benchmarks, print and save one report (JSON and Markdown)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wiki_lib.commands._common import add_command, plain_flag
from wiki_lib.config import Settings
from wiki_lib.stack import LocalStack, scratch_state_dir

__all__ = ["machine", "plot_curve", "reference_loop_s", "register", "to_markdown"]

_SUITES = ("ingest", "stream", "latency", "curve", "limits", "query")
_ON_DEMAND = ("dashboard",)
"""Suites ``all`` leaves out: the dashboard one needs Playwright and runs for half an hour."""


def reference_loop_s(iterations: int = 5_000_000, rounds: int = 3) -> float:
    """Seconds the interpreter takes for a fixed loop of additions, best of ``rounds``.

    Shared machines change speed from day to day (this project's development machine ran
    at half speed one evening), so a figure is comparable with an older one only next to
    this reference, taken at the same time on the same interpreter.
    """
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        total = 0
        for i in range(iterations):
            total += i
        best = min(best, time.perf_counter() - started)
    return best


def machine() -> dict[str, Any]:
    """What the figures were measured on, and how fast it ran at the start."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    import pyspark

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": f"{platform.python_version()} ({sys.executable})",
        "reference_loop_5m_additions_s": round(reference_loop_s(), 3),
        "java": (java.stderr.splitlines() or ["?"])[0],
        "spark": pyspark.__version__,
        "load_average_at_start": os.getloadavg(),
    }


def to_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables: the machine, then one table per benchmark."""
    lines = [f"# wikipulse benchmark, {report['at']}", "", "| machine | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in report["machine"].items()]
    for suite, figures in report["figures"].items():
        if suite == "curve":
            lines += ["", "## latency against input rate", ""]
            lines += [
                "| events/s | p50 s | p90 s | p99 s | max s | measured |",
                "|---|---|---|---|---|---|",
            ]
            lines += [
                f"| {p['rate_events_per_s']:g} | {p['p50_s']} | {p['p90_s']} | {p['p99_s']} "
                f"| {p['max_s']} | {p['measured_events']} |"
                for p in figures
            ]
            if report.get("curve_plot"):
                lines += ["", f"![latency percentiles against input rate]({report['curve_plot']})"]
            continue
        lines += ["", f"## {suite}", "", "| figure | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in figures.items()]
    return "\n".join(lines) + "\n"


def plot_curve(points: list[dict[str, Any]], path: Path) -> Path:
    """p50/p90/p99 end-to-end latency against input rate, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [p["rate_events_per_s"] for p in points]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("p50_s", "p50"), ("p90_s", "p90"), ("p99_s", "p99")):
        ax.plot(rates, [p[key] for p in points], marker="o", label=label)
    ax.set_xlabel("input rate (events/s)")
    ax.set_ylabel("end-to-end latency (s)")
    ax.set_title("Kafka send to visible in PostgreSQL")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _run(args: argparse.Namespace, settings: Settings) -> int:
    suites = _SUITES if args.suite == "all" else (args.suite,)
    state_dir = None
    stack = None
    if not args.use_running:
        state_dir = scratch_state_dir("bench")
        settings = settings.with_overrides(
            stack={"state_dir": str(state_dir), "kafka_port": 0, "kafka_controller_port": 0},
            postgres={"port": 0},
            spark={"ui_port": 0},
        )
        stack = LocalStack(settings)
        stack.up()
        settings = stack.settings
    report: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "figures": {},
    }
    try:
        report["figures"] = _measure(settings, suites, args)
    finally:
        if stack is not None:
            stack.down()
        if state_dir is not None:
            shutil.rmtree(state_dir, ignore_errors=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if report["figures"].get("curve"):
        report["curve_plot"] = plot_curve(
            report["figures"]["curve"], out / f"bench-{stamp}-latency.png"
        ).name
    (out / f"bench-{stamp}.json").write_text(json.dumps(report, indent=2, default=str))
    markdown = to_markdown(report)
    (out / f"bench-{stamp}.md").write_text(markdown)
    print(markdown)
    print(f"saved {out / f'bench-{stamp}.json'} and .md")
    return 0


def _measure(settings: Settings, suites: tuple[str, ...], args: argparse.Namespace) -> dict:
    from wiki_lib.bench import ingest
    from wiki_lib.bench import stream as stream_bench

    figures: dict[str, Any] = {}
    if "ingest" in suites:
        figures["ingest"] = ingest(settings, events=args.ingest_events)
    if "limits" in suites:
        figures["limits"] = stream_bench.postgres_copy(settings)
    if "query" in suites:
        from wiki_lib.bench.query import query_latency

        figures["query"] = query_latency(settings, repeats=args.query_repeats)
    if {"stream", "latency", "curve"} & set(suites):
        from wiki_lib.spark import session

        spark = session(settings, app_name="wikipulse-bench")
        try:
            if "stream" in suites:
                figures["stream"] = stream_bench.throughput(
                    settings, spark, events=args.events, batch=args.batch
                )
            if "latency" in suites:
                figures["latency"] = stream_bench.latency(
                    settings, spark, rate=args.rate, seconds=args.seconds
                )
                for stage in stream_bench.STAGES:
                    figures[f"latency_limit_{stage}"] = stream_bench.latency_floor(
                        settings, spark, stage=stage, rate=args.rate, seconds=args.seconds
                    )
            if "curve" in suites:
                figures["curve"] = [
                    stream_bench.latency(settings, spark, rate=rate, seconds=args.seconds)
                    for rate in args.rates
                ]
        finally:
            spark.stop()
    if "dashboard" in suites:
        from wiki_lib.bench.dashboard import dashboard_bench

        figures["dashboard"] = dashboard_bench(
            settings, out=Path(args.out), minutes=args.dashboard_minutes, rate=args.dashboard_rate
        )
    return figures


def _rates(text: str) -> list[float]:
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"rates are numbers like 50,150,350: {exc}") from exc
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError("rates must be positive")
    return sorted(rates)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``bench``."""
    p = add_command(sub, "bench", _run, "run the benchmarks and save a report")
    p.add_argument(
        "suite",
        nargs="?",
        choices=(*_SUITES, *_ON_DEMAND, "all"),
        default="all",
        help="which benchmark to run (default: all, which leaves out dashboard)",
    )
    plain_flag(
        p,
        "bench",
        "--events",
        "events pre-loaded for the stream throughput run",
        type=int,
        default=2_000_000,
    )
    plain_flag(
        p,
        "bench",
        "--batch",
        "maxOffsetsPerTrigger of the throughput run",
        type=int,
        default=250_000,
    )
    plain_flag(p, "bench", "--ingest-events", "events per ingest run", type=int, default=200_000)
    plain_flag(
        p, "bench", "--rate", "input rate of the latency run (events/s)", type=float, default=350.0
    )
    plain_flag(
        p, "bench", "--seconds", "measured seconds of the latency run", type=float, default=60.0
    )
    plain_flag(
        p,
        "bench",
        "--rates",
        "input rates of the latency curve (events/s, comma-separated)",
        type=_rates,
        default=_rates("50,150,350,700"),
    )
    plain_flag(
        p, "bench", "--query-repeats", "timed calls per query and lookback", type=int, default=20
    )
    plain_flag(
        p,
        "bench",
        "--dashboard-minutes",
        "minutes of 2 s refreshes the dashboard memory run lasts",
        type=float,
        default=30.0,
    )
    plain_flag(
        p,
        "bench",
        "--dashboard-rate",
        "events/s of the 3 hours loaded for the dashboard run (10x live)",
        type=float,
        default=500.0,
    )
    plain_flag(
        p, "bench", "--out", "folder for the JSON and Markdown reports", default="reports/bench"
    )
    plain_flag(
        p,
        "bench",
        "--use-running",
        "measure the stack the settings point at instead of starting a throw-away one",
        action="store_true",
    )
