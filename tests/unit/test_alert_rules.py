"""The alert rules as pure functions: DataFrames in, alerts out; the cooldown decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from wiki_lib.alerts import (
    LAG,
    VELOCITY,
    WATCHLIST,
    Alert,
    due,
    pipeline_lag,
    slack_payload,
    velocity_spikes,
    watchlist_hits,
)
from wiki_lib.dashboard.panels import alert_summary

NOW = datetime(2024, 7, 26, 12, 0, 30, tzinfo=UTC)
T0 = datetime(2024, 7, 26, 11, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def _traffic(counts: list[int], start: datetime = T0) -> pd.DataFrame:
    return pd.DataFrame(
        {"window_start": [start + i * MIN for i in range(len(counts))], "events": counts}
    )


def _spikes(frame: pd.DataFrame, **overrides: Any) -> list[Alert]:
    args: dict[str, Any] = {
        "now": NOW,
        "since": T0,
        "closed_before": NOW.replace(second=0),
        "baseline_windows": 30,
        "min_baseline_windows": 10,
        "z_threshold": 4.0,
        "min_events": 60,
    }
    return velocity_spikes(frame, **{**args, **overrides})


BASELINE = [590, 610] * 15  # 30 ordinary minutes, about 10 events/s


def test_a_burst_after_a_steady_baseline_is_one_spike() -> None:
    alerts = _spikes(_traffic([*BASELINE, 3000]))
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert.rule, alert.key, alert.severity) == (VELOCITY, "all", "warning")
    assert alert.observed_at == T0 + 30 * MIN
    assert alert.details["events"] == 3000
    assert alert.details["events_per_second"] == 50.0
    assert alert.details["baseline_mean"] == pytest.approx(10.0)
    # the counts wiggle by 10, less than Poisson noise (sqrt(600)), which sets the scale
    assert alert.details["z"] == pytest.approx(40 / (600**0.5 / 60), rel=1e-3)
    assert "50.0 events/s" in alert.message and "5.0x" in alert.message


def test_ordinary_minutes_and_small_wiggles_do_not_fire() -> None:
    assert _spikes(_traffic([*BASELINE, 640, 600, 580])) == []


def test_a_flat_baseline_falls_back_to_poisson_noise() -> None:
    flat = [600] * 30
    # std 0: a +1 % wiggle must not be an infinite z-score, a real burst still fires
    assert _spikes(_traffic([*flat, 606])) == []
    fired = _spikes(_traffic([*flat, 900]))
    assert len(fired) == 1
    assert fired[0].details["baseline_std"] == 0.0
    # sqrt(600) events of noise per minute: (900 - 600) / sqrt(600) = 12.2
    assert fired[0].details["z"] == pytest.approx(300 / 600**0.5, rel=1e-3)


def test_too_short_a_baseline_or_too_few_events_do_not_fire() -> None:
    assert _spikes(_traffic([600] * 5 + [3000])) == [], "5 baseline windows < 10"
    quiet = _traffic([1, 0, 2, 1, 0, 1, 1, 0, 2, 1, 1, 40])
    assert _spikes(quiet) == [], "40 events < min_events"
    assert len(_spikes(quiet, min_events=10)) == 1


def test_missing_minutes_are_left_out_of_the_baseline_not_counted_as_zero() -> None:
    frame = _traffic([*BASELINE, 3000])
    gappy = frame.drop(index=range(0, 30, 2))  # every other baseline minute missing
    [alert] = _spikes(gappy)
    assert alert.details["baseline_windows"] == 15
    assert alert.details["baseline_mean"] == pytest.approx(610 / 60, abs=1e-4)


def test_open_windows_and_windows_before_since_are_not_judged() -> None:
    frame = _traffic([*BASELINE, 3000])
    burst = T0 + 30 * MIN
    assert _spikes(frame, closed_before=burst) == [], "the burst minute is still open"
    assert _spikes(frame, since=burst + MIN) == [], "only baseline for later windows"


def test_a_sustained_burst_fires_for_each_window_and_due_keeps_the_newest() -> None:
    alerts = _spikes(_traffic([*BASELINE, 3000, 3100]))
    assert [a.observed_at for a in alerts] == [T0 + 30 * MIN, T0 + 31 * MIN]
    [kept] = due(alerts, _previous(), now=NOW, cooldown_s=900)
    assert kept.observed_at == T0 + 31 * MIN


def _changes(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "event_id": f"id-{i}",
                "event_time": T0 + i * timedelta(seconds=10),
                "wiki": wiki,
                "server_name": f"{wiki[:2]}.wikipedia.org",
                "title": title,
                "user": user,
            }
            for i, (wiki, title, user, _) in enumerate(rows)
        ]
    )


def test_watchlist_hits_one_alert_per_term_and_page() -> None:
    changes = _changes(
        [
            ("enwiki", "2024 Summer OLYMPICS", "Alice", ""),
            ("enwiki", "2024 Summer OLYMPICS", "Bob", ""),
            ("dewiki", "Olympische Spiele", "Carl", ""),
            ("frwiki", "Jeux olympiques de Paris", "Dana", ""),
            ("enwiki", "Tour de France", "Olympics fan", ""),  # the user matches
            ("enwiki", None, "Eve", ""),  # a log event without title
        ]
    )
    alerts = watchlist_hits(changes, ["olympics", " Paris ", "PARIS", ""], now=NOW)
    keys = sorted(a.key for a in alerts)
    assert keys == [
        "olympics|enwiki|2024 Summer OLYMPICS",
        "olympics|enwiki|Tour de France",
        "paris|frwiki|Jeux olympiques de Paris",
    ]
    olympics = next(a for a in alerts if a.key.startswith("olympics"))
    assert olympics.rule == WATCHLIST and olympics.severity == "info"
    assert olympics.details["changes"] == 2
    assert olympics.details["users"] == ["Alice", "Bob"]
    assert olympics.observed_at == T0 + timedelta(seconds=10), "the newest matching edit"
    assert '"2024 Summer OLYMPICS" on enwiki by Alice, Bob' in olympics.message
    assert watchlist_hits(changes, [], now=NOW) == []
    assert watchlist_hits(changes.iloc[0:0], ["paris"], now=NOW) == []


def _health(since_commit: float, event_lag: float | None) -> pd.DataFrame:
    committed = NOW - timedelta(seconds=since_commit)
    return pd.DataFrame(
        [
            {
                "query_name": "wikipulse_speed",
                "last_batch_id": 41,
                "last_commit_at": pd.Timestamp(committed),
                "seconds_since_commit": since_commit,
                "event_lag_seconds": event_lag,
            }
        ]
    )


def test_pipeline_lag_on_a_stale_commit_or_a_late_event_clock() -> None:
    assert pipeline_lag(pd.DataFrame(), now=NOW, threshold_s=300) == []
    assert pipeline_lag(_health(20, 30), now=NOW, threshold_s=300, event_threshold_s=600) == []
    [stale] = pipeline_lag(_health(1200, 1250), now=NOW, threshold_s=300)
    assert (stale.rule, stale.key, stale.severity) == (LAG, "wikipulse_speed", "critical")
    assert stale.observed_at == NOW - timedelta(seconds=1200), "a stall is its last commit"
    assert "no batch committed for 1,200 s" in stale.message
    [late] = pipeline_lag(_health(5, 4000), now=NOW, threshold_s=300, event_threshold_s=600)
    assert "behind the clock" in late.message
    assert pipeline_lag(_health(5, 4000), now=NOW, threshold_s=300, event_threshold_s=0) == []
    assert pipeline_lag(_health(5, None), now=NOW, threshold_s=300, event_threshold_s=600) == []


def _alert(key: str = "all", observed: datetime = T0) -> Alert:
    return Alert(VELOCITY, key, "warning", "spike", observed, NOW)


def _previous(*rows: tuple[str, str, datetime, datetime]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["rule", "key", "last_fired_at", "last_observed_at"])


def test_due_holds_the_cooldown_and_never_repeats_an_observation() -> None:
    fresh = _alert(observed=T0 + 5 * MIN)
    assert due([fresh], _previous(), now=NOW, cooldown_s=900) == [fresh]
    recently = _previous((VELOCITY, "all", NOW - timedelta(seconds=60), T0))
    assert due([fresh], recently, now=NOW, cooldown_s=900) == [], "within the cooldown"
    assert due([fresh], recently, now=NOW, cooldown_s=30) == [fresh], "cooldown passed"
    same = _previous((VELOCITY, "all", NOW - timedelta(days=1), T0 + 5 * MIN))
    assert due([fresh], same, now=NOW, cooldown_s=0) == [], "the same data evaluated again"
    other = _alert(key="other", observed=T0)
    assert due([fresh, other], recently, now=NOW, cooldown_s=900) == [other]


def test_slack_payload_and_strip_summary() -> None:
    alert = _alert()
    payload = slack_payload(alert)
    assert payload["text"].startswith(":warning: [warning] spike")
    fields = {f["title"]: f["value"] for f in payload["attachments"][0]["fields"]}
    assert fields["rule"] == VELOCITY and fields["key"] == "all"
    assert alert.to_json()["observed_at"] == T0.isoformat()
    empty = pd.DataFrame(columns=["message", "fired_at"])
    assert alert_summary(empty, NOW) == (0, "none")
    frame = pd.DataFrame(
        {"message": ["newest", "older"], "fired_at": pd.to_datetime([NOW, T0], utc=True)}
    )
    frame.attrs["total"] = 7
    count, words = alert_summary(frame, NOW + timedelta(seconds=90))
    assert count == 7 and words.startswith("7 open; newest") and words.endswith(": newest")
