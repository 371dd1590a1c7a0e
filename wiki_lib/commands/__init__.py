"""Subcommands of the ``wikipulse`` CLI, one module per pipeline stage.

Each module exposes ``register(subparsers)``; :mod:`wiki_lib.cli` calls them in order.
"""

__all__: list[str] = []
