"""``wikipulse hub``: a local JupyterHub with the Kubernetes deployment's hub configuration."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from wiki_lib.commands._common import add_command, plain_flag, setting_flag
from wiki_lib.config import Settings
from wiki_lib.hub import HUB_VALUES, PASSWORD_ENV, find_proxy, hub_options, write_config

__all__ = ["register"]


def _hub(args: argparse.Namespace, settings: Settings) -> int:
    """Write the hub's configuration, then become the JupyterHub process (it owns the proxy)."""
    options = hub_options(
        settings,
        ip=args.ip,
        port=args.port,
        values_file=Path(args.values),
        proxy_command=find_proxy(args.proxy_command or ""),
    )
    config = write_config(options)
    password = os.environ.get(PASSWORD_ENV) or secrets.token_urlsafe(12)
    shown = "from " + PASSWORD_ENV if os.environ.get(PASSWORD_ENV) else password
    print(
        f"JupyterHub at http://{args.ip}:{args.port}/ (any user name, shared password: {shown}); "
        f"config {config}",
        file=sys.stderr,
        flush=True,
    )
    os.execve(
        sys.executable,
        [sys.executable, "-m", "jupyterhub", "-f", str(config)],
        {**os.environ, PASSWORD_ENV: password},
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``hub``."""
    p = add_command(
        sub,
        "hub",
        _hub,
        "run JupyterHub locally (local spawner, shared password from "
        f"{PASSWORD_ENV} or generated) with the Kubernetes hub configuration",
    )
    setting_flag(p, "--state-dir", "stack.state_dir", "where the hub keeps its database and homes")
    plain_flag(p, "hub", "--ip", "address the hub listens on", default="127.0.0.1")
    plain_flag(p, "hub", "--port", "port the hub listens on", type=int, default=8000)
    plain_flag(p, "hub", "--values", "Zero to JupyterHub values file", default=str(HUB_VALUES))
    plain_flag(p, "hub", "--proxy-command", "configurable-http-proxy executable (default: found)")
