"""How the dashboard is served: Voila's command line, the CLI, the proxy entries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from wiki_lib.config import load_settings, settings_env
from wiki_lib.dashboard import proxy
from wiki_lib.dashboard.serve import normalise_base_url, voila_argv
from wiki_lib.errors import ConfigError


def test_voila_runs_locked_down_from_this_interpreter() -> None:
    settings = load_settings(dashboard={"port": 9000, "base_url": "lab/x", "cull_idle_s": 300})
    argv = voila_argv(settings)
    assert argv[:3] == [sys.executable, "-m", "voila"]
    assert argv[3].endswith("voila_dashboards/live.ipynb")
    assert "--port=9000" in argv
    assert "--base_url=/lab/x/" in argv
    assert "--strip_sources=True" in argv
    assert "--show_tracebacks=False" in argv
    assert "--VoilaConfiguration.file_allowlist=[]" in argv
    assert "--MappingKernelManager.cull_idle_timeout=300" in argv
    assert "--MappingKernelManager.cull_connected=False" in argv
    assert not any(a.startswith("--preheat_kernel") for a in argv)
    preheated = voila_argv(load_settings(dashboard={"preheat_kernels": 2}))
    assert "--preheat_kernel=True" in preheated and "--pool_size=2" in preheated


def test_a_missing_notebook_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        voila_argv(load_settings(dashboard={"notebook": str(tmp_path / "nope.ipynb")}))


def test_base_urls_get_both_slashes() -> None:
    assert normalise_base_url("") == "/"
    assert normalise_base_url("/") == "/"
    assert normalise_base_url("/user/a/dashboard") == "/user/a/dashboard/"


def test_kernels_get_the_effective_settings() -> None:
    settings = load_settings(postgres={"port": 6000, "schema_name": "s1"})
    env = settings_env(settings, {"PATH": "/bin", "WIKI__POSTGRES__PORT": "1"})
    assert env["PATH"] == "/bin"
    assert env["WIKI__POSTGRES__PORT"] == "6000"
    assert env["WIKI__POSTGRES__SCHEMA_NAME"] == "s1"
    assert env["WIKI__POSTGRES__READER_PASSWORD"] == "reader-local-only"
    assert env["WIKI__DASHBOARD__PORT"] == "8866"


def test_cli_flags_reach_the_voila_command() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "wiki_lib.cli",
            "dashboard",
            "--dry-run",
            "--port",
            "9123",
            "--host",
            "0.0.0.0",
            "--base-url",
            "/p/",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    data = json.loads(out.stdout)
    assert "--port=9123" in data["argv"] and "--Voila.ip=0.0.0.0" in data["argv"]
    assert data["url"] == "http://127.0.0.1:9123/p/"
    helptext = subprocess.run(
        [sys.executable, "-m", "wiki_lib.cli", "dashboard", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "WIKI__DASHBOARD__PORT" in helptext and "WIKI__DASHBOARD__PREHEAT_KERNELS" in helptext


def test_proxy_entries_start_the_dashboard_and_reach_spark() -> None:
    entry = proxy.dashboard_server()
    assert entry["command"][-6:] == [
        "--port",
        "{port}",
        "--host",
        "127.0.0.1",
        "--base-url",
        "{base_url}dashboard/",
    ]
    assert entry["absolute_url"] is True
    assert Path(entry["launcher_entry"]["icon_path"]).is_file()
    spark = proxy.spark_ui_server()
    assert spark["command"] == [] and spark["port"] == 4040
    assert spark["request_headers_override"] == {"X-Forwarded-Context": "{base_url}spark-ui"}
    assert Path(spark["launcher_entry"]["icon_path"]).is_file()


def test_spark_redirects_stay_inside_the_proxy() -> None:
    response = SimpleNamespace(headers={"Location": "http://localhost:4040/spark-ui/jobs/"})
    proxy._local_redirects(response)
    assert response.headers["Location"] == "/spark-ui/jobs/"
    elsewhere = SimpleNamespace(headers={"Location": "https://example.org/x"})
    proxy._local_redirects(elsewhere)
    assert elsewhere.headers["Location"] == "https://example.org/x"


def test_entry_points_are_registered() -> None:
    from importlib.metadata import entry_points

    found = {e.name: e.value for e in entry_points(group="jupyter_serverproxy_servers")}
    assert found["dashboard"] == "wiki_lib.dashboard.proxy:dashboard_server"
    assert found["spark-ui"] == "wiki_lib.dashboard.proxy:spark_ui_server"


def test_notebook_is_thin_and_parametrised() -> None:
    import nbformat

    nb = nbformat.read(load_settings().dashboard.notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) == 2
    assert "parameters" in code[0].metadata.get("tags", [])
    params = [line for line in code[0].source.splitlines() if not line.startswith("#")]
    assert all(": " in line.split("=")[0] and "  # " in line for line in params), params
    assert len(code[1].source.splitlines()) == 2
    assert "wiki_lib.dashboard" in code[1].source
