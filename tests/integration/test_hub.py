"""The local JupyterHub: log in over HTTP, spawn a server, run a notebook in it, open the proxy.

Everything is real: `wikipulse hub` (JupyterHub, configurable-http-proxy, the local spawner)
runs as a child process; the notebook runs in a kernel of the spawned JupyterLab server,
reached through the hub's proxy with the user's own API token, and reads the session's
PostgreSQL through the read-only role.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import websocket

from wiki_lib import db
from wiki_lib.config import Settings, settings_env
from wiki_lib.hub import PASSWORD_ENV
from wiki_lib.stack._proc import free_port

pytestmark = pytest.mark.integration

USER = "alice"
EVENTS = 4242
NOTEBOOK = [
    "import wiki_lib\nfrom wiki_lib import db, load_settings\nsettings = load_settings()",
    "conn = db.connect(settings.postgres, 'reader')\n"
    "with conn.cursor() as cur:\n"
    "    cur.execute(f'SELECT current_user, events FROM "
    "{settings.postgres.schema_name}.traffic_minute')\n"
    "    print(cur.fetchall())\n"
    "conn.close()",
    "import os\n"
    "print(sorted(k for k in os.environ if k.startswith('WIKI__') and k.endswith('PASSWORD')))",
]


@dataclass(frozen=True)
class Hub:
    """A running local hub and how to reach it."""

    url: str
    password: str
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def hub(settings: Settings, pg_schema: str, tmp_path: Path) -> Iterator[Hub]:
    """`wikipulse hub` on a free port, its users seeing a schema with one known row."""
    conn = db.connect(settings.postgres, "writer")
    with conn, conn.cursor() as cur:
        cur.execute(
            f"INSERT INTO {pg_schema}.traffic_minute VALUES "
            f"('2024-01-01T00:00:00Z', {EVENTS}, 1, 0, 0, 0, 0, 0, 1, 0, 1, 10, 0, 10)"
        )
    conn.close()
    hub_settings = settings.with_overrides(
        postgres={"schema_name": pg_schema}, stack={"state_dir": str(tmp_path / "state")}
    )
    password = uuid.uuid4().hex
    port = free_port()
    log = tmp_path / "hub.log"
    env = {**settings_env(hub_settings), PASSWORD_ENV: password}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "wiki_lib.cli", "hub", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Hub(f"http://127.0.0.1:{port}", password, process, log)
    try:
        _wait_for(lambda: _answers(f"{running.url}/hub/api"), 120, "the hub API", running)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=3).status_code == 200
    except requests.RequestException:
        return False


def _wait_for(check: Callable[[], bool], timeout: float, what: str, hub: Hub) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        assert hub.process.poll() is None, f"hub exited:\n{hub.log.read_text()[-3000:]}"
        time.sleep(0.5)
    raise AssertionError(f"{what} not ready after {timeout}s:\n{hub.log.read_text()[-3000:]}")


def _login(hub: Hub) -> str:
    """Log in with the shared password over HTTP; return an API token of the user."""
    browser = requests.Session()
    assert browser.get(f"{hub.url}/hub/login", timeout=30).status_code == 200
    reply = browser.post(
        f"{hub.url}/hub/login",
        data={"username": USER, "password": hub.password, "_xsrf": browser.cookies["_xsrf"]},
        allow_redirects=False,
        timeout=30,
    )
    assert reply.status_code == 302, reply.text[:500]
    wrong = requests.Session()
    wrong.get(f"{hub.url}/hub/login", timeout=30)
    refused = wrong.post(
        f"{hub.url}/hub/login",
        data={"username": USER, "password": "not-the-password", "_xsrf": wrong.cookies["_xsrf"]},
        allow_redirects=False,
        timeout=30,
    )
    assert refused.status_code == 403
    token = browser.post(
        f"{hub.url}/hub/api/users/{USER}/tokens",
        json={"note": "integration test", "expires_in": 900},
        headers={"X-XSRFToken": browser.cookies["_xsrf"]},
        timeout=30,
    )
    assert token.status_code == 201, token.text[:500]
    return str(token.json()["token"])


def _spawn(hub: Hub, headers: dict[str, str]) -> None:
    reply = requests.post(f"{hub.url}/hub/api/users/{USER}/server", headers=headers, timeout=60)
    assert reply.status_code in (201, 202), reply.text[:500]

    def ready() -> bool:
        user = requests.get(f"{hub.url}/hub/api/users/{USER}", headers=headers, timeout=30)
        server = user.json().get("servers", {}).get("")
        return bool(server and server.get("ready"))

    _wait_for(ready, 180, f"the server of {USER}", hub)


def _run_notebook(hub: Hub, token: str, cells: list[str]) -> list[str]:
    """Upload a notebook to the user's server and run its cells in a kernel there."""
    headers = {"Authorization": f"token {token}"}
    api = f"{hub.url}/user/{USER}/api"
    notebook = {
        "cells": [
            {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": []}
            | {"source": source}
            for source in cells
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    put = requests.put(
        f"{api}/contents/check.ipynb",
        json={"type": "notebook", "format": "json", "content": notebook},
        headers=headers,
        timeout=60,
    )
    assert put.status_code in (200, 201), put.text[:500]
    session = requests.post(
        f"{api}/sessions",
        json={"path": "check.ipynb", "type": "notebook", "kernel": {"name": "python3"}},
        headers=headers,
        timeout=120,
    )
    assert session.status_code == 201, session.text[:500]
    kernel = session.json()["kernel"]["id"]
    ws = websocket.create_connection(
        f"{api.replace('http', 'ws', 1)}/kernels/{kernel}/channels",
        header=[f"Authorization: token {token}"],
        timeout=120,
    )
    try:
        return [_execute(ws, source) for source in cells]
    finally:
        ws.close()
        requests.delete(f"{api}/kernels/{kernel}", headers=headers, timeout=30)


def _execute(ws: websocket.WebSocket, code: str) -> str:
    """Run one cell over the Jupyter messaging protocol; return its printed output."""
    msg_id = uuid.uuid4().hex
    ws.send(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "username": USER,
                    "session": uuid.uuid4().hex,
                    "date": datetime.now(UTC).isoformat(),
                    "version": "5.3",
                },
                "parent_header": {},
                "metadata": {},
                "content": {"code": code, "silent": False, "store_history": True},
                "channel": "shell",
                "buffers": [],
            }
        )
    )
    output, replied, idle = [], False, False
    while not (replied and idle):
        message = json.loads(ws.recv())
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = message["msg_type"], message["content"]
        if kind == "stream":
            output.append(content["text"])
        elif kind == "error":
            raise AssertionError(f"cell failed: {content['ename']}: {content['evalue']}")
        elif kind == "execute_reply":
            replied = True
        elif kind == "status" and content["execution_state"] == "idle":
            idle = True
    return "".join(output)


def test_login_spawn_notebook_and_dashboard_entry(hub: Hub) -> None:
    token = _login(hub)
    headers = {"Authorization": f"token {token}"}
    _spawn(hub, headers)

    outputs = _run_notebook(hub, token, NOTEBOOK)
    assert outputs[1].strip() == f"[('wiki_reader', {EVENTS})]"
    assert outputs[2].strip() == "['WIKI__POSTGRES__READER_PASSWORD']"

    dashboard = requests.get(f"{hub.url}/user/{USER}/dashboard/", headers=headers, timeout=180)
    assert dashboard.status_code == 200
    assert "voila" in dashboard.text.lower()
    outsider = requests.get(f"{hub.url}/user/{USER}/dashboard/", timeout=30)
    assert outsider.url.startswith(f"{hub.url}/hub/login")

    stop = requests.delete(f"{hub.url}/hub/api/users/{USER}/server", headers=headers, timeout=60)
    assert stop.status_code in (202, 204)
