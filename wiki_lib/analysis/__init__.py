"""What the research notebooks call: launch and record runs, evaluate them, explore the lake,
audit data quality.

* :mod:`.runs` starts a producer and a stream job on their own topic, schema and lake, watches
  them and records the run in the ``runs`` table;
* :mod:`.evaluate` measures a run (throughput, latency, lag, dead letters) and compares its
  tables with the plain-Python oracle;
* :mod:`.history` answers questions about a period from the Parquet lake;
* :mod:`.quality` audits one day and fails when a threshold is crossed.
"""

from wiki_lib.analysis import evaluate, history, plots, quality, runs

__all__ = ["evaluate", "history", "plots", "quality", "runs"]
