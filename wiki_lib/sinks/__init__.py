"""Sinks of the speed and batch layers, behind one small interface (:class:`Sink`)."""

from wiki_lib.sinks.base import Batch, BatchStats, ListSink, Sink

__all__ = ["Batch", "BatchStats", "ListSink", "Sink"]
