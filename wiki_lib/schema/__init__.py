"""The official ``mediawiki/recentchange`` JSON Schema, vendored (Apache-2.0, see ``NOTICE``).

The schema is the reference for what an event may look like; the hot path uses the fast
hand-written contract check in :mod:`wiki_lib.events`, and strict mode runs this schema too.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["RECENTCHANGE_SCHEMA_PATH", "recentchange_schema"]

RECENTCHANGE_SCHEMA_PATH = Path(__file__).with_name("recentchange-1.0.1.json")


@cache
def recentchange_schema() -> dict[str, Any]:
    """The parsed schema ``/mediawiki/recentchange/1.0.1`` (read once, shared)."""
    schema: dict[str, Any] = json.loads(RECENTCHANGE_SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema
