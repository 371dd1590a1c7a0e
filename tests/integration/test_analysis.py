"""wiki_lib.analysis against the real stack: a recorded run, its evaluation, the lake
analyses and the data-quality audit, each checked against plain-Python recounts."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path

import pytest

from wiki_lib import db
from wiki_lib.analysis import evaluate, history, quality, runs
from wiki_lib.config import Settings
from wiki_lib.testing.oracle import deduplicated_events, load_events

CLEAN_DAY = "2024-08-22"


@pytest.fixture(scope="module")
def serving(settings: Settings) -> Settings:
    """A serving schema of its own, holding the runs table."""
    schema = f"serving_{uuid.uuid4().hex[:8]}"
    db.migrate(settings.postgres, schema)
    return settings.with_overrides(postgres={"schema_name": schema})


@pytest.fixture(scope="module")
def corpus_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "recentchange").glob("*.jsonl"))


@pytest.fixture(scope="module")
def corpus_run(serving: Settings, corpus_files: list[Path], spark: object) -> runs.RunRecord:
    spec = runs.RunSpec(
        source="replay:" + ",".join(map(str, corpus_files)),
        prefix=f"run_{uuid.uuid4().hex[:8]}",
        trigger="1 second",
    )
    seen: list[runs.RunSample] = []
    record = runs.launch(serving, spec, spark=spark, on_sample=seen.append, sample_interval_s=1)
    assert seen, "the monitor never reported"
    return record


def test_the_run_is_recorded_with_its_counts(
    serving: Settings, corpus_run: runs.RunRecord, corpus_files: list[Path]
) -> None:
    lines = load_events(corpus_files)
    stored = runs.load_run(serving, corpus_run.run_id)
    assert stored.status == "succeeded"
    assert stored.events_produced + stored.dead_letters + stored.canaries == len(lines)
    unique = len(deduplicated_events(lines))
    assert stored.rows_read == unique
    assert stored.duplicates == stored.events_produced - unique
    assert stored.rows_late == 0
    assert stored.samples and stored.samples[-1].lag == 0
    assert stored.samples[-1].processed == stored.events_produced
    assert runs.load_run(serving, "latest").run_id == corpus_run.run_id
    assert [r.run_id for r in runs.list_runs(serving)] == [corpus_run.run_id]


def test_evaluation_finds_no_difference_from_the_oracle(
    serving: Settings, corpus_run: runs.RunRecord, corpus_files: list[Path]
) -> None:
    result = evaluate.evaluate(serving, corpus_run.run_id)
    assert result.differences is not None and result.differences.empty
    unique = len(deduplicated_events(load_events(corpus_files)))
    summary = result.summary()
    assert summary["oracle_differences"] == 0
    assert summary["throughput"]["rows_read"] == unique
    assert summary["latency_s"]["count"] == unique
    assert 0 < summary["latency_s"]["p50"] <= summary["latency_s"]["max"] < 600
    assert sum(summary["dead_letters"].values()) == corpus_run.dead_letters
    assert summary["duplicates_dropped"] == corpus_run.duplicates
    assert not result.event_lag.empty


def test_a_changed_row_shows_up_as_a_difference(
    serving: Settings, corpus_run: runs.RunRecord, corpus_files: list[Path]
) -> None:
    target = corpus_run.settings(serving)
    with db.transaction(target.postgres, "admin") as conn, conn.cursor() as cur:
        cur.execute(
            f"UPDATE {target.postgres.schema_name}.traffic_minute SET events = events + 1 "
            "WHERE window_start = (SELECT min(window_start) FROM "
            f"{target.postgres.schema_name}.traffic_minute) RETURNING window_start"
        )
        (changed,) = cur.fetchone()
    try:
        diffs = evaluate.oracle_differences(target, corpus_files)
        assert diffs[["table", "column"]].values.tolist() == [["traffic_minute", "events"]]
        assert diffs["got"].iloc[0] == diffs["want"].iloc[0] + 1
    finally:
        with db.transaction(target.postgres, "admin") as conn, conn.cursor() as cur:
            cur.execute(
                f"UPDATE {target.postgres.schema_name}.traffic_minute SET events = events - 1 "
                "WHERE window_start = %s",
                (changed,),
            )


def test_history_analyses_match_a_plain_recount(
    serving: Settings, corpus_run: runs.RunRecord, corpus_files: list[Path]
) -> None:
    events = history.load_events(corpus_run.settings(serving), "2021-01-01", "2024-12-31")
    expected = deduplicated_events(load_events(corpus_files))
    assert len(events) == len(expected)

    by_hour = history.activity_by_hour_and_weekday(events)
    recount = Counter((e["event_time"].hour, e["event_time"].weekday()) for e in expected)
    assert {
        (h, d): int(by_hour.iloc[h, d]) for h in range(24) for d in range(7) if by_hour.iloc[h, d]
    } == dict(recount)

    pages = Counter(
        (e["wiki"], e["title"])
        for e in expected
        if e["type"] in ("edit", "new") and e["title"] is not None
    )
    top = history.top_pages(events, n=5)
    assert top["edits"].tolist() == sorted(pages.values(), reverse=True)[:5]
    for row in top.itertuples():
        assert pages[(row.wiki, row.title)] == row.edits

    bots = history.bot_share_over_time(events, "1D")
    assert int(bots["bot_events"].sum()) == sum(1 for e in expected if e["is_bot"])

    sizes = history.edit_size_distribution(events)
    assert int(sizes["edits"].sum()) == sum(1 for e in expected if e["type"] in ("edit", "new"))
    zero = sizes.loc[sizes["bytes"] == "[0, 1)", "edits"].item()
    assert zero == sum(
        1 for e in expected if e["type"] in ("edit", "new") and not e["length_delta"]
    )

    new = history.new_page_rate(events, "1D")
    assert int(new["new_pages"].sum()) == sum(1 for e in expected if e["type"] == "new")

    projects = history.activity_by_project_language(events, n=10_000)
    assert int(projects["events"].sum()) == len(expected)


def test_watchlist_hits_follow_the_live_rule(
    serving: Settings, corpus_run: runs.RunRecord, corpus_files: list[Path]
) -> None:
    events = history.load_events(corpus_run.settings(serving), "2021-01-01", "2024-12-31")
    expected = deduplicated_events(load_events(corpus_files))
    term = "Category"
    hits = history.watchlist_hits(events, [term, "  ", term.lower()])
    want = [
        e
        for e in expected
        if any(term.lower() in (e[f] or "").lower() for f in ("title", "user", "comment"))
    ]
    assert want and set(hits["term"]) == {term, term.lower()}
    assert (hits["term"] == term).sum() == len(want)
    by_wiki = history.hits_by(hits[hits["term"] == term], "wiki")
    assert dict(zip(by_wiki["wiki"], by_wiki["hits"], strict=True)) == dict(
        Counter(e["wiki"] for e in want)
    )


def test_quality_passes_on_a_clean_day(serving: Settings, corpus_run: runs.RunRecord) -> None:
    report = quality.audit_day(corpus_run.settings(serving), CLEAN_DAY)
    assert report.events > 2000
    assert report.passed, report.breaches
    assert report.figures["lake_duplicates"] == 0
    assert report.figures["unreconciled_minutes"] == 0
    report.check()


def _bad_day(tmp: Path, data_dir: Path) -> Path:
    """A real recorded hour with broken records and out-of-range values mixed in."""
    source = data_dir / "recentchange" / "kirajano_wiki-streams__wiki_recentchange_2021-09-10.jsonl"
    good = source.read_text().splitlines()
    bad = []
    for i, line in enumerate(good[:60]):
        event = json.loads(line)
        event["meta"]["id"] = str(uuid.uuid4())
        if i % 3 == 0:
            bad.append(line[: len(line) // 2])  # cut off: invalid JSON
        elif i % 3 == 1:
            event["type"] = "142"  # an unknown type
            bad.append(json.dumps(event))
        else:
            event["length"] = {"old": 0, "new": 9_000_000}  # larger than any page can be
            bad.append(json.dumps(event))
    path = tmp / "bad_day.jsonl"
    path.write_text("\n".join(good + bad) + "\n")
    return path


def test_quality_fails_on_a_day_with_injected_bad_data(
    serving: Settings, spark: object, tmp_path: Path, data_dir: Path
) -> None:
    spec = runs.RunSpec(
        source=f"replay:{_bad_day(tmp_path, data_dir)}",
        prefix=f"bad_{uuid.uuid4().hex[:8]}",
        trigger="availableNow",
    )
    run = runs.launch(serving, spec, spark=spark)
    assert run.dead_letters == 20
    report = quality.audit_day(run.settings(serving), "2021-09-10")
    names = {b.split()[0] for b in report.breaches}
    assert {"dead_letter_rate", "max_out_of_range_rate"} <= names, report.breaches
    assert report.conformance.query("kind == 'dead letter'")["count"].sum() == 20
    with pytest.raises(quality.DataQualityFailed, match="dead_letter_rate"):
        report.check()
