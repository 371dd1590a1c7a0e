"""Parametrised notebooks run by papermill: list them, run them, record their results, schedule.

A notebook under ``notebooks/`` has one cell tagged ``parameters`` with lines like
``lookback: str = "1h"  # how far back to look``; papermill reads the names, types, defaults
and help from it. ``run_notebook`` checks the given parameters against that cell, converts
them to the declared types, executes into a timestamped report (kept when a cell fails), and
exports HTML beside it. Values a notebook passes to :func:`record` land in its outputs under
a dedicated MIME type, so tests and schedulers read results, not screenshots.
"""

from __future__ import annotations

import ast
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wiki_lib.config import REPO_ROOT
from wiki_lib.errors import ConfigError, TerminalError, WikiError

__all__ = [
    "NOTEBOOKS_DIR",
    "RECORD_MIME",
    "NotebookFailed",
    "NotebookRun",
    "Parameter",
    "ScheduleEntry",
    "list_notebooks",
    "load_schedule",
    "notebook_parameters",
    "read_records",
    "record",
    "run_notebook",
    "run_schedule",
]

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
RECORD_MIME = "application/vnd.wikipulse.record+json"


class NotebookFailed(TerminalError):
    """A cell raised; the executed notebook (with the traceback) was kept at ``path``."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class Parameter:
    """One entry of a notebook's ``parameters`` cell."""

    name: str
    type: str
    default: str
    help: str


@dataclass(frozen=True)
class NotebookRun:
    """Where a run's report is and what the notebook recorded."""

    notebook: str
    output: Path
    html: Path | None
    seconds: float
    records: dict[str, Any] = field(default_factory=dict)


def record(name: str, value: Any) -> None:
    """Publish a named result from inside a notebook (JSON-serialisable)."""
    from IPython.display import display

    display({RECORD_MIME: {name: value}, "text/plain": f"{name} = {value!r}"}, raw=True)


def read_records(path: Path) -> dict[str, Any]:
    """Every value a notebook recorded, from an executed ``.ipynb``."""
    nb = json.loads(path.read_text())
    found: dict[str, Any] = {}
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if RECORD_MIME in data:
                found.update(data[RECORD_MIME])
    return found


def _path(name: str, folder: Path) -> Path:
    path = folder / (name if name.endswith(".ipynb") else f"{name}.ipynb")
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.ipynb"))) or "none"
        raise ConfigError(f"no notebook {name!r} in {folder} (known: {known})")
    return path


def notebook_parameters(name: str, folder: Path = NOTEBOOKS_DIR) -> list[Parameter]:
    """The parameters a notebook declares, with types, defaults and help."""
    import papermill

    quiet = logging.getLogger("papermill")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # inspecting logs every notebook it opens at INFO
    try:
        found = papermill.inspect_notebook(str(_path(name, folder)))
    finally:
        quiet.setLevel(level)
    return [
        Parameter(
            p["name"],
            p.get("inferred_type_name") or "any",
            str(p.get("default")),
            p.get("help") or "",
        )
        for p in found.values()
    ]


def list_notebooks(folder: Path = NOTEBOOKS_DIR) -> dict[str, list[Parameter]]:
    """Every notebook in ``folder`` with its parameters."""
    return {p.stem: notebook_parameters(p.stem, folder) for p in sorted(folder.glob("*.ipynb"))}


def _convert(param: Parameter, raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    kind = param.type.replace(" ", "").lower()
    try:
        if kind == "str":
            return raw
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if raw.lower() not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError(raw)
            return raw.lower() in {"true", "1", "yes"}
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError) as exc:
        raise ConfigError(f"parameter {param.name} wants {param.type}, got {raw!r}") from exc


def run_notebook(
    name: str,
    parameters: dict[str, Any] | None = None,
    *,
    folder: Path = NOTEBOOKS_DIR,
    reports_dir: Path = REPO_ROOT / "reports",
    kernel: str = "python3",
    html: bool = True,
    timeout_s: int = 3600,
) -> NotebookRun:
    """Execute ``name`` with checked ``parameters`` into ``reports_dir``; raise if a cell fails."""
    import papermill

    source = _path(name, folder)
    declared = {p.name: p for p in notebook_parameters(name, folder)}
    given = parameters or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ConfigError(
            f"{name} has no parameter {', '.join(unknown)}; it takes: {', '.join(declared) or '-'}"
        )
    values = {k: _convert(declared[k], v) for k, v in given.items()}
    reports_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output = reports_dir / f"{source.stem}-{stamp}.ipynb"
    started = time.monotonic()
    failure: Exception | None = None
    try:
        papermill.execute_notebook(
            str(source),
            str(output),
            parameters=values,
            kernel_name=kernel,
            progress_bar=False,
            cwd=str(folder),
            execution_timeout=timeout_s,
        )
    except papermill.PapermillExecutionError as exc:
        failure = exc
    html_path = _export_html(output) if html and output.exists() else None
    if failure is not None:
        raise NotebookFailed(
            f"{name} failed in cell {getattr(failure, 'exec_count', '?')}: "
            f"{getattr(failure, 'ename', '')}: {getattr(failure, 'evalue', failure)}; "
            f"the executed notebook is {output}",
            output,
        ) from failure
    return NotebookRun(name, output, html_path, time.monotonic() - started, read_records(output))


def _export_html(path: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(path), as_version=4))
    target = path.with_suffix(".html")
    target.write_text(body)
    return target


@dataclass(frozen=True)
class ScheduleEntry:
    """One line of a schedule file: which notebook, with what, how often."""

    notebook: str
    every_s: float
    parameters: dict[str, Any] = field(default_factory=dict)


def _seconds(text: str | float) -> float:
    if isinstance(text, int | float):
        return float(text)
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value, unit = text.strip()[:-1], text.strip()[-1]
    if unit not in units or not value.replace(".", "", 1).isdigit():
        raise ConfigError(f"interval {text!r} is not like 30s, 15m, 1h or 1d")
    return float(value) * units[unit]


def load_schedule(path: Path) -> list[ScheduleEntry]:
    """Read a YAML schedule: ``jobs: [{notebook, every, parameters}]``."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read schedule {path}: {exc}") from exc
    entries = []
    for job in doc.get("jobs", []):
        if "notebook" not in job or "every" not in job:
            raise ConfigError(f"schedule entry {job!r} needs 'notebook' and 'every'")
        entries.append(
            ScheduleEntry(
                job["notebook"], _seconds(job["every"]), dict(job.get("parameters") or {})
            )
        )
    return entries


def run_schedule(
    entries: list[ScheduleEntry],
    *,
    once: bool = False,
    reports_dir: Path = REPO_ROOT / "reports",
    folder: Path = NOTEBOOKS_DIR,
) -> list[tuple[str, bool]]:
    """Run each entry when due (all at once first); forever, or one round with ``once``."""
    import logging

    log = logging.getLogger(__name__)
    due = {i: 0.0 for i in range(len(entries))}
    results: list[tuple[str, bool]] = []
    while True:
        now = time.monotonic()
        for i, entry in enumerate(entries):
            if due[i] > now:
                continue
            try:
                run = run_notebook(
                    entry.notebook, entry.parameters, reports_dir=reports_dir, folder=folder
                )
                log.info("%s ok in %.1fs: %s", entry.notebook, run.seconds, run.output)
                results.append((entry.notebook, True))
            except WikiError as exc:
                log.error("%s failed: %s", entry.notebook, exc)
                results.append((entry.notebook, False))
            due[i] = now + entry.every_s
        if once:
            return results
        time.sleep(max(1.0, min(due.values()) - time.monotonic()))
