"""One refresh's worth of data: every figure of the dashboard from one round of queries.

:func:`take_snapshot` is the only place the dashboard talks to the database, always through
the query API as the read-only role. It never raises: an unreachable database, a query the
API refuses or a bug become a :class:`Snapshot` with a status and a message the page shows
instead of a traceback. One failing panel (edits per user beyond its table's retention, say)
does not take the others down; its message lands in :attr:`Snapshot.notes`.

A panel whose query is expensive is not re-run at every refresh: it keeps its previous frame
until ``1 / slow_share`` times its query time has passed (a 2 s query, every 20 s at the
default share of 10%), unless the view changed. Serving rows change once a minute at most for
closed minutes, so a long lookback loses almost nothing, and the round stays short.

The functions below it are pure: they turn frames into KPI tiles, term counts and
concentration figures, so they are tested without a database.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd

from wiki_lib import query
from wiki_lib.dashboard.params import ViewParams
from wiki_lib.db import DatabaseUnavailable
from wiki_lib.errors import WikiError

__all__ = [
    "PANELS",
    "TILE_LABELS",
    "Snapshot",
    "Status",
    "Tile",
    "Trend",
    "battlefield_filters",
    "concentration",
    "kpi_tiles",
    "take_snapshot",
    "term_counts",
]

log = logging.getLogger(__name__)

Status = Literal["ok", "empty", "waiting", "db_down", "error"]
Trend = Literal["up", "down", "flat", "none"]
"""``ok``: data; ``empty``: the window has no events; ``waiting``: the pipeline never wrote;
``db_down``: PostgreSQL unreachable; ``error``: something else went wrong."""

PANELS: tuple[str, ...] = (
    "kpis",
    "previous",
    "previous_wikis",
    "traffic",
    "bot_human",
    "actions",
    "wikis",
    "languages",
    "projects",
    "namespaces",
    "pages",
    "users",
    "edits_per_user",
    "minor_major",
    "recent",
    "watch",
    "alerts",
)
"""Frames a snapshot carries besides ``health``, in the order they are queried."""

TILE_LABELS: dict[str, str] = {
    "events": "Events",
    "edits": "Edits",
    "bytes_added": "MB added",
    "bytes_removed": "MB removed",
    "events_per_second": "Events / s",
    "bot_share": "Bot share",
    "top_wiki": "Most active wiki",
}
"""The KPI tiles in display order, with their labels."""

WATCH_LIMIT = 1000
"""Matching events fetched per refresh; term counts say "at least" when it is reached."""


@dataclass(frozen=True)
class Snapshot:
    """The dashboard's data at one moment, or why there is none."""

    view: ViewParams
    status: Status
    message: str = ""
    taken_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    seconds: float = 0.0
    """Wall time of the query round."""
    window_start: datetime | None = None
    window_end: datetime | None = None
    health: pd.DataFrame = field(default_factory=pd.DataFrame)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    """Panel -> why it has no data (the rest of the snapshot is fine)."""
    costs: dict[str, float] = field(default_factory=dict)
    """Panel -> seconds its query took when its frame was fetched."""
    fetched: dict[str, datetime] = field(default_factory=dict)
    """Panel -> when its frame was fetched (earlier than ``taken_at`` if it was reused)."""

    def frame(self, name: str) -> pd.DataFrame:
        """A panel's frame, empty when the round did not produce it."""
        return self.frames.get(name, pd.DataFrame())

    @property
    def has_data(self) -> bool:
        """Whether the database answered, so charts show this snapshot (even if all zero)
        rather than keep the previous one."""
        return self.status in ("ok", "empty", "waiting")


@dataclass(frozen=True)
class Tile:
    """One KPI: its value now, in the previous period of the same length, and the change."""

    key: str
    label: str
    value: float | str | None
    text: str
    change: str
    trend: Trend


def battlefield_filters(view: ViewParams) -> query.Filters | None:
    """The view's filter narrowed to edits and creations; None if the view excludes both."""
    kinds = tuple(k for k in ("edit", "new") if not view.types or k in view.types)
    if not kinds:
        return None
    return view.replace(types=kinds).filters()


def _resolve_end(view: ViewParams, health: pd.DataFrame, now: datetime) -> datetime | str:
    """One end for every query of the round, so all panels cover the same minutes."""
    if view.end == "latest":
        if not health.empty and pd.notna(health["max_event_time"].iloc[0]):
            return health["max_event_time"].iloc[0].to_pydatetime()
        return now
    return view.end or now


