"""Network outputs (``rtmp://``, ``rtmps://``) written through FFmpeg with the GIL released.

PyAV holds Python's GIL while it opens, finishes and closes an output URL; only its
packet writes release it. For RTMP that covers the TCP connect, the handshake, the
publish commands, the FLV header and the closing messages. A server that accepts the
connection and then says nothing stopped every Python thread of the appliance (the
room's audio and video, the page, the buttons) for as long as it stayed silent.

Here the muxer writes into a Python file object, a :class:`NetworkOutput`, and the
bytes go on to FFmpeg's own protocol through ctypes, which releases the GIL for each
call. An interrupt callback bounds every call by a deadline, and :meth:`abort` makes a
call in progress return at once. An ``rtmps://`` server's certificate is checked, against
the CA file :mod:`services.media.tls_trust` names.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
import time
from typing import Any

from services.media import tls_trust
from services.media.mux import MuxError

#: AVIO_FLAG_WRITE (libavformat/avio.h).
_WRITE = 2
#: AVERROR_EXIT, FFmpeg's error for a call the interrupt callback ended.
_AVERROR_EXIT = -(ord("E") | ord("X") << 8 | ord("I") << 16 | ord("T") << 24)
#: What a network output may open: never a local file, never another protocol.
PROTOCOLS = "rtmp,rtmps,tcp,tls"

_INTERRUPT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)


class _InterruptCB(ctypes.Structure):
    _fields_ = [("callback", _INTERRUPT), ("opaque", ctypes.c_void_p)]


class _AvioHead(ctypes.Structure):
    """The leading fields of AVIOContext, unchanged since FFmpeg 4 (``error`` is read)."""

    _fields_ = [("av_class", ctypes.c_void_p), ("buffer", ctypes.c_void_p),
                ("buffer_size", ctypes.c_int), ("buf_ptr", ctypes.c_void_p),
                ("buf_end", ctypes.c_void_p), ("opaque", ctypes.c_void_p),
                ("read_packet", ctypes.c_void_p), ("write_packet", ctypes.c_void_p),
                ("seek", ctypes.c_void_p), ("pos", ctypes.c_int64),
                ("eof_reached", ctypes.c_int), ("error", ctypes.c_int),
                ("write_flag", ctypes.c_int)]


class _Libav:
    """The functions used, from the libavformat and libavutil PyAV itself loaded."""

    _lock = threading.Lock()
    _instance: _Libav | None = None

    def __init__(self) -> None:
        import av  # noqa: F401  (loads PyAV's own FFmpeg libraries into the process)

        fmt_path = _loaded("libavformat")
        fmt = ctypes.CDLL(fmt_path)
        # the libavutil beside it: the options dictionary is made by one, read by the other
        util = ctypes.CDLL(_loaded("libavutil", near=fmt_path))
        ptr = ctypes.POINTER(ctypes.c_void_p)
        self.open = _fn(fmt.avio_open2, ctypes.c_int, ptr, ctypes.c_char_p, ctypes.c_int,
                        ctypes.POINTER(_InterruptCB), ptr)
        self.write = _fn(fmt.avio_write, None, ctypes.c_void_p, ctypes.c_char_p,
                         ctypes.c_int)
        self.flush = _fn(fmt.avio_flush, None, ctypes.c_void_p)
        self.close = _fn(fmt.avio_closep, ctypes.c_int, ptr)
        self.dict_set = _fn(util.av_dict_set, ctypes.c_int, ptr, ctypes.c_char_p,
                            ctypes.c_char_p, ctypes.c_int)
        self.dict_free = _fn(util.av_dict_free, None, ptr)
        self._strerror = _fn(util.av_strerror, ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                             ctypes.c_size_t)
        _fn(fmt.avformat_network_init, ctypes.c_int)()

    @classmethod
    def get(cls) -> _Libav:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def strerror(self, code: int) -> str:
        buf = ctypes.create_string_buffer(128)
        self._strerror(code, buf, len(buf))
        return buf.value.decode(errors="replace") or f"error {code}"


def _fn(fn: Any, restype: Any, *argtypes: Any) -> Any:
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


def _loaded(name: str, near: str | None = None) -> str:
    """The path of an already loaded shared library (so ctypes gets the same copy); with
    ``near``, one in the same directory as that path first."""
    paths: list[str] = []
    try:
        with open("/proc/self/maps", encoding="ascii", errors="replace") as maps:
            for line in maps:
                path = line.rsplit(None, 1)[-1]
                if f"/{name}" in path and ".so" in path and path not in paths:
                    paths.append(path)
    except OSError:
        pass
    if near is not None:
        folder = os.path.dirname(near)
        paths.sort(key=lambda path: os.path.dirname(path) != folder)
    if paths:
        return paths[0]
    found = ctypes.util.find_library(name.removeprefix("lib"))
    if found is None:
        raise MuxError(f"{name} not found")
    return found


class NetworkOutput:
    """One connection to a URL, as a write-only file object for ``av.open(..., "w")``.

    :meth:`open` connects (and for RTMP publishes); every call gives up after
    ``timeout`` seconds without finishing, ``close`` after ``close_timeout``. Used from
    one thread; :meth:`abort` may be called from any, also before :meth:`open`.

    An ``rtmps://`` (or ``tls://``) server's certificate must be signed by a CA of
    ``ca_file`` (the setting ``ca_key``), else of the system, and be for the URL's host.
    """

    def __init__(self, url: str, *, timeout: float, close_timeout: float = 2.0,
                 ca_file: str | None = None, ca_key: str = "stream.ca_file") -> None:
        self.url = url
        self._timeout = timeout
        self._close_timeout = close_timeout
        self._ca_file, self._ca_key = ca_file, ca_key
        self._tls = url.lower().startswith(("rtmps://", "tls://"))
        self._deadline = 0.0
        self._aborted = False
        self._ctx = ctypes.c_void_p()
        self._lib: _Libav | None = None

    @property
    def aborted(self) -> bool:
        return self._aborted

    def open(self) -> None:
        """Connect (blocking, GIL released; raises :class:`MuxError`)."""
        self._lib = _Libav.get()
        self._callback = _INTERRUPT(self._interrupted)  # kept: FFmpeg holds the pointer
        self._interrupt = _InterruptCB(self._callback, None)
        ca = tls_trust.ca_for(self._ca_file, self._ca_key) if self._tls else None
        options = ctypes.c_void_p()
        settings = {"protocol_whitelist": PROTOCOLS}
        if ca is not None:  # passed on to the TLS protocol under RTMPS
            settings.update(tls_verify="1", ca_file=ca)
        for key, value in settings.items():
            self._lib.dict_set(ctypes.byref(options), key.encode(), os.fsencode(value), 0)
        self._deadline = time.monotonic() + self._timeout
        try:
            code = self._lib.open(ctypes.byref(self._ctx), self.url.encode(), _WRITE,
                                  ctypes.byref(self._interrupt), ctypes.byref(options))
        finally:
            self._lib.dict_free(ctypes.byref(options))
        if code < 0:
            why = None
            if ca is not None and code != _AVERROR_EXIT:
                why = tls_trust.explain(self.url, ca, self._ca_key,
                                        custom=bool(self._ca_file), timeout=self._timeout)
            raise MuxError(why or f"cannot connect: {self._reason(code)}")
        head = ctypes.cast(self._ctx, ctypes.POINTER(_AvioHead)).contents
        if head.write_flag != 1 or head.buffer_size <= 0 or head.buf_ptr != head.buffer:
            self.close()
            raise MuxError("this FFmpeg's AVIOContext is not laid out as expected")

    def _interrupted(self, _opaque: Any) -> int:
        return 1 if self._aborted or time.monotonic() > self._deadline else 0

    def _reason(self, code: int) -> str:
        if code == _AVERROR_EXIT:
            return "stopped" if self._aborted else f"no answer for {self._timeout:g} s"
        return _Libav.get().strerror(code)

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        """Send ``data`` now (written and flushed; raises :class:`MuxError`)."""
        if not self._ctx or self._lib is None:
            raise MuxError("write to a closed connection")
        self._deadline = time.monotonic() + self._timeout
        self._lib.write(self._ctx, data, len(data))
        self._lib.flush(self._ctx)
        error = ctypes.cast(self._ctx, ctypes.POINTER(_AvioHead)).contents.error
        if error < 0:
            raise MuxError(f"write failed: {self._reason(error)}")
        return len(data)

    def abort(self) -> None:
        """End the call in progress, and make every later one end at once."""
        self._aborted = True

    def close(self) -> None:
        """Close the connection (idempotent; gives up after ``close_timeout``)."""
        if not self._ctx:
            return
        assert self._lib is not None
        self._deadline = time.monotonic() + self._close_timeout
        self._lib.close(ctypes.byref(self._ctx))
