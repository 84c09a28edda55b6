"""A thin ctypes binding to libspeexdsp: the echo canceller and the preprocessor.

Only the calls the appliance uses are bound. The library is loaded on first use, so
importing this module never fails; a missing library raises :class:`SpeexDspMissing`
naming the package to install. Buffers are numpy ``int16`` arrays (C-contiguous); the
C calls release the GIL, so processing in a worker thread leaves the event loop free.

Constants come from ``/usr/include/speex/speex_echo.h`` and ``speex_preprocess.h``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import TYPE_CHECKING, Any

from drivers.errors import EdgeroomError
from drivers.lazy import lazy_module
from services.audio.clib import SharedLibrary

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    Int16Array = npt.NDArray[np.int16]
else:
    np = lazy_module("numpy", globals(), "np")

log = logging.getLogger(__name__)


# speex_echo.h
SPEEX_ECHO_GET_FRAME_SIZE = 3
SPEEX_ECHO_SET_SAMPLING_RATE = 24
SPEEX_ECHO_GET_SAMPLING_RATE = 25
SPEEX_ECHO_GET_IMPULSE_RESPONSE_SIZE = 27
SPEEX_ECHO_GET_IMPULSE_RESPONSE = 29

# speex_preprocess.h
SPEEX_PREPROCESS_SET_DENOISE = 0
SPEEX_PREPROCESS_GET_DENOISE = 1
SPEEX_PREPROCESS_SET_AGC = 2
SPEEX_PREPROCESS_GET_AGC = 3
SPEEX_PREPROCESS_SET_VAD = 4
SPEEX_PREPROCESS_GET_VAD = 5
SPEEX_PREPROCESS_SET_AGC_LEVEL = 6  # float
SPEEX_PREPROCESS_GET_AGC_LEVEL = 7
SPEEX_PREPROCESS_SET_PROB_START = 14
SPEEX_PREPROCESS_SET_PROB_CONTINUE = 16
SPEEX_PREPROCESS_SET_NOISE_SUPPRESS = 18
SPEEX_PREPROCESS_GET_NOISE_SUPPRESS = 19
SPEEX_PREPROCESS_SET_ECHO_SUPPRESS = 20
SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE = 22
SPEEX_PREPROCESS_SET_ECHO_STATE = 24
SPEEX_PREPROCESS_SET_AGC_INCREMENT = 26
SPEEX_PREPROCESS_SET_AGC_DECREMENT = 28
SPEEX_PREPROCESS_SET_AGC_MAX_GAIN = 30
SPEEX_PREPROCESS_GET_AGC_GAIN = 35
SPEEX_PREPROCESS_GET_PROB = 45

LIBRARY_NAMES = ("libspeexdsp.so.1", "libspeexdsp.so")


class SpeexDspMissing(EdgeroomError, ImportError):
    """libspeexdsp is not installed (Debian: ``apt-get install libspeexdsp1``)."""


class SpeexDspError(EdgeroomError, RuntimeError):
    """libspeexdsp refused a call (bad frame size, rate or control request)."""


def _bind(lib: ctypes.CDLL) -> None:
    vp, i16p, c_int = ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int
    signatures: dict[str, tuple[list[Any], Any]] = {
        "speex_echo_state_init": ([c_int, c_int], vp),
        "speex_echo_state_destroy": ([vp], None),
        "speex_echo_state_reset": ([vp], None),
        "speex_echo_cancellation": ([vp, i16p, i16p, i16p], None),
        "speex_echo_ctl": ([vp, c_int, vp], c_int),
        "speex_preprocess_state_init": ([c_int, c_int], vp),
        "speex_preprocess_state_destroy": ([vp], None),
        "speex_preprocess_run": ([vp, i16p], c_int),
        "speex_preprocess_ctl": ([vp, c_int, vp], c_int),
    }
    for name, (argtypes, restype) in signatures.items():
        fn = getattr(lib, name)
        fn.argtypes = argtypes
        fn.restype = restype


def _missing(tried: list[str]) -> SpeexDspMissing:
    return SpeexDspMissing(
        "libspeexdsp is not available (echo cancellation, noise suppression and gain "
        "control need it); install the Debian package libspeexdsp1 "
        "(apt-get install libspeexdsp1). Tried: " + "; ".join(tried))


_library = SharedLibrary(LIBRARY_NAMES, "speexdsp", _bind, _missing)


def load_library(names: tuple[str, ...] = LIBRARY_NAMES) -> ctypes.CDLL:
    """The loaded libspeexdsp (once per process); raises :class:`SpeexDspMissing`."""
    return _library.load(names)


def _ptr(buf: Int16Array) -> int:
    if buf.dtype != np.int16 or not buf.flags.c_contiguous:
        raise TypeError("speexdsp buffers must be C-contiguous int16 arrays")
    return int(buf.ctypes.data)


class EchoCanceller:
    """``SpeexEchoState``: an adaptive (MDF) filter that removes the far-end echo.

    ``tail`` is the filter length in samples: the longest echo (delay plus reverberation)
    it can model.
    """

    def __init__(self, frame_size: int, tail: int, sample_rate: int) -> None:
        if frame_size <= 0 or tail < frame_size:
            raise ValueError(f"bad echo canceller size: frame {frame_size}, tail {tail}")
        self._lib = load_library()
        self.frame_size = frame_size
        self.tail = tail
        self.sample_rate = sample_rate
        state = self._lib.speex_echo_state_init(frame_size, tail)
        if not state:
            raise SpeexDspError(f"speex_echo_state_init({frame_size}, {tail}) failed")
        self._state: int | None = state
        rate = ctypes.c_int(sample_rate)
        self._lib.speex_echo_ctl(state, SPEEX_ECHO_SET_SAMPLING_RATE, ctypes.byref(rate))

    @property
    def handle(self) -> int:
        if self._state is None:
            raise ValueError("echo canceller is closed")
        return self._state

    def cancel(self, mic: Int16Array, reference: Int16Array, out: Int16Array) -> None:
        """``out`` = ``mic`` minus the echo of ``reference`` (all ``frame_size`` long)."""
        n = self.frame_size
        if len(mic) != n or len(reference) != n or len(out) != n:
            raise ValueError(f"echo canceller frames must be {n} samples")
        self._lib.speex_echo_cancellation(self.handle, _ptr(mic), _ptr(reference), _ptr(out))

    def reset(self) -> None:
        self._lib.speex_echo_state_reset(self.handle)

    def impulse_response(self) -> npt.NDArray[np.int32]:
        """The current filter (time domain, ``tail`` taps): where its energy sits is the delay."""
        size = ctypes.c_int(0)
        self._lib.speex_echo_ctl(self.handle, SPEEX_ECHO_GET_IMPULSE_RESPONSE_SIZE,
                                 ctypes.byref(size))
        taps = np.zeros(size.value, dtype=np.int32)
        self._lib.speex_echo_ctl(self.handle, SPEEX_ECHO_GET_IMPULSE_RESPONSE,
                                 ctypes.c_void_p(taps.ctypes.data))
        return taps

    def close(self) -> None:
        state, self._state = self._state, None
        if state is not None:
            self._lib.speex_echo_state_destroy(state)

    def __enter__(self) -> EchoCanceller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._state is None else "open"
        return (f"<EchoCanceller {state} frame={self.frame_size} tail={self.tail} "
                f"rate={self.sample_rate}>")


class Preprocessor:
    """``SpeexPreprocessState``: noise suppression, gain control, voice activity.

    With an :class:`EchoCanceller` attached it also suppresses the residual echo (only
    while denoising is on: speex folds that suppression into the denoiser's gains).
    """

    def __init__(self, frame_size: int, sample_rate: int) -> None:
        self._lib = load_library()
        self.frame_size = frame_size
        self.sample_rate = sample_rate
        state = self._lib.speex_preprocess_state_init(frame_size, sample_rate)
        if not state:
            raise SpeexDspError(f"speex_preprocess_state_init({frame_size}, {sample_rate}) failed")
        self._state: int | None = state
        self._echo: EchoCanceller | None = None

    @property
    def handle(self) -> int:
        if self._state is None:
            raise ValueError("preprocessor is closed")
        return self._state

    def _ctl(self, request: int, value: ctypes._SimpleCData[Any]) -> None:
        if self._lib.speex_preprocess_ctl(self.handle, request, ctypes.byref(value)) != 0:
            raise SpeexDspError(f"speex_preprocess_ctl request {request} refused")

    def _get_int(self, request: int) -> int:
        value = ctypes.c_int(0)
        self._ctl(request, value)
        return value.value

    def set_denoise(self, on: bool) -> None:
        self._ctl(SPEEX_PREPROCESS_SET_DENOISE, ctypes.c_int(int(on)))

    def set_noise_suppress(self, db: int) -> None:
        """Largest attenuation of noise, in dB (negative)."""
        self._ctl(SPEEX_PREPROCESS_SET_NOISE_SUPPRESS, ctypes.c_int(-abs(db)))

    def set_echo_suppress(self, db: int, active_db: int) -> None:
        """Largest attenuation of residual echo, alone and while the near end talks."""
        self._ctl(SPEEX_PREPROCESS_SET_ECHO_SUPPRESS, ctypes.c_int(-abs(db)))
        self._ctl(SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE, ctypes.c_int(-abs(active_db)))

    def set_agc(self, on: bool) -> None:
        self._ctl(SPEEX_PREPROCESS_SET_AGC, ctypes.c_int(int(on)))

    def set_agc_level(self, level: float) -> None:
        """Target speech level as a linear sample amplitude (0-32767)."""
        self._ctl(SPEEX_PREPROCESS_SET_AGC_LEVEL, ctypes.c_float(level))

    def set_agc_max_gain(self, db: int) -> None:
        self._ctl(SPEEX_PREPROCESS_SET_AGC_MAX_GAIN, ctypes.c_int(db))

    def set_agc_rates(self, increment_db_s: int, decrement_db_s: int) -> None:
        self._ctl(SPEEX_PREPROCESS_SET_AGC_INCREMENT, ctypes.c_int(increment_db_s))
        self._ctl(SPEEX_PREPROCESS_SET_AGC_DECREMENT, ctypes.c_int(-abs(decrement_db_s)))

    def set_vad(self, on: bool, prob_start: int = 85, prob_continue: int = 65) -> None:
        self._ctl(SPEEX_PREPROCESS_SET_VAD, ctypes.c_int(int(on)))
        self._ctl(SPEEX_PREPROCESS_SET_PROB_START, ctypes.c_int(prob_start))
        self._ctl(SPEEX_PREPROCESS_SET_PROB_CONTINUE, ctypes.c_int(prob_continue))

    def set_echo_state(self, echo: EchoCanceller | None) -> None:
        handle = None if echo is None else echo.handle
        rc = self._lib.speex_preprocess_ctl(self.handle, SPEEX_PREPROCESS_SET_ECHO_STATE, handle)
        if rc != 0:
            raise SpeexDspError("speex_preprocess_ctl SET_ECHO_STATE refused")
        self._echo = echo

    @property
    def speech_probability(self) -> int:
        """Speech probability of the last frame, percent."""
        return self._get_int(SPEEX_PREPROCESS_GET_PROB)

    @property
    def agc_gain(self) -> int:
        """Gain the AGC applies now, percent."""
        return self._get_int(SPEEX_PREPROCESS_GET_AGC_GAIN)

    def run(self, frame: Int16Array) -> bool:
        """Process ``frame`` in place; returns the voice activity decision."""
        if len(frame) != self.frame_size:
            raise ValueError(f"preprocessor frames must be {self.frame_size} samples")
        return bool(self._lib.speex_preprocess_run(self.handle, _ptr(frame)))

    def close(self) -> None:
        state, self._state = self._state, None
        if state is not None:
            self._lib.speex_preprocess_state_destroy(state)
        self._echo = None

    def __enter__(self) -> Preprocessor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._state is None else "open"
        return f"<Preprocessor {state} frame={self.frame_size} rate={self.sample_rate}>"
