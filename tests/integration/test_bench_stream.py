"""The speed-layer benchmarks, run small on the real stack: their figures must add up.

A benchmark that miscounts is worse than none, so each run is checked against what it was
given: every produced event stored once, every paced event seen, percentiles in order.
"""

from __future__ import annotations

from typing import Any

import pytest

from wiki_lib.bench import stream as stream_bench
from wiki_lib.config import Settings
from wiki_lib.errors import ConfigError

pytestmark = pytest.mark.integration

RATE = 80.0
SECONDS = 4.0


def _ordered(figures: dict[str, Any]) -> None:
    assert figures["missing_after_30s"] == 0
    # the paced source sends RATE events a second; a few fall either side of the cut-off
    assert 0.8 * RATE * SECONDS <= figures["measured_events"] <= 1.2 * RATE * SECONDS
    assert 0 < figures["p50_s"] <= figures["p90_s"] <= figures["p99_s"] <= figures["max_s"] < 30


def test_throughput_counts_every_event_once(settings: Settings, spark: Any) -> None:
    figures = stream_bench.throughput(settings, spark, events=4_000, batch=1_500)
    assert figures["events"] == 4_000
    assert figures["rows_stored"] == 4_000
    assert figures["batches"] == 3  # 1,500 + 1,500 + 1,000
    assert figures["max_offsets_per_trigger"] == 1_500
    assert figures["events_per_s_first_to_last_commit"] > 0
    for stage in stream_bench.STAGES:
        assert figures[f"limit_{stage}_events_per_s"] > 0


def test_latency_sees_every_paced_event(settings: Settings, spark: Any) -> None:
    figures = stream_bench.latency(settings, spark, rate=RATE, seconds=SECONDS, warmup_s=2.0)
    _ordered(figures)


@pytest.mark.parametrize("stage", stream_bench.STAGES)
def test_latency_floor_sees_every_paced_event(settings: Settings, spark: Any, stage: str) -> None:
    figures = stream_bench.latency_floor(
        settings, spark, stage=stage, rate=RATE, seconds=SECONDS, warmup_s=2.0
    )
    assert figures["stage"] == stage
    _ordered(figures)


def test_latency_floor_refuses_an_unknown_stage(settings: Settings, spark: Any) -> None:
    with pytest.raises(ConfigError, match="parse_dedup"):
        stream_bench.latency_floor(settings, spark, stage="parse")
