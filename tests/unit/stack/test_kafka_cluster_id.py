"""The KRaft cluster id must be a valid argument for ``kafka-storage format``."""

from __future__ import annotations

import base64
import uuid

import pytest

from wiki_lib.stack import kafka


def test_an_id_that_would_start_with_a_dash_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    dash_first = uuid.UUID(bytes=b"\xf8" + b"\x00" * 15)
    plain = uuid.UUID(bytes=b"\x10" * 16)
    assert base64.urlsafe_b64encode(dash_first.bytes).startswith(b"-")
    draws = iter([dash_first, plain])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(draws))

    cid = kafka.new_cluster_id()

    assert cid == base64.urlsafe_b64encode(plain.bytes).decode("ascii").rstrip("=")
    assert len(cid) == 22


def test_ids_are_unpadded_url_safe_base64_of_sixteen_bytes() -> None:
    for _ in range(500):
        cid = kafka.new_cluster_id()
        assert not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16
