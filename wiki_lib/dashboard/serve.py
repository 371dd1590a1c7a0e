"""How Voila is started for the dashboard: its command line and its kernels' environment.

Kept apart from the CLI so the same command serves ``wikipulse dashboard``, the
jupyter-server-proxy entry in JupyterLab and the tests. Voila runs from this interpreter
(``sys.executable -m voila``), so its kernels import the same ``wiki_lib``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from wiki_lib.config import Settings
from wiki_lib.errors import ConfigError

__all__ = ["FRONTEND_EXTENSIONS", "normalise_base_url", "voila_argv"]

FRONTEND_EXTENSIONS = (
    "@jupyter-widgets/jupyterlab-manager",
    "@voila-dashboards/widgets-manager8",
    "bqplot",
    "bqscales",
)
"""The JupyterLab extensions the page loads: widgets and bqplot; others only cost time."""


def normalise_base_url(base_url: str) -> str:
    """``"wikipulse"`` -> ``"/wikipulse/"``: Voila wants a leading and a trailing slash."""
    stripped = base_url.strip().strip("/")
    return f"/{stripped}/" if stripped else "/"


def voila_argv(settings: Settings, *, notebook: Path | None = None) -> list[str]:
    """The full Voila command for the dashboard settings.

    Sources are stripped and no file next to the notebook is served (an empty allowlist);
    tracebacks stay in the server log. Idle kernels are culled; with a page open, the page's
    own clock keeps its kernel busy, so only abandoned kernels go.

    Voila streams its page, so the ``_xsrf`` cookie its own unload handler needs is never
    set and the kernel shutdown it posts when a tab closes is refused. The XSRF check guards
    authenticated sessions; this server has none (anyone who can load the page can post to
    it, and kernels are named by random UUIDs), so it is switched off and tabs that close
    release their kernels at once rather than at the next cull.
    """
    dash = settings.dashboard
    path = (notebook or dash.notebook).resolve()
    if not path.is_file():
        raise ConfigError(f"dashboard notebook {path} does not exist (WIKI__DASHBOARD__NOTEBOOK)")
    argv = [
        sys.executable,
        "-m",
        "voila",
        str(path),
        "--no-browser",
        f"--port={dash.port}",
        f"--Voila.ip={dash.host}",
        f"--base_url={normalise_base_url(dash.base_url)}",
        "--strip_sources=True",
        "--show_tracebacks=False",
        "--VoilaConfiguration.file_allowlist=[]",
        f"--VoilaConfiguration.extension_allowlist={list(FRONTEND_EXTENSIONS)}",
        f"--MappingKernelManager.cull_idle_timeout={dash.cull_idle_s}",
        f"--MappingKernelManager.cull_interval={dash.cull_interval_s}",
        f"--MappingKernelManager.cull_connected={dash.cull_connected}",
        "--MappingKernelManager.cull_busy=False",
        "--Voila.tornado_settings={'disable_check_xsrf': True}",
    ]
    if dash.preheat_kernels:
        argv += ["--preheat_kernel=True", f"--pool_size={dash.preheat_kernels}"]
    return argv
