"""Where events come from: the live EventStreams feed, recordings, or a synthetic resampler.

All three are :class:`Source` objects yielding :class:`RawEvent` records, so the producer
(and a researcher's own code) treats them alike.
"""

from wiki_lib.sources.base import RawEvent, Source
from wiki_lib.sources.replay import DEFAULT_CORPUS, ReplaySource, expand_patterns, read_records
from wiki_lib.sources.sse import SSESource, iter_frames
from wiki_lib.sources.synthetic import SyntheticSource

__all__ = [
    "DEFAULT_CORPUS",
    "RawEvent",
    "ReplaySource",
    "SSESource",
    "Source",
    "SyntheticSource",
    "expand_patterns",
    "iter_frames",
    "read_records",
]
