"""The data-quality audit of one day: is what we stored complete, well-formed and consistent?

:func:`audit_day` measures, for one UTC day of a pipeline (the live platform or a run):

* schema conformance: every lake event checked against the vendored official schema, and
  the dead letters (producer's topic and the job's quarantine) by reason, those that arrived
  while the day's events arrived;
* per field, the share of events where it is missing and where it is out of range;
* duplicates the lake holds (must be none: it is written exactly once) and duplicates the
  stream job dropped (normal: delivery into Kafka is at-least-once);
* late events (in the lake, too late for the speed layer);
* speed-vs-lake reconciliation per minute: ``traffic_minute.events`` must equal the lake's
  on-time events of that minute.

:meth:`QualityReport.check` raises :class:`DataQualityFailed` when a threshold is crossed,
so a scheduled ``data_quality`` run fails visibly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from psycopg2 import sql

from wiki_lib import db
from wiki_lib.analysis.evaluate import dead_letters
from wiki_lib.analysis.history import date_range
from wiki_lib.config import Settings
from wiki_lib.errors import TerminalError, ValidationError
from wiki_lib.events import validate
from wiki_lib.lake import read_events_pandas

__all__ = ["DataQualityFailed", "QualityReport", "Thresholds", "audit_day", "field_rates"]

MAX_PAGE_BYTES = 2 * 1024 * 1024
"""MediaWiki's default $wgMaxArticleSize (2 MiB): no edit can change a page by more."""
FUTURE_SLACK = timedelta(minutes=5)
"""An event time this far after the event reached Kafka is a broken clock, not a fast edit."""
ARRIVAL_SLACK = timedelta(minutes=1)
"""Dead letters this close to the first or last arrival of a day's events count for that day."""
KNOWN_TYPES = {"edit", "new", "log", "categorize", "external"}


class DataQualityFailed(TerminalError):
    """A day crossed a data-quality threshold; the message lists every breach."""


@dataclass(frozen=True)
class Thresholds:
    """Highest tolerated rates (0.01 is 1 %) and counts; crossing one fails the audit."""

    dead_letter_rate: float = 0.01
    schema_violation_rate: float = 0.01
    null_rate: float = 0.05
    out_of_range_rate: float = 0.01
    lake_duplicates: int = 0
    late_rate: float = 0.05
    unreconciled_minutes: int = 0


@dataclass
class QualityReport:
    """The audit's measurements, its tables and the thresholds it crossed."""

    day: str
    events: int
    figures: dict[str, float]
    conformance: pd.DataFrame
    fields: pd.DataFrame
    reconciliation: pd.DataFrame
    thresholds: Thresholds
    breaches: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when no threshold was crossed."""
        return not self.breaches

    def check(self) -> None:
        """Raise :class:`DataQualityFailed` when any threshold was crossed."""
        if self.breaches:
            raise DataQualityFailed(
                f"data quality of {self.day} failed: " + "; ".join(self.breaches)
            )

    def to_json(self) -> dict[str, Any]:
        """Figures, thresholds and breaches as plain data."""
        return {
            "day": self.day,
            "events": self.events,
            "figures": self.figures,
            "thresholds": asdict(self.thresholds),
            "breaches": self.breaches,
            "passed": self.passed,
        }


def field_rates(events: pd.DataFrame) -> pd.DataFrame:
    """Per field: the share of events where it is missing and where it is out of range."""
    n = max(len(events), 1)
    times = pd.to_datetime(events["event_time"], utc=True)
    arrived = pd.to_datetime(events["kafka_timestamp"], utc=True)
    out_of_range = {
        "event_time": times > arrived + FUTURE_SLACK,
        "type": ~events["type"].isin(KNOWN_TYPES),
        "namespace": events["namespace"].fillna(0) < -2,
        "length_delta": events["length_delta"].abs() > MAX_PAGE_BYTES,
        "project": events["project"] == "other",
    }
    rows = []
    for name in ("event_time", "type", "wiki", "server_name", "namespace", "title", "user"):
        rows.append(
            {
                "field": name,
                "null_rate": round(float(events[name].isna().sum()) / n, 6),
                "out_of_range_rate": round(float(out_of_range[name].sum()) / n, 6)
                if name in out_of_range
                else 0.0,
            }
        )
    rows.append(
        {
            "field": "length_delta",
            "null_rate": 0.0,
            "out_of_range_rate": round(float(out_of_range["length_delta"].sum()) / n, 6),
        }
    )
    return pd.DataFrame(rows)


def _schema_reasons(raw_json: pd.Series) -> dict[str, int]:
    reasons: dict[str, int] = {}
    for text in raw_json:
        try:
            validate(text.encode(), strict=True)
        except ValidationError as exc:
            reasons[exc.reason] = reasons.get(exc.reason, 0) + 1
    return reasons


def _speed_minutes(settings: Settings, start: datetime, end: datetime) -> pd.DataFrame:
    with db.transaction(settings.postgres, "reader") as conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "SELECT window_start, events FROM {} WHERE window_start >= %s AND window_start < %s"
            ).format(sql.Identifier(settings.postgres.schema_name, "traffic_minute")),
            (start, end),
        )
        frame = pd.DataFrame(cur.fetchall(), columns=["window_start", "speed_events"])
    frame["window_start"] = pd.to_datetime(frame["window_start"], utc=True)
    return frame.astype({"speed_events": "int64"})


def _reconcile(events: pd.DataFrame, speed: pd.DataFrame) -> pd.DataFrame:
    minutes = pd.to_datetime(events["event_time"], utc=True).dt.floor("1min")
    lake = (
        events.assign(window_start=minutes, late=events["is_late"].astype(int))
        .groupby("window_start")
        .agg(lake_events=("late", "size"), late_events=("late", "sum"))
        .reset_index()
    )
    both = lake.merge(speed, on="window_start", how="outer").fillna(0)
    both = both.astype({c: "int64" for c in ("lake_events", "late_events", "speed_events")})
    both["unexplained"] = both["lake_events"] - both["late_events"] - both["speed_events"]
    return both.sort_values("window_start").reset_index(drop=True)


def audit_day(settings: Settings, day: str, thresholds: Thresholds | None = None) -> QualityReport:
    """Measure one UTC day (``YYYY-MM-DD``) of the pipeline ``settings`` point at."""
    limits = thresholds or Thresholds()
    start, end = date_range(day, day)
    events = read_events_pandas(settings, start, end)
    total = len(events)
    # Dead letters have no trustworthy event time: count those that arrived while the day's
    # events arrived, give or take ARRIVAL_SLACK (for the live stream that is the day itself,
    # for a replay its run).
    arrived = pd.to_datetime(events["kafka_timestamp"], utc=True)
    since, until = (
        (
            arrived.min().to_pydatetime() - ARRIVAL_SLACK,
            arrived.max().to_pydatetime() + ARRIVAL_SLACK,
        )
        if total
        else (start, end)
    )
    letters = dead_letters(settings, since=since, until=until)
    schema = _schema_reasons(events["raw_json"])
    conformance = pd.concat(
        [
            letters.assign(kind="dead letter"),
            pd.DataFrame(
                [{"stage": "lake", "reason": r, "count": c} for r, c in schema.items()],
                columns=["stage", "reason", "count"],
            ).assign(kind="schema violation"),
        ],
        ignore_index=True,
    )[["kind", "stage", "reason", "count"]]
    fields = field_rates(events)
    reconciliation = _reconcile(events, _speed_minutes(settings, start, end))
    dead = int(letters["count"].sum())
    received = max(total + dead, 1)
    figures = {
        "events": total,
        "dead_letters": dead,
        "dead_letter_rate": round(dead / received, 6),
        "schema_violations": sum(schema.values()),
        "schema_violation_rate": round(sum(schema.values()) / max(total, 1), 6),
        "max_null_rate": float(fields["null_rate"].max()) if total else 0.0,
        "max_out_of_range_rate": float(fields["out_of_range_rate"].max()) if total else 0.0,
        "lake_duplicates": int(events["event_id"].duplicated().sum()),
        "late_events": int(events["is_late"].sum()),
        "late_rate": round(float(events["is_late"].sum()) / max(total, 1), 6),
        "duplicates_dropped": _duplicates_dropped(settings, start, end),
        "unreconciled_minutes": int((reconciliation["unexplained"] != 0).sum()),
    }
    report = QualityReport(day, total, figures, conformance, fields, reconciliation, limits)
    checks = [
        ("dead_letter_rate", limits.dead_letter_rate),
        ("schema_violation_rate", limits.schema_violation_rate),
        ("max_null_rate", limits.null_rate),
        ("max_out_of_range_rate", limits.out_of_range_rate),
        ("lake_duplicates", limits.lake_duplicates),
        ("late_rate", limits.late_rate),
        ("unreconciled_minutes", limits.unreconciled_minutes),
    ]
    report.breaches = [
        f"{name} {figures[name]:g} > {limit:g}" for name, limit in checks if figures[name] > limit
    ]
    if total == 0:
        report.breaches.append(f"no events in the lake on {day}")
    return report


def _duplicates_dropped(settings: Settings, start: datetime, end: datetime) -> int:
    """Duplicates the stream job dropped in the batches it committed that day."""
    with db.transaction(settings.postgres, "reader") as conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "SELECT coalesce(sum(duplicates_dropped), 0) FROM {} WHERE query_name = %s "
                "AND max_event_time >= %s AND max_event_time < %s"
            ).format(sql.Identifier(settings.postgres.schema_name, "pipeline_progress")),
            (settings.stream.query_name, start, end),
        )
        return int(cur.fetchone()[0])
