"""The alerting service: read the serving tables, run the rules, record and send what is due.

One :meth:`AlertService.evaluate` is one round: read frames as the read-only role, run the
pure rules of :mod:`.rules`, then, in one writer transaction under an advisory lock, read what
the ``alerts`` table already holds for those (rule, key)s, keep what :func:`.rules.due` lets
through and insert it. The cooldown therefore lives in the table: a restarted service, or a
second one, knows what was already said. Only after the commit are the new alerts published
on the alerts topic and POSTed to the webhook; failures there are logged and counted.

The rules judge the data's own clock: the newest event time the speed layer committed (the
wall clock before its first batch), so a replay of old events is judged like live traffic.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import psycopg2
from psycopg2 import sql

from wiki_lib import db, query
from wiki_lib.alerts.notify import AlertPublisher, NotifyError, post_webhook
from wiki_lib.alerts.rules import (
    Alert,
    clean_terms,
    due,
    pipeline_lag,
    velocity_spikes,
    watchlist_hits,
)
from wiki_lib.config import Settings
from wiki_lib.errors import ConfigError, SinkError, WikiError

__all__ = ["AlertService", "AlertStats"]

log = logging.getLogger(__name__)

_MINUTE = timedelta(minutes=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_CHANGES = 50_000


@dataclass
class AlertStats:
    """Counters of one service's life, for logs and the ``run`` summary."""

    evaluations: int = 0
    fired: int = 0
    failed_evaluations: int = 0
    kafka_failures: int = 0
    webhook_failures: int = 0


