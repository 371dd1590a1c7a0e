"""The alert rules as pure functions: DataFrames in, :class:`Alert` candidates out.

Nothing here touches a database or the clock: the service passes the frames it read and the
moment it evaluates at, so every rule is tested with plain DataFrames. Whether a candidate
is actually sent is decided by :func:`due` from what the alerts table already holds.

An incident is identified by ``(rule, key, observed_at)``: what the alert is about and the
newest observation behind it. Evaluating the same data again produces the same incident,
which :func:`due` recognises as already reported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import pandas as pd

__all__ = [
    "LAG",
    "VELOCITY",
    "WATCHLIST",
    "Alert",
    "Severity",
    "clean_terms",
    "due",
    "pipeline_lag",
    "velocity_spikes",
    "watchlist_hits",
]

Severity = Literal["info", "warning", "critical"]
VELOCITY = "velocity_spike"
WATCHLIST = "watchlist_hit"
LAG = "pipeline_lag"
_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Alert:
    """One incident worth one message."""

    rule: str
    key: str
    """What the incident is about (``all``, a query name, ``term|wiki|title``)."""
    severity: Severity
    message: str
    observed_at: datetime
    """The newest observation behind the alert (a window start, an event time, a commit)."""
    fired_at: datetime
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready data (times as ISO 8601), as published on the alerts topic."""
        return {
            "rule": self.rule,
            "key": self.key,
            "severity": self.severity,
            "message": self.message,
            "observed_at": self.observed_at.isoformat(),
            "fired_at": self.fired_at.isoformat(),
            "details": self.details,
        }


def _time(value: Any) -> datetime:
    return pd.Timestamp(value).to_pydatetime()


# --- velocity spike ------------------------------------------------------------------------------


def velocity_spikes(
    traffic: pd.DataFrame,
    *,
    now: datetime,
    since: datetime,
    closed_before: datetime,
    baseline_windows: int,
    min_baseline_windows: int,
    z_threshold: float,
    min_events: int,
) -> list[Alert]:
    """Closed windows whose events per second stand ``z_threshold`` deviations above the
    mean of the ``baseline_windows`` minutes before them.

    ``traffic`` has ``window_start`` and ``events`` (rows of ``traffic_minute``). Windows
    starting in ``[since, closed_before)`` are judged; earlier rows only serve as baseline. A
    minute without a row is missing data (the pipeline was down), not zero traffic, so it
    is left out of the baseline rather than counted as a quiet minute. The deviation is at
    least the Poisson noise of the baseline's counts, so a perfectly flat baseline (standard
    deviation 0) does not turn every small wiggle into an infinite z-score.
    """
    if traffic.empty:
        return []
    rows = traffic[["window_start", "events"]].copy()
    rows["window_start"] = pd.to_datetime(rows["window_start"], utc=True)
    rows = rows[rows["window_start"] < pd.Timestamp(closed_before)].sort_values("window_start")
    rate = pd.Series(
        rows["events"].to_numpy(dtype="float64") / 60.0,
        index=pd.DatetimeIndex(rows["window_start"]),
    )
    baseline = rate.rolling(baseline_windows * _MINUTE, closed="left")
    frame = pd.DataFrame(
        {
            "rate": rate,
            "events": rows["events"].to_numpy(dtype="int64"),
            "mean": baseline.mean(),
            "std": baseline.std(ddof=0),
            "count": baseline.count(),
        }
    )
    floor = frame["mean"].clip(lower=1 / 60).mul(60).pow(0.5).div(60)
    frame["z"] = (frame["rate"] - frame["mean"]) / frame["std"].where(frame["std"] > floor, floor)
    judged = frame[
        (frame.index >= pd.Timestamp(since))
        & (frame["count"] >= min_baseline_windows)
        & (frame["events"] >= min_events)
        & (frame["z"] >= z_threshold)
    ]
    alerts = []
    for start, row in judged.iterrows():
        window = _time(start)
        ratio = row["rate"] / row["mean"] if row["mean"] > 0 else math.inf
        alerts.append(
            Alert(
                rule=VELOCITY,
                key="all",
                severity="warning",
                message=(
                    f"Edit velocity spike: {row['rate']:,.1f} events/s in the minute "
                    f"{window:%Y-%m-%d %H:%M} UTC, {ratio:,.1f}x the baseline of "
                    f"{row['mean']:,.1f}/s (z = {row['z']:,.1f})"
                ),
                observed_at=window,
                fired_at=now,
                details={
                    "window_start": window.isoformat(),
                    "events": int(row["events"]),
                    "events_per_second": round(float(row["rate"]), 4),
                    "baseline_mean": round(float(row["mean"]), 4),
                    "baseline_std": round(float(row["std"]), 4),
                    "baseline_windows": int(row["count"]),
                    "z": round(float(row["z"]), 3),
                },
            )
        )
    return alerts


# --- watchlist hits ------------------------------------------------------------------------------


def clean_terms(terms: Sequence[str]) -> list[str]:
    """Stripped, non-empty terms, one per lower-case form (the table's uniqueness rule)."""
    seen: dict[str, str] = {}
    for term in terms:
        text = str(term).strip()
        if text and text.lower() not in seen:
            seen[text.lower()] = text
    return list(seen.values())


