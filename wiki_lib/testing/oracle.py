"""An independent, plain-Python implementation of the serving contract (shared/spec/metrics.md).

It uses only the standard library and imports nothing from ``wiki_lib``, so a mistake in the
Spark code cannot hide by being repeated here. It is deliberately written differently from
the Spark version (string splitting instead of regular expressions for hosts, ``datetime``
instead of casts).

Where the contract is silent the oracle makes the same documented decisions as
``wiki_lib.stream.metrics``:

* JSON: strict (no NaN/Infinity, no duplicate keys, no raw control characters in strings,
  numbers of at most 1000 characters); text after the first complete JSON value is ignored;
  leading JSON whitespace is allowed.
* A string field holding a non-string JSON value takes that value's JSON text as Spark's
  ``from_json`` writes it (``5`` -> ``"5"``, ``1e5`` -> ``"100000.0"``, objects compact).
  Lone UTF-16 surrogates become ``?``.
* ``namespace``, ``length.old``, ``length.new`` must be JSON integers within 32 bits,
  ``timestamp`` within 64 bits, ``bot``/``minor`` JSON booleans; anything else is missing.
* ``meta.dt``: ``YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|+HH:MM|-HH:MM)``, offsets up to 18:00,
  fraction truncated to microseconds; event times must lie in years 1..9999 (UTC).
* Hosts: ``X.`` / ``*.`` mean one or more non-empty labels; matching is case-sensitive.
* Dead-letter reasons, first match wins: empty_value, invalid_utf8, invalid_json,
  not_an_object, missing_event_id (missing, null or ""), invalid_event_time.
* Tables: events whose key field is missing are not counted in that table; ``wiki_minute``
  reports the greatest ``server_name`` of the window and derives project/language from it.
* Deduplication: the first occurrence of an ``event_id`` (in input order) counts; canaries
  and dead letters are removed before deduplication.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = [
    "TABLE_KEYS",
    "compute_tables",
    "deduplicated_events",
    "load_events",
    "normalize_event",
]

TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "traffic_minute": ("window_start",),
    "wiki_minute": ("window_start", "wiki"),
    "namespace_minute": ("window_start", "namespace"),
    "page_minute": ("window_start", "wiki", "title"),
    "user_minute": ("window_start", "user"),
    "recent_changes": ("event_id",),
}

_KEPT_TYPES = {"edit", "new", "log", "categorize", "external"}
_FAMILIES = {
    "wikipedia",
    "wiktionary",
    "wikibooks",
    "wikinews",
    "wikiquote",
    "wikisource",
    "wikiversity",
    "wikivoyage",
}
_WIKIMEDIA_SITES = {"commons", "meta", "species", "incubator"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_NUMBER_CHARS = 1000
_JSON_WS = " \t\n\r"
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


# --- reading -------------------------------------------------------------------------------


def load_events(paths: Iterable[str | Path]) -> list[bytes]:
    """The raw lines of JSONL files, in order, as bytes (split on ``\\n`` only)."""
    lines: list[bytes] = []
    for path in paths:
        data = Path(path).read_bytes()
        parts = data.split(b"\n")
        if parts and parts[-1] == b"":
            parts.pop()
        lines.extend(parts)
    return lines


class _Rejected(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _Rejected(f"non-standard constant {name}")


def _pairs_to_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _Rejected(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _parse_int(text: str) -> int:
    if len(text) > _MAX_NUMBER_CHARS:
        raise _Rejected("number too long")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > _MAX_NUMBER_CHARS:
        raise _Rejected("number too long")
    return float(text)


_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs_to_object,
    parse_constant=_reject_constant,
    parse_int=_parse_int,
    parse_float=_parse_float,
    strict=True,
)


def _decode(raw: bytes | bytearray | str | None) -> tuple[Any, str | None]:
    if raw is None:
        return None, "empty_value"
    if isinstance(raw, str):
        text = raw
    else:
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return None, "invalid_utf8"
    start = len(text) - len(text.lstrip(_JSON_WS))
    try:
        value, _end = _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError):
        return None, "invalid_json"
    return value, None


# --- field coercion (what a typed reader sees) -----------------------------------------------


def _java_double(x: float) -> str:
    """Java's Double.toString layout of the shortest decimal that round-trips."""
    if x != x:
        return '"NaN"'
    if x in (float("inf"), float("-inf")):
        return '"Infinity"' if x > 0 else '"-Infinity"'
    if x == 0:
        return "-0.0" if str(x).startswith("-") else "0.0"
    sign, digit_tuple, exponent = Decimal(repr(x)).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    assert isinstance(exponent, int)
    # exponent of the first digit in scientific notation
    sci = len("".join(map(str, digit_tuple))) - 1 + exponent
    prefix = "-" if sign else ""
    if 1e-3 <= abs(x) < 1e7:
        if sci >= 0:
            whole = digits[: sci + 1].ljust(sci + 1, "0")
            frac = digits[sci + 1 :] or "0"
        else:
            whole = "0"
            frac = "0" * (-sci - 1) + digits
        return f"{prefix}{whole}.{frac}"
    mantissa = digits[0] + "." + (digits[1:] or "0")
    return f"{prefix}{mantissa}E{sci}"


