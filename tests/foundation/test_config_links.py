"""``[[link]]`` tables and ``[links]``: read, checked, shown redacted, written back, and
turned into link settings."""

from __future__ import annotations

import pytest

from device import config
from device.errors import ConfigError
from device.links import answer_policy, link_settings

TEXT = """
[room]
server = "ws://10.0.1.5:8188"
room = 1234
secret = "ours"

[[link]]
name = "hall"
server = "ws://10.0.2.5:8188"
room = 77
secret = "theirs"
label = "hall"

[[link]]
server = "ws://10.0.3.5:8188"
direction = "send"

[links]
media_host = "10.0.1.5"
auto_accept = true
allow = "1@10.0.9.9, hall"
"""


def test_link_tables_become_link_settings():
    c = config.parse(TEXT)
    [hall, second] = link_settings(c)
    assert (hall.name, hall.far.url, hall.far.room, hall.far.secret, hall.far.name) == \
        ("hall", "ws://10.0.2.5:8188", 77, "theirs", "hall")
    assert (hall.local.url, hall.local.room, hall.local.secret, hall.local.rtp_host) == \
        ("ws://10.0.1.5:8188", 1234, "ours", "10.0.1.5")
    assert (second.name, second.direction, second.far.room) == ("link-2", "send", 1234)
    policy = answer_policy(c)
    assert policy.auto_accept and policy.allow == ("1@10.0.9.9", "hall")


def test_secrets_are_redacted_and_the_tables_written_back():
    c = config.parse(TEXT)
    shown = c.to_dict(redact=True)["link"]
    assert shown[0]["secret"] == config.REDACTED and shown[1]["secret"] is None
    assert config.parse(config.dumps(c)) == c
    assert config.restart_scopes(c, config.parse(TEXT.replace("77", "78"))) == {"links"}


def test_bad_tables_name_the_table_and_the_key():
    with pytest.raises(ConfigError) as err:
        config.parse('[[link]]\nroom = 0\nbogus = 1\n[[link]]\nserver = "http://x"\n')
    text = str(err.value)
    for part in ("link[1].server: missing (required)", "link[1].room: got 0",
                 "link[1].bogus: unknown key", "link[2].server"):
        assert part in text, text
    with pytest.raises(ConfigError, match="at most 8"):
        config.parse('[[link]]\nserver = "ws://a:1"\n' * 9)
    with pytest.raises(ConfigError, match=r"must be tables written \[\[link\]\]"):
        config.parse('link = 5\n')


def test_the_page_cannot_patch_links():
    with pytest.raises(ConfigError, match=r"\[\[link\]\] is changed in the file"):
        config.parse(TEXT).replace({"link": {"room": 5}})


def test_named_rooms_link_by_name():
    c = config.parse(TEXT.replace("room = 1234", 'room = "lobby"')
                     .replace("room = 77", 'room = "hall-2"'))
    [hall, _] = link_settings(c)
    assert (hall.local.room, hall.far.room, hall.far.name) == ("lobby", "hall-2", "hall")
    with pytest.raises(ConfigError) as err:
        config.parse('[[link]]\nserver = "ws://a:1"\nroom = "the hall"\n')
    assert "link[1].room: got 'the hall'; a room name is" in str(err.value)