def watchlist_hits(changes: pd.DataFrame, terms: Sequence[str], *, now: datetime) -> list[Alert]:
    """One alert per (term, page) with changes whose title, user or comment contains the term.

    ``changes`` has ``recent_changes`` columns (``event_id``, ``event_time``, ``wiki``,
    ``server_name``, ``title``, ``user``, ``comment``). Matching is by substring after
    lower-casing both sides, like :func:`wiki_lib.query.watchlist` and the dashboard. The
    incident's time is the newest matching edit, so a later edit of the page is a new
    incident once the cooldown has passed.
    """
    terms = clean_terms(terms)
    if changes.empty or not terms:
        return []
    rows = changes.dropna(subset=["title", "wiki"])
    fields = [
        rows[name].fillna("").astype(str).str.lower()
        for name in ("title", "user", "comment")
        if name in rows
    ]
    alerts = []
    for term in terms:
        low = term.lower()
        mask = pd.concat([f.str.contains(low, regex=False) for f in fields], axis=1).any(axis=1)
        matched = rows[mask]
        for (wiki, title), group in matched.groupby(["wiki", "title"], sort=True):
            group = group.sort_values(["event_time", "event_id"])
            newest = group.iloc[-1]
            users = sorted({str(u) for u in group["user"].dropna()})
            edits = len(group)
            by = ", ".join(users[:5]) + (f" and {len(users) - 5} more" if len(users) > 5 else "")
            alerts.append(
                Alert(
                    rule=WATCHLIST,
                    key=f"{term.lower()}|{wiki}|{title}",
                    severity="info",
                    message=(
                        f'Watchlist "{term}": {edits} change{"s" if edits != 1 else ""} to '
                        f'"{title}" on {wiki}' + (f" by {by}" if by else "")
                    ),
                    observed_at=_time(newest["event_time"]),
                    fired_at=now,
                    details={
                        "term": term,
                        "wiki": str(wiki),
                        "server_name": None
                        if pd.isna(newest.get("server_name"))
                        else str(newest["server_name"]),
                        "title": str(title),
                        "changes": edits,
                        "users": users,
                        "first_event_time": _time(group["event_time"].iloc[0]).isoformat(),
                        "last_event_time": _time(newest["event_time"]).isoformat(),
                        "event_ids": [str(e) for e in group["event_id"].iloc[-20:]],
                    },
                )
            )
    return alerts


# --- pipeline lag --------------------------------------------------------------------------------


def pipeline_lag(
    health: pd.DataFrame, *, now: datetime, threshold_s: float, event_threshold_s: float = 0.0
) -> list[Alert]:
    """An alert when the speed layer's newest commit, or its newest event time, is too old.

    ``health`` is :func:`wiki_lib.query.pipeline_health`'s frame (no row before the first
    batch: nothing to judge). ``event_threshold_s`` 0 ignores event time, which replays of
    old events need. A stall is one incident, identified by its last commit.
    """
    if health.empty:
        return []
    row = health.iloc[0]
    since_commit = float(row["seconds_since_commit"])
    event_lag = row["event_lag_seconds"]
    event_lag = None if pd.isna(event_lag) else float(event_lag)
    reasons = []
    if since_commit >= threshold_s:
        reasons.append(f"no batch committed for {since_commit:,.0f} s (limit {threshold_s:,.0f} s)")
    if event_threshold_s > 0 and event_lag is not None and event_lag >= event_threshold_s:
        reasons.append(
            f"newest event is {event_lag:,.0f} s behind the clock "
            f"(limit {event_threshold_s:,.0f} s)"
        )
    if not reasons:
        return []
    committed = _time(row["last_commit_at"])
    query = str(row["query_name"])
    return [
        Alert(
            rule=LAG,
            key=query,
            severity="critical",
            message=f"Pipeline lag on {query}: " + "; ".join(reasons),
            observed_at=committed,
            fired_at=now,
            details={
                "query_name": query,
                "last_batch_id": int(row["last_batch_id"]),
                "last_commit_at": committed.isoformat(),
                "seconds_since_commit": round(since_commit, 3),
                "event_lag_seconds": None if event_lag is None else round(event_lag, 3),
                "threshold_s": threshold_s,
                "event_threshold_s": event_threshold_s,
            },
        )
    ]


# --- cooldown ------------------------------------------------------------------------------------


def due(
    candidates: Sequence[Alert], previous: pd.DataFrame, *, now: datetime, cooldown_s: float
) -> list[Alert]:
    """The candidates to send: the newest per (rule, key), unless already reported or cooling.

    ``previous`` has one row per (rule, key) already in the alerts table: ``rule``, ``key``,
    ``last_fired_at``, ``last_observed_at``. A candidate is dropped when its observation is
    not newer than the last one reported (the same data evaluated again) or when the last
    alert of its (rule, key) fired less than ``cooldown_s`` ago (one incident, one message).
    """
    newest: dict[tuple[str, str], Alert] = {}
    for alert in candidates:
        known = newest.get((alert.rule, alert.key))
        if known is None or alert.observed_at > known.observed_at:
            newest[(alert.rule, alert.key)] = alert
    last = {
        (row.rule, row.key): (_time(row.last_fired_at), _time(row.last_observed_at))
        for row in previous.itertuples(index=False)
    }
    cooldown = timedelta(seconds=cooldown_s)
    fire = []
    for ident, alert in newest.items():
        if ident in last:
            fired_at, observed_at = last[ident]
            if alert.observed_at <= observed_at or now - fired_at < cooldown:
                continue
        fire.append(alert)
    return sorted(fire, key=lambda a: (a.observed_at, a.rule, a.key))
