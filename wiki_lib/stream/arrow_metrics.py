"""The stream's tables for a small micro-batch, computed on the driver with pyarrow.

A small batch (the live stream's are a few hundred to a few thousand events) spends most of
its time in Spark scheduling one job per table, not in the work of the tables. The job
collects such a batch's events once (it needs them on the driver for the lake anyway) and
computes every table here instead, with no further Spark job.

Each function takes the normalised, deduplicated, canary-free, on-time events as an Arrow table
with the lake's columns (:data:`wiki_lib.lake.RAW_SCHEMA`) and returns the same table, with the
same columns and types, as its Spark twin in :mod:`.metrics` and :mod:`.extra_metrics`. The Spark
functions remain the definition: they compute large batches and the batch layer's days, and
the unit tests require these to give identical tables on the corpus and on the awkward
inputs the Spark functions are tested with.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from wiki_lib.query.tables import RECENT_CHANGES_COLUMNS
from wiki_lib.stream.extra_metrics import ACTIVITY_KEYS

__all__ = [
    "ARROW_TABLES",
    "activity_minute",
    "namespace_minute",
    "page_minute",
    "recent_changes",
    "traffic_minute",
    "user_minute",
    "wiki_minute",
]

_COUNT = ([], "count_all")


def _flag(events: pa.Table, name: str, mask: pa.ChunkedArray) -> pa.Table:
    """``events`` with ``name``: 1 where ``mask`` holds, else 0, for counting by a sum."""
    return events.append_column(name, pc.cast(pc.fill_null(mask, False), pa.int64()))


def _is_type(events: pa.Table, *types: str) -> pa.ChunkedArray:
    return pc.is_in(events["type"], value_set=pa.array(types))


def _aggregate(events: pa.Table, keys: list[str], aggregations: dict[str, tuple]) -> pa.Table:
    """Group ``events`` by ``keys``; ``aggregations`` maps each output column to its spec.

    NULL keys form their own group, as in Spark's ``groupBy``.
    """
    grouped = events.group_by(keys, use_threads=False).aggregate(list(aggregations.values()))
    names = [f"{spec[0]}_{spec[1]}" if spec[0] else spec[1] for spec in aggregations.values()]
    return pa.table(
        {
            **{key: grouped[key] for key in keys},
            **{out: grouped[name] for out, name in zip(aggregations, names, strict=True)},
        }
    )


def _with_host_facts(counts: pa.Table, events: pa.Table, columns: list[str]) -> pa.Table:
    """Add ``project`` and ``language`` of each group's ``server_name``, then order columns.

    Both derive from the host alone (:func:`.metrics.project_of`), and every host in
    ``counts`` occurs in ``events``, where :func:`.metrics.normalize` derived them. A NULL
    host has project ``other`` and no language, as ``project_of(NULL)`` gives.
    """
    hosts = (
        events.select(["server_name", "project", "language"])
        .filter(pc.is_valid(events["server_name"]))
        .group_by(["server_name", "project", "language"], use_threads=False)
        .aggregate([])
    )
    joined = counts.join(hosts, "server_name", join_type="left outer", use_threads=False)
    project = pc.if_else(pc.is_valid(joined["server_name"]), joined["project"], pa.scalar("other"))
    joined = joined.set_column(joined.schema.get_field_index("project"), "project", project)
    return joined.select(columns)


def traffic_minute(events: pa.Table) -> pa.Table:
    """Twin of :func:`.metrics.traffic_minute`."""
    is_edit = _is_type(events, "edit")
    bot = pc.fill_null(events["is_bot"], False)
    minor = pc.fill_null(events["is_minor"], False)
    flags = {
        "edits": is_edit,
        "new_pages": _is_type(events, "new"),
        "log_events": _is_type(events, "log"),
        "categorize_events": _is_type(events, "categorize"),
        "other_events": _is_type(events, "external", "other"),
        "bot_events": bot,
        "human_events": pc.invert(bot),
        "minor_edits": pc.and_(is_edit, minor),
        "major_edits": pc.and_(is_edit, pc.invert(minor)),
    }
    table = events.select(["window_start", "bytes_added", "bytes_removed", "length_delta"])
    for name, mask in flags.items():
        table = _flag(table, f"_{name}", mask)
    return _aggregate(
        table,
        ["window_start"],
        {
            "events": _COUNT,
            **{name: (f"_{name}", "sum") for name in flags},
            "bytes_added": ("bytes_added", "sum"),
            "bytes_removed": ("bytes_removed", "sum"),
            "net_bytes": ("length_delta", "sum"),
        },
    )


def wiki_minute(events: pa.Table) -> pa.Table:
    """Twin of :func:`.metrics.wiki_minute` (the greatest host of a window, and its facts)."""
    rows = events.filter(pc.is_valid(events["wiki"]))
    rows = _flag(rows, "_edits", _is_type(rows, "edit"))
    rows = _flag(rows, "_new_pages", _is_type(rows, "new"))
    rows = _flag(rows, "_bot_events", rows["is_bot"])
    counts = _aggregate(
        rows,
        ["window_start", "wiki"],
        {
            "server_name": ("server_name", "max"),
            "events": _COUNT,
            "edits": ("_edits", "sum"),
            "new_pages": ("_new_pages", "sum"),
            "bot_events": ("_bot_events", "sum"),
            "bytes_added": ("bytes_added", "sum"),
            "bytes_removed": ("bytes_removed", "sum"),
        },
    )
    columns = ["window_start", "wiki", "server_name", "project", "language"]
    columns += ["events", "edits", "new_pages", "bot_events", "bytes_added", "bytes_removed"]
    return _with_host_facts(counts, rows, columns)


def namespace_minute(events: pa.Table) -> pa.Table:
    """Twin of :func:`.metrics.namespace_minute`."""
    rows = events.filter(pc.is_valid(events["namespace"]))
    return _aggregate(rows, ["window_start", "namespace"], {"events": _COUNT})


def page_minute(events: pa.Table) -> pa.Table:
    """Twin of :func:`.metrics.page_minute` (edits and page creations only)."""
    keep = pc.and_(
        pc.fill_null(_is_type(events, "edit", "new"), False),
        pc.and_(pc.is_valid(events["wiki"]), pc.is_valid(events["title"])),
    )
    return _aggregate(
        events.filter(keep),
        ["window_start", "wiki", "title"],
        {
            "events": _COUNT,
            "bytes_added": ("bytes_added", "sum"),
            "bytes_removed": ("bytes_removed", "sum"),
        },
    )


def user_minute(events: pa.Table) -> pa.Table:
    """Twin of :func:`.metrics.user_minute`."""
    rows = events.filter(pc.is_valid(events["user"]))
    rows = _flag(rows, "_edits", _is_type(rows, "edit", "new"))
    rows = _flag(rows, "_bot_events", rows["is_bot"])
    return _aggregate(
        rows,
        ["window_start", "user"],
        {
            "events": _COUNT,
            "edits": ("_edits", "sum"),
            "bot_events": ("_bot_events", "sum"),
            "bytes_added": ("bytes_added", "sum"),
            "bytes_removed": ("bytes_removed", "sum"),
        },
    )


def recent_changes(events: pa.Table) -> pa.Table:
    """Twin of :func:`.metrics.recent_changes`."""
    return events.select(list(RECENT_CHANGES_COLUMNS))


def activity_minute(events: pa.Table) -> pa.Table:
    """Twin of :func:`.extra_metrics.activity_minute` (NULL wiki and namespace are groups)."""
    counts = _aggregate(
        events,
        list(ACTIVITY_KEYS),
        {
            "server_name": ("server_name", "max"),
            "events": _COUNT,
            "bytes_added": ("bytes_added", "sum"),
            "bytes_removed": ("bytes_removed", "sum"),
            "net_bytes": ("length_delta", "sum"),
        },
    )
    columns = [*ACTIVITY_KEYS, "server_name", "project", "language"]
    columns += ["events", "bytes_added", "bytes_removed", "net_bytes"]
    return _with_host_facts(counts, events, columns)


ARROW_TABLES: dict[str, Callable[[pa.Table], pa.Table]] = {
    "traffic_minute": traffic_minute,
    "wiki_minute": wiki_minute,
    "namespace_minute": namespace_minute,
    "page_minute": page_minute,
    "user_minute": user_minute,
    "recent_changes": recent_changes,
    "activity_minute": activity_minute,
}
"""Every table of :data:`.metrics.TABLES` and :data:`.extra_metrics.EXTRA_TABLES`, by name."""
