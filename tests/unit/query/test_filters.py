"""Filters are validated before any SQL exists: typos become clear errors."""

from __future__ import annotations

import pytest

from wiki_lib.query import Filters, QueryError


def test_values_are_normalised() -> None:
    f = Filters(wiki="enwiki", namespace=0, type=["edit", "new", "edit"], bot=False)
    assert f.wiki == ("enwiki",)
    assert f.namespace == (0,)
    assert f.type == ("edit", "new")
    assert f.dimensions == {"wiki", "namespace", "type", "bot"}
    assert Filters().dimensions == frozenset()
    assert f.without("type", "bot") == Filters(wiki="enwiki", namespace=0)
    assert f.describe() == {
        "wiki": ("enwiki",),
        "bot": False,
        "namespace": (0,),
        "type": ("edit", "new"),
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"type": "edit'; DROP TABLE x; --"},
        {"type": ["edit", 5]},
        {"namespace": "0"},
        {"namespace": [True]},
        {"namespace": 2**40},
        {"bot": "yes"},
        {"wiki": ["x" * 600]},
        {"wiki": 5},
    ],
)
def test_bad_values_are_query_errors(kwargs: dict) -> None:
    with pytest.raises(QueryError):
        Filters(**kwargs)


def test_strings_are_kept_verbatim() -> None:
    # values are bound as parameters, never checked against a pattern
    f = Filters(wiki="x'; DROP TABLE wiki_minute; --", project="%")
    assert f.wiki == ("x'; DROP TABLE wiki_minute; --",)
    assert f.project == ("%",)
