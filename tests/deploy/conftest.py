"""Fixtures of the deployment tests: each overlay rendered once per session."""

from __future__ import annotations

from typing import Any

import pytest
from k8stools import OVERLAYS, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Every overlay, built with the pinned kustomize."""
    return {overlay: render(overlay) for overlay in OVERLAYS}


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest, rendered: dict[str, list[dict[str, Any]]]) -> str:
    """Each overlay's name in turn (the docs are ``rendered[overlay]``)."""
    return str(request.param)