class AlertService:
    """Evaluates the alert rules against one schema and delivers what fires."""

    def __init__(self, settings: Settings, *, schema: str | None = None) -> None:
        self.settings = settings
        self.cfg = settings.alerts
        self.schema = schema or settings.postgres.schema_name
        self.reader = query.Reader(settings, schema=self.schema)
        self.publisher = AlertPublisher(settings)
        self.stats = AlertStats()

    def close(self) -> None:
        """Close the database session and the Kafka producer."""
        self.reader.close()
        self.publisher.close()

    def __enter__(self) -> AlertService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- one round -----------------------------------------------------------------------------

    def candidates(self, now: datetime) -> list[Alert]:
        """Every alert the rules raise on the current data, before cooldown."""
        cfg = self.cfg
        health = query.pipeline_health(self.reader, now=now)
        newest = health["max_event_time"].iloc[0] if not health.empty else pd.NaT
        clock = now if pd.isna(newest) else newest.to_pydatetime()
        since = clock - timedelta(seconds=cfg.lookback_s)
        closed_before = _EPOCH + ((clock - _EPOCH) // _MINUTE) * _MINUTE
        traffic = self._traffic(since - cfg.baseline_windows * _MINUTE, closed_before)
        terms = self._terms()
        changes = self._changes(terms, since, clock) if terms else pd.DataFrame()
        return [
            *velocity_spikes(
                traffic,
                now=now,
                since=since,
                closed_before=closed_before,
                baseline_windows=cfg.baseline_windows,
                min_baseline_windows=cfg.min_baseline_windows,
                z_threshold=cfg.z_threshold,
                min_events=cfg.min_events,
            ),
            *watchlist_hits(changes, terms, now=now),
            *pipeline_lag(
                health,
                now=now,
                threshold_s=cfg.lag_threshold_s,
                event_threshold_s=cfg.event_lag_threshold_s,
            ),
        ]

    def evaluate(self, now: datetime | None = None) -> list[Alert]:
        """One round: run the rules, record what is due, notify; returns the alerts fired."""
        moment = now or datetime.now(UTC)
        fired = self.record(self.candidates(moment), moment)
        self.stats.evaluations += 1
        self.stats.fired += len(fired)
        for alert in fired:
            log.warning("alert %s/%s: %s", alert.rule, alert.key, alert.message)
        self.notify(fired)
        return fired

    def record(self, candidates: list[Alert], now: datetime) -> list[Alert]:
        """Insert the candidates :func:`due` lets through, atomically with reading the table."""
        if not candidates:
            return []
        table = sql.Identifier(self.schema, "alerts")
        try:
            with db.transaction(self.settings.postgres, "writer") as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{self.schema}/alerts",)
                )
                cur.execute(
                    sql.SQL(
                        "SELECT a.rule, a.key, max(a.fired_at), max(a.observed_at) FROM {} AS a "
                        "JOIN unnest(%s::text[], %s::text[]) AS c(rule, key) "
                        "ON a.rule = c.rule AND a.key = c.key GROUP BY a.rule, a.key"
                    ).format(table),
                    ([a.rule for a in candidates], [a.key for a in candidates]),
                )
                previous = pd.DataFrame(
                    cur.fetchall(), columns=["rule", "key", "last_fired_at", "last_observed_at"]
                )
                fired = []
                for alert in due(candidates, previous, now=now, cooldown_s=self.cfg.cooldown_s):
                    cur.execute(
                        sql.SQL(
                            "INSERT INTO {} (rule, key, severity, message, details, "
                            "observed_at, fired_at) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                            "ON CONFLICT (rule, key, observed_at) DO NOTHING RETURNING alert_id"
                        ).format(table),
                        (
                            alert.rule,
                            alert.key,
                            alert.severity,
                            alert.message,
                            json.dumps(alert.details),
                            alert.observed_at,
                            alert.fired_at,
                        ),
                    )
                    if cur.fetchone() is not None:
                        fired.append(alert)
        except psycopg2.Error as exc:
            raise SinkError(f"recording alerts in {self.schema}.alerts: {exc}".strip()) from exc
        return fired

    def notify(self, alerts: list[Alert]) -> None:
        """Publish on the alerts topic and POST to the webhook; failures are only counted."""
        if not alerts:
            return
        try:
            self.publisher.publish(alerts)
        except NotifyError as exc:
            self.stats.kafka_failures += 1
            log.error("%s", exc)
        url = self.cfg.webhook_url
        if url is None:
            return
        for alert in alerts:
            try:
                post_webhook(url.get_secret_value(), alert, timeout_s=self.cfg.webhook_timeout_s)
            except NotifyError as exc:
                self.stats.webhook_failures += 1
                log.error("%s", exc)

    # --- the loop ------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> AlertStats:
        """Evaluate every ``interval_s`` until ``stop`` is set.

        A failed round (database down, a missing table, a query timeout) is logged and retried
        at the next interval; only unusable settings end the loop.
        """
        while not stop.is_set():
            try:
                self.evaluate()
            except ConfigError:
                raise
            except WikiError as exc:
                self.stats.failed_evaluations += 1
                log.error("alert evaluation failed: %s", exc)
            stop.wait(self.cfg.interval_s)
        return self.stats

    # --- reading -------------------------------------------------------------------------------

    def _frame(self, statement: sql.Composable, params: dict[str, Any]) -> pd.DataFrame:
        columns, rows = self.reader.fetch(statement, params)
        return pd.DataFrame.from_records(rows, columns=columns)

    def _traffic(self, start: datetime, stop: datetime) -> pd.DataFrame:
        return self._frame(
            sql.SQL(
                "SELECT window_start, events FROM {} WHERE window_start >= %(start)s "
                "AND window_start < %(stop)s ORDER BY window_start"
            ).format(self.reader.table("traffic_minute")),
            {"start": start, "stop": stop},
        )

    def _terms(self) -> list[str]:
        frame = self._frame(
            sql.SQL("SELECT term FROM {} WHERE active ORDER BY created_at, term").format(
                self.reader.table("watchlist_terms")
            ),
            {},
        )
        return clean_terms(frame["term"].tolist()) if not frame.empty else []

    def _changes(self, terms: list[str], start: datetime, stop: datetime) -> pd.DataFrame:
        """Changes of the lookback whose title, user or comment may match: the same ICU
        lower-casing and substring test as the query API's watchlist, so only candidates
        cross the wire."""
        icu = sql.SQL('COLLATE "und-x-icu"')
        return self._frame(
            sql.SQL(
                'SELECT event_id, event_time, wiki, server_name, title, "user", comment FROM {} '
                "WHERE event_time >= %(start)s AND event_time <= %(stop)s AND title IS NOT NULL "
                "AND EXISTS (SELECT 1 FROM unnest(%(terms)s::text[]) AS t(term) "
                "WHERE strpos(lower(title {icu}), lower(t.term {icu})) > 0 "
                'OR strpos(lower("user" {icu}), lower(t.term {icu})) > 0 '
                "OR strpos(lower(comment {icu}), lower(t.term {icu})) > 0) "
                "ORDER BY event_time DESC LIMIT %(n)s"
            ).format(self.reader.table("recent_changes"), icu=icu),
            {"start": start, "stop": stop, "terms": terms, "n": _MAX_CHANGES},
        )
