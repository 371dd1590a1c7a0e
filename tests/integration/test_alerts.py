"""Alerting against the real stack: a migrated schema, a Kafka topic, a local webhook receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from psycopg2 import sql
from support import read_topic

from wiki_lib import db, query
from wiki_lib.alerts import LAG, VELOCITY, WATCHLIST, AlertService
from wiki_lib.config import Settings
from wiki_lib.dashboard.panels import HealthPanel
from wiki_lib.dashboard.params import ViewParams
from wiki_lib.dashboard.snapshot import take_snapshot
from wiki_lib.dashboard.watchlist import forget_terms, save_terms
from wiki_lib.stack._proc import free_port

MIN = timedelta(minutes=1)
NOW = datetime.now(UTC).replace(second=30, microsecond=0)
FLOOR = NOW.replace(second=0)
ORDINARY = [590, 610]


class Receiver:
    """A webhook endpoint on 127.0.0.1 that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    try:
        yield hook
    finally:
        hook.close()


@pytest.fixture
def alerting(
    settings: Settings, pg_schema: str, unique: Callable[[str], str]
) -> Callable[..., Settings]:
    """Settings for the test's schema and a unique alerts topic, alert fields overridable."""
    topic = unique("alerts")

    def make(**alerts: Any) -> Settings:
        return settings.with_overrides(
            postgres={"schema_name": pg_schema},
            alerts={"topic": topic, "cooldown_s": 60.0, **alerts},
        )

    return make


def _execute(settings: Settings, statement: str, rows: list[tuple[Any, ...]]) -> None:
    """Run ``statement`` (``{}`` is the schema) once per row, as the pipeline's writer role."""
    schema = settings.postgres.schema_name
    with db.transaction(settings.postgres, "writer") as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        for row in rows:
            cur.execute(statement, row)


def _traffic(settings: Settings, minutes: dict[datetime, int]) -> None:
    _execute(
        settings,
        "INSERT INTO traffic_minute VALUES (%s, %s, %s, 0, 0, 0, 0, 0, %s, 0, %s, 0, 0, 0)",
        [(start, n, n, n, n) for start, n in minutes.items()],
    )


def _baseline(burst_at: datetime, minutes: int = 30) -> dict[datetime, int]:
    start = burst_at - minutes * MIN
    return {start + i * MIN: ORDINARY[i % 2] for i in range(minutes)}


def _stale_progress(settings: Settings, committed: datetime) -> None:
    _execute(
        settings,
        "INSERT INTO pipeline_progress (query_name, batch_id, committed_at, rows_read, "
        "rows_written, rows_late, duplicates_dropped, watermark, max_event_time, processing_ms) "
        "VALUES (%s, 7, %s, 100, 100, 0, 0, %s, %s, 250)",
        [(settings.stream.query_name, committed, committed - 2 * MIN, committed)],
    )


def _stored(settings: Settings) -> list[dict[str, Any]]:
    with query.connect(settings) as reader:
        frame = query.open_alerts(reader, "30d", end=NOW + timedelta(days=1), limit=1000)
    return frame.sort_values("alert_id").to_dict("records")


def _topic(settings: Settings) -> list[dict[str, Any]]:
    """Every record of the alerts topic: its JSON value plus ``record_key``."""
    return [
        {**json.loads(r.value), "record_key": r.key.decode()}
        for r in read_topic(settings.kafka.bootstrap, settings.alerts.topic, timeout_s=30)
    ]


