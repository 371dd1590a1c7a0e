"""Validation of one raw ``mediawiki.recentchange`` event: bytes in, :class:`Event` or error out.

The hot path decodes with msgspec straight into typed structs of exactly the fields the
serving contract (``spec/metrics.md`` section 1) reads: the rest of the event is checked as
JSON but never built as Python objects, which takes half as long as orjson building it all.
Running the full JSON Schema on every event would cap throughput; ``strict=True`` adds the
vendored official schema on top. Whatever the hot path refuses is parsed again with orjson
(and the standard library) and checked field by field, which finds the reason when there is
one; the hot path only ever accepts what that path accepts, with the same result. A failure is
a :class:`~wiki_lib.errors.ValidationError` whose ``reason`` is a stable code that the
dead-letter topic, the counters and the tests can match on:

``too_large``, ``not_utf8``, ``invalid_json``, ``not_object``, ``missing_field:<path>``,
``wrong_type:<path>``, ``bad_value:<path>``, ``schema:<path>`` (strict mode only).
Sources add ``sse_no_data`` for an SSE frame that carried no ``data:`` line.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, NamedTuple

import msgspec
import orjson

from wiki_lib.errors import ValidationError

__all__ = [
    "MAX_EVENT_BYTES",
    "REASON_SSE_NO_DATA",
    "Event",
    "event_time",
    "parse_iso_time",
    "validate",
]

MAX_EVENT_BYTES = 512 * 1024
"""Largest accepted event; real ones are a few KiB and Kafka's default record limit is 1 MB."""

REASON_SSE_NO_DATA = "sse_no_data"

_REQUIRED_STR = ("type", "wiki", "server_name", "title", "user")
_OPTIONAL_STR = ("comment",)
_OPTIONAL_BOOL = ("bot", "minor")


class Event(NamedTuple):
    """The routing view of a valid event; the original bytes stay the payload.

    A named tuple for the same reason as :class:`~wiki_lib.sources.base.RawEvent`: the
    producer makes one per event.
    """

    id: str
    time: float
    """Event time in Unix seconds (``meta.dt``, else ``timestamp``)."""
    wiki: str
    type: str
    namespace: int
    bot: bool
    domain: str | None

    @property
    def is_canary(self) -> bool:
        """Canary events are Wikimedia's own probes and never count as traffic."""
        return self.domain == "canary"


def parse_iso_time(value: str) -> float | None:
    """Unix seconds of an ISO 8601 string (``Z``, offset or naive-as-UTC), ``None`` if invalid."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def event_time(obj: Any) -> float | None:
    """The contract's event time of a parsed event, or ``None``; used to order replays."""
    if not isinstance(obj, dict):
        return None
    meta = obj.get("meta")
    if isinstance(meta, dict):
        dt = meta.get("dt")
        if isinstance(dt, str):
            parsed = parse_iso_time(dt)
            if parsed is not None:
                return parsed
    ts = obj.get("timestamp")
    if type(ts) is int:
        return float(ts)
    return None


_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
"""Integers orjson returns as ``int`` (beyond 64 bits it returns a float, which is refused)."""


class _WireMeta(msgspec.Struct):
    id: _NonEmpty
    dt: str | None = None
    domain: str | None = None


class _WireLength(msgspec.Struct):
    old: _Int64 | None = None
    new: _Int64 | None = None


class _Wire(msgspec.Struct):
    """The contract's fields with the types :func:`_checked_event` demands; others are skipped."""

    meta: _WireMeta
    wiki: _NonEmpty
    type: str
    namespace: _Int64
    server_name: str
    title: str
    user: str
    comment: str | None = None
    bot: bool | None = None
    minor: bool | None = None
    length: _WireLength | None = None
    timestamp: _Int64 | None = None


_WIRE = msgspec.json.Decoder(_Wire)


