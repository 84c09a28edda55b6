"""Speakerphone processing of the microphone signal before it is sent.

Three stages, each switchable at run time, in this order:

1. echo cancellation (``aec``): speex's adaptive filter removes what the speaker played
   (fed with :meth:`AudioProcessor.feed_playout`) from the microphone signal;
2. noise suppression (``noise_suppression``): speex's spectral denoiser, which also
   removes the residual echo the filter left when echo cancellation is on;
3. automatic gain (``agc``): speex's gain control brings speech to a steady level.

A stage that is off does not touch the signal: with every stage off, the frame that
comes out is the frame that went in. Voice activity and the level (dBFS) of what is
sent are computed for every frame whatever the switches, for the talking indicator.

Everything runs at 48 kHz on whole 20 ms frames, so no resampling is involved.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from drivers.audio.base import FRAME_SAMPLES, SAMPLE_RATE, PcmFrame
from drivers.errors import EdgeroomError
from drivers.lazy import lazy_module
from services.audio.delay import EchoDelayEstimator
from services.audio.reference import PlayoutReference
from services.audio.speexdsp import EchoCanceller, Preprocessor

if TYPE_CHECKING:
    import numpy as np

    from services.audio.speexdsp import Int16Array
else:
    np = lazy_module("numpy", globals(), "np")

log = logging.getLogger(__name__)

SILENCE_DBFS = float("-inf")
MIN_OFFSET_MS = -100.0  # how far ahead of capture the reference may be read
MAX_OFFSET_MS = 500.0  # the longest playout-to-capture delay that is looked for
DELAY_CHECK_FRAMES = 50  # look for the delay every second
ECHO_LEAD_MS = 20.0  # when moved, the window starts this long before the direct echo
AGC_LOUDNESS_OFFSET_DB = 20.5


class AudioFormatError(EdgeroomError, ValueError):
    """A frame that is not 20 ms of 48 kHz mono s16le reached the processor."""


class AudioSwitches(Protocol):
    """The three processing switches of the ``[audio]`` settings."""

    @property
    def aec(self) -> bool: ...
    @property
    def noise_suppression(self) -> bool: ...
    @property
    def agc(self) -> bool: ...


@dataclass(frozen=True)
class ProcessingOptions:
    """How the microphone signal is cleaned. The three switches come from ``[audio]``."""

    aec: bool = True
    """Acoustic echo cancellation against what the speaker played."""
    noise_suppression: bool = True
    """Noise suppression (also removes the echo the canceller leaves behind)."""
    agc: bool = True
    """Automatic gain control of the speech level."""
    echo_tail_ms: int = 250
    """Longest echo the canceller models: playout-to-capture delay plus room reverb."""
    reference_offset_ms: float = 0.0
    """Subtracted from a frame's capture time to find the played signal it is matched with
    (where the reference window starts; ``track_delay`` moves it when needed)."""
    track_delay: bool = True
    """Measure the playout-to-capture delay and move the reference window onto the echo
    when it falls outside (playout stamps that are off, devices with hidden latency)."""
    noise_suppress_db: int = 25
    """Largest attenuation of noise, dB."""
    echo_suppress_db: int = 40
    """Largest attenuation of residual echo while only the far end talks, dB."""
    echo_suppress_active_db: int = 15
    """Largest attenuation of residual echo while the near end talks too, dB."""
    agc_level_dbfs: float = -26.0
    """Speech level the gain control aims for (RMS of active speech, dBFS; -60..-20.5)."""
    agc_max_gain_db: int = 24
    """Most the gain control may amplify, dB."""
    vad_start: int = 80
    """Speech probability (percent) that starts voice activity."""
    vad_continue: int = 60
    """Speech probability (percent) that keeps voice activity going."""
    vad_floor_dbfs: float = -55.0
    """Frames quieter than this never count as voice."""
    vad_hangover_frames: int = 10
    """Frames voice activity stays on after the speech probability falls (200 ms)."""

    @classmethod
    def from_config(cls, audio: AudioSwitches, *, has_speaker: bool = True) -> ProcessingOptions:
        """The switches of ``[audio]``; echo cancellation needs a speaker to cancel."""
        return cls(aec=audio.aec and has_speaker, noise_suppression=audio.noise_suppression,
                   agc=audio.agc)


def agc_level_for(dbfs: float) -> float:
    """speex's AGC level (a loudness amplitude) that puts speech at ``dbfs`` RMS.

    speex weighs its loudness toward 1-5 kHz, so its level sits about 20 dB above the
    RMS level speech ends at (measured on synthetic speech; it varies a little by voice).
    """
    return min(32768.0, 32768.0 * 10.0 ** ((dbfs + AGC_LOUDNESS_OFFSET_DB) / 20.0))


def level_dbfs(samples: Int16Array) -> float:
    """RMS level in dBFS (a full-scale sine reads -3); ``-inf`` for digital silence."""
    if len(samples) == 0:
        return SILENCE_DBFS
    power = float(np.dot(samples.astype(np.float32), samples.astype(np.float32))) / len(samples)
    if power <= 0.0:
        return SILENCE_DBFS
    return 10.0 * math.log10(power / (32768.0 * 32768.0))


class AudioProcessor:
    """Echo cancellation, noise suppression and gain control for 20 ms mic frames.

    ``process`` runs on one thread at a time (the mic path); ``feed_playout`` may be
    called from the speaker's thread at any time (see ``add_playout_listener``).
    """

    def __init__(self, options: ProcessingOptions | None = None) -> None:
        self._options = options or ProcessingOptions()
        self._check_options(self._options)
        self._frame = FRAME_SAMPLES
        tail = max(self._frame, SAMPLE_RATE * self._options.echo_tail_ms // 1000)
        self._tail_ms = 1000.0 * tail / SAMPLE_RATE
        self._reference = PlayoutReference(SAMPLE_RATE, seconds=3.0)
        self._delay = EchoDelayEstimator(SAMPLE_RATE, min_delay_s=MIN_OFFSET_MS / 1000.0,
                                         max_delay_s=MAX_OFFSET_MS / 1000.0)
        self._offset_ms = self._options.reference_offset_ms
        self._pending_delay: float | None = None
        self._echo: EchoCanceller | None = EchoCanceller(self._frame, tail, SAMPLE_RATE)
        try:
            self._pre: Preprocessor | None = Preprocessor(self._frame, SAMPLE_RATE)
        except BaseException:
            self._echo.close()
            raise
        self._ref_buf = np.zeros(self._frame, dtype=np.int16)
        self._out_buf = np.zeros(self._frame, dtype=np.int16)
        self._scratch = np.zeros(self._frame, dtype=np.int16)
        self._lock = threading.Lock()
        self._vad = False
        self._hangover = 0
        self._level = SILENCE_DBFS
        self._speech_prob = 0
        self.frames = 0
        self.bad_playout = 0
        self.echo_delay_ms: float | None = None
        self.measured_delay_ms: float | None = None
        self.reference_moves = 0
        self._configure(self._options, first=True)

    @classmethod
    def from_config(cls, audio: AudioSwitches, *, has_speaker: bool = True) -> AudioProcessor:
        return cls(ProcessingOptions.from_config(audio, has_speaker=has_speaker))

    @staticmethod
    def _check_options(o: ProcessingOptions) -> None:
        if not 20 <= o.echo_tail_ms <= 1000:
            raise ValueError(f"echo_tail_ms must be 20..1000, got {o.echo_tail_ms}")
        if not -60.0 <= o.agc_level_dbfs <= -AGC_LOUDNESS_OFFSET_DB:
            raise ValueError(f"agc_level_dbfs must be -60..{-AGC_LOUDNESS_OFFSET_DB:g}, "
                             f"got {o.agc_level_dbfs}")
        if not MIN_OFFSET_MS <= o.reference_offset_ms <= MAX_OFFSET_MS:
            raise ValueError(f"reference_offset_ms must be {MIN_OFFSET_MS:g}..{MAX_OFFSET_MS:g}"
                             f", got {o.reference_offset_ms}")
        if not 0 <= o.vad_continue <= o.vad_start <= 100:
            raise ValueError("need 0 <= vad_continue <= vad_start <= 100")

    def _configure(self, o: ProcessingOptions, first: bool = False) -> None:
        pre, echo = self._pre, self._echo
        assert pre is not None and echo is not None
        previous = self._options
        if first:
            pre.set_noise_suppress(o.noise_suppress_db)
            pre.set_echo_suppress(o.echo_suppress_db, o.echo_suppress_active_db)
            pre.set_agc_level(agc_level_for(o.agc_level_dbfs))
            pre.set_agc_max_gain(o.agc_max_gain_db)
        pre.set_denoise(o.noise_suppression)
        pre.set_agc(o.agc)
        pre.set_echo_state(echo if o.aec else None)
        if o.aec and (first or not previous.aec):
            echo.reset()
            self._reference.clear()
            self._delay.reset()
            self.echo_delay_ms = None
            self._pending_delay = None
        self._options = o

    @property
    def options(self) -> ProcessingOptions:
        return self._options

    def set_options(self, *, aec: bool | None = None, ns: bool | None = None,
                    agc: bool | None = None) -> None:
        """Switch stages on or off while running (takes effect with the next frame)."""
        with self._lock:
            if self._pre is None:
                raise ValueError("audio processor is closed")
            o = self._options
            new = replace(o, aec=o.aec if aec is None else aec,
                          noise_suppression=o.noise_suppression if ns is None else ns,
                          agc=o.agc if agc is None else agc)
            if new != o:
                log.info("audio processing: aec %s -> %s, noise_suppression %s -> %s, "
                         "agc %s -> %s", o.aec, new.aec, o.noise_suppression,
                         new.noise_suppression, o.agc, new.agc)
                self._configure(new)

    def apply_config(self, audio: AudioSwitches, *, has_speaker: bool = True) -> None:
        """Follow a changed ``[audio]`` section (the three switches)."""
        self.set_options(aec=audio.aec and has_speaker, ns=audio.noise_suppression,
                         agc=audio.agc)

    def feed_playout(self, frame: PcmFrame, played_at: float) -> None:
        """Record a frame the speaker played, its first sample at ``played_at`` (monotonic).

        Signature matches the speakers' ``add_playout_listener`` callback, and like any
        such callback it never raises into the speaker's thread: a frame it cannot use is
        logged (once) and skipped. Stereo frames are mixed down.
        """
        try:
            if frame.sample_rate != SAMPLE_RATE or frame.channels not in (1, 2) or (
                    len(frame.samples) % (2 * frame.channels)):
                raise AudioFormatError(
                    f"playout reference must be {SAMPLE_RATE} Hz s16le mono or stereo, got "
                    f"{len(frame.samples)} bytes at {frame.sample_rate} Hz x{frame.channels}")
            samples: bytes | Int16Array = frame.samples
            if frame.channels == 2:
                both = np.frombuffer(frame.samples, dtype=np.int16).reshape(-1, 2)
                samples = ((both[:, 0].astype(np.int32) + both[:, 1]) // 2).astype(np.int16)
            self._reference.feed(samples, played_at)
        except AudioFormatError as exc:
            self.bad_playout += 1
            if self.bad_playout == 1:
                log.warning("echo reference ignored: %s", exc)

    def _check_frame(self, frame: PcmFrame) -> None:
        if (frame.sample_rate != SAMPLE_RATE or frame.channels != 1
                or len(frame.samples) != 2 * self._frame):
            raise AudioFormatError(
                f"audio processing needs 20 ms of {SAMPLE_RATE} Hz mono s16le "
                f"({2 * self._frame} bytes); got {len(frame.samples)} bytes at "
                f"{frame.sample_rate} Hz x{frame.channels}")

    def process(self, frame: PcmFrame) -> PcmFrame:
        """The cleaned frame (the same object when every stage is off)."""
        self._check_frame(frame)
        with self._lock:
            pre, echo = self._pre, self._echo
            if pre is None or echo is None:
                raise ValueError("audio processor is closed")
            o = self._options
            mic: Int16Array = np.frombuffer(frame.samples, dtype=np.int16)
            out = self._out_buf
            if o.aec:
                self._reference.read(frame.captured_at - self._offset_ms / 1000.0,
                                     self._ref_buf)
                echo.cancel(mic, self._ref_buf, out)
                if o.track_delay:
                    self._delay.add_mic(mic, frame.captured_at)
            else:
                out[:] = mic
            # The preprocessor always runs, for the speech probability; when neither of
            # its stages is on it works on a scratch copy and its output is not used.
            if o.noise_suppression or o.agc:
                pre.run(out)
            else:
                self._scratch[:] = out
                pre.run(self._scratch)
            if o.aec or o.noise_suppression or o.agc:
                sent = PcmFrame(out.tobytes(), frame.captured_at, frame.index,
                                frame.sample_rate, frame.channels)
            else:
                sent = frame
            self._analyse(pre, np.frombuffer(sent.samples, dtype=np.int16), o)
            self.frames += 1
            if o.aec and self.frames % 50 == 0:
                self._estimate_delay(echo)
            if o.aec and o.track_delay and self.frames % DELAY_CHECK_FRAMES == 0:
                self._track_delay(echo)
            return sent

    def _analyse(self, pre: Preprocessor, sent: Int16Array, o: ProcessingOptions) -> None:
        self._level = level_dbfs(sent)
        prob = pre.speech_probability
        self._speech_prob = prob
        threshold = o.vad_continue if self._vad else o.vad_start
        speech = prob >= threshold and self._level >= o.vad_floor_dbfs
        if speech:
            self._hangover = o.vad_hangover_frames
            self._vad = True
        elif self._hangover > 0:
            self._hangover -= 1
        else:
            self._vad = False

    def _estimate_delay(self, echo: EchoCanceller) -> None:
        """The echo delay from the adapted filter: where its strongest tap (direct sound) is."""
        taps = np.abs(echo.impulse_response().astype(np.float64))
        if not np.any(taps):
            return
        peak = int(np.argmax(taps))
        self.echo_delay_ms = self._offset_ms + 1000.0 * peak / SAMPLE_RATE

    def _track_delay(self, echo: EchoCanceller) -> None:
        """Move the reference window when the measured echo falls outside the filter."""
        found = self._delay.estimate(self._reference)
        if found is None:
            return
        delay_ms = 1000.0 * found
        self.measured_delay_ms = delay_ms
        inside = delay_ms - self._offset_ms
        if -0.5 <= inside <= 0.6 * self._tail_ms:
            self._pending_delay = None
            return
        # Two measurements in a row that agree before anything moves.
        pending, self._pending_delay = self._pending_delay, delay_ms
        if pending is None or abs(pending - delay_ms) > 3.0:
            return
        offset = min(MAX_OFFSET_MS, max(MIN_OFFSET_MS, delay_ms - ECHO_LEAD_MS))
        log.info("echo arrives %.1f ms after its playout stamp, outside the canceller's "
                 "window: reference offset %.1f -> %.1f ms", delay_ms, self._offset_ms, offset)
        self._offset_ms = offset
        self._pending_delay = None
        self.reference_moves += 1
        self.echo_delay_ms = None
        echo.reset()

    @property
    def reference_offset_ms(self) -> float:
        """Where the reference window starts now, ms before the capture time."""
        return self._offset_ms

    @property
    def vad(self) -> bool:
        """Voice activity in the last processed frame (with a short hangover)."""
        return self._vad

    @property
    def level_dbfs(self) -> float:
        """Level of the last processed frame as sent, dBFS (``-inf`` for silence)."""
        return self._level

    @property
    def speech_probability(self) -> int:
        """Speech probability of the last frame, percent."""
        return self._speech_prob

    @property
    def stats(self) -> dict[str, int]:
        ref = self._reference.stats
        return {"frames": self.frames, "reference_frames": ref["frames"],
                "reference_jumps": ref["jumps"], "reference_missing": ref["missing"],
                "reference_moves": self.reference_moves}

    def close(self) -> None:
        with self._lock:
            pre, echo = self._pre, self._echo
            self._pre = self._echo = None
        if pre is not None:
            pre.close()
        if echo is not None:
            echo.close()

    def __enter__(self) -> AudioProcessor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._pre is None:
            return "<AudioProcessor closed>"
        o = self._options
        return (f"<AudioProcessor aec={o.aec} ns={o.noise_suppression} agc={o.agc} "
                f"vad={self._vad} level={self._level:.1f} dBFS frames={self.frames}>")