def test_a_burst_fires_one_alert_to_table_topic_and_webhook(
    alerting: Callable[..., Settings], receiver: Receiver
) -> None:
    settings = alerting(webhook_url=receiver.url)
    burst = FLOOR - 3 * MIN
    _traffic(settings, {**_baseline(burst), burst: 3000, burst + MIN: 600, burst + 2 * MIN: 590})
    with AlertService(settings) as service:
        fired = service.evaluate(now=NOW)
        assert service.stats.webhook_failures == service.stats.kafka_failures == 0
    assert [(a.rule, a.key, a.observed_at) for a in fired] == [(VELOCITY, "all", burst)]

    [row] = _stored(settings)
    assert (row["rule"], row["key"], row["severity"]) == (VELOCITY, "all", "warning")
    assert row["observed_at"].to_pydatetime() == burst
    assert row["details"]["events"] == 3000 and row["details"]["z"] >= 4

    [record] = _topic(settings)
    assert record["record_key"] == f"{VELOCITY}|all"
    assert record["message"] == fired[0].message
    assert record["observed_at"] == burst.isoformat()

    [payload] = receiver.received
    assert "Edit velocity spike" in payload["text"] and "50.0 events/s" in payload["text"]
    assert payload["attachments"][0]["fields"][0] == {
        "title": "rule",
        "value": VELOCITY,
        "short": True,
    }

    with query.connect(settings) as reader:
        open_now = query.open_alerts(reader, end=NOW + timedelta(seconds=30))
        assert open_now.attrs["total"] == 1
        assert query.open_alerts(reader, end=NOW + 2 * MIN).empty


def test_the_cooldown_holds_across_restarts_and_passes(
    alerting: Callable[..., Settings], receiver: Receiver
) -> None:
    settings = alerting(webhook_url=receiver.url, cooldown_s=60.0)
    first = FLOOR - 3 * MIN
    _traffic(settings, {**_baseline(first), first: 3000, first + MIN: 610})
    with AlertService(settings) as service:
        assert len(service.evaluate(now=NOW)) == 1
        assert service.evaluate(now=NOW) == [], "the same data evaluated twice"

    second = FLOOR - MIN
    _traffic(settings, {second: 6000})
    with AlertService(settings) as restarted:
        assert restarted.evaluate(now=NOW + timedelta(seconds=10)) == [], "cooldown survives"
    with AlertService(settings) as restarted:
        [again] = restarted.evaluate(now=NOW + timedelta(seconds=70))
        assert again.observed_at == second, "after the cooldown, a new incident fires"
        assert restarted.evaluate(now=NOW + timedelta(seconds=300)) == [], "nothing new"

    assert [r["observed_at"].to_pydatetime() for r in _stored(settings)] == [first, second]
    assert len(_topic(settings)) == len(receiver.received) == 2


def test_a_watchlist_term_triggers_one_hit_per_page(alerting: Callable[..., Settings]) -> None:
    settings = alerting()
    schema = settings.postgres.schema_name
    save_terms(settings, ["Olympics", "Paris"], schema=schema, by="test")
    forget_terms(settings, ["Paris"], schema=schema)
    t = NOW - 2 * MIN
    _execute(
        settings,
        "INSERT INTO recent_changes (event_id, event_time, wiki, server_name, type, namespace, "
        'title, "user", is_bot, is_minor, length_delta, comment) '
        "VALUES (%s, %s, %s, %s, 'edit', 0, %s, %s, false, false, 10, %s)",
        [
            ("e1", t, "enwiki", "en.wikipedia.org", "2024 Summer OLYMPICS", "Alice", ""),
            ("e2", t + MIN, "enwiki", "en.wikipedia.org", "2024 Summer OLYMPICS", "Bob", ""),
            ("e3", t, "frwiki", "fr.wikipedia.org", "Paris", "Carl", "olympics in the comment"),
            ("e4", t, "dewiki", "de.wikipedia.org", "Berlin", "Dana", ""),
            ("e5", NOW - timedelta(hours=2), "enwiki", "en.wikipedia.org", "Olympics", "Old", ""),
        ],
    )
    with AlertService(settings) as service:
        hit, by_comment = sorted(service.evaluate(now=NOW), key=lambda a: a.key)
        assert service.evaluate(now=NOW) == []
    assert (hit.rule, hit.key) == (WATCHLIST, "olympics|enwiki|2024 Summer OLYMPICS")
    assert hit.observed_at == t + MIN
    assert hit.details["users"] == ["Alice", "Bob"]
    assert by_comment.key == "olympics|frwiki|Paris", "comments match, as on the dashboard"
    assert sorted(r["key"] for r in _stored(settings)) == [hit.key, by_comment.key]


