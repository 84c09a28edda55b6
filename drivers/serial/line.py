"""An async line transport on pyserial's ``serial_for_url``.

The port is a device path (``/dev/ttyAMA0``, ``/dev/serial/by-id/...``), a pty path, or
a pyserial URL (``loop://``). One reader thread owns the reads and hands whole lines to
the event loop through a bounded queue that drops the oldest line when the consumer
falls behind (counted). Writes run in a worker thread with a timeout, one at a time.
When the device disappears (USB adapter unplugged, pty closed) the reader emits
``device-lost``, reopens with backoff, and emits ``device-restored``.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import threading
from typing import Any

from drivers.base import Emit, hand_to_loop, null_emit
from drivers.errors import DeviceBusy, DeviceNotFound
from drivers.queues import DropOldestQueue
from drivers.serial.lines import Line, LineSplitter

log = logging.getLogger(__name__)

SERIAL_GLOBS = ("/dev/ttyAMA*", "/dev/ttyS*", "/dev/ttyUSB*", "/dev/ttyACM*",
                "/dev/serial/by-id/*")


def serial_ports() -> list[str]:
    """Serial device paths present on this machine."""
    found: list[str] = []
    for pattern in SERIAL_GLOBS:
        found.extend(sorted(glob.glob(pattern)))
    return found


class SerialLine:
    """Lines in and out of one serial port. ``async with`` it, or ``open()``/``close()``."""

    def __init__(
        self,
        url: str,
        baudrate: int = 115200,
        *,
        emit: Emit = null_emit,
        max_line: int = 256,
        write_timeout: float = 1.0,
        queue_size: int = 64,
        reopen_min: float = 0.2,
        reopen_max: float = 5.0,
        read_timeout: float = 0.1,
    ) -> None:
        self.url = url
        self.baudrate = baudrate
        self._emit = emit
        self.write_timeout = write_timeout
        self.reopen_min = reopen_min
        self.reopen_max = reopen_max
        self.read_timeout = read_timeout
        self.lines: DropOldestQueue[Line] = DropOldestQueue(queue_size)
        self._splitter = LineSplitter(max_line)
        self._port: Any = None
        self._port_lock = threading.Lock()
        self._write_lock: asyncio.Lock | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.lost = False
        self.reopens = 0
        self.write_errors = 0
        self.lines_in = 0

    def __repr__(self) -> str:
        state = "lost" if self.lost else ("open" if self._port is not None else "closed")
        return f"<SerialLine {self.url} {state} in={self.lines_in} dropped={self.dropped}>"

    @property
    def dropped(self) -> int:
        return self.lines.dropped

    @property
    def connected(self) -> bool:
        return self._port is not None

    # -- life cycle -------------------------------------------------------------------

    def _open_port(self) -> Any:
        import serial

        return serial.serial_for_url(self.url, baudrate=self.baudrate,
                                     timeout=self.read_timeout,
                                     write_timeout=self.write_timeout)

    async def open(self) -> SerialLine:
        """Open the port and start reading; raises ``DeviceNotFound``/``DeviceBusy``."""
        import serial

        self._loop = asyncio.get_running_loop()
        self.lines.bind(self._loop)
        self._write_lock = asyncio.Lock()
        try:
            port = await asyncio.to_thread(self._open_port)
        except serial.SerialException as exc:
            raise _open_error(self.url, exc) from exc
        except ValueError as exc:  # a malformed URL or setting
            raise DeviceNotFound(f"serial port {self.url!r}: {exc}") from exc
        with self._port_lock:
            self._port = port
        self._stop.clear()
        self._thread = threading.Thread(target=self._reader, name=f"serial-{self.url}",
                                        daemon=True)
        self._thread.start()
        log.info("serial port %s open at %d baud", self.url, self.baudrate)
        return self

    async def close(self) -> None:
        """Stop the reader and close the port (idempotent)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, 2.0)
        self._close_port()
        self.lines.close()

    async def __aenter__(self) -> SerialLine:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _close_port(self) -> None:
        with self._port_lock:
            port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except Exception as exc:
                log.debug("closing %s: %s", self.url, exc)

    # -- reading (the reader thread) ------------------------------------------------------

    def _reader(self) -> None:
        delay = self.reopen_min
        while not self._stop.is_set():
            port = self._port
            if port is None:
                try:
                    port = self._open_port()
                except Exception as exc:
                    log.debug("reopen %s failed: %s", self.url, exc)
                    if self._stop.wait(delay):
                        return
                    delay = min(self.reopen_max, delay * 2)
                    continue
                with self._port_lock:
                    self._port = port
                self.lost = False
                self.reopens += 1
                delay = self.reopen_min
                self._splitter.reset()
                log.info("serial port %s is back", self.url)
                self._emit_threadsafe("device-restored", {"device": self.url, "kind": "serial"})
            try:
                data = port.read(max(1, min(4096, port.in_waiting)))
            except Exception as exc:  # SerialException, OSError: the device went away
                if self._stop.is_set():
                    return
                log.warning("serial port %s lost: %s", self.url, exc)
                self.lost = True
                self._close_port()
                self._emit_threadsafe("device-lost", {"device": self.url, "kind": "serial",
                                                      "error": str(exc)})
                continue
            if data:
                for line in self._splitter.feed(data):
                    self.lines_in += 1
                    self.lines.put_threadsafe(line)

    def _emit_threadsafe(self, name: str, data: dict[str, Any]) -> None:
        hand_to_loop(self._loop, self._emit, name, data)

    async def readline(self) -> Line:
        """The next line; raises ``EOFError`` once closed."""
        return await self.lines.get()

    # -- writing --------------------------------------------------------------------------

    async def write(self, data: bytes) -> bool:
        """Write bytes (whole lines, terminator included); False if they could not go out."""
        if self._write_lock is None:
            raise RuntimeError("serial line is not open")
        async with self._write_lock:
            return await asyncio.to_thread(self._write_blocking, data)

    def _write_blocking(self, data: bytes) -> bool:
        port = self._port
        if port is None:
            self.write_errors += 1
            return False
        try:
            port.write(data)
            return True
        except Exception as exc:  # SerialTimeoutException, or the device went away
            self.write_errors += 1
            log.warning("serial write to %s failed: %s", self.url, exc)
            return False


def _open_error(url: str, exc: Exception) -> Exception:
    text = str(exc)
    errno = getattr(exc, "errno", None)
    if errno == 16 or "busy" in text.lower() or "locked" in text.lower():
        return DeviceBusy(f"serial port {url} is busy (another program holds it): {text}")
    present = ", ".join(serial_ports()) or "none"
    return DeviceNotFound(f"serial port {url} cannot be opened ({text}); "
                          f"serial ports here: {present}")
