"""Where sources keep their positions: live per stream URL, a replay per topic and recordings."""

from __future__ import annotations

from pathlib import Path

from wiki_lib.config import load_settings
from wiki_lib.producer import ResumeState, resume_state, source_from_spec


def _settings(tmp_path: Path, topic: str = "raw") -> object:
    return load_settings(
        stack={"state_dir": str(tmp_path)},
        producer={"state_file": str(tmp_path / "live.json")},
        kafka={"topic_raw": topic},
    )


def _recording(tmp_path: Path) -> Path:
    path = tmp_path / "rec.jsonl"
    path.write_text(
        "\n".join(f'{{"meta": {{"id": "e{i}", "dt": "2024-01-01T00:00:0{i}Z"}}}}' for i in range(3))
        + "\n"
    )
    return path


def test_each_kind_of_source_has_its_own_state(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    rec = _recording(tmp_path)
    live = resume_state("live", settings)
    replay = resume_state(f"replay:{rec}", settings)
    assert isinstance(live, ResumeState) and live.path == tmp_path / "live.json"
    assert isinstance(replay, ResumeState) and replay.path.parent == tmp_path
    assert replay.path != live.path
    assert resume_state(f"replay:{rec}", _settings(tmp_path, "other")).path != replay.path
    assert resume_state("synth:10", settings) is None


def test_replay_resumes_from_its_saved_position_unless_asked_not_to(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    rec = _recording(tmp_path)
    first = list(source_from_spec(f"replay:{rec}", settings, speed=0))
    resume_state(f"replay:{rec}", settings).save(first[0].position)
    assert [r.position for r in source_from_spec(f"replay:{rec}", settings, speed=0)] == [
        r.position for r in first[1:]
    ]
    again = source_from_spec(f"replay:{rec}", settings, speed=0, resume=False)
    assert len(list(again)) == 3
    assert resume_state("live", settings).load() is None, "the live position is untouched"