def _hot_path(data: bytes) -> Event | None:
    """The event, or ``None`` to let the orjson path decide (and say why).

    msgspec does not check the UTF-8 of strings it skips, so the bytes are checked first
    (``isascii`` is free for the many all-ASCII events). A ``timestamp`` of the wrong type
    refuses here even when ``meta.dt`` makes it unused; the slow path accepts that event.
    """
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        wire = _WIRE.decode(data)
    except (msgspec.MsgspecError, RecursionError):
        return None
    meta = wire.meta
    dt = meta.dt
    time = parse_iso_time(dt) if dt is not None else None
    if time is None:
        if wire.timestamp is None:
            return None
        time = float(wire.timestamp)
    return Event(meta.id, time, wire.wiki, wire.type, wire.namespace, wire.bot is True, meta.domain)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse(data: bytes) -> Any:
    """orjson on the hot path; the standard library decides (and explains) when orjson refuses."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError("not_utf8", str(exc)) from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ValidationError("invalid_json", str(exc)[:200]) from None


def validate(data: bytes, *, max_bytes: int = MAX_EVENT_BYTES, strict: bool = False) -> Event:
    """Check ``data`` against the contract; raise :class:`ValidationError` with a reason code."""
    if len(data) > max_bytes:
        raise ValidationError("too_large", f"{len(data)} bytes > {max_bytes}")
    if not strict:
        hot = _hot_path(data)
        if hot is not None:
            return hot
    obj = _parse(data)
    if type(obj) is not dict:
        raise ValidationError("not_object", type(obj).__name__)
    event = _checked_event(obj)
    if strict:
        _check_schema(obj)
    return event


def _field(obj: dict[str, Any], name: str, kind: type, path: str, required: bool) -> Any:
    value = obj.get(name)
    if value is None:
        if required:
            raise ValidationError(f"missing_field:{path}")
        return None
    if type(value) is not kind:
        raise ValidationError(f"wrong_type:{path}", type(value).__name__)
    return value


def _checked_event(obj: dict[str, Any]) -> Event:
    """Field by field, in a fixed order, so the first problem found is the reason reported."""
    meta = _field(obj, "meta", dict, "meta", required=True)
    event_id = _field(meta, "id", str, "meta.id", required=True)
    if not event_id:
        raise ValidationError("bad_value:meta.id", "empty")
    domain = _field(meta, "domain", str, "meta.domain", required=False)
    time = _check_time(obj, meta)
    for name in _REQUIRED_STR:
        _field(obj, name, str, name, required=True)
    for name in _OPTIONAL_STR:
        _field(obj, name, str, name, required=False)
    for name in _OPTIONAL_BOOL:
        _field(obj, name, bool, name, required=False)
    _field(obj, "namespace", int, "namespace", required=True)
    length = _field(obj, "length", dict, "length", required=False)
    if length is not None:
        for side in ("old", "new"):
            _field(length, side, int, f"length.{side}", required=False)
    if not obj["wiki"]:
        raise ValidationError("bad_value:wiki", "empty")
    return Event(
        event_id, time, obj["wiki"], obj["type"], obj["namespace"], obj.get("bot") is True, domain
    )


def _check_time(obj: dict[str, Any], meta: dict[str, Any]) -> float:
    """``meta.dt`` if it parses, else ``timestamp``; if both fail, the ``meta.dt`` problem."""
    dt = meta.get("dt")
    if isinstance(dt, str):
        parsed = parse_iso_time(dt)
        if parsed is not None:
            return parsed
    ts = obj.get("timestamp")
    if type(ts) is int:
        return float(ts)
    if dt is None:
        raise ValidationError("missing_field:meta.dt", "and no integer timestamp")
    if not isinstance(dt, str):
        raise ValidationError("wrong_type:meta.dt", type(dt).__name__)
    raise ValidationError("bad_value:meta.dt", f"{dt[:64]!r} is not ISO 8601")


@cache
def _schema_validator() -> Any:
    from jsonschema import Draft7Validator

    from wiki_lib.schema import recentchange_schema

    return Draft7Validator(recentchange_schema())


def _check_schema(obj: dict[str, Any]) -> None:
    from jsonschema.exceptions import best_match

    error = best_match(_schema_validator().iter_errors(obj))
    if error is not None:
        path = ".".join(str(p) for p in error.absolute_path) or "<root>"
        raise ValidationError(f"schema:{path}", error.message[:200])
