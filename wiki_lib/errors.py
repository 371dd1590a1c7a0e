"""One small tree of errors for the whole platform.

Callers catch :class:`WikiError`; retry loops ask :func:`is_transient`. Third-party
exceptions are wrapped (``raise SinkError(...) from exc``) so the message says what
wikipulse was doing when the lower layer failed.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "PrerequisiteError",
    "SinkError",
    "SourceError",
    "StackError",
    "StreamError",
    "TerminalError",
    "TerminalSourceError",
    "TransientError",
    "TransientSourceError",
    "ValidationError",
    "WikiError",
    "is_transient",
]


class WikiError(Exception):
    """Root of every error wikipulse raises on purpose."""


class TransientError(WikiError):
    """Marker: the same call may succeed later (network blip, broker restart, HTTP 5xx/429)."""


class TerminalError(WikiError):
    """Marker: retrying cannot help (bad configuration, HTTP 4xx, missing binary)."""


class ConfigError(TerminalError):
    """Settings are missing, contradictory or unusable."""


class PrerequisiteError(TerminalError):
    """A program the platform needs (Java, Maven, PostgreSQL, jars) is missing or too old."""


class StackError(WikiError):
    """A local service could not be started, reached or stopped."""


class SourceError(WikiError):
    """An event source failed (HTTP, file, transcript)."""


class TransientSourceError(SourceError, TransientError):
    """The source failed in a way a reconnect may fix."""


class TerminalSourceError(SourceError, TerminalError):
    """The source refused us for good (for example HTTP 403)."""


class ValidationError(WikiError):
    """One event does not satisfy the contract; it goes to the dead-letter topic."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class SinkError(WikiError):
    """Writing to Kafka, PostgreSQL or the lake failed."""


class StreamError(WikiError):
    """The Spark streaming job failed or was misconfigured."""


def is_transient(exc: BaseException) -> bool:
    """Whether a retry with backoff is the right reaction to ``exc``."""
    return isinstance(exc, TransientError)
