"""``wikipulse alerts run|check``: the alerting service, or one evaluation of its rules."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from dataclasses import asdict
from types import FrameType

from wiki_lib.commands._common import add_command, print_json, setting_flag
from wiki_lib.config import Settings

__all__ = ["register"]


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from wiki_lib.alerts import AlertService

    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    cfg = settings.alerts
    print(
        f"alerts on {settings.postgres.schema_name} every {cfg.interval_s:g}s -> topic "
        f"{cfg.topic}, webhook {'on' if cfg.webhook_url else 'off'}",
        file=sys.stderr,
    )
    try:
        with AlertService(settings) as service:
            stats = service.run(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"alerts stopped: {asdict(stats)}", file=sys.stderr)
    return 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
    from wiki_lib.alerts import AlertService

    with AlertService(settings) as service:
        fired = service.evaluate()
        stats = service.stats
    print_json([alert.to_json() for alert in fired])
    failures = stats.kafka_failures + stats.webhook_failures
    if failures:
        print(f"wikipulse: {failures} alert notifications failed (see the log)", file=sys.stderr)
    return 0


def _flags(p: argparse.ArgumentParser) -> None:
    setting_flag(p, "--schema", "postgres.schema_name", "PostgreSQL schema to watch")
    setting_flag(p, "--bootstrap", "kafka.bootstrap", "Kafka bootstrap servers")
    setting_flag(p, "--topic", "alerts.topic", "Kafka topic alerts are published to")
    setting_flag(p, "--webhook-url", "alerts.webhook_url", "Slack-compatible webhook URL")
    setting_flag(p, "--cooldown", "alerts.cooldown_s", "seconds before a (rule, key) fires again")
    setting_flag(p, "--z-threshold", "alerts.z_threshold", "z-score of a velocity spike")
    setting_flag(p, "--lag-threshold", "alerts.lag_threshold_s", "seconds without a commit")
    setting_flag(p, "--query-name", "stream.query_name", "streaming query whose lag is judged")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``alerts run`` and ``alerts check``."""
    alerts = sub.add_parser("alerts", help="alert rules: velocity spikes, watchlist hits, lag")
    asub = alerts.add_subparsers(dest="alerts_cmd", required=True)
    p = add_command(asub, "run", _run, "evaluate the alert rules every interval until stopped")
    _flags(p)
    setting_flag(p, "--interval", "alerts.interval_s", "seconds between evaluations")
    p = add_command(asub, "check", _check, "evaluate the alert rules once, print what fired")
    _flags(p)
