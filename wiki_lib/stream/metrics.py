"""The serving contract as pure DataFrame functions: parse, normalise, deduplicate, aggregate.

Nothing here reads or writes anything. The stream job calls these functions inside
``foreachBatch`` and the batch layer calls them on a day of the lake, so the speed and batch
layers compute the same numbers by construction. ``tests/oracle.py`` implements the same
contract in plain Python and the tests require the two to agree row for row.

Pipeline::

    parse_events(raw)            # value -> raw_json, event, event_time, parse_error
      -> normalize(parsed)       # contract section 1 (rows with a parse_error are left out)
      -> drop_canaries(...)
      -> deduplicate_static(...) # or dropDuplicatesWithinWatermark in the stream job
      -> TABLES[name].compute(...)

Decisions where ``shared/spec/metrics.md`` is silent are written next to the code that makes
them, and mirrored by the oracle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType, StringType, TimestampType

from wiki_lib.errors import StreamError
from wiki_lib.query.tables import RECENT_CHANGES_COLUMNS
from wiki_lib.stream.schema import JSON_OPTIONS, RECENTCHANGE_SCHEMA

__all__ = [
    "COMMENT_MAX_CHARS",
    "EVENT_TYPES",
    "LANGUAGE_FAMILIES",
    "NORMALIZED_COLUMNS",
    "PARSE_ERRORS",
    "TABLES",
    "MetricTable",
    "deduplicate_static",
    "drop_canaries",
    "language_of",
    "namespace_minute",
    "normalize",
    "page_minute",
    "parse_events",
    "project_of",
    "recent_changes",
    "traffic_minute",
    "user_minute",
    "wiki_minute",
    "with_normalized",
]

EVENT_TYPES: tuple[str, ...] = ("edit", "new", "log", "categorize", "external")
"""Types kept as given; any other value (``"142"``, a missing type) becomes ``other``."""

LANGUAGE_FAMILIES: tuple[str, ...] = (
    "wikipedia",
    "wiktionary",
    "wikibooks",
    "wikinews",
    "wikiquote",
    "wikisource",
    "wikiversity",
    "wikivoyage",
)
"""Projects whose first host label is a language (``en``, ``zh-min-nan``, ``simple``)."""

COMMENT_MAX_CHARS = 500
"""``comment`` is cut to this many characters (Unicode code points) for storage."""

PARSE_ERRORS: dict[str, str] = {
    "empty_value": "the Kafka record has no value (a tombstone)",
    "invalid_utf8": "the value is not valid UTF-8",
    "invalid_json": "the value is not JSON (or has duplicate keys, NaN, bad nesting)",
    "not_an_object": "the value is JSON but not an object",
    "missing_event_id": "meta.id is missing, null or empty",
    "invalid_event_time": "neither meta.dt nor timestamp gives a time",
}
"""The ``parse_error`` reasons, checked in this order; the first that applies is reported."""

NORMALIZED_COLUMNS: tuple[str, ...] = (
    "event_id",
    "event_time",
    "window_start",
    "is_canary",
    "type",
    "is_bot",
    "is_minor",
    "wiki",
    "server_name",
    "project",
    "language",
    "namespace",
    "title",
    "user",
    "comment",
    "length_delta",
    "bytes_added",
    "bytes_removed",
)
"""What :func:`normalize` produces, in this order (other input columns follow unchanged)."""

# meta.dt grammar: RFC 3339 with an upper-case T, 1-9 fraction digits and Z or +-HH:MM.
# Ranges are checked here so that the only thing left to the cast is the day-of-month check
# (2023-02-29 -> NULL). Offsets stop at 18:00 because java.time.ZoneOffset does. `\z` is the
# absolute end of input (Java's `$` would also match before a final newline).
_DT_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?"
    r"(Z|[+-]((0[0-9]|1[0-7]):[0-5][0-9]|18:00))\z"
)
# Valid event times: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999Z (what Python's
# datetime can hold, so that the oracle and every consumer can represent every row).
_MIN_SECONDS = -62_135_596_800
_MAX_SECONDS = 253_402_300_799
_MIN_MICROS = _MIN_SECONDS * 1_000_000
_MAX_MICROS = _MAX_SECONDS * 1_000_000 + 999_999
_JSON_OBJECT_START = r"^[ \t\n\r]*\{"
_LABELS = r"[^.]+(\.[^.]+)*"
_NOT_STREAM_COLUMNS = frozenset({"event", "event_time", "parse_error"})


def parse_events(raw_df: DataFrame) -> DataFrame:
    """Parse Kafka values into ``event`` (a struct), ``event_time`` and ``parse_error``.

    ``raw_df`` needs a ``value`` column (binary as Kafka delivers it, or string); every other
    column (``kafka_timestamp``, offsets, ...) is passed through. ``value`` is replaced by
    ``raw_json``, the original text, so dead letters and the lake keep the event verbatim.
    ``parse_error`` is NULL for a usable event, else one of :data:`PARSE_ERRORS`; the caller
    routes those rows to the dead-letter topic. Deciding the time here, not in
    :func:`normalize`, is what lets "both times fail" be a dead-letter reason.

    Validity is judged by Spark's strict JSON parser (``try_parse_json``): duplicate keys,
    ``NaN``, raw control characters in strings and nesting deeper than Jackson allows are
    invalid JSON. Text after the first complete JSON value is ignored, as Spark's JSON
    readers do.
    """
    if "value" not in raw_df.columns:
        raise StreamError("parse_events needs a 'value' column (the Kafka record value)")
    value_type = raw_df.schema["value"].dataType
    if isinstance(value_type, BinaryType):
        raw_json = F.col("value").cast(StringType())
    elif isinstance(value_type, StringType):
        raw_json = F.col("value")
    else:
        raise StreamError(f"'value' must be binary or string, not {value_type.simpleString()}")

    passthrough = [c for c in raw_df.columns if c != "value"]
    df = raw_df.select(*passthrough, raw_json.alias("raw_json"))
    df = df.withColumn("event", F.from_json("raw_json", RECENTCHANGE_SCHEMA, JSON_OPTIONS))
    df = df.withColumn("event_time", _event_time(F.col("event")))
    raw = F.col("raw_json")
    event_id = F.col("event.meta.id")
    parse_error = (
        F.when(raw.isNull(), F.lit("empty_value"))
        .when(~F.is_valid_utf8(raw), F.lit("invalid_utf8"))
        .when(F.try_parse_json(raw).isNull(), F.lit("invalid_json"))
        .when(~raw.rlike(_JSON_OBJECT_START), F.lit("not_an_object"))
        .when(event_id.isNull() | (event_id == ""), F.lit("missing_event_id"))
        .when(F.col("event_time").isNull(), F.lit("invalid_event_time"))
    )
    return df.withColumn("parse_error", parse_error)


def _event_time(event: Column) -> Column:
    """``meta.dt`` if it follows the grammar and is in range, else ``timestamp``, else NULL."""
    dt_text = event["meta"]["dt"]
    dt_parsed = F.when(dt_text.rlike(_DT_PATTERN), dt_text.try_cast(TimestampType()))
    from_dt = F.when(F.unix_micros(dt_parsed).between(_MIN_MICROS, _MAX_MICROS), dt_parsed)
    seconds = event["timestamp"]
    # Range-check before converting: timestamp_seconds overflows (and fails under ANSI) far
    # beyond year 9999.
    from_seconds = F.when(seconds.between(_MIN_SECONDS, _MAX_SECONDS), F.timestamp_seconds(seconds))
    return F.coalesce(from_dt, from_seconds)


def project_of(server_name: Column) -> Column:
    """The contract's ``project`` of a host name (``fr.wikipedia.org`` -> ``wikipedia``).

    ``X.`` and ``*.`` are read as "one or more non-empty dot-separated labels", so
    ``en.m.wikipedia.org`` is wikipedia but ``wikipedia.org`` and ``.wikipedia.org`` are
    ``other``. Matching is case-sensitive, as the stream's host names are lower case.
    """
    expr = F.when(server_name.isin("www.wikidata.org", "test.wikidata.org"), F.lit("wikidata"))
    for site in ("commons", "meta", "species", "incubator"):
        expr = expr.when(server_name == f"{site}.wikimedia.org", F.lit(site))
    expr = expr.when(server_name.rlike(rf"^{_LABELS}\.wikimedia\.org\z"), F.lit("wikimedia"))
    expr = expr.when(server_name == "www.mediawiki.org", F.lit("mediawiki"))
    expr = expr.when(server_name.rlike(rf"^{_LABELS}\.wikifunctions\.org\z"), "wikifunctions")
    family = _family_pattern()
    expr = expr.when(server_name.rlike(family), F.regexp_extract(server_name, family, 2))
    return expr.otherwise(F.lit("other"))


def language_of(server_name: Column) -> Column:
    """The first host label for the eight language families (``zh-min-nan``), else NULL."""
    return F.when(server_name.rlike(_family_pattern()), F.substring_index(server_name, ".", 1))


def _family_pattern() -> str:
    return rf"^{_LABELS}\.({'|'.join(LANGUAGE_FAMILIES)})\.org\z"


def with_normalized(parsed_df: DataFrame) -> DataFrame:
    """Every row of :func:`parse_events` with the normalised fields, ``parse_error`` last.

    The stream job adds these columns in its streaming plan, which Spark analyses once per
    query: built per micro-batch, the projection took about 1,100 Py4J calls and 0.3 to 0.7 s
    on two cores. The fields of a row with a ``parse_error`` mean nothing; :func:`normalize`
    leaves such rows out.
    """
    e = F.col("event")
    raw_type = e["type"]
    event_type = F.when(raw_type.isin(*EVENT_TYPES), raw_type).otherwise(F.lit("other"))
    length = e["length"]
    # A missing side counts as 0; only edit and new have a length change.
    delta = F.when(
        event_type.isin("edit", "new"),
        F.coalesce(length["new"].cast("long"), F.lit(0).cast("long"))
        - F.coalesce(length["old"].cast("long"), F.lit(0).cast("long")),
    ).otherwise(F.lit(0).cast("long"))
    server_name = e["server_name"]
    normalized = {
        "event_id": e["meta"]["id"],
        "event_time": F.col("event_time"),
        "window_start": F.date_trunc("minute", F.col("event_time")),
        "is_canary": F.coalesce(e["meta"]["domain"] == "canary", F.lit(False)),
        "type": event_type,
        "is_bot": F.coalesce(e["bot"], F.lit(False)),
        "is_minor": F.coalesce(e["minor"], F.lit(False)),
        "wiki": e["wiki"],
        "server_name": server_name,
        "project": project_of(server_name),
        "language": language_of(server_name),
        "namespace": e["namespace"],
        "title": e["title"],
        "user": e["user"],
        "comment": F.substring(e["comment"], 1, COMMENT_MAX_CHARS),
        "length_delta": delta,
        "bytes_added": F.greatest(delta, F.lit(0).cast("long")),
        "bytes_removed": F.greatest(-delta, F.lit(0).cast("long")),
    }
    passthrough = [
        c for c in parsed_df.columns if c not in _NOT_STREAM_COLUMNS and c not in normalized
    ]
    return parsed_df.select(
        *(normalized[name].alias(name) for name in NORMALIZED_COLUMNS),
        *passthrough,
        "parse_error",
    )


def normalize(parsed_df: DataFrame) -> DataFrame:
    """Contract section 1: one row per usable event with the normalised fields.

    Rows with a ``parse_error`` are left out (route them to the dead letters first). Canaries
    are kept and flagged (``is_canary``) so the caller can count them before
    :func:`drop_canaries`. Columns other than ``event``/``event_time``/``parse_error`` (e.g.
    ``raw_json``, ``kafka_timestamp``) follow the normalised ones unchanged.
    """
    return with_normalized(parsed_df).where(F.col("parse_error").isNull()).drop("parse_error")


def drop_canaries(events: DataFrame) -> DataFrame:
    """Remove ``meta.domain == "canary"`` events, which count nowhere but as dropped."""
    return events.where(~F.col("is_canary"))


def deduplicate_static(events: DataFrame) -> DataFrame:
    """Keep one row per ``event_id``: the earliest ``event_time`` (for static DataFrames).

    Ties (true duplicates) are broken by ``kafka_timestamp`` and then ``raw_json`` when those
    columns exist, so the result does not depend on partitioning. Uses a window function, so
    it is not for streaming DataFrames (the stream job uses dropDuplicatesWithinWatermark).
    """
    tie_breakers = [c for c in ("kafka_timestamp", "raw_json") if c in events.columns]
    order = [F.col("event_time").asc(), *(F.col(c).asc_nulls_last() for c in tie_breakers)]
    rank = F.row_number().over(Window.partitionBy("event_id").orderBy(*order))
    return events.withColumn("_dedup_rank", rank).where("_dedup_rank = 1").drop("_dedup_rank")


def _is_type(*types: str) -> Column:
    return F.col("type").isin(*types)


def traffic_minute(events: DataFrame) -> DataFrame:
    """Per minute: events by type, bots vs humans, minor vs major edits, and byte flows."""
    is_edit = _is_type("edit")
    return events.groupBy("window_start").agg(
        F.count(F.lit(1)).alias("events"),
        F.count_if(is_edit).alias("edits"),
        F.count_if(_is_type("new")).alias("new_pages"),
        F.count_if(_is_type("log")).alias("log_events"),
        F.count_if(_is_type("categorize")).alias("categorize_events"),
        F.count_if(_is_type("external", "other")).alias("other_events"),
        F.count_if(F.col("is_bot")).alias("bot_events"),
        F.count_if(~F.col("is_bot")).alias("human_events"),
        F.count_if(is_edit & F.col("is_minor")).alias("minor_edits"),
        F.count_if(is_edit & ~F.col("is_minor")).alias("major_edits"),
        F.sum("bytes_added").alias("bytes_added"),
        F.sum("bytes_removed").alias("bytes_removed"),
        F.sum("length_delta").alias("net_bytes"),
    )


def wiki_minute(events: DataFrame) -> DataFrame:
    """Per minute and wiki: activity, with the wiki's host, project and language.

    A wiki has one host name in practice; should a window see several, the greatest
    ``server_name`` (code-point order) is reported and ``project``/``language`` are derived
    from that same host, so the three always agree. Events without ``wiki`` have no key here.
    """
    counts = (
        events.where(F.col("wiki").isNotNull())
        .groupBy("window_start", "wiki")
        .agg(
            F.max("server_name").alias("server_name"),
            F.count(F.lit(1)).alias("events"),
            F.count_if(_is_type("edit")).alias("edits"),
            F.count_if(_is_type("new")).alias("new_pages"),
            F.count_if(F.col("is_bot")).alias("bot_events"),
            F.sum("bytes_added").alias("bytes_added"),
            F.sum("bytes_removed").alias("bytes_removed"),
        )
    )
    host = F.col("server_name")
    return counts.select(
        "window_start",
        "wiki",
        "server_name",
        project_of(host).alias("project"),
        language_of(host).alias("language"),
        "events",
        "edits",
        "new_pages",
        "bot_events",
        "bytes_added",
        "bytes_removed",
    )


def namespace_minute(events: DataFrame) -> DataFrame:
    """Per minute and namespace: events (events without a namespace have no key here)."""
    return (
        events.where(F.col("namespace").isNotNull())
        .groupBy("window_start", "namespace")
        .agg(F.count(F.lit(1)).alias("events"))
    )


def page_minute(events: DataFrame) -> DataFrame:
    """Per minute and page (wiki, title): edits and page creations and their bytes."""
    return (
        events.where(_is_type("edit", "new"))
        .where(F.col("wiki").isNotNull() & F.col("title").isNotNull())
        .groupBy("window_start", "wiki", "title")
        .agg(
            F.count(F.lit(1)).alias("events"),
            F.sum("bytes_added").alias("bytes_added"),
            F.sum("bytes_removed").alias("bytes_removed"),
        )
    )


def user_minute(events: DataFrame) -> DataFrame:
    """Per minute and user: all events, edits (edit and new), bot events and bytes."""
    return (
        events.where(F.col("user").isNotNull())
        .groupBy("window_start", "user")
        .agg(
            F.count(F.lit(1)).alias("events"),
            F.count_if(_is_type("edit", "new")).alias("edits"),
            F.count_if(F.col("is_bot")).alias("bot_events"),
            F.sum("bytes_added").alias("bytes_added"),
            F.sum("bytes_removed").alias("bytes_removed"),
        )
    )


def recent_changes(events: DataFrame) -> DataFrame:
    """One row per event with the fields the live feed shows (retention is the sink's job)."""
    return events.select(*RECENT_CHANGES_COLUMNS)


class MetricTable(NamedTuple):
    """A contract table: the function computing it and its key (the upsert conflict target)."""

    compute: Callable[[DataFrame], DataFrame]
    keys: tuple[str, ...]


TABLES: dict[str, MetricTable] = {
    "traffic_minute": MetricTable(traffic_minute, ("window_start",)),
    "wiki_minute": MetricTable(wiki_minute, ("window_start", "wiki")),
    "namespace_minute": MetricTable(namespace_minute, ("window_start", "namespace")),
    "page_minute": MetricTable(page_minute, ("window_start", "wiki", "title")),
    "user_minute": MetricTable(user_minute, ("window_start", "user")),
    "recent_changes": MetricTable(recent_changes, ("event_id",)),
}
"""Every contract table computed from normalised, deduplicated, canary-free events.

Key columns are never NULL in the output: events lacking a key field are not counted in
that table (they still count in ``traffic_minute``).
"""
