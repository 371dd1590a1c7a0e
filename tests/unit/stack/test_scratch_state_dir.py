"""A throw-away stack's state dir: fresh each time and enterable by PostgreSQL's OS user."""

from __future__ import annotations

import shutil
import stat

from wiki_lib.stack import scratch_state_dir


def test_each_call_gets_a_fresh_directory_others_can_enter_but_not_list() -> None:
    first, second = scratch_state_dir("unit"), scratch_state_dir("unit")
    try:
        assert first != second
        for path in (first, second):
            assert path.is_dir() and path.name.startswith("wikipulse-unit-")
            assert stat.S_IMODE(path.stat().st_mode) == 0o711
            assert not any(path.iterdir())
    finally:
        shutil.rmtree(first)
        shutil.rmtree(second)
