"""Test doubles that ship with the library, so researchers can test their own flows.

:class:`SSEServer` is a local EventStreams look-alike (real HTTP on 127.0.0.1) that can also
misbehave on request: cut connections, stall, send malformed frames or HTTP errors.
"""

from wiki_lib.testing.sse_server import MalformedKind, RequestRecord, SSEServer

__all__ = ["MalformedKind", "RequestRecord", "SSEServer"]
