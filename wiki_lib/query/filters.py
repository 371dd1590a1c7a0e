"""The optional filters every query function takes, validated before any SQL is built.

Values are only ever bound as parameters; validation exists to turn a typo into a clear
error instead of an empty chart (an unknown ``type``), not to make strings safe.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from wiki_lib.query.errors import QueryError

__all__ = ["DIMENSIONS", "EVENT_TYPES", "Filters"]

EVENT_TYPES: tuple[str, ...] = ("edit", "new", "log", "categorize", "external", "other")
"""Normalised event types (the contract maps anything else to ``other``)."""

DIMENSIONS: tuple[str, ...] = ("wiki", "project", "language", "bot", "namespace", "type")
"""Filterable dimensions, in the order they are reported."""

_MAX_VALUES = 1000
_MAX_TEXT = 512


def _texts(name: str, value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        values: tuple[object, ...] = (value,)
    elif isinstance(value, Iterable):
        values = tuple(value)
    else:
        raise QueryError(f"filter {name} takes a string or a list of strings, not {value!r}")
    for item in values:
        if not isinstance(item, str):
            raise QueryError(f"filter {name} takes strings, not {type(item).__name__}")
        if len(item) > _MAX_TEXT:
            raise QueryError(f"filter {name}: a value is longer than {_MAX_TEXT} characters")
    if len(values) > _MAX_VALUES:
        raise QueryError(f"filter {name}: more than {_MAX_VALUES} values")
    return tuple(dict.fromkeys(str(v) for v in values))


@dataclass(frozen=True, init=False)
class Filters:
    """Keep only events matching every given dimension (any of its values).

    ``Filters(wiki="dewiki", bot=False, namespace=[0, 14], type="edit")``. ``project`` and
    ``language`` follow the contract's derivation from ``server_name``; ``bot=True`` keeps
    bots, ``False`` humans, ``None`` both.
    """

    wiki: tuple[str, ...] = field(default=())
    project: tuple[str, ...] = field(default=())
    language: tuple[str, ...] = field(default=())
    bot: bool | None = None
    namespace: tuple[int, ...] = field(default=())
    type: tuple[str, ...] = field(default=())

    def __init__(
        self,
        wiki: str | Iterable[str] | None = None,
        project: str | Iterable[str] | None = None,
        language: str | Iterable[str] | None = None,
        bot: bool | None = None,
        namespace: int | Iterable[int] | None = None,
        type: str | Iterable[str] | None = None,
    ) -> None:
        if bot is not None and not isinstance(bot, bool):
            raise QueryError(f"filter bot takes True, False or None, not {bot!r}")
        if namespace is None:
            namespaces: tuple[Any, ...] = ()
        elif isinstance(namespace, int):
            namespaces = (namespace,)
        elif isinstance(namespace, Iterable):
            namespaces = tuple(namespace)
        else:
            raise QueryError(f"filter namespace takes integers, not {namespace!r}")
        for ns in namespaces:
            if isinstance(ns, bool) or not isinstance(ns, int) or not -(2**31) <= ns < 2**31:
                raise QueryError(f"filter namespace takes 32-bit integers, not {ns!r}")
        types = _texts("type", type)
        unknown = [t for t in types if t not in EVENT_TYPES]
        if unknown:
            raise QueryError(f"filter type: unknown {unknown}; known: {', '.join(EVENT_TYPES)}")
        object.__setattr__(self, "wiki", _texts("wiki", wiki))
        object.__setattr__(self, "project", _texts("project", project))
        object.__setattr__(self, "language", _texts("language", language))
        object.__setattr__(self, "bot", bot)
        object.__setattr__(self, "namespace", tuple(dict.fromkeys(namespaces)))
        object.__setattr__(self, "type", types)

    @property
    def dimensions(self) -> frozenset[str]:
        """The dimensions this filter constrains."""
        return frozenset(f.name for f in fields(self) if getattr(self, f.name) not in ((), None))

    def without(self, *names: str) -> Filters:
        """The same filter minus some dimensions."""
        kept = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in names}
        return Filters(**kept)

    def describe(self) -> dict[str, Any]:
        """The constrained dimensions and their values, for reports and DataFrame attrs."""
        return {name: getattr(self, name) for name in DIMENSIONS if name in self.dimensions}