def _jackson_string(s: str) -> str:
    out = ['"']
    short = {
        '"': '\\"',
        "\\": "\\\\",
        "\b": "\\b",
        "\f": "\\f",
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
    }
    for ch in s:
        if ch in short:
            out.append(short[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _json_text(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, str):
        return _jackson_string(value)
    if isinstance(value, list):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    return "{" + ",".join(f"{_jackson_string(k)}:{_json_text(v)}" for k, v in value.items()) + "}"


def _fix_surrogates(s: str) -> str:
    return s.encode("utf-8", "replace").decode("utf-8")


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return _fix_surrogates(value)
    return _fix_surrogates(_json_text(value))


def _as_int(value: Any, bounds: tuple[int, int]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if bounds[0] <= value <= bounds[1] else None


def _as_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _as_object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# --- time ------------------------------------------------------------------------------------


def _digits(s: str) -> bool:
    return s != "" and all("0" <= c <= "9" for c in s)


def _parse_dt(text: str | None) -> datetime | None:
    """meta.dt -> aware UTC datetime, or None; written as a hand parser, not a regex."""
    if text is None or len(text) < 20:
        return None
    date_part, sep, rest = text[:10], text[10], text[11:]
    if sep != "T" or date_part[4] != "-" or date_part[7] != "-":
        return None
    year_s, month_s, day_s = date_part[:4], date_part[5:7], date_part[8:10]
    clock = rest[:8]
    if len(clock) < 8 or clock[2] != ":" or clock[5] != ":":
        return None
    hour_s, minute_s, second_s = clock[:2], clock[3:5], clock[6:8]
    if not all(_digits(p) for p in (year_s, month_s, day_s, hour_s, minute_s, second_s)):
        return None
    tail = rest[8:]
    micros = 0
    if tail.startswith("."):
        end = 1
        while end < len(tail) and "0" <= tail[end] <= "9":
            end += 1
        fraction = tail[1:end]
        if not 1 <= len(fraction) <= 9:
            return None
        micros = int(fraction[:6].ljust(6, "0"))
        tail = tail[end:]
    if tail == "Z":
        offset = timedelta(0)
    elif len(tail) == 6 and tail[0] in "+-" and tail[3] == ":" and _digits(tail[1:3] + tail[4:]):
        hours, minutes = int(tail[1:3]), int(tail[4:])
        if minutes > 59 or hours * 60 + minutes > 18 * 60:
            return None
        offset = timedelta(hours=hours, minutes=minutes) * (1 if tail[0] == "+" else -1)
    else:
        return None
    try:
        local = datetime(
            int(year_s),
            int(month_s),
            int(day_s),
            int(hour_s),
            int(minute_s),
            int(second_s),
            micros,
            tzinfo=timezone(offset),
        )
        return local.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _from_unix_seconds(seconds: int | None) -> datetime | None:
    if seconds is None:
        return None
    try:
        return _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return None


# --- hosts -----------------------------------------------------------------------------------


def _project_and_language(server_name: str | None) -> tuple[str, str | None]:
    if server_name is None:
        return "other", None
    if server_name in ("www.wikidata.org", "test.wikidata.org"):
        return "wikidata", None
    if server_name == "www.mediawiki.org":
        return "mediawiki", None
    labels = server_name.split(".")
    if len(labels) < 3 or "" in labels or labels[-1] != "org":
        return "other", None
    site = labels[-2]
    if site == "wikimedia":
        if len(labels) == 3 and labels[0] in _WIKIMEDIA_SITES:
            return labels[0], None
        return "wikimedia", None
    if site == "wikifunctions":
        return "wikifunctions", None
    if site in _FAMILIES:
        return site, labels[0]
    return "other", None


# --- one event -------------------------------------------------------------------------------


def normalize_event(
    raw: bytes | bytearray | str | None,
) -> tuple[dict[str, Any] | None, str | None]:
    """One raw Kafka value -> (normalised event, None) or (None, dead-letter reason).

    Canaries are returned normalised with ``is_canary`` true; :func:`compute_tables` drops
    them.
    """
    value, error = _decode(raw)
    if error is not None:
        return None, error
    if not isinstance(value, dict):
        return None, "not_an_object"
    meta = _as_object(value.get("meta"))
    event_id = _as_text(meta.get("id"))
    if not event_id:
        return None, "missing_event_id"
    event_time = _parse_dt(_as_text(meta.get("dt")))
    if event_time is None:
        event_time = _from_unix_seconds(_as_int(value.get("timestamp"), _INT64))
    if event_time is None:
        return None, "invalid_event_time"

    given_type = _as_text(value.get("type"))
    event_type = given_type if given_type in _KEPT_TYPES else "other"
    if event_type in ("edit", "new"):
        length = _as_object(value.get("length"))
        old = _as_int(length.get("old"), _INT32) or 0
        new = _as_int(length.get("new"), _INT32) or 0
        length_delta = new - old
    else:
        length_delta = 0
    server_name = _as_text(value.get("server_name"))
    project, language = _project_and_language(server_name)
    comment = _as_text(value.get("comment"))
    return (
        {
            "event_id": event_id,
            "event_time": event_time,
            "window_start": event_time.replace(second=0, microsecond=0),
            "is_canary": _as_text(meta.get("domain")) == "canary",
            "type": event_type,
            "is_bot": _as_bool(value.get("bot")) or False,
            "is_minor": _as_bool(value.get("minor")) or False,
            "wiki": _as_text(value.get("wiki")),
            "server_name": server_name,
            "project": project,
            "language": language,
            "namespace": _as_int(value.get("namespace"), _INT32),
            "title": _as_text(value.get("title")),
            "user": _as_text(value.get("user")),
            "comment": None if comment is None else comment[:500],
            "length_delta": length_delta,
            "bytes_added": max(length_delta, 0),
            "bytes_removed": max(-length_delta, 0),
        },
        None,
    )


def deduplicated_events(lines: Iterable[bytes | bytearray | str | None]) -> list[dict[str, Any]]:
    """Usable, non-canary events, each ``event_id`` once (its first occurrence)."""
    seen: set[str] = set()
    events: list[dict[str, Any]] = []
    for raw in lines:
        event, _reason = normalize_event(raw)
        if event is None or event["is_canary"] or event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        events.append(event)
    return events


# --- tables ----------------------------------------------------------------------------------


def _bump(row: dict[str, Any], **increments: int) -> None:
    for name, amount in increments.items():
        row[name] += amount


def _row(
    table: dict[tuple[Any, ...], dict[str, Any]],
    key: tuple[Any, ...],
    names: Sequence[str],
    counters: Sequence[str],
) -> dict[str, Any]:
    if key not in table:
        table[key] = {**dict(zip(names, key, strict=True)), **dict.fromkeys(counters, 0)}
    return table[key]


def compute_tables(
    lines: Iterable[bytes | bytearray | str | None],
) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    """All six contract tables: table name -> {key tuple: full row including the key}."""
    tables: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {name: {} for name in TABLE_KEYS}
    wiki_hosts: dict[tuple[Any, ...], str | None] = {}
    for ev in deduplicated_events(lines):
        ws = ev["window_start"]
        kind = ev["type"]
        is_edit = kind == "edit"
        bot = 1 if ev["is_bot"] else 0
        added, removed = ev["bytes_added"], ev["bytes_removed"]

        traffic = _row(
            tables["traffic_minute"],
            (ws,),
            ("window_start",),
            (
                "events",
                "edits",
                "new_pages",
                "log_events",
                "categorize_events",
                "other_events",
                "bot_events",
                "human_events",
                "minor_edits",
                "major_edits",
                "bytes_added",
                "bytes_removed",
                "net_bytes",
            ),
        )
        _bump(
            traffic,
            events=1,
            edits=int(is_edit),
            new_pages=int(kind == "new"),
            log_events=int(kind == "log"),
            categorize_events=int(kind == "categorize"),
            other_events=int(kind in ("external", "other")),
            bot_events=bot,
            human_events=1 - bot,
            minor_edits=int(is_edit and ev["is_minor"]),
            major_edits=int(is_edit and not ev["is_minor"]),
            bytes_added=added,
            bytes_removed=removed,
            net_bytes=ev["length_delta"],
        )

        if ev["wiki"] is not None:
            key = (ws, ev["wiki"])
            wiki = _row(
                tables["wiki_minute"],
                key,
                ("window_start", "wiki"),
                ("events", "edits", "new_pages", "bot_events", "bytes_added", "bytes_removed"),
            )
            _bump(
                wiki,
                events=1,
                edits=int(is_edit),
                new_pages=int(kind == "new"),
                bot_events=bot,
                bytes_added=added,
                bytes_removed=removed,
            )
            host = ev["server_name"]
            best = wiki_hosts.get(key)
            if host is not None and (best is None or host > best):
                wiki_hosts[key] = host

        if ev["namespace"] is not None:
            ns = _row(
                tables["namespace_minute"],
                (ws, ev["namespace"]),
                ("window_start", "namespace"),
                ("events",),
            )
            _bump(ns, events=1)

        if kind in ("edit", "new") and ev["wiki"] is not None and ev["title"] is not None:
            page = _row(
                tables["page_minute"],
                (ws, ev["wiki"], ev["title"]),
                ("window_start", "wiki", "title"),
                ("events", "bytes_added", "bytes_removed"),
            )
            _bump(page, events=1, bytes_added=added, bytes_removed=removed)

        if ev["user"] is not None:
            user = _row(
                tables["user_minute"],
                (ws, ev["user"]),
                ("window_start", "user"),
                ("events", "edits", "bot_events", "bytes_added", "bytes_removed"),
            )
            _bump(
                user,
                events=1,
                edits=int(kind in ("edit", "new")),
                bot_events=bot,
                bytes_added=added,
                bytes_removed=removed,
            )

        tables["recent_changes"][(ev["event_id"],)] = {
            name: ev[name]
            for name in (
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
        }

    for key, row in tables["wiki_minute"].items():
        host = wiki_hosts.get(key)
        project, language = _project_and_language(host)
        row.update(server_name=host, project=project, language=language)
    return tables
