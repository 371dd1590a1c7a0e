"""Plain helpers for tests (not fixtures): where the corpus is, throw-away stack settings."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from wiki_lib.config import Settings, load_settings

SHARED = Path(__file__).resolve().parents[2] / "shared"
if not SHARED.exists():
    SHARED = Path(os.environ.get("WIKIPULSE_SHARED", "/work/shared"))
DATA = SHARED / "data"


def make_state_dir(prefix: str) -> Path:
    """A fresh state dir in /tmp (PostgreSQL's OS user must be able to enter it)."""
    path = Path(tempfile.mkdtemp(prefix=f"wikipulse-{prefix}-", dir="/tmp"))
    path.chmod(0o711)
    return path


def stack_settings(state_dir: Path, **sections: dict) -> Settings:
    """Settings for a throw-away stack on free ports, independent of the caller's env."""
    base = {
        "stack": {"state_dir": str(state_dir), "kafka_port": 0, "kafka_controller_port": 0},
        "postgres": {"port": 0},
        "spark": {"ui_port": 0, "shuffle_partitions": 2},
    }
    for key, values in sections.items():
        base[key] = {**base.get(key, {}), **values}
    return load_settings(**base)
