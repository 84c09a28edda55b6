"""The ALSA mixer control a device's volume (or capture gain) is set with, when its card
has one; without one the stream applies a software gain.
"""

from __future__ import annotations

from typing import Any

from drivers.audio import inventory

# Mixer controls worth trying, best first; any other control with the right
# capability is taken if none of these exists.
_PLAYBACK_CONTROLS = ("Master", "Speaker", "PCM", "Headphone", "Digital", "Playback")
_CAPTURE_CONTROLS = ("Capture", "Mic", "Mic Capture", "Digital", "ADC", "Input")


class Mixer:
    """One ALSA mixer control used for the device's volume (or capture gain)."""

    def __init__(self, control: Any, name: str, capture: bool) -> None:
        self._control = control
        self.name = name
        self._capture = capture

    def set(self, percent: int) -> None:
        import alsaaudio

        kind = alsaaudio.PCM_CAPTURE if self._capture else alsaaudio.PCM_PLAYBACK
        self._control.setvolume(percent, pcmtype=kind)

    def close(self) -> None:
        self._control.close()


def find_mixer(device: str, capture: bool) -> Mixer | None:
    """The card's volume control for ``device``, or None (software gain then)."""
    import alsaaudio

    card, _ = inventory.card_of(device)
    where: dict[str, Any]
    if card is not None:
        where = {"cardindex": card}
    elif device.split(":", 1)[0] in ("default", "sysdefault"):
        where = {"device": device.replace("sysdefault", "hw")}
    else:
        return None
    wanted = ("Capture Volume", "Joined Capture Volume") if capture else (
        "Playback Volume", "Joined Playback Volume", "Volume", "Joined Volume")
    try:
        with inventory.ALSA_LIB_LOCK:
            names = list(dict.fromkeys(alsaaudio.mixers(**where)))
    except alsaaudio.ALSAAudioError:
        return None
    preferred = _CAPTURE_CONTROLS if capture else _PLAYBACK_CONTROLS
    ordered = [n for n in preferred if n in names] + [n for n in names if n not in preferred]
    for name in ordered:
        try:
            with inventory.ALSA_LIB_LOCK:
                control = alsaaudio.Mixer(name, **where)
        except alsaaudio.ALSAAudioError:
            continue
        if any(cap in wanted for cap in control.volumecap()):
            return Mixer(control, name, capture)
        control.close()
    return None
