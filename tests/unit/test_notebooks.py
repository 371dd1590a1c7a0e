"""papermill plumbing: parameters checked and converted, results recorded, failures kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from wiki_lib.errors import ConfigError
from wiki_lib.notebooks import (
    NotebookFailed,
    list_notebooks,
    load_schedule,
    read_records,
    run_notebook,
    run_schedule,
)


def _notebook(folder: Path, name: str, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        "count: int = 3  # how many squares\n"
        'label: str = "x"  # a name\n'
        "scale: float = 1.5  # factor"
    )
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(
        nbs,
        "squares",
        "from wiki_lib.notebooks import record\n"
        "record('squares', [i * i for i in range(count)])\nrecord('label', label * 2)\n"
        "record('scaled', scale * count)",
    )
    _notebook(nbs, "broken", "raise RuntimeError('cell exploded on purpose')")
    return nbs


def test_list_shows_types_defaults_and_help(folder: Path) -> None:
    found = list_notebooks(folder)
    assert set(found) == {"squares", "broken"}
    params = {p.name: p for p in found["squares"]}
    assert params["count"].type == "int" and params["count"].default == "3"
    assert params["count"].help == "how many squares"


def test_run_converts_parameters_and_reads_records(folder: Path, tmp_path: Path) -> None:
    run = run_notebook(
        "squares",
        {"count": "4", "label": "ab", "scale": "0.5"},
        folder=folder,
        reports_dir=tmp_path / "reports",
    )
    assert run.records == {"squares": [0, 1, 4, 9], "label": "abab", "scaled": 2.0}
    assert run.output.exists() and run.html is not None and run.html.exists()
    assert read_records(run.output) == run.records


def test_unknown_parameter_and_bad_type_are_clear_errors(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no parameter colour"):
        run_notebook("squares", {"colour": "red"}, folder=folder, reports_dir=tmp_path)
    with pytest.raises(ConfigError, match="count wants int"):
        run_notebook("squares", {"count": "many"}, folder=folder, reports_dir=tmp_path)
    with pytest.raises(ConfigError, match="no notebook 'nope'"):
        run_notebook("nope", {}, folder=folder, reports_dir=tmp_path)


def test_failing_cell_keeps_the_executed_notebook(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(NotebookFailed, match="cell exploded on purpose") as info:
        run_notebook("broken", {}, folder=folder, reports_dir=tmp_path / "reports")
    kept = json.loads(info.value.path.read_text())
    assert "cell exploded on purpose" in json.dumps(kept)
    assert info.value.path.with_suffix(".html").exists()


def test_cli_exit_codes(folder: Path, tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "wiki_lib.cli",
                "notebook",
                "run",
                *args,
                "--folder",
                str(folder),
                "--reports",
                str(tmp_path / "r"),
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ},
            timeout=300,
        )

    ok = cli("squares", "-p", "count", "2")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["squares"] == [0, 1]
    unknown = cli("squares", "-p", "colour", "red")
    assert unknown.returncode == 2 and "no parameter colour" in unknown.stderr
    failed = cli("broken")
    assert failed.returncode == 2 and "cell exploded" in failed.stderr
    assert list((tmp_path / "r").glob("broken-*.ipynb"))


def test_schedule_file_runs_each_job(folder: Path, tmp_path: Path) -> None:
    schedule = tmp_path / "schedule.yaml"
    schedule.write_text(
        "jobs:\n  - notebook: squares\n    every: 15m\n    parameters: {count: 2}\n"
        "  - notebook: broken\n    every: 1h\n"
    )
    entries = load_schedule(schedule)
    assert [(e.notebook, e.every_s) for e in entries] == [("squares", 900.0), ("broken", 3600.0)]
    assert run_schedule(entries, once=True, folder=folder, reports_dir=tmp_path / "r") == [
        ("squares", True),
        ("broken", False),
    ]
    schedule.write_text("jobs:\n  - notebook: squares\n    every: often\n")
    with pytest.raises(ConfigError, match="interval"):
        load_schedule(schedule)
