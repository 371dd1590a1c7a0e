"""The serving layer's read path: tested query functions over PostgreSQL, as the reader role.

Dashboards and notebooks call these instead of writing SQL::

    from wiki_lib import load_settings, query

    with query.connect(load_settings()) as reader:
        query.kpis(reader, "15m")
        query.top_pages(reader, "24h", filters=query.Filters(wiki="dewiki"), n=20)
        query.watchlist(reader, ["Olympics", "Paris"], "1h")

Every function returns a pandas DataFrame with documented columns; see :mod:`.api`.
"""

from wiki_lib.query.api import (
    QUERIES,
    actions,
    additions_deletions,
    bot_human,
    edits_per_user,
    kpis,
    minor_major,
    namespaces,
    open_alerts,
    pipeline_health,
    recent_changes,
    top_languages,
    top_pages,
    top_projects,
    top_users,
    top_wikis,
    traffic,
    watchlist,
)
from wiki_lib.query.errors import QueryError
from wiki_lib.query.filters import Filters
from wiki_lib.query.reader import Reader, connect
from wiki_lib.query.window import Window, make_window

__all__ = [
    "QUERIES",
    "Filters",
    "QueryError",
    "Reader",
    "Window",
    "actions",
    "additions_deletions",
    "bot_human",
    "connect",
    "edits_per_user",
    "kpis",
    "make_window",
    "minor_major",
    "namespaces",
    "open_alerts",
    "pipeline_health",
    "recent_changes",
    "top_languages",
    "top_pages",
    "top_projects",
    "top_users",
    "top_wikis",
    "traffic",
    "watchlist",
]
