"""What each query function must return, computed in plain Python from the oracle's events.

Independent of the serving tables and of SQL: it starts from ``oracle.deduplicated_events``
(normalised, deduplicated, canary-free events) and applies each function's documented
meaning. Windows are the query API's minute-aligned ``[start, end)``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from wiki_lib.query import Filters

Event = dict[str, Any]

CATEGORY = {"edit": "edit", "new": "new", "log": "log", "categorize": "categorize"}


def select(events: Iterable[Event], start: datetime, end: datetime, f: Filters) -> list[Event]:
    """Events of the window that pass the filter (project/language as each event's own)."""
    out = []
    for e in events:
        if not start <= e["event_time"] < end:
            continue
        if f.wiki and e["wiki"] not in f.wiki:
            continue
        if f.project and e["project"] not in f.project:
            continue
        if f.language and e["language"] not in f.language:
            continue
        if f.bot is not None and e["is_bot"] != f.bot:
            continue
        if f.namespace and e["namespace"] not in f.namespace:
            continue
        if f.type and e["type"] not in f.type:
            continue
        out.append(e)
    return out


def kpis(events: list[Event], seconds: float) -> dict[str, Any]:
    n = len(events)
    bots = sum(e["is_bot"] for e in events)
    return {
        "events": n,
        "edits": sum(e["type"] == "edit" for e in events),
        "new_pages": sum(e["type"] == "new" for e in events),
        "bytes_added": sum(e["bytes_added"] for e in events),
        "bytes_removed": sum(e["bytes_removed"] for e in events),
        "net_bytes": sum(e["length_delta"] for e in events),
        "events_per_second": n / seconds,
        "bot_events": bots,
        "bot_share": bots / n if n else None,
        "active_wikis": len({e["wiki"] for e in events if e["wiki"] is not None}),
        "active_users": len({e["user"] for e in events if e["user"] is not None}),
    }


def _bucket(moment: datetime, step: timedelta) -> datetime:
    origin = moment.replace(year=1970, month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    return origin + ((moment - origin) // step) * step


def series(events: list[Event], step: timedelta) -> dict[datetime, dict[str, int]]:
    """Non-empty buckets only (the API also lists empty ones, as zeros)."""
    out: dict[datetime, dict[str, int]] = defaultdict(Counter)  # type: ignore[arg-type]
    for e in events:
        row = out[_bucket(e["event_time"], step)]
        kind = e["type"]
        row["events"] += 1
        row["edits"] += kind == "edit"
        row["new_pages"] += kind == "new"
        row["log_events"] += kind == "log"
        row["categorize_events"] += kind == "categorize"
        row["other_events"] += kind in ("external", "other")
        row["bot_events"] += e["is_bot"]
        row["human_events"] += not e["is_bot"]
        row["minor_edits"] += kind == "edit" and e["is_minor"]
        row["major_edits"] += kind == "edit" and not e["is_minor"]
        row["bytes_added"] += e["bytes_added"]
        row["bytes_removed"] += e["bytes_removed"]
        row["net_bytes"] += e["length_delta"]
    return out


def actions(events: list[Event]) -> dict[str, int]:
    counts = Counter(CATEGORY.get(e["type"], "other") for e in events)
    return {k: counts.get(k, 0) for k in ("edit", "new", "log", "categorize", "other")}


def top_wikis(events: list[Event], n: int) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for e in events:
        if e["wiki"] is None:
            continue
        row = rows.setdefault(
            e["wiki"],
            {
                "wiki": e["wiki"],
                "host": None,
                "events": 0,
                "edits": 0,
                "new_pages": 0,
                "bot_events": 0,
                "bytes_added": 0,
                "bytes_removed": 0,
            },
        )
        row["events"] += 1
        row["edits"] += e["type"] == "edit"
        row["new_pages"] += e["type"] == "new"
        row["bot_events"] += e["is_bot"]
        row["bytes_added"] += e["bytes_added"]
        row["bytes_removed"] += e["bytes_removed"]
        host = (e["server_name"], e["project"], e["language"])
        if e["server_name"] is not None and (row["host"] is None or host > row["host"]):
            row["host"] = host
    total = sum(r["events"] for r in rows.values())
    out = []
    for row in sorted(rows.values(), key=lambda r: (-r["events"], r["wiki"]))[:n]:
        server, project, language = row.pop("host") or (None, "other", None)
        out.append(
            {
                **row,
                "server_name": server,
                "project": project,
                "language": language,
                "share": row["events"] / total,
            }
        )
    return out


def top_groups(events: list[Event], column: str, n: int) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for e in events:
        if e[column] is None or e["wiki"] is None:
            continue
        row = rows.setdefault(e[column], {column: e[column], "events": 0, "edits": 0, "w": set()})
        row["events"] += 1
        row["edits"] += e["type"] == "edit"
        row["w"].add(e["wiki"])
    total = sum(r["events"] for r in rows.values())
    ordered = sorted(rows.values(), key=lambda r: (-r["events"], r[column]))[:n]
    return [
        {
            column: r[column],
            "events": r["events"],
            "edits": r["edits"],
            "wikis": len(r["w"]),
            "share": r["events"] / total,
        }
        for r in ordered
    ]


def namespaces(events: list[Event]) -> list[dict[str, Any]]:
    counts = Counter(e["namespace"] for e in events if e["namespace"] is not None)
    total = sum(counts.values())
    return [
        {"namespace": ns, "events": c, "share": c / total}
        for ns, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def top_pages(events: list[Event], n: int) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for e in events:
        if e["type"] not in ("edit", "new") or e["wiki"] is None or e["title"] is None:
            continue
        key = (e["wiki"], e["title"])
        row = rows.setdefault(
            key,
            {"wiki": key[0], "title": key[1], "events": 0, "bytes_added": 0, "bytes_removed": 0},
        )
        row["events"] += 1
        row["bytes_added"] += e["bytes_added"]
        row["bytes_removed"] += e["bytes_removed"]
    ordered = sorted(rows.values(), key=lambda r: (-r["events"], r["wiki"], r["title"]))
    return [{**r, "max_missing": 0} for r in ordered[:n]]


def top_users(events: list[Event], n: int) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for e in events:
        if e["user"] is None:
            continue
        row = rows.setdefault(
            e["user"],
            {
                "user": e["user"],
                "events": 0,
                "edits": 0,
                "bot_events": 0,
                "bytes_added": 0,
                "bytes_removed": 0,
            },
        )
        row["events"] += 1
        row["edits"] += e["type"] in ("edit", "new")
        row["bot_events"] += e["is_bot"]
        row["bytes_added"] += e["bytes_added"]
        row["bytes_removed"] += e["bytes_removed"]
    ordered = sorted(rows.values(), key=lambda r: (-r["events"], r["user"]))
    return [{**r, "max_missing": 0} for r in ordered[:n]]


def edits_per_user(events: list[Event]) -> list[dict[str, int]]:
    edits = Counter(
        e["user"] for e in events if e["user"] is not None and e["type"] in ("edit", "new")
    )
    bins: dict[int, list[int]] = {}
    for count in edits.values():
        b = count.bit_length()  # 1 -> 1, 2-3 -> 2, 4-7 -> 3, ...
        bins.setdefault(b, []).append(count)
    top = max(bins, default=0)
    return [
        {
            "edits_min": 2 ** (b - 1),
            "edits_max": 2**b - 1,
            "users": len(bins.get(b, [])),
            "edits": sum(bins.get(b, [])),
        }
        for b in range(1, top + 1)
    ]


FEED_COLUMNS = (
    "event_id",
    "event_time",
    "wiki",
    "server_name",
    "type",
    "namespace",
    "title",
    "user",
    "is_bot",
    "is_minor",
    "length_delta",
    "comment",
)


def _newest_first(events: list[Event], limit: int) -> list[Event]:
    ordered = sorted(events, key=lambda e: e["event_id"])
    ordered.sort(key=lambda e: e["event_time"], reverse=True)
    return ordered[:limit]


def feed(events: list[Event], limit: int) -> list[dict[str, Any]]:
    return [{c: e[c] for c in FEED_COLUMNS} for e in _newest_first(events, limit)]


def watchlist(events: list[Event], terms: list[str], limit: int) -> list[dict[str, Any]]:
    matches = []
    for e in events:
        fields = [(e[c] or "").lower() for c in ("title", "user", "comment")]
        matched = sorted({t for t in terms if any(t.lower() in f for f in fields)})
        if matched:
            matches.append({**e, "matched": matched})
    return [
        {**{c: e[c] for c in FEED_COLUMNS}, "matched": e["matched"]}
        for e in _newest_first(matches, limit)
    ]


ACTIVITY_KEYS = ("window_start", "wiki", "namespace", "type", "is_bot", "is_minor")


def activity(events: list[Event]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """``activity_minute`` as {key: row}: one row per minute and dimension combination."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    hosts: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for e in events:
        key = tuple(e[k] for k in ACTIVITY_KEYS)
        row = rows.setdefault(
            key,
            {
                **dict(zip(ACTIVITY_KEYS, key, strict=True)),
                "events": 0,
                "bytes_added": 0,
                "bytes_removed": 0,
                "net_bytes": 0,
            },
        )
        row["events"] += 1
        row["bytes_added"] += e["bytes_added"]
        row["bytes_removed"] += e["bytes_removed"]
        row["net_bytes"] += e["length_delta"]
        host = (e["server_name"], e["project"], e["language"])
        if e["server_name"] is not None and (key not in hosts or host > hosts[key]):
            hosts[key] = host
    for key, row in rows.items():
        row["server_name"], row["project"], row["language"] = hosts.get(key, (None, "other", None))
    return rows