def take_snapshot(
    reader: query.Reader,
    view: ViewParams,
    *,
    recent_limit: int = 400,
    now: datetime | None = None,
    panels: frozenset[str] | None = None,
    previous: Snapshot | None = None,
    slow_share: float = 0.1,
) -> Snapshot:
    """Run the round of queries for ``view`` (only those ``panels`` need, if given).

    Never raises. ``kpis`` always runs: it fixes the window and tells data from no data.
    Frames of ``previous`` are reused for expensive panels as the module explains.
    """
    started = time.perf_counter()
    moment = now or datetime.now(UTC)
    try:
        health = query.pipeline_health(reader, now=moment)
        end = _resolve_end(view, health, moment)
        kept = _Reuse(previous, view, moment, slow_share)
        frames, notes, costs, fetched = _panels(reader, view, end, recent_limit, panels, kept)
    except DatabaseUnavailable as exc:
        log.warning("dashboard refresh: %s", exc)  # host and role stay in the server log
        return Snapshot(
            view, "db_down", "Database unreachable.", moment, time.perf_counter() - started
        )
    except WikiError as exc:
        return Snapshot(view, "error", str(exc), moment, time.perf_counter() - started)
    except Exception as exc:  # a bug must not put a traceback on the page
        log.exception("dashboard refresh failed")
        return Snapshot(
            view, "error", f"{type(exc).__name__}: {exc}", moment, time.perf_counter() - started
        )
    kpis = frames["kpis"]
    events = int(kpis["events"].iloc[0]) if not kpis.empty else 0
    if health.empty and events == 0:
        status: Status = "waiting"
        message = "Waiting for data: the stream job has not written anything yet."
    elif events == 0:
        status, message = "empty", f"No events in the last {view.lookback} with these filters."
    else:
        status, message = "ok", ""
    return Snapshot(
        view,
        status,
        message,
        moment,
        time.perf_counter() - started,
        kpis["window_start"].iloc[0].to_pydatetime() if not kpis.empty else None,
        kpis["window_end"].iloc[0].to_pydatetime() if not kpis.empty else None,
        health,
        frames,
        notes,
        costs,
        fetched,
    )


def _data_view(view: ViewParams, panel: str) -> ViewParams:
    """The part of a view a panel's data depends on (not the clock; watch terms only for
    the watch panel)."""
    return view.replace(refresh_s=0.0, paused=False, watch=view.watch if panel == "watch" else ())


@dataclass(frozen=True)
class _Reuse:
    """Which frames of the previous snapshot may stand in for new queries."""

    previous: Snapshot | None
    view: ViewParams
    moment: datetime
    slow_share: float

    def frame(self, panel: str) -> tuple[pd.DataFrame, float, datetime] | None:
        old = self.previous
        if old is None or panel == "kpis" or panel not in old.frames or panel not in old.costs:
            return None
        if _data_view(old.view, panel) != _data_view(self.view, panel):
            return None
        age = (self.moment - old.fetched[panel]).total_seconds()
        if age >= old.costs[panel] / self.slow_share:
            return None
        return old.frames[panel], old.costs[panel], old.fetched[panel]


def _panels(
    reader: query.Reader,
    view: ViewParams,
    end: datetime | str,
    recent_limit: int,
    wanted: frozenset[str] | None,
    kept: _Reuse,
) -> tuple[dict[str, pd.DataFrame], dict[str, str], dict[str, float], dict[str, datetime]]:
    """The wanted panels' frames (all by default), with what each cost and when it was
    fetched; a QueryError costs only its panel."""
    filters = view.filters()
    common: dict[str, Any] = {"end": end, "filters": filters}
    lookback = view.lookback
    n = view.top_n
    frames: dict[str, pd.DataFrame] = {}
    notes: dict[str, str] = {}
    costs: dict[str, float] = {}
    fetched: dict[str, datetime] = {}

    def run(name: str, fn: Callable[[], pd.DataFrame]) -> None:
        if wanted is not None and name not in wanted and name != "kpis":
            return
        reused = kept.frame(name)
        if reused is not None:
            frames[name], costs[name], fetched[name] = reused
            return
        started = time.perf_counter()
        try:
            frames[name] = fn()
        except query.QueryError as exc:
            notes[name] = str(exc)
            return
        costs[name] = time.perf_counter() - started
        fetched[name] = kept.moment

    run("kpis", lambda: query.kpis(reader, lookback, **common))
    if "kpis" not in frames:
        raise query.QueryError(notes["kpis"])
    previous_end = frames["kpis"]["window_start"].iloc[0].to_pydatetime()
    previous = {**common, "end": previous_end}
    run("previous", lambda: query.kpis(reader, lookback, **previous))
    run("previous_wikis", lambda: query.top_wikis(reader, lookback, n=1, **previous))
    run("traffic", lambda: query.traffic(reader, lookback, **common))
    run("bot_human", lambda: query.bot_human(reader, lookback, **common))
    run("actions", lambda: query.actions(reader, lookback, **common))
    run("wikis", lambda: query.top_wikis(reader, lookback, n=n, **common))
    run("languages", lambda: query.top_languages(reader, lookback, n=n, **common))
    run("projects", lambda: query.top_projects(reader, lookback, n=n, **common))
    run("namespaces", lambda: query.namespaces(reader, lookback, n=n, **common))
    run("pages", lambda: query.top_pages(reader, lookback, n=n, **common))
    run("users", lambda: query.top_users(reader, lookback, n=n, **common))
    run("edits_per_user", lambda: query.edits_per_user(reader, lookback, **common))
    run("minor_major", lambda: query.minor_major(reader, lookback, **common))
    edits_only = battlefield_filters(view)
    if edits_only is not None:
        run(
            "recent",
            lambda: query.recent_changes(
                reader, lookback, end=end, filters=edits_only, limit=recent_limit
            ),
        )
    if view.watch:
        run(
            "watch",
            lambda: query.watchlist(
                reader, list(view.watch), lookback, limit=WATCH_LIMIT, **common
            ),
        )
    # alerts are about the present whatever window the view shows
    run("alerts", lambda: query.open_alerts(reader, end=kept.moment))
    return frames, notes, costs, fetched


