"""The standalone cluster's daemons get their ports when they start, never a taken one."""

from __future__ import annotations

import socket
from pathlib import Path

from wiki_lib.config import Settings
from wiki_lib.stack._proc import port_open
from wiki_lib.stack.spark_cluster import SparkStandalone, _pick_ports


def test_a_planned_cluster_has_folders_but_no_ports_yet(tmp_path: Path) -> None:
    cluster = SparkStandalone(Settings(), tmp_path)
    cluster.plan(2)
    assert cluster.master is not None
    assert [w.name for w in cluster.workers] == ["worker-1", "worker-2"]
    for daemon in [cluster.master, *cluster.workers]:
        assert (daemon.port, daemon.webui_port) == (0, 0)
        assert daemon.work_dir.parent == tmp_path / daemon.name


def test_a_daemon_keeps_free_ports_and_loses_taken_ones(tmp_path: Path) -> None:
    cluster = SparkStandalone(Settings(), tmp_path)
    cluster.plan(1)
    worker = cluster.workers[0]
    _pick_ports(worker)
    first = (worker.port, worker.webui_port)
    assert 0 not in first and first[0] != first[1]
    assert not port_open(worker.port) and not port_open(worker.webui_port)

    _pick_ports(worker)  # a restart: both still free, so both kept
    assert (worker.port, worker.webui_port) == first

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", worker.port))
        squatter.listen()
        _pick_ports(worker)
        assert worker.port != first[0]
        assert worker.webui_port == first[1]
        assert not port_open(worker.port)
