"""A page listener in a process with almost no file descriptors left (for the abuse
suite): ``python -m tests.abuse.emfile_server`` prints its port, then serves
``/api/health`` until terminated; its log goes to stdout."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import sys

from aiohttp import web

from device.logs import FORMAT
from services.web.guard import GuardedListener, Limits

NOFILE = 64
FREE = 6


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def main() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(FORMAT))
    services = logging.getLogger("services")
    services.addHandler(handler)
    services.setLevel(logging.INFO)
    app = web.Application()
    app.router.add_get("/api/health", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    assert runner.server is not None
    listener = GuardedListener(runner.server, "127.0.0.1", 0,
                               Limits(max_connections=1000, header_seconds=1.0))
    listener.cap = 1000  # past what is free: accepting must run out of descriptors
    await listener.start()
    held = []
    while len(os.listdir("/proc/self/fd")) < NOFILE - FREE:
        held.append(os.open("/dev/null", os.O_RDONLY))
    free = NOFILE - len(os.listdir("/proc/self/fd"))
    print(f"listening on {listener.addresses[0][1]} with {free} free descriptors", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await listener.close()
    await runner.cleanup()


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    asyncio.run(main())
