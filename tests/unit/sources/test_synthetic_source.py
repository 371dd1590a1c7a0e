"""The synthetic source: valid, unique, ordered, reproducible, and shaped like the corpus."""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from wiki_lib.events import validate
from wiki_lib.sources import DEFAULT_CORPUS, SyntheticSource, read_records
from wiki_lib.sources.synthetic import build_templates

START = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return [
        json.loads(r.data)
        for path in sorted(DEFAULT_CORPUS.glob("*.jsonl"))
        for r in read_records(path)
    ]


def test_events_are_valid_unique_and_strictly_increasing_in_time() -> None:
    source = SyntheticSource(20_000, seed=7, start=START, rate=2000)
    events = [validate(r.data) for r in source]
    assert len(events) == source.total == 20_000
    assert len({e.id for e in events}) == 20_000
    times = [e.time for e in events]
    assert all(a < b for a, b in itertools.pairwise(times))
    assert times[0] == START.timestamp()
    assert times[-1] == pytest.approx(START.timestamp() + 19_999 / 2000)


def test_timestamp_and_dt_agree_and_ids_look_like_uuids() -> None:
    for record in SyntheticSource(50, seed=1, start=START, rate=7):
        obj = json.loads(record.data)
        dt = datetime.fromisoformat(obj["meta"]["dt"])
        assert obj["timestamp"] == int(dt.timestamp())
        assert len(obj["meta"]["id"]) == 36
        assert obj["meta"]["id"][14] == "4"


def test_same_seed_and_start_give_the_same_bytes() -> None:
    first = [r.data for r in SyntheticSource(500, seed=3, start=START)]
    second = [r.data for r in SyntheticSource(500, seed=3, start=START)]
    other = [r.data for r in SyntheticSource(500, seed=4, start=START)]
    assert first == second
    assert first != other
    ids = {json.loads(d)["meta"]["id"] for d in first}
    assert ids.isdisjoint(json.loads(d)["meta"]["id"] for d in other)


def test_mix_follows_the_corpus(corpus: list[dict]) -> None:
    n = 20_000
    synthetic = [json.loads(r.data) for r in SyntheticSource(n, seed=11, start=START)]
    for key in ("type", "bot", "wiki"):
        want = Counter(e[key] for e in corpus)
        got = Counter(e[key] for e in synthetic)
        for value, count in want.most_common(3):
            assert got[value] / n == pytest.approx(count / len(corpus), abs=0.02), (key, value)
    sizes = sorted(len(json.dumps(e)) for e in synthetic)
    corpus_sizes = sorted(len(json.dumps(e)) for e in corpus)
    median = corpus_sizes[len(corpus_sizes) // 2]
    assert sizes[n // 2] == pytest.approx(median, rel=0.15)
    assert {e["user"] for e in synthetic} <= {e["user"] for e in corpus}


def test_everything_but_id_and_time_comes_from_a_corpus_event(corpus: list[dict]) -> None:
    def strip(obj: dict) -> str:
        obj = json.loads(json.dumps(obj))
        del obj["meta"]["id"], obj["meta"]["dt"], obj["timestamp"]
        return json.dumps(obj, sort_keys=True)

    known = {strip(e) for e in corpus}
    for record in SyntheticSource(300, seed=5, start=START):
        assert strip(json.loads(record.data)) in known


def test_default_start_ends_the_run_now() -> None:
    source = SyntheticSource(100, seed=1, rate=10)
    last = json.loads(list(source)[-1].data)
    age = time.time() - datetime.fromisoformat(last["meta"]["dt"]).timestamp()
    assert 0 <= age < 5


def test_pacing_and_close() -> None:
    paced = SyntheticSource(21, seed=1, start=START, rate=100, speed=1)
    started = time.monotonic()
    list(paced)
    assert time.monotonic() - started == pytest.approx(0.2, abs=0.15)
    source = SyntheticSource(None, seed=1, start=START)
    seen = 0
    for _ in source:
        seen += 1
        if seen == 10:
            source.close()
    assert 10 <= seen <= 4096 + 10


def test_templates_skip_invalid_and_canary_events(tmp_path: Path) -> None:
    good = next(read_records(sorted(DEFAULT_CORPUS.glob("*.jsonl"))[0])).data
    canary = json.loads(good)
    canary["meta"]["domain"] = "canary"
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join([good, b"{oops", json.dumps(canary).encode()]) + b"\n")
    assert len(build_templates([path])) == 1
