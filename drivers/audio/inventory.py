"""Which microphones and speakers exist, with human names, as plain dicts.

Sources: ``/proc/asound/cards`` and ``/proc/asound/pcm`` for the hardware devices (with
the card's own long name), ``alsaaudio.pcms()`` for the named PCMs alsa-lib knows
(``default``, ``sysdefault:CARD=...``, ones defined in an asoundrc). Also answers the
two questions an open error raises: who holds a busy device, and what exists instead
of a missing one.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PROC_ASOUND = Path("/proc/asound")

_CARD_LINE = re.compile(r"^\s*(\d+)\s+\[(\S+)\s*\]:\s*(.*?)\s+-\s+(.*)$")
_PCM_LINE = re.compile(r"^(\d+)-(\d+):\s*(.*)$")
_HW_NUM = re.compile(r"^(?:[a-z]*hw):(\d+)(?:,(\d+))?", re.IGNORECASE)
_CARD_ARG = re.compile(r"CARD=([^,]+)")
_DEV_ARG = re.compile(r"DEV=(\d+)")

# alsa-lib's converter plugins: listed by alsaaudio.pcms() but not devices by themselves.
_CONVERTERS = {"lavrate", "samplerate", "speexrate", "speex", "upmix", "vdownmix", "a52",
               "usbstream"}
_PCM_NAMES = {"default": "Default device", "null": "Discard all samples (null)",
              "pulse": "PulseAudio / PipeWire", "pipewire": "PipeWire",
              "jack": "JACK audio server", "oss": "OSS emulation (/dev/dsp)",
              "sysdefault": "Default card", "dmix": "Shared playback (dmix)",
              "dsnoop": "Shared capture (dsnoop)"}


def read_cards(proc: Path = PROC_ASOUND) -> list[dict[str, Any]]:
    """Sound cards from ``/proc/asound/cards``: index, id, driver and long name."""
    try:
        text = (proc / "cards").read_text()
    except OSError:
        return []
    cards = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _CARD_LINE.match(line)
        if not m:
            continue
        longname = lines[i + 1].strip() if i + 1 < len(lines) else m.group(4)
        cards.append({"index": int(m.group(1)), "id": m.group(2), "driver": m.group(3),
                      "name": m.group(4).strip(), "longname": longname})
    return cards


def read_hw_pcms(proc: Path = PROC_ASOUND) -> list[dict[str, Any]]:
    """Hardware PCMs from ``/proc/asound/pcm`` with their capture/playback ability."""
    try:
        text = (proc / "pcm").read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        m = _PCM_LINE.match(line)
        if not m:
            continue
        parts = [p.strip() for p in m.group(3).split(" : ")]
        out.append({
            "card": int(m.group(1)), "device": int(m.group(2)),
            "id": parts[0] if parts else "", "name": parts[1] if len(parts) > 1 else "",
            "playback": any(p.startswith("playback") for p in parts[2:]),
            "capture": any(p.startswith("capture") for p in parts[2:]),
        })
    return out


#: Held around every alsa-lib call that reads its configuration (opening a PCM or a
#: mixer, listing PCMs). pyalsaaudio keeps the GIL while it opens a PCM, and alsa-lib
#: may call our error handler (Python, so it needs the GIL) while it holds its own
#: configuration lock: two threads doing both at once would deadlock.
ALSA_LIB_LOCK = threading.Lock()


def _alsa_pcm_names(capture: bool) -> list[str]:
    try:
        import alsaaudio
    except ImportError:
        return []
    try:
        kind = alsaaudio.PCM_CAPTURE if capture else alsaaudio.PCM_PLAYBACK
        with ALSA_LIB_LOCK:
            return list(alsaaudio.pcms(kind))
    except Exception as exc:  # alsa-lib without a usable config: report nothing
        log.debug("alsaaudio.pcms failed: %s", exc)
        return []


def list_devices(capture: bool, proc: Path = PROC_ASOUND) -> list[dict[str, Any]]:
    """Capture (``capture=True``) or playback devices, hardware ones first.

    Each entry: ``name`` (what to put in ``audio.mic_device``/``speaker_device``),
    ``description`` (human), ``kind`` (``"hw"`` or ``"pcm"``), and for hardware ones
    ``card``, ``device``, ``card_id``.
    """
    cards = {c["index"]: c for c in read_cards(proc)}
    out: list[dict[str, Any]] = []
    for pcm in read_hw_pcms(proc):
        if not pcm["capture" if capture else "playback"]:
            continue
        card = cards.get(pcm["card"], {})
        card_name = card.get("name") or card.get("id") or f"card {pcm['card']}"
        out.append({
            "name": f"plughw:{pcm['card']},{pcm['device']}",
            "description": f"{card_name}: {pcm['name'] or pcm['id']}",
            "kind": "hw",
            "card": pcm["card"],
            "device": pcm["device"],
            "card_id": card.get("id"),
        })
    for name in _alsa_pcm_names(capture):
        if name.split(":", 1)[0] in _CONVERTERS:
            continue
        out.append({"name": name, "description": _describe_pcm(name, cards), "kind": "pcm"})
    return out


def audio_devices(proc: Path = PROC_ASOUND) -> dict[str, list[dict[str, Any]]]:
    """``{"microphones": [...], "speakers": [...]}`` (see :func:`list_devices`)."""
    return {"microphones": list_devices(True, proc), "speakers": list_devices(False, proc)}


def _describe_pcm(name: str, cards: dict[int, dict[str, Any]]) -> str:
    m = _CARD_ARG.search(name)
    if m:
        for card in cards.values():
            if card["id"] == m.group(1):
                return f"{card['name']} ({name.split(':', 1)[0]})"
    return _PCM_NAMES.get(name, name)


def card_of(device: str, proc: Path = PROC_ASOUND) -> tuple[int | None, int | None]:
    """Card index and device number a device name points at, where it says so."""
    m = _HW_NUM.match(device)
    if m:
        return int(m.group(1)), int(m.group(2)) if m.group(2) else 0
    m = _CARD_ARG.search(device)
    if m:
        dev = _DEV_ARG.search(device)
        dev_no = int(dev.group(1)) if dev else 0
        wanted = m.group(1)
        if wanted.isdigit():
            return int(wanted), dev_no
        for card in read_cards(proc):
            if card["id"] == wanted:
                return card["index"], dev_no
    return None, None


def busy_holder(device: str, capture: bool, proc: Path = PROC_ASOUND) -> str | None:
    """``"comm (pid N)"`` of the process holding the device open, if /proc tells."""
    card, dev = card_of(device, proc)
    letter = "c" if capture else "p"
    if card is not None:
        pattern = f"card{card}/pcm{dev}{letter}/sub*/status"
    else:
        pattern = f"card*/pcm*{letter}/sub*/status"
    for status in sorted(proc.glob(pattern)):
        try:
            text = status.read_text()
        except OSError:
            continue
        m = re.search(r"owner_pid\s*:\s*(\d+)", text)
        if not m:
            continue
        pid = int(m.group(1))
        try:
            comm = (proc.parent / str(pid) / "comm").read_text().strip()
        except OSError:
            comm = "?"
        where = status.parent.parent.parent.name + "/" + status.parent.parent.name
        return f"{comm} (pid {pid}, {where})"
    return None


def describe_available(capture: bool, proc: Path = PROC_ASOUND) -> str:
    """One line listing what exists, for a :class:`DeviceNotFound` message."""
    names = [d["name"] if d["kind"] == "pcm" else f"{d['name']} ({d['description']})"
             for d in list_devices(capture, proc)]
    cards = [f"{c['index']} {c['id']} ({c['name']})" for c in read_cards(proc)]
    kind = "capture" if capture else "playback"
    return (f"{kind} devices: {', '.join(names) or 'none'}; "
            f"sound cards: {', '.join(cards) or 'none'}")
