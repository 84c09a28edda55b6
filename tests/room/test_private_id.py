"""A room where only members subscribe (Janus's ``require_pvtid``): a subscription must
carry the ``private_id`` the room gave one of the subscriber's publisher handles, and
one without it is refused (``Unauthorized (this room requires a valid private_id)``).
Sites set it so that nobody who has not joined the room can watch it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness.fixtures import pvtid_room  # noqa: F401  (fixture)
from tests.room.conftest import wait_tone

pytestmark = [pytest.mark.janus, pytest.mark.timeout(90)]


def test_members_hear_and_see_each_other_where_subscribing_needs_a_private_id(
        make_peer: Any, pvtid_room: int) -> None:  # noqa: F811
    a = make_peer("a", pvtid_room, tone="tone:440", camera=True)
    b = make_peer("b", pvtid_room, tone="tone:880", collect_video=True, receive_video=True,
                  role="listener")
    a.call(lambda s: s.join())
    b.call(lambda s: s.join())
    wait_tone(b.speaker_path, 440, timeout=20)  # a listener subscribes too
    wait_tone(a.speaker_path, 880, present=False, timeout=5)  # (a listener sends nothing)
    a_id = a.session.local_id
    b.wait_for(lambda: len(b.video_numbers.get(a_id, [])) > 30, timeout=20,
               what="A's video at B")
    b.call(lambda s: s.set_role("publisher"))
    wait_tone(a.speaker_path, 880, timeout=20)
    assert not a.names("reconnecting") and not b.names("reconnecting")
