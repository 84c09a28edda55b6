"""Item 8: a one-off stream URL's key and URL credentials never reach the journal, the
page's log tail or the event stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from drivers.common.redact import redact, redact_text
from tests.abuse.conftest import ChildAppliance, child_login, client

KEY = "sk9Qz7WvKeyOnlyOnce"
PASSWORD = "hunter2pass"


@pytest.mark.parametrize(("text", "hidden", "kept"), [
    (f"rtmp://live.example.com/app/{KEY}", KEY, "rtmp://live.example.com/app/***"),
    (f"action stream {{'url': 'rtmps://a.example:443/live/{KEY}'}}", KEY,
     "rtmps://a.example:443/live/***'}"),
    (f"rtmp://bob:{PASSWORD}@10.0.0.2/live/{KEY}", PASSWORD, "rtmp://***@10.0.0.2/live/***"),
    (f"ws://admin:{PASSWORD}@janus:8188", PASSWORD, "ws://***@janus:8188"),
    (f"https://example.com/hook?token={KEY}", KEY, "https://example.com/hook?***"),
    ("ws://127.0.0.1:8188 and http://127.0.0.1:8080/", "\0", "ws://127.0.0.1:8188 and "
                                                             "http://127.0.0.1:8080/"),
    ("rtmp://host/live", "\0", "rtmp://host/live"),
])
def test_redact_text(text: str, hidden: str, kept: str) -> None:
    out = redact_text(text)
    assert hidden not in out
    assert kept in out


def test_redact_walks_event_data() -> None:
    data = {"args": {"url": f"rtmp://h/live/{KEY}", "n": 3}, "list": [f"rtmp://h/a/{KEY}"]}
    assert KEY not in repr(redact(data))
    assert redact(data)["args"]["n"] == 3


async def test_one_off_stream_url_stays_secret(child: Callable[..., ChildAppliance]) -> None:
    # No room server here: the stream (sim camera, real encoder, real RTMP muxer) pushes
    # to a loopback port where nothing listens, so connecting fails and is retried.
    app = child({"room": {"server": "ws://127.0.0.1:9", "auto_join": False}})
    url = f"rtmp://streamer:{PASSWORD}@127.0.0.1:9/live/{KEY}"
    async with client() as http:
        csrf = await child_login(http, app)
        events = await http.get(f"{app.url}/api/events")
        assert events.status == 200
        async with http.post(f"{app.url}/api/stream", json={"state": "start", "url": url},
                             headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200, await r.text()
            assert KEY not in await r.text()
        seen = b""
        deadline = time.monotonic() + 30
        while b"stream-reconnecting" not in seen and time.monotonic() < deadline:
            try:
                seen += await asyncio.wait_for(events.content.readany(), 1.0)
            except TimeoutError:
                pass
        assert b"stream-reconnecting" in seen, seen[-2000:]  # the failure was published
        assert b'"action": "stream"' in seen or b'"action":"stream"' in seen
        async with http.post(f"{app.url}/api/stream", json={"state": "stop"},
                             headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200
        async with http.get(f"{app.url}/api/logs", params={"lines": "500"}) as r:
            tail = "\n".join((await r.json())["lines"])
        events.release()
    journal = app.log_text()
    assert "action stream" in journal and "rtmp" in journal  # the lines are there...
    for where, text in (("journal", journal), ("log tail", tail),
                        ("event stream", seen.decode(errors="replace"))):
        assert KEY not in text, f"stream key in the {where}"  # ...without the secrets
        assert PASSWORD not in text, f"URL password in the {where}"
