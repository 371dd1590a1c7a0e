"""HTML fragments of the dashboard: tiles, link tables, banners, all from escaped text.

Titles, user names and comments come from anyone who edits a wiki, so every value that
reaches HTML goes through :func:`html.escape`, and links are built only from a server name
that looks like a host name. Each fragment carries ``wp-*`` classes and ``data-*``
attributes so the stylesheet can style it and browser tests can read it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from importlib import resources
from urllib.parse import quote

import pandas as pd

__all__ = [
    "NAMESPACES",
    "ago",
    "banner",
    "bars_sweeper",
    "duration",
    "escape",
    "event_list",
    "namespace_name",
    "page_table",
    "page_url",
    "server_for_wiki",
    "stylesheet",
    "term_badges",
    "tile_html",
]

NAMESPACES: dict[int, str] = {
    -2: "Media",
    -1: "Special",
    0: "Article",
    1: "Talk",
    2: "User",
    3: "User talk",
    4: "Project",
    5: "Project talk",
    6: "File",
    7: "File talk",
    8: "MediaWiki",
    9: "MediaWiki talk",
    10: "Template",
    11: "Template talk",
    12: "Help",
    13: "Help talk",
    14: "Category",
    15: "Category talk",
    100: "Portal",
    118: "Draft",
    120: "Property",
    146: "Lexeme",
    828: "Module",
    829: "Module talk",
    2600: "Topic",
}
"""Canonical names of the namespaces common to Wikimedia wikis."""

_HOST = re.compile(r"^[a-z0-9][a-z0-9.-]{0,252}$")
_FAMILIES = (
    "wiktionary",
    "wikibooks",
    "wikinews",
    "wikiquote",
    "wikisource",
    "wikiversity",
    "wikivoyage",
)
_SPECIAL_WIKIS = {
    "commonswiki": "commons.wikimedia.org",
    "metawiki": "meta.wikimedia.org",
    "specieswiki": "species.wikimedia.org",
    "incubatorwiki": "incubator.wikimedia.org",
    "wikidatawiki": "www.wikidata.org",
    "testwikidatawiki": "test.wikidata.org",
    "mediawikiwiki": "www.mediawiki.org",
    "wikifunctionswiki": "www.wikifunctions.org",
    "foundationwiki": "foundation.wikimedia.org",
    "sourceswiki": "wikisource.org",
}


def escape(text: object) -> str:
    """Text made safe for HTML content and attribute values."""
    return html.escape(str(text))


def namespace_name(namespace: int) -> str:
    """``14`` -> ``"Category"``; unknown numbers stay numbers."""
    return NAMESPACES.get(namespace, f"ns {namespace}")


def server_for_wiki(wiki: str) -> str | None:
    """The host of a wiki database name (``dewiktionary`` -> ``de.wiktionary.org``).

    Used where a table has the wiki but not its ``server_name``; None when the name does not
    follow Wikimedia's conventions.
    """
    if wiki in _SPECIAL_WIKIS:
        return _SPECIAL_WIKIS[wiki]
    for family in _FAMILIES:
        if wiki.endswith(family) and len(wiki) > len(family):
            return f"{wiki[: -len(family)].replace('_', '-')}.{family}.org"
    if wiki.endswith("wiki") and len(wiki) > 4:
        return f"{wiki[:-4].replace('_', '-')}.wikipedia.org"
    return None


def page_url(server_name: str | None, title: str) -> str | None:
    """The page's URL on its wiki, or None when the host is unknown or implausible."""
    if not server_name or not _HOST.match(server_name):
        return None
    return f"https://{server_name}/wiki/{quote(title.replace(' ', '_'), safe='/:()')}"


def _link(server_name: str | None, title: str, css: str = "wp-link") -> str:
    url = page_url(server_name, title)
    text = html.escape(title)
    if url is None:
        return f'<span class="{css}">{text}</span>'
    return (
        f'<a class="{css}" href="{html.escape(url)}" target="_blank" '
        f'rel="noopener noreferrer">{text}</a>'
    )


def _short(text: object, limit: int) -> str:
    value = "" if text is None or (isinstance(text, float) and pd.isna(text)) else str(text)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def tile_html(key: str, label: str, text: str, change: str, trend: str, value: object) -> str:
    """One KPI tile; ``data-value`` holds the raw number for tests and scrapers."""
    raw = "" if value is None else html.escape(str(value))
    return (
        f'<div class="wp-tile wp-tile-{html.escape(key)}" data-key="{html.escape(key)}" '
        f'data-value="{raw}">'
        f'<div class="wp-tile-label">{html.escape(label)}</div>'
        f'<div class="wp-tile-value">{html.escape(text)}</div>'
        f'<div class="wp-tile-change wp-trend-{html.escape(trend)}">{html.escape(change)}</div>'
        "</div>"
    )


