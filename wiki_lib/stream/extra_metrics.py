"""Serving tables beyond the contract, as pure DataFrame functions like :mod:`.metrics`.

The contract's minute tables each carry only some dimensions (``traffic_minute`` has no wiki,
``namespace_minute`` no type), so a dashboard filter such as "human edits in the article
namespace of dewiki" could only be answered from ``recent_changes``, which is slow and kept
for a day. ``activity_minute`` counts every event once per minute and combination of the
dimensions the query API filters on, which makes every filtered figure a sum over it.

The stream job and the batch layer compute these tables next to :data:`.metrics.TABLES`, from
the same normalised, deduplicated, canary-free events.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from wiki_lib.stream.metrics import MetricTable, language_of, project_of

__all__ = ["ACTIVITY_KEYS", "EXTRA_TABLES", "activity_minute"]

ACTIVITY_KEYS: tuple[str, ...] = ("window_start", "wiki", "namespace", "type", "is_bot", "is_minor")
"""The key of ``activity_minute``; ``wiki`` and ``namespace`` may be NULL (NULLS NOT DISTINCT)."""


def activity_minute(events: DataFrame) -> DataFrame:
    """Per minute, wiki, namespace, type, bot and minor flag: events and byte flows.

    Unlike the contract tables no event is left out for a missing key field: its group has a
    NULL there, so the table's totals equal ``traffic_minute``'s. Host, project and language
    follow ``wiki_minute``'s rule: the group's greatest ``server_name`` and what derives from it.
    """
    counts = events.groupBy(*ACTIVITY_KEYS).agg(
        F.max("server_name").alias("server_name"),
        F.count(F.lit(1)).alias("events"),
        F.sum("bytes_added").alias("bytes_added"),
        F.sum("bytes_removed").alias("bytes_removed"),
        F.sum("length_delta").alias("net_bytes"),
    )
    host = F.col("server_name")
    return counts.select(
        *ACTIVITY_KEYS,
        "server_name",
        project_of(host).alias("project"),
        language_of(host).alias("language"),
        "events",
        "bytes_added",
        "bytes_removed",
        "net_bytes",
    )


EXTRA_TABLES: dict[str, MetricTable] = {
    "activity_minute": MetricTable(activity_minute, ACTIVITY_KEYS),
}
"""Serving tables the stream job and the batch layer write besides the contract's."""
