"""Inside Jupyter: the jupyter-server-proxy entries open the dashboard and Spark's UI.

A real Jupyter server (the one JupyterLab runs on) under a base URL, with this package's
entry points; the dashboard process is started by the proxy on first request.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from dashtools import (
    ARTIFACTS,
    FIRST_PAINT_S,
    screenshot,
    status,
    wait_for,
)

from wiki_lib.bench.dashboard import CHROMIUM, CHROMIUM_ARGS
from wiki_lib.config import Settings, settings_env
from wiki_lib.stack._proc import free_port, port_open

pytestmark = pytest.mark.integration

BASE = "/lab-test/"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@pytest.fixture
def lab(settings: Settings, pg_schema: str, tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    """A token-less Jupyter server on a free port under ``BASE``, for an empty schema."""
    served = settings.with_overrides(
        postgres={"schema_name": pg_schema},
        spark={"ui_port": free_port()},
        dashboard={"refresh_s": 2},
    )
    port = free_port()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / "jupyter-server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter",
                "server",
                "--no-browser",
                "--allow-root",
                f"--port={port}",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.base_url={BASE}",
                "--IdentityProvider.token=",
                "--ServerApp.password=",
                f"--ServerApp.root_dir={tmp_path}",
            ],
            env=settings_env(served),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: port_open(port) or proc.poll() is not None, 120, "Jupyter server")
        assert proc.poll() is None, log_path.read_text()[-2000:]
        yield f"http://127.0.0.1:{port}{BASE}", served
    finally:
        _stop(proc)


def _get(url: str, timeout: float = 150) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.geturl(), response.read().decode("utf-8", "replace")


def test_launcher_entries_are_offered(lab: tuple[str, Settings]) -> None:
    url, _ = lab
    code, _, body = _get(f"{url}server-proxy/servers-info")
    assert code == 200
    servers = {s["name"]: s for s in json.loads(body)["server_processes"]}
    assert servers["dashboard"]["launcher_entry"]["title"] == "wikipulse live"
    assert servers["spark-ui"]["launcher_entry"]["title"] == "Spark UI"
    for name in ("dashboard", "spark-ui"):
        icon = servers[name]["launcher_entry"]["icon_url"]
        assert icon, name
        code, _, svg = _get(f"http://{url.split('/')[2]}{icon}")
        assert code == 200 and "<svg" in svg


def test_the_launcher_url_serves_the_live_dashboard(lab: tuple[str, Settings]) -> None:
    from playwright.sync_api import sync_playwright

    url, _ = lab
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}dashboard/?refresh=2", timeout=FIRST_PAINT_S * 1000)
            wait_for(lambda: status(page), FIRST_PAINT_S, "the dashboard through the proxy")
            assert status(page)["status"] == "waiting"
            assert page.locator(".wp-tile").count() == 7
            first = int(status(page)["round"])
            # refreshes need the kernel's websocket, which also goes through the proxy
            wait_for(lambda: int(status(page)["round"]) > first + 1, 60, "refreshes via proxy")
            screenshot(page, "through-jupyter-server-proxy")
            assert errors == []
        finally:
            browser.close()


@pytest.fixture
def spark_driver(lab: tuple[str, Settings]) -> Iterator[int]:
    """A Spark driver with its UI on the port the lab's ``spark-ui`` entry proxies to."""
    _, served = lab
    code = (
        "import time\n"
        "from wiki_lib import load_settings\n"
        "from wiki_lib.spark import session\n"
        "session(load_settings(), app_name='proxy-test')\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=settings_env(served),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port = served.spark.ui_port
        wait_for(lambda: port_open(port) or proc.poll() is not None, 180, "the Spark UI")
        assert proc.poll() is None, "the Spark driver exited"
        yield port
    finally:
        _stop(proc)


def test_spark_ui_is_reachable_through_the_proxy(
    lab: tuple[str, Settings], spark_driver: int
) -> None:
    url, _ = lab

    def ready() -> tuple[int, str, str] | None:
        try:
            answer = _get(f"{url}spark-ui/", timeout=30)
        except OSError:
            return None
        return answer if "Spark Jobs" in answer[2] else None  # not "Spark is starting up"

    code, final, body = wait_for(ready, 180, "the Spark UI through the proxy", interval=2)
    assert code == 200
    assert final.startswith(f"{url}spark-ui/"), final
    assert "proxy-test" in body
    assert f'href="{BASE}spark-ui/' in body, "links must stay inside the proxy"
