"""The one small interface every sink of the speed and batch layers implements.

A micro-batch arrives as a :class:`Batch`: Arrow tables computed by the metric functions
plus the batch's events, tagged with the streaming batch id. Writing must be idempotent per
batch id, because Spark replays the last batch after a crash: ``committed`` tells the job a
batch already landed, and ``write`` of a landed batch changes nothing.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Batch", "BatchStats", "ListSink", "Sink"]


@dataclass(frozen=True)
class BatchStats:
    """The bookkeeping of one micro-batch, as ``pipeline_progress`` records it."""

    rows_read: int
    rows_late: int
    duplicates_dropped: int
    rows_invalid: int
    canaries_dropped: int
    watermark: datetime | None
    max_event_time: datetime | None


@dataclass(frozen=True)
class Batch:
    """One micro-batch: per-table partial results, the batch's events, its bookkeeping."""

    query_name: str
    batch_id: int
    tables: Mapping[str, pa.Table]
    events: pa.Table | Any | None
    """The batch's events for the lake: an Arrow table, or a Spark DataFrame of them."""
    stats: BatchStats
    quarantine: pa.Table | None = None
    started_at: datetime | None = None
    extra: Mapping[str, object] = field(default_factory=dict)


class Sink(abc.ABC):
    """A named destination: ``setup`` once, ``write`` each batch, ``close`` at the end."""

    name: str = "sink"

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Prepare connections or folders; called once before the first batch."""

    @abc.abstractmethod
    def committed(self, query_name: str, batch_id: int) -> bool:
        """Whether this batch already landed here (so a replay may skip it)."""

    @abc.abstractmethod
    def write(self, batch: Batch) -> int:
        """Write the batch atomically and idempotently; return the rows written."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; called once at the end (also after errors)."""


class ListSink(Sink):
    """A sink that keeps batches in memory: for notebooks and tests of one's own flow."""

    name = "list"

    def __init__(self) -> None:
        self.batches: list[Batch] = []

    def committed(self, query_name: str, batch_id: int) -> bool:
        """Whether a batch with that id was kept already."""
        return any(b.query_name == query_name and b.batch_id == batch_id for b in self.batches)

    def write(self, batch: Batch) -> int:
        """Keep the batch unless it was kept already."""
        if self.committed(batch.query_name, batch.batch_id):
            return 0
        self.batches.append(batch)
        return sum(t.num_rows for t in batch.tables.values())
