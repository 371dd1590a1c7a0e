"""``wikipulse dashboard``: serve the live Voila dashboard.

The process becomes Voila (``exec``), so the pid ``wikipulse up`` records is the server's
and SIGTERM stops it directly. Kernels inherit the effective settings as ``WIKI__``
variables, flags included.
"""

from __future__ import annotations

import argparse
import os
import sys

from wiki_lib.commands._common import add_command, plain_flag, print_json, setting_flag
from wiki_lib.config import Settings, settings_env
from wiki_lib.dashboard.serve import normalise_base_url, voila_argv

__all__ = ["register"]


def _dashboard(args: argparse.Namespace, settings: Settings) -> int:
    argv = voila_argv(settings)
    env = settings_env(settings)
    if args.dry_run:
        print_json({"argv": argv, "url": _url(settings)})
        return 0
    print(f"serving the dashboard at {_url(settings)}", file=sys.stderr, flush=True)
    os.execve(argv[0], argv, env)
    return 0  # pragma: no cover - execve does not return


def _url(settings: Settings) -> str:
    dash = settings.dashboard
    host = "127.0.0.1" if dash.host in ("0.0.0.0", "::", "") else dash.host
    return f"http://{host}:{dash.port}{normalise_base_url(dash.base_url)}"


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``dashboard``."""
    p = add_command(sub, "dashboard", _dashboard, "serve the live Voila dashboard")
    setting_flag(p, "--port", "dashboard.port", "port Voila listens on", type=int)
    setting_flag(p, "--host", "dashboard.host", "interface Voila listens on")
    setting_flag(p, "--base-url", "dashboard.base_url", "URL prefix (behind a proxy)")
    setting_flag(p, "--notebook", "dashboard.notebook", "the dashboard notebook")
    setting_flag(
        p, "--refresh", "dashboard.refresh_s", "default refresh seconds (2-60)", type=float
    )
    setting_flag(
        p, "--cull-idle", "dashboard.cull_idle_s", "cull kernels idle this long (s)", type=int
    )
    setting_flag(
        p, "--preheat", "dashboard.preheat_kernels", "kernels to keep executed ahead", type=int
    )
    setting_flag(p, "--schema", "postgres.schema_name", "serving schema to show")
    plain_flag(
        p, "dashboard", "--dry-run", "print the Voila command and URL as JSON", action="store_true"
    )