def page_table(pages: pd.DataFrame, servers: dict[str, str]) -> str:
    """The top pages with links to them; ``servers`` maps wiki -> host where known."""
    if pages.empty:
        return '<div class="wp-empty">No page edits in this window.</div>'
    rows = []
    for rank, row in enumerate(pages.itertuples(index=False), start=1):
        wiki = str(row.wiki)
        server = getattr(row, "server_name", None) or servers.get(wiki) or server_for_wiki(wiki)
        rows.append(
            f'<tr class="wp-page-row"><td class="wp-rank">{rank}</td>'
            f"<td>{_link(server, _short(row.title, 90))}</td>"
            f'<td class="wp-wiki">{html.escape(wiki)}</td>'
            f'<td class="wp-num">{int(row.events):,}</td>'
            f'<td class="wp-num wp-added">+{int(row.bytes_added):,}</td>'
            f'<td class="wp-num wp-removed">{-int(row.bytes_removed):,}</td></tr>'
        )
    return (
        '<table class="wp-table wp-pages"><thead><tr><th>#</th><th>Page</th><th>Wiki</th>'
        "<th>Edits</th><th>Bytes +</th><th>Bytes -</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def event_list(events: pd.DataFrame, limit: int = 50, css: str = "wp-events") -> str:
    """Individual events, newest first, each linked to its page."""
    if events.empty:
        return f'<div class="wp-empty {css}-empty">No matching edits in this window.</div>'
    items = []
    for row in events.head(limit).itertuples(index=False):
        when = pd.Timestamp(row.event_time).strftime("%H:%M:%S")
        delta = int(row.length_delta)
        terms = getattr(row, "matched", None) or ()
        tags = "".join(f'<span class="wp-term">{html.escape(str(t))}</span>' for t in terms)
        items.append(
            f'<li class="{css}-item"><span class="wp-time">{when}</span> '
            f'<span class="wp-wiki">{html.escape(str(row.wiki or ""))}</span> '
            f"{_link(row.server_name, str(row.title or ''))} "
            f'<span class="wp-user">{html.escape(_short(row.user, 40))}</span> '
            f'<span class="wp-delta {"wp-added" if delta >= 0 else "wp-removed"}">'
            f"{delta:+,}</span> {tags}"
            f'<div class="wp-comment">{html.escape(_short(row.comment, 160))}</div></li>'
        )
    more = len(events) - limit
    tail = f'<div class="wp-more">and {more:,} more</div>' if more > 0 else ""
    return f'<ul class="{css}">{"".join(items)}</ul>{tail}'


def term_badges(counts: dict[str, int], capped: bool) -> str:
    """A count per watch term (``capped``: the match list hit its limit, counts are minima)."""
    if not counts:
        return '<div class="wp-empty">Enter terms, comma separated, to watch for them.</div>'
    prefix = "≥" if capped else ""
    return "".join(
        f'<span class="wp-badge" data-term="{html.escape(term)}" data-count="{count}">'
        f"{html.escape(term)} <b>{prefix}{count:,}</b></span>"
        for term, count in counts.items()
    )


def banner(level: str, lines: Sequence[str] | Iterable[str]) -> str:
    """A message strip (``info``, ``warn``, ``error``); empty input hides it."""
    body = "".join(f"<div>{html.escape(line)}</div>" for line in lines)
    if not body:
        return ""
    return f'<div class="wp-banner wp-banner-{html.escape(level)}" role="status">{body}</div>'


def duration(seconds: float) -> str:
    """``"1.2 s"``, ``"12 s"``, ``"3 min"``, ``"2.5 h"``, ``"828 days"``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.0f} days"


def ago(moment: datetime | None, now: datetime) -> str:
    """``"12 s ago"``, ``"3 min ago"`` ... (``"never"`` for None)."""
    if moment is None:
        return "never"
    return f"{duration(max((now - moment).total_seconds(), 0.0))} ago"


def stylesheet() -> str:
    """The dashboard's CSS as a ``<style>`` element."""
    css = resources.files("wiki_lib.dashboard").joinpath("dashboard.css").read_text()
    return f"<style>{css}</style>"


_SWEEP_JS = """if (!window.wpBarsSweeper) {
  window.wpBarsSweeper = setInterval(function () {
    if (!document.querySelector('.wp-chart')) {
      clearInterval(window.wpBarsSweeper);
      window.wpBarsSweeper = null;
      return;
    }
    document.querySelectorAll('.wp-chart g:has(> g.bargroup) > g:not([class]):empty')
      .forEach(function (g) { g.remove(); });
  }, %d);
}"""


def bars_sweeper(every_ms: int = 10_000) -> str:
    """A hidden element whose handler removes, every ``every_ms``, the empty ``<g>`` bqplot's
    ``Bars`` view leaves behind at each redraw, once per page.

    bqplot 0.13's ``Bars.draw`` removes its zero line and appends a new one in a new group,
    but never removes the old line's group: a live leaderboard gains one empty ``<g>`` per
    bar chart whenever its data changes, for as long as the page is open. Nothing else refers
    to those groups (only the ``.zeroLine`` in the newest one is used), so the sweep is safe;
    ipywidgets' ``HTML`` runs no ``<script>``, hence the ``onerror`` of an empty image.
    """
    script = html.escape(" ".join(_SWEEP_JS.split()) % every_ms, quote=True)
    return f'<img class="wp-sweeper" src="data:," alt="" hidden onerror="{script}">'
