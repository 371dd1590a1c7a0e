"""How many records a micro-batch spans, read from an offset log laid out as Spark writes it."""

from __future__ import annotations

import json
from pathlib import Path

from wiki_lib.stream.job import records_in_batch

_META = {"batchWatermarkMs": 0, "batchTimestampMs": 1796058294675, "conf": {}}


def _checkpoint(tmp_path: Path, initial: dict, *ends: dict) -> Path:
    """A checkpoint with the source's initial offsets and the end offsets of each batch."""
    (tmp_path / "sources" / "0").mkdir(parents=True)
    # The Kafka source's initial offsets: a NUL byte, the version line, the offsets.
    (tmp_path / "sources" / "0" / "0").write_text("\x00v1\n" + json.dumps(initial))
    (tmp_path / "offsets").mkdir()
    for batch_id, end in enumerate(ends):
        lines = ["v1", json.dumps(_META), json.dumps(end)]
        (tmp_path / "offsets" / str(batch_id)).write_text("\n".join(lines))
    return tmp_path


def test_each_batch_spans_its_end_less_the_end_before(tmp_path: Path) -> None:
    ckpt = _checkpoint(
        tmp_path,
        {"raw": {"0": 10, "1": 0}},
        {"raw": {"0": 110, "1": 50}},
        {"raw": {"0": 110, "1": 75}},
    )
    assert records_in_batch(ckpt, 0) == 150
    assert records_in_batch(ckpt, 1) == 25


def test_an_unreadable_or_unknown_range_says_nothing(tmp_path: Path) -> None:
    ckpt = _checkpoint(
        tmp_path,
        {"raw": {"0": 0}},
        {"raw": {"0": 5, "1": 9}},  # a partition that has no start
        {"raw": {"0": 3, "1": 9}},  # an end before its start
    )
    (ckpt / "offsets" / "2").write_text("v1\n{}\n[1, 2]")
    (ckpt / "offsets" / "3").write_text("")
    assert records_in_batch(ckpt, 0) is None
    assert records_in_batch(ckpt, 1) is None
    assert records_in_batch(ckpt, 2) is None
    assert records_in_batch(ckpt, 3) is None
    assert records_in_batch(ckpt, 9) is None
    assert records_in_batch(tmp_path / "absent", 0) is None
