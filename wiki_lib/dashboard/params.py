"""What one dashboard view shows: lookback, refresh, filters, top-N, end, watch terms.

A :class:`ViewParams` is immutable; every control change makes a new one, so the refresh
thread always works on a consistent view. Views come from the notebook's parameters cell
and the page URL (``?lookback=15m&wiki=enwiki,dewiki&bot=human``); a bad URL value never
breaks the page, it is ignored and reported in :attr:`ParsedView.warnings`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from wiki_lib.query import Filters, QueryError
from wiki_lib.query.window import parse_duration

__all__ = [
    "BOT_CHOICES",
    "LOOKBACKS",
    "PROJECTS",
    "REFRESH_RANGE",
    "TOP_N_CHOICES",
    "TYPE_CHOICES",
    "ParsedView",
    "ViewParams",
    "parse_query_string",
    "split_list",
    "to_query_string",
]

LOOKBACKS: dict[str, str] = {
    "1m": "1 min",
    "5m": "5 min",
    "15m": "15 min",
    "30m": "30 min",
    "1h": "1 hour",
    "3h": "3 hours",
    "24h": "24 hours",
    "7d": "7 days",
}
"""Lookbacks the control offers (value -> label); 24h and 7d are served by the roll-ups."""

REFRESH_RANGE: tuple[int, int] = (2, 60)
"""Shortest and longest refresh interval in seconds; 0 means paused."""

TOP_N_CHOICES: tuple[int, ...] = (5, 10, 15, 20, 30, 50)
BOT_CHOICES: dict[str, bool | None] = {"all": None, "human": False, "bot": True}
TYPE_CHOICES: dict[str, tuple[str, ...]] = {
    "edit": ("edit",),
    "new": ("new",),
    "log": ("log",),
    "categorize": ("categorize",),
    "other": ("external", "other"),
}
"""Type filter values of the dashboard -> contract types (``other`` is external and unknown)."""

PROJECTS: tuple[str, ...] = (
    "wikipedia",
    "wikidata",
    "commons",
    "wiktionary",
    "wikisource",
    "wikiquote",
    "wikibooks",
    "wikinews",
    "wikiversity",
    "wikivoyage",
    "meta",
    "species",
    "incubator",
    "mediawiki",
    "wikifunctions",
    "wikimedia",
    "other",
)
"""Projects of the contract's ``server_name`` rule."""


def split_list(text: str) -> tuple[str, ...]:
    """``"enwiki, dewiki,,"`` -> ``("enwiki", "dewiki")``: order kept, blanks and repeats gone."""
    return tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))


@dataclass(frozen=True)
class ViewParams:
    """Everything that decides what the dashboard queries and shows."""

    lookback: str = "15m"
    refresh_s: float = 5.0
    paused: bool = False
    wiki: tuple[str, ...] = ()
    project: tuple[str, ...] = ()
    language: tuple[str, ...] = ()
    bot: bool | None = None
    namespace: tuple[int, ...] = ()
    types: tuple[str, ...] = ()
    top_n: int = 10
    end: str = ""
    """Empty: live (the window ends now); ``latest``: at the newest event; or an ISO time."""
    watch: tuple[str, ...] = field(default=())

    def replace(self, **changes: Any) -> ViewParams:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def filters(self) -> Filters:
        """The query API filter of this view."""
        contract_types = tuple(t for kind in self.types for t in TYPE_CHOICES[kind])
        return Filters(
            wiki=self.wiki or None,
            project=self.project or None,
            language=self.language or None,
            bot=self.bot,
            namespace=self.namespace or None,
            type=contract_types or None,
        )

    @property
    def interval_s(self) -> float | None:
        """Seconds between refreshes, or None when paused."""
        return None if self.paused else self.refresh_s


@dataclass(frozen=True)
class ParsedView:
    """A view read from a URL, and what in the URL was ignored and why."""

    params: ViewParams
    warnings: tuple[str, ...] = ()


def _duration_key(text: str) -> str | None:
    """Accept ``15m``, ``15min``, ``1h``, ``60m`` ... when they name an offered lookback."""
    try:
        wanted = parse_duration(text)
    except QueryError:
        return None
    for key in LOOKBACKS:
        if parse_duration(key) == wanted:
            return key
    return None


def _end(text: str) -> str | None:
    if text in ("", "now", "live"):
        return ""
    if text == "latest":
        return text
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return text


