"""Benchmarks of the platform's stages; each is a function returning a flat dict of figures.

``wikipulse bench`` runs them; they take :class:`~wiki_lib.config.Settings` pointing at a
running stack and create (and delete) their own topics. ``wiki_lib.bench.ingest(settings)``
is the ingest benchmark (module :mod:`wiki_lib.bench.ingest`).
"""

from wiki_lib.bench.ingest import ingest

__all__ = ["ingest"]
