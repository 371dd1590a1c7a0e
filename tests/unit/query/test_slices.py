"""Which filters a slice of recent_changes answers (streaming/sql/V013), and at what values."""

from __future__ import annotations

import pytest

from wiki_lib.query import Filters
from wiki_lib.query.tables import PAGE_SLICE, USER_SLICE, USER_WIKI, Slice


@pytest.mark.parametrize(
    ("kept", "filters", "pins"),
    [
        (PAGE_SLICE, Filters(bot=False, namespace=0), {"namespace": 0, "is_bot": False}),
        (USER_SLICE, Filters(bot=True, namespace=[14]), {"namespace": 14, "is_bot": True}),
        (USER_WIKI, Filters(wiki="dewiki"), {"wiki": "dewiki"}),
        (USER_WIKI, Filters(wiki=["dewiki", "dewiki"]), {"wiki": "dewiki"}),  # one value
        (PAGE_SLICE, Filters(), None),
        (PAGE_SLICE, Filters(namespace=0), None),  # bot and human: two rows per page
        (PAGE_SLICE, Filters(bot=False), None),
        (PAGE_SLICE, Filters(bot=False, namespace=[0, 14]), None),
        (PAGE_SLICE, Filters(bot=False, namespace=0, wiki="dewiki"), None),
        (USER_SLICE, Filters(bot=False, namespace=0, type="edit"), None),
        (USER_WIKI, Filters(wiki=["dewiki", "enwiki"]), None),
        (USER_WIKI, Filters(project="wikipedia"), None),
    ],
)
def test_pins(kept: Slice, filters: Filters, pins: dict[str, object] | None) -> None:
    assert kept.pins(filters) == pins
