"""The ``wikipulse`` command line: a thin shell over :mod:`wiki_lib`.

Settings are read here, once, from the environment and the flags; every handler receives
them as an argument. Errors of the platform print one line and set the exit code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from wiki_lib.commands import (
    alerts,
    bench,
    dashboard,
    hub,
    ingest,
    notebook,
    platform,
    run,
    serving,
    stream,
)
from wiki_lib.commands._common import fail, settings_from_args
from wiki_lib.errors import WikiError

__all__ = ["build_parser", "main"]

_MODULES = [platform, run, ingest, stream, serving, alerts, dashboard, notebook, bench, hub]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="wikipulse",
        description="Research platform for Wikimedia's live edit stream.",
        epilog="Settings come from WIKI__SECTION__FIELD environment variables; "
        "`wikipulse config show` prints them.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in _MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    try:
        settings = settings_from_args(args)
        return int(args.handler(args, settings))
    except WikiError as exc:
        return fail(exc)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
