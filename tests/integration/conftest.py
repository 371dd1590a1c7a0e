"""Fixtures shared by the integration tests of the pipeline stages."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamtools import CorpusTopic, corpus_topic

from wiki_lib.config import Settings


@pytest.fixture(scope="session")
def corpus(settings: Settings, data_dir: Path) -> CorpusTopic:
    """The whole current-format corpus, replayed once into a one-partition topic."""
    return corpus_topic(settings, sorted((data_dir / "recentchange").glob("*.jsonl")))
