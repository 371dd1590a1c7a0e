"""Shared plumbing for CLI subcommands: flags with environment fallbacks, settings, output.

Two kinds of flags exist. A *setting flag* maps onto a field of :class:`Settings` and falls
back to that field's ``WIKI__SECTION__FIELD`` variable. A *plain flag* belongs to one command
and falls back to ``WIKIPULSE_<COMMAND>_<FLAG>``. Either way ``--help`` names the variable, so
Kubernetes manifests can set exactly what the CLI documents.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from wiki_lib.config import Settings, load_settings
from wiki_lib.errors import WikiError

__all__ = [
    "CommandFn",
    "add_command",
    "fail",
    "plain_flag",
    "print_json",
    "setting_flag",
    "settings_from_args",
]

CommandFn = Callable[[argparse.Namespace, Settings], int]
_SETTING_DEST_PREFIX = "setting__"


def setting_flag(
    parser: argparse.ArgumentParser, flag: str, path: str, help_text: str, **kwargs: Any
) -> None:
    """Add ``flag`` that overrides the setting ``section.field`` (env ``WIKI__SECTION__FIELD``)."""
    section, field = path.split(".")
    env = f"WIKI__{section.upper()}__{field.upper()}"
    parser.add_argument(
        flag,
        dest=f"{_SETTING_DEST_PREFIX}{section}__{field}",
        default=None,
        metavar=field.upper(),
        help=f"{help_text} [env: {env}]",
        **kwargs,
    )


def plain_flag(
    parser: argparse.ArgumentParser, command: str, flag: str, help_text: str, **kwargs: Any
) -> None:
    """Add a command-specific ``flag`` whose default comes from ``WIKIPULSE_<COMMAND>_<FLAG>``."""
    env = "WIKIPULSE_" + f"{command}_{flag.lstrip('-')}".upper().replace("-", "_")
    default = kwargs.pop("default", None)
    action = kwargs.get("action")
    raw = os.environ.get(env)
    if raw is not None:
        if action == "store_true":
            default = raw.strip().lower() in {"1", "true", "yes", "on"}
        else:
            conv = kwargs.get("type", str)
            default = conv(raw)
    shown = f" (default: {default})" if default not in (None, False) else ""
    parser.add_argument(flag, default=default, help=f"{help_text}{shown} [env: {env}]", **kwargs)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by whichever setting flags were given."""
    overrides: dict[str, dict[str, Any]] = {}
    for dest, value in vars(args).items():
        if dest.startswith(_SETTING_DEST_PREFIX) and value is not None:
            section, field = dest[len(_SETTING_DEST_PREFIX) :].split("__", 1)
            overrides.setdefault(section, {})[field] = value
    base = load_settings()
    return base.with_overrides(**overrides) if overrides else base


def add_command(
    sub: argparse._SubParsersAction, name: str, fn: CommandFn, help_text: str
) -> argparse.ArgumentParser:
    """Register a subcommand whose handler gets ``(args, settings)`` and returns an exit code."""
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=fn)
    return parser


def print_json(data: Any) -> None:
    """Print machine-readable output (one JSON document) to stdout."""
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def fail(exc: WikiError) -> int:
    """Report a wikipulse error in one line on stderr; the exit code says terminal (2) or not."""
    from wiki_lib.errors import TerminalError

    print(f"wikipulse: error: {exc}", file=sys.stderr)
    return 2 if isinstance(exc, TerminalError) else 1
