"""The research notebooks executed by papermill against the real stack, as CI runs them.

Each notebook runs in its own kernel with the test stack's settings in its environment; the
assertions read what it recorded (``wiki_lib.notebooks.record``) and the ``runs`` table, and
compare them with plain-Python recounts of the corpus.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wiki_lib import db
from wiki_lib.analysis import runs
from wiki_lib.config import Settings, settings_env
from wiki_lib.dashboard.watchlist import save_terms
from wiki_lib.notebooks import NotebookFailed, read_records, run_notebook
from wiki_lib.testing.oracle import deduplicated_events, load_events

FIRST, LAST = "2021-08-27", "2024-08-22"


@pytest.fixture(scope="module")
def serving(settings: Settings) -> Iterator[Settings]:
    """A serving schema of its own, exported to the notebooks' kernels via WIKI__ variables."""
    schema = f"nb_{uuid.uuid4().hex[:8]}"
    db.migrate(settings.postgres, schema)
    serving = settings.with_overrides(postgres={"schema_name": schema})
    with pytest.MonkeyPatch.context() as patch:
        for key, value in settings_env(serving).items():
            if key.startswith("WIKI__"):
                patch.setenv(key, value)
        yield serving


@pytest.fixture(scope="module")
def corpus_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "recentchange").glob("*.jsonl"))


@pytest.fixture(scope="module")
def expected(corpus_files: list[Path]) -> list[dict[str, Any]]:
    return deduplicated_events(load_events(corpus_files))


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reports")


@pytest.fixture(scope="module")
def launched(serving: Settings, corpus_files: list[Path], reports: Path) -> dict[str, Any]:
    run = run_notebook(
        "launch_pipeline",
        {
            "source": "replay:" + ",".join(map(str, corpus_files)),
            "trigger": "1 second",
            "prefix": f"nbrun_{uuid.uuid4().hex[:8]}",
        },
        reports_dir=reports,
    )
    assert run.html is not None and run.html.stat().st_size > 0
    return run.records


def test_launch_pipeline_records_the_run(
    serving: Settings, launched: dict[str, Any], corpus_files: list[Path], expected: list
) -> None:
    summary = launched["run"]
    assert summary["status"] == "succeeded"
    assert summary["events_produced"] + summary["dead_letters"] + summary["canaries"] == len(
        load_events(corpus_files)
    )
    assert summary["rows_read"] == len(expected)
    stored = runs.load_run(serving, launched["run_id"])
    assert stored.status == "succeeded" and stored.rows_read == len(expected)
    assert stored.samples and stored.samples[-1].lag == 0
    assert stored.parameters["trigger"] == "1 second"


def test_evaluate_pipeline_reports_no_difference_from_the_oracle(
    launched: dict[str, Any], reports: Path, expected: list
) -> None:
    run = run_notebook("evaluate_pipeline", {"run_id": launched["run_id"]}, reports_dir=reports)
    evaluation = run.records["evaluation"]
    assert evaluation["run_id"] == launched["run_id"]
    assert evaluation["oracle_differences"] == 0
    assert evaluation["throughput"]["rows_read"] == len(expected)
    assert evaluation["latency_s"]["count"] == len(expected)
    assert evaluation["latency_s"]["p50"] > 0
    assert sum(evaluation["dead_letters"].values()) == launched["run"]["dead_letters"]
    assert evaluation["duplicates_dropped"] == launched["run"]["duplicates"]


def test_evaluate_pipeline_on_the_live_platform(
    serving: Settings, launched: dict[str, Any], reports: Path
) -> None:
    """run_id "" (what the hourly CronJob passes) evaluates the platform the settings name;
    here the platform is the run's pipeline, so the figures must be the run's."""
    stored = runs.load_run(serving, launched["run_id"])
    target = stored.settings(serving)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in settings_env(target).items():
            if key.startswith("WIKI__"):
                patch.setenv(key, value)
        run = run_notebook("evaluate_pipeline", {"run_id": ""}, reports_dir=reports)
    evaluation = run.records["evaluation"]
    assert evaluation["run_id"] is None and evaluation["oracle_differences"] is None
    assert evaluation["throughput"]["rows_read"] == stored.rows_read
    assert evaluation["latency_s"]["count"] == stored.rows_read
    assert sum(evaluation["dead_letters"].values()) == stored.dead_letters
    assert evaluation["max_kafka_lag"] is None