# --- pure derivations -------------------------------------------------------------------------


def _number(value: float) -> str:
    if abs(value) >= 1e6:
        return f"{value / 1e6:,.1f}M"
    if abs(value) >= 1e4:
        return f"{value / 1e3:,.1f}k"
    if value != int(value):
        return f"{value:,.2f}"
    return f"{int(value):,}"


def _relative(now: float, before: float | None) -> tuple[str, Trend]:
    if before is None or (isinstance(before, float) and math.isnan(before)):
        return "no previous period", "none"
    if before == 0:
        return ("new" if now else "±0"), ("up" if now else "flat")
    change = (now - before) / before * 100
    if abs(change) < 0.05:
        return "±0%", "flat"
    return f"{change:+.1f}%", "up" if change > 0 else "down"


def kpi_tiles(
    kpis: pd.DataFrame,
    previous: pd.DataFrame,
    wikis: pd.DataFrame,
    previous_wikis: pd.DataFrame,
) -> list[Tile]:
    """The seven headline tiles, each against the previous period of the same length."""
    now = kpis.iloc[0] if not kpis.empty else None
    before = previous.iloc[0] if not previous.empty else None

    def get(row: Any, column: str) -> float | None:
        if row is None or pd.isna(row[column]):
            return None
        return float(row[column])

    tiles = []
    for key, scale, text in (
        ("events", 1.0, _number),
        ("edits", 1.0, _number),
        ("bytes_added", 1e-6, lambda v: f"{v:,.2f}"),
        ("bytes_removed", 1e-6, lambda v: f"{v:,.2f}"),
        ("events_per_second", 1.0, lambda v: f"{v:,.2f}"),
    ):
        label = TILE_LABELS[key]
        value = get(now, key)
        value = None if value is None else value * scale
        old = get(before, key)
        old = None if old is None else old * scale
        change, trend = _relative(value, old) if value is not None else ("", "none")
        tiles.append(Tile(key, label, value, "-" if value is None else text(value), change, trend))
    share, old_share = get(now, "bot_share"), get(before, "bot_share")
    if share is None:
        tiles.append(Tile("bot_share", TILE_LABELS["bot_share"], None, "-", "", "none"))
    elif old_share is None:
        tiles.append(
            Tile(
                "bot_share",
                TILE_LABELS["bot_share"],
                share,
                f"{share:.1%}",
                "no previous period",
                "none",
            )
        )
    else:
        points = (share - old_share) * 100
        trend: Trend = "flat" if abs(points) < 0.05 else "up" if points > 0 else "down"
        tiles.append(
            Tile(
                "bot_share",
                TILE_LABELS["bot_share"],
                share,
                f"{share:.1%}",
                f"{points:+.1f} pts",
                trend,
            )
        )
    if wikis.empty:
        tiles.append(Tile("top_wiki", TILE_LABELS["top_wiki"], None, "-", "", "none"))
    else:
        leader = str(wikis["wiki"].iloc[0])
        was = None if previous_wikis.empty else str(previous_wikis["wiki"].iloc[0])
        change = "no previous period" if was is None else "same" if was == leader else f"was {was}"
        trend = "none" if was is None else "flat" if was == leader else "up"
        tiles.append(Tile("top_wiki", TILE_LABELS["top_wiki"], leader, leader, change, trend))
    return tiles


def term_counts(matches: pd.DataFrame, terms: tuple[str, ...]) -> dict[str, int]:
    """How many matching events each watch term has (a term absent from every match: 0)."""
    counts = dict.fromkeys(terms, 0)
    if matches.empty or "matched" not in matches:
        return counts
    lowered = {t.lower(): t for t in terms}
    for found in matches["matched"]:
        for term in found or ():
            key = lowered.get(str(term).lower())
            if key is not None:
                counts[key] += 1
    return counts


def concentration(bins: pd.DataFrame) -> str:
    """One sentence on how concentrated editing is, from the edits-per-user bins."""
    if bins.empty or int(bins["users"].sum()) == 0:
        return "No edits in this window."
    users = int(bins["users"].sum())
    edits = int(bins["edits"].sum())
    ordered = bins.sort_values("edits_min", ascending=False)
    cumulative_users = ordered["users"].cumsum()
    heavy = ordered[cumulative_users <= max(1, math.ceil(users * 0.1))]
    if heavy.empty:
        return f"{users:,} users made {edits:,} edits."
    share = heavy["edits"].sum() / edits
    return (
        f"{users:,} users made {edits:,} edits; the busiest {int(heavy['users'].sum()):,} "
        f"(≤10% of users) made {share:.0%} of them."
    )
