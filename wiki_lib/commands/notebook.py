"""``wikipulse notebook list|run`` and ``wikipulse schedule``: papermill from the shell."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from wiki_lib.commands._common import add_command, plain_flag, print_json
from wiki_lib.config import Settings
from wiki_lib.notebooks import (
    NOTEBOOKS_DIR,
    list_notebooks,
    load_schedule,
    run_notebook,
    run_schedule,
)

__all__ = ["register"]


def _list(args: argparse.Namespace, settings: Settings) -> int:
    for name, params in list_notebooks(Path(args.folder)).items():
        print(name)
        for p in params:
            print(f"    -p {p.name} ({p.type}, default {p.default})  {p.help}")
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    params = json.loads(os.environ.get("WIKIPULSE_NOTEBOOK_PARAMS", "{}"))
    params.update(dict(args.param or []))
    run = run_notebook(args.name, params, folder=Path(args.folder), reports_dir=Path(args.reports))
    print(
        f"{args.name}: ok in {run.seconds:.1f}s -> {run.output} (html: {run.html})", file=sys.stderr
    )
    print_json(run.records)
    return 0


def _schedule(args: argparse.Namespace, settings: Settings) -> int:
    results = run_schedule(
        load_schedule(Path(args.file)),
        once=args.once,
        reports_dir=Path(args.reports),
        folder=Path(args.folder),
    )
    return 0 if all(ok for _, ok in results) else 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``notebook list``, ``notebook run`` and ``schedule``."""
    nb = sub.add_parser("notebook", help="parametrised research notebooks (papermill)")
    nsub = nb.add_subparsers(dest="notebook_cmd", required=True)
    p = add_command(nsub, "list", _list, "list the notebooks with their parameters and help")
    plain_flag(p, "notebook", "--folder", "notebook folder", default=str(NOTEBOOKS_DIR))
    p = add_command(nsub, "run", _run, "run a notebook; the report lands in the reports folder")
    p.add_argument("name", help="notebook name (file stem)")
    p.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        metavar=("KEY", "VALUE"),
        help="a parameter value, converted to the declared type [env: none]",
    )
    plain_flag(p, "notebook", "--folder", "notebook folder", default=str(NOTEBOOKS_DIR))
    plain_flag(
        p, "notebook", "--reports", "folder for executed notebooks and HTML", default="reports"
    )
    p = add_command(sub, "schedule", _schedule, "run notebooks from a schedule file")
    p.add_argument("file", help="YAML: jobs: [{notebook, every: 1h, parameters: {...}}]")
    plain_flag(p, "schedule", "--once", "run every job once and exit", action="store_true")
    plain_flag(p, "schedule", "--folder", "notebook folder", default=str(NOTEBOOKS_DIR))
    plain_flag(p, "schedule", "--reports", "folder for executed notebooks", default="reports")
