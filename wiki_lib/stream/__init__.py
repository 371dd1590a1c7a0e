"""The speed layer's pure logic: the event schema and the metric functions.

``schema`` says which fields of a ``mediawiki.recentchange`` event are read and as what type;
``metrics`` turns Kafka records into the contract's tables (``shared/spec/metrics.md``) and
``extra_metrics`` into the serving tables beyond it. They are free of I/O so the stream job
and the batch layer share them and cannot drift apart. ``arrow_metrics`` computes the same
tables with pyarrow for the stream's small batches; unit tests hold it equal to the Spark
functions.
"""

from __future__ import annotations

__all__ = ["arrow_metrics", "extra_metrics", "metrics", "schema"]
