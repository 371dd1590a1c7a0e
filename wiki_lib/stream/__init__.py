"""The speed layer's pure logic: the event schema and the metric functions.

``schema`` says which fields of a ``mediawiki.recentchange`` event are read and as what type;
``metrics`` turns Kafka records into the contract's tables (``shared/spec/metrics.md``). Both
are free of I/O so the stream job and the batch layer share them and cannot drift apart.
"""

from __future__ import annotations

__all__ = ["metrics", "schema"]
