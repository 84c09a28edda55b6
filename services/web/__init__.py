"""The local config page and its HTTP API (aiohttp): status, settings, controls.

:func:`run_web` is the ``web`` subsystem; :class:`WebServer` serves one appliance and
is what tests start directly. What other services may register for the page is listed
in :mod:`services.web.extras`.
"""

from services.web.server import WebServer, run_web

__all__ = ["WebServer", "run_web"]
