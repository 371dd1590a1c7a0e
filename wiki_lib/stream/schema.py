"""The explicit Spark schema of a ``mediawiki.recentchange`` event, as far as the contract reads it.

Only the fields the serving contract needs are declared; everything else in the event is
ignored by ``from_json`` (the raw JSON is kept alongside for the lake and the dead letters).

Why these types:

* ``type`` is a STRING although the schema says string-or-number: Flow/StructuredDiscussions
  emits the number ``142``, and ``from_json`` renders a JSON number read as STRING as its text,
  so ``142`` and ``"142"`` both arrive as ``"142"``.
* Every string field takes the JSON text of a non-string value (``5`` -> ``"5"``,
  ``true`` -> ``"true"``, objects as compact JSON); that is ``from_json``'s rule and the
  oracle in ``tests/oracle.py`` reproduces it.
* ``namespace`` and ``length.old``/``length.new`` are 32-bit integers: MediaWiki stores them
  as such, and a bounded width means ``length_delta`` and its sums can never overflow (Spark
  runs with ANSI arithmetic, where an overflow would fail the whole micro-batch). A value of
  the wrong JSON type or out of range reads as NULL, i.e. as missing.
* ``timestamp`` (Unix seconds) is a 64-bit integer; range checks happen in ``metrics``.
* ``bot`` and ``minor`` are booleans; only JSON ``true``/``false`` count, anything else is NULL.
"""

from __future__ import annotations

from pyspark.sql.types import (
    BooleanType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

__all__ = ["JSON_OPTIONS", "RECENTCHANGE_SCHEMA"]

RECENTCHANGE_SCHEMA = StructType(
    [
        StructField(
            "meta",
            StructType(
                [
                    StructField("id", StringType()),
                    StructField("dt", StringType()),
                    StructField("domain", StringType()),
                ]
            ),
        ),
        StructField("timestamp", LongType()),
        StructField("type", StringType()),
        StructField("bot", BooleanType()),
        StructField("minor", BooleanType()),
        StructField("namespace", IntegerType()),
        StructField("title", StringType()),
        StructField("user", StringType()),
        StructField("comment", StringType()),
        StructField("wiki", StringType()),
        StructField("server_name", StringType()),
        StructField(
            "length",
            StructType(
                [
                    StructField("old", IntegerType()),
                    StructField("new", IntegerType()),
                ]
            ),
        ),
    ]
)
"""The fields of an event the contract reads; field names match the JSON keys exactly."""

JSON_OPTIONS: dict[str, str] = {
    "mode": "PERMISSIVE",
    "allowSingleQuotes": "false",
    "allowNonNumericNumbers": "false",
}
"""``from_json`` options: strict JSON (no single quotes, no NaN), bad fields become NULL."""