def test_explore_history_counts_match_a_recount(
    launched: dict[str, Any], reports: Path, expected: list
) -> None:
    run = run_notebook(
        "explore_history",
        {"run_id": launched["run_id"], "first_day": FIRST, "last_day": LAST, "freq": "1D"},
        reports_dir=reports,
    )
    got = run.records
    assert got["events"] == len(expected)
    assert sum(got["events_by_weekday"].values()) == len(expected)
    weekdays = Counter(e["event_time"].weekday() for e in expected)
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    assert got["events_by_weekday"] == {names[d]: weekdays[d] for d in range(7)}
    assert got["bot_events"] == sum(1 for e in expected if e["is_bot"])
    assert got["new_pages"] == sum(1 for e in expected if e["type"] == "new")
    edits = Counter(
        (e["wiki"], e["title"])
        for e in expected
        if e["type"] in ("edit", "new") and e["title"] is not None
    )
    top = got["top_pages"][0]
    assert top["edits"] == max(edits.values()) == edits[(top["wiki"], top["title"])]
    assert sum(got["edit_sizes"].values()) == sum(edits.values())


def test_watchlist_report_uses_the_saved_terms(
    serving: Settings, launched: dict[str, Any], reports: Path, expected: list
) -> None:
    save_terms(serving, ["Category"], schema=serving.postgres.schema_name, by="test")
    run = run_notebook(
        "watchlist_report",
        {"run_id": launched["run_id"], "first_day": FIRST, "last_day": LAST},
        reports_dir=reports,
    )
    want = [
        e
        for e in expected
        if any("category" in (e[f] or "").lower() for f in ("title", "user", "comment"))
    ]
    assert run.records["terms"] == ["Category"]
    assert run.records["hits"] == len(want) > 0
    wikis = Counter(e["wiki"] for e in want)
    first = run.records["hits_by_wiki"][0]
    assert first["hits"] == max(wikis.values()) == wikis[first["wiki"]]


def test_data_quality_passes_on_a_clean_day(launched: dict[str, Any], reports: Path) -> None:
    run = run_notebook(
        "data_quality", {"run_id": launched["run_id"], "day": LAST}, reports_dir=reports
    )
    verdict = run.records["quality"]
    assert verdict["passed"] and verdict["breaches"] == []
    assert verdict["events"] > 2000
    assert verdict["figures"]["unreconciled_minutes"] == 0


def test_data_quality_fails_on_injected_bad_data(
    serving: Settings, spark: object, data_dir: Path, reports: Path, tmp_path: Path
) -> None:
    source = data_dir / "recentchange" / "kirajano_wiki-streams__wiki_recentchange_2021-09-10.jsonl"
    lines = source.read_text().splitlines()
    broken = [line[: len(line) // 3] for line in lines[:30]]  # cut-off JSON: dead letters
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines + broken) + "\n")
    run = runs.launch(
        serving,
        runs.RunSpec(
            source=f"replay:{path}", prefix=f"bad_{uuid.uuid4().hex[:8]}", trigger="availableNow"
        ),
        spark=spark,
    )
    assert run.dead_letters == 30
    with pytest.raises(NotebookFailed, match="DataQualityFailed") as failed:
        run_notebook(
            "data_quality", {"run_id": run.run_id, "day": "2021-09-10"}, reports_dir=reports
        )
    verdict = read_records(failed.value.path)["quality"]
    assert not verdict["passed"]
    assert any(b.startswith("dead_letter_rate") for b in verdict["breaches"])


def test_batch_layer_finds_speed_and_batch_equal(
    launched: dict[str, Any], reports: Path, expected: list
) -> None:
    run = run_notebook(
        "batch_layer", {"run_id": launched["run_id"], "day": LAST}, reports_dir=reports
    )
    batch = run.records["batch"]
    assert batch["day"] == LAST
    assert batch["lake_events"] == sum(
        1 for e in expected if e["event_time"].date().isoformat() == LAST
    )
    assert batch["late_events"] == 0
    changed = {
        name: t
        for name, t in batch["tables"].items()
        if t["only_speed"] or t["only_batch"] or t["changed"]
    }
    assert changed == {}


def _count(settings: Settings, table: str) -> int:
    with db.transaction(settings.postgres, "reader") as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {settings.postgres.schema_name}.{table}")
        return int(cur.fetchone()[0])


def test_retention_rolls_up_then_deletes_what_is_past_its_horizon(
    serving: Settings, launched: dict[str, Any], reports: Path
) -> None:
    """Runs last: the corpus is years old, so every minute row is past its retention."""
    target = runs.load_run(serving, launched["run_id"]).settings(serving)
    minutes = _count(target, "traffic_minute")
    assert minutes > 0
    run = run_notebook(
        "retention", {"run_id": launched["run_id"], "compact": True}, reports_dir=reports
    )
    report = run.records["maintenance"]
    assert report["rolled"] is not None
    # Only the newest hour stays: the speed layer could still change it, so it is not rolled up.
    with db.transaction(target.postgres, "reader") as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*), count(DISTINCT date_trunc('hour', window_start)) "
            f"FROM {target.postgres.schema_name}.traffic_minute"
        )
        kept, hours = cur.fetchone()
    assert hours == 1
    assert report["deleted"]["traffic_minute"] == minutes - kept
    assert report["compaction"]["partitions"] >= 0