def parse_query_string(query: str, base: ViewParams | None = None) -> ParsedView:
    """Apply a page's query string to ``base`` (the notebook's parameters).

    Keys: ``lookback``, ``refresh`` (seconds, ``0`` or ``pause`` to pause), ``wiki``,
    ``project``, ``language``, ``bot`` (``all``/``human``/``bot``), ``namespace``, ``type``,
    ``top`` (or ``top_n``), ``end``, ``watch``. Lists are comma separated; a key given twice
    adds up. Unknown keys and bad values are reported, never raised.
    """
    view = base or ViewParams()
    warnings: list[str] = []
    values: dict[str, list[str]] = {}
    for key, value in parse_qsl(query.lstrip("?"), keep_blank_values=True):
        values.setdefault(key.strip().lower(), []).append(value.strip())
    changes: dict[str, Any] = {}

    def joined(key: str) -> tuple[str, ...]:
        return split_list(",".join(values.pop(key)))

    for key in list(values):
        raw = values[key][-1]
        if key == "lookback":
            values.pop(key)
            found = _duration_key(raw)
            if found is None:
                warnings.append(f"lookback={raw!r} is not one of {', '.join(LOOKBACKS)}")
            else:
                changes["lookback"] = found
        elif key == "refresh":
            values.pop(key)
            if raw.lower() in ("0", "pause", "paused", "off"):
                changes["paused"] = True
                continue
            try:
                seconds = float(raw.rstrip("s"))
            except ValueError:
                warnings.append(f"refresh={raw!r} is not a number of seconds")
                continue
            low, high = REFRESH_RANGE
            changes.update(refresh_s=min(max(seconds, low), high), paused=False)
        elif key in ("wiki", "project", "language", "watch"):
            items = joined(key)
            if key == "project":
                unknown = [p for p in items if p not in PROJECTS]
                if unknown:
                    warnings.append(f"unknown project {', '.join(unknown)}")
                items = tuple(p for p in items if p in PROJECTS)
            changes[key] = items
        elif key == "bot":
            values.pop(key)
            if raw.lower() in BOT_CHOICES:
                changes["bot"] = BOT_CHOICES[raw.lower()]
            else:
                warnings.append(f"bot={raw!r} is not one of {', '.join(BOT_CHOICES)}")
        elif key == "namespace":
            spaces = []
            for item in joined(key):
                try:
                    spaces.append(int(item))
                except ValueError:
                    warnings.append(f"namespace {item!r} is not a number")
            changes["namespace"] = tuple(spaces)
        elif key == "type":
            kinds = joined(key)
            unknown = [k for k in kinds if k not in TYPE_CHOICES]
            if unknown:
                warnings.append(
                    f"unknown type {', '.join(unknown)}; known: {', '.join(TYPE_CHOICES)}"
                )
            changes["types"] = tuple(k for k in kinds if k in TYPE_CHOICES)
        elif key in ("top", "top_n"):
            values.pop(key)
            try:
                changes["top_n"] = min(max(int(raw), 1), max(TOP_N_CHOICES))
            except ValueError:
                warnings.append(f"{key}={raw!r} is not a number")
        elif key == "end":
            values.pop(key)
            found_end = _end(raw)
            if found_end is None:
                warnings.append(f"end={raw!r} is not 'latest' or an ISO 8601 time")
            else:
                changes["end"] = found_end
        else:
            values.pop(key)
            warnings.append(f"unknown URL parameter {key!r}")
    return ParsedView(view.replace(**changes), tuple(warnings))


def to_query_string(view: ViewParams, base: ViewParams | None = None) -> str:
    """The query string that turns ``base`` into ``view`` (for links that share a view)."""
    base = base or ViewParams()
    out: dict[str, str] = {}
    if view.lookback != base.lookback:
        out["lookback"] = view.lookback
    if view.paused != base.paused or view.refresh_s != base.refresh_s:
        out["refresh"] = "pause" if view.paused else f"{view.refresh_s:g}"
    for name in ("wiki", "project", "language", "watch"):
        if getattr(view, name) != getattr(base, name):
            out[name] = ",".join(getattr(view, name))
    if view.bot != base.bot:
        out["bot"] = next(k for k, v in BOT_CHOICES.items() if v == view.bot)
    if view.namespace != base.namespace:
        out["namespace"] = ",".join(str(n) for n in view.namespace)
    if view.types != base.types:
        out["type"] = ",".join(view.types)
    if view.top_n != base.top_n:
        out["top"] = str(view.top_n)
    if view.end != base.end:
        out["end"] = view.end
    return urlencode(out, safe=",:")
