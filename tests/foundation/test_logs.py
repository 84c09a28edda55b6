"""What of the libraries' logging reaches the appliance's log."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import aioice.ice
import pytest

from device import logs


@pytest.fixture(autouse=True)
def _restore_loggers() -> Iterator[None]:
    names = ("device", "drivers", "services", "aiortc", "aioice", "aioice.ice",
             "aiohttp.access")
    saved = {n: (lg.handlers[:], lg.level, lg.propagate, lg.filters[:])
             for n in names for lg in [logging.getLogger(n)]}
    yield
    for n, (handlers, level, propagate, filters) in saved.items():
        lg = logging.getLogger(n)
        lg.handlers[:], lg.propagate, lg.filters[:] = handlers, propagate, filters
        lg.setLevel(level)


def test_ice_consent_expiry_is_logged_and_ice_chatter_is_not() -> None:
    out = io.StringIO()
    logs.setup("INFO", out)
    ice = aioice.ice.logger  # the logger aioice's connections write to
    assert ice.name == "aioice.ice"
    ice.info("Connection(7) Check CandidatePair(('10.0.0.1', 1) -> ('10.0.0.2', 2)) "
             "State.WAITING -> State.IN_PROGRESS")
    ice.info("Connection(7) Consent to send expired")
    ice.warning("Connection(7) something went wrong")
    logging.getLogger("aiortc.rtcpeerconnection").info("aiortc chatter")
    text = out.getvalue()
    assert "Consent to send expired" in text
    assert "something went wrong" in text
    assert "Check CandidatePair" not in text and "aiortc chatter" not in text
