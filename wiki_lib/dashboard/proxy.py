"""jupyter-server-proxy entries: the live dashboard and Spark's UI inside JupyterLab.

Registered in ``pyproject.toml`` under ``jupyter_serverproxy_servers``. Each function runs
in the Jupyter server when it starts (an edge, so it reads the settings) and returns the
entry's configuration:

* ``dashboard`` starts ``wikipulse dashboard`` on a port the proxy picks, under the proxy's
  own prefix (``absolute_url``), so Voila's pages, assets and kernel websockets all resolve;
  the launcher shows it with its icon.
* ``spark-ui`` proxies to a Spark driver's UI that is already running
  (``spark.ui_port``). Spark builds its links from ``X-Forwarded-Context``, and the absolute
  redirects it still sends are cut back to paths so they stay inside the proxy.
"""

from __future__ import annotations

import re
import sys
from importlib import resources
from typing import Any

from wiki_lib.config import load_settings

__all__ = ["DASHBOARD_ENTRY", "SPARK_ENTRY", "dashboard_server", "spark_ui_server"]

DASHBOARD_ENTRY = "dashboard"
"""Name of the dashboard entry, hence its path: ``<lab base url>/dashboard/``."""
SPARK_ENTRY = "spark-ui"
"""Name of the Spark UI entry: ``<lab base url>/spark-ui/``."""

_LOCAL_ORIGIN = re.compile(r"^https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?(?=/)")


def _icon(name: str) -> str:
    return str(resources.files("wiki_lib.dashboard").joinpath("icons", name))


def dashboard_server() -> dict[str, Any]:
    """The proxy entry that starts the live dashboard on demand."""
    return {
        "command": [
            sys.executable,
            "-m",
            "wiki_lib.cli",
            "dashboard",
            "--port",
            "{port}",
            "--host",
            "127.0.0.1",
            "--base-url",
            "{base_url}" + DASHBOARD_ENTRY + "/",
        ],
        "absolute_url": True,
        "timeout": 120,
        "new_browser_tab": True,
        "launcher_entry": {
            "title": "wikipulse live",
            "icon_path": _icon("wikipulse.svg"),
            "category": "Notebook",
        },
    }


def _local_redirects(response: Any) -> None:
    """Turn ``Location: http://localhost:4040/x`` into ``/x`` (Spark redirects absolutely)."""
    location = response.headers.get("Location")
    if location:
        response.headers["Location"] = _LOCAL_ORIGIN.sub("", location)


def spark_ui_server() -> dict[str, Any]:
    """The proxy entry for the UI of the Spark driver on ``spark.ui_port``."""
    settings = load_settings()
    return {
        "command": [],
        "port": settings.spark.ui_port,
        "absolute_url": False,
        "request_headers_override": {"X-Forwarded-Context": "{base_url}" + SPARK_ENTRY},
        "rewrite_response": _local_redirects,
        "launcher_entry": {
            "title": "Spark UI",
            "icon_path": _icon("spark.svg"),
            "category": "Notebook",
        },
    }