def test_stale_pipeline_progress_fires_the_lag_rule(alerting: Callable[..., Settings]) -> None:
    settings = alerting(lag_threshold_s=300.0)
    committed = NOW - timedelta(hours=1)
    with AlertService(settings) as service:
        assert service.evaluate(now=NOW) == [], "no batch yet: nothing to judge"
        _stale_progress(settings, committed)
        [lag] = service.evaluate(now=NOW)
        assert service.evaluate(now=NOW + timedelta(hours=1)) == [], "one stall, one message"
    assert (lag.rule, lag.key, lag.severity) == (LAG, settings.stream.query_name, "critical")
    assert lag.observed_at == committed
    assert lag.details["seconds_since_commit"] == pytest.approx(3600)


def test_an_unreachable_webhook_does_not_stop_the_alert(
    alerting: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{free_port()}/secret-token"
    settings = alerting(webhook_url=url, webhook_timeout_s=2.0)
    _stale_progress(settings, NOW - timedelta(hours=1))
    with AlertService(settings) as service:
        [lag] = service.evaluate(now=NOW)
        assert service.stats.webhook_failures == 1
        assert service.stats.kafka_failures == 0
    assert [r["rule"] for r in _stored(settings)] == [LAG]
    assert [r["record_key"] for r in _topic(settings)] == [f"{LAG}|{lag.key}"]
    assert "secret-token" not in caplog.text, "the webhook URL is a secret"
    assert "webhook" in caplog.text


def test_cli_check_prints_the_fired_alerts(alerting: Callable[..., Settings]) -> None:
    settings = alerting()
    _stale_progress(settings, datetime.now(UTC) - timedelta(hours=1))
    pg = settings.postgres
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIKI__")}
    env.update(
        {
            "WIKI__POSTGRES__HOST": pg.host,
            "WIKI__POSTGRES__PORT": str(pg.port),
            "WIKI__POSTGRES__DATABASE": pg.database,
            "WIKI__POSTGRES__READER_PASSWORD": pg.reader_password.get_secret_value(),
            "WIKI__POSTGRES__WRITER_PASSWORD": pg.writer_password.get_secret_value(),
            "WIKI__KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
            "WIKI__ALERTS__TOPIC": settings.alerts.topic,
        }
    )
    command = [sys.executable, "-m", "wiki_lib.cli", "alerts", "check"]
    args = ["--schema", pg.schema_name, "--lag-threshold", "60"]
    first = subprocess.run(command + args, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    [alert] = json.loads(first.stdout)
    assert (alert["rule"], alert["key"]) == (LAG, settings.stream.query_name)
    second = subprocess.run(command + args, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == []
    assert len(_topic(settings)) == 1


def test_the_health_strip_shows_open_alerts(alerting: Callable[..., Settings]) -> None:
    settings = alerting(cooldown_s=900.0)
    now = datetime.now(UTC)
    _stale_progress(settings, now - timedelta(hours=1))
    view = ViewParams(lookback="5m")
    strip = HealthPanel(settings.dashboard.stale_after_s)
    with query.connect(settings) as reader:
        quiet = take_snapshot(reader, view, now=now)
        assert 'data-alerts="0"' in strip.render(quiet.health, quiet)
        with AlertService(settings) as service:
            [lag] = service.evaluate(now=now)
        snapshot = take_snapshot(reader, view, now=now + timedelta(seconds=5))
    assert snapshot.status != "error", snapshot.message
    assert snapshot.frame("alerts")["message"].tolist() == [lag.message]
    html = strip.render(snapshot.health, snapshot)
    assert 'data-alerts="1"' in html and "wp-alerting" in html
    assert "1 open; newest 5.0 s ago: Pipeline lag on" in html
