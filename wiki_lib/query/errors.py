"""The query API's error: a request it cannot answer, said in words a dashboard can show."""

from __future__ import annotations

from wiki_lib.errors import TerminalError

__all__ = ["QueryError"]


class QueryError(TerminalError):
    """A malformed or unanswerable request (bad lookback, unknown type, bucket too fine)."""
