"""Janus configuration files (libconfig ``.jcfg``), generated from Python values.

Used by the local SFU supervisor and by the test harness, so both run Janus with exactly
the same plugins, transport and room settings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PLUGIN_DIR = Path("/usr/lib/x86_64-linux-gnu/janus/plugins")
TRANSPORT_DIR = Path("/usr/lib/x86_64-linux-gnu/janus/transports")
PLUGINS = ("videoroom", "audiobridge", "textroom")
TRANSPORTS = ("websockets",)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, Sequence):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} to a jcfg file")


def render(sections: Mapping[str, Mapping[str, Any]]) -> str:
    """``{"general": {"debug_level": 4}}`` -> libconfig text."""
    out = []
    for name, values in sections.items():
        out.append(f"{name}: {{")
        for key, v in values.items():
            if v is not None:
                out.append(f"\t{key} = {_value(v)}")
        out.append("}")
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class RoomSpec:
    """One room, created in all three plugins under the same number."""

    #: The room's id: a number, or a name on a server with ``string_ids``.
    number: int | str
    description: str = "edgeroom"
    pin: str | None = None
    secret: str | None = None
    publishers: int = 16
    bitrate: int = 1_000_000
    #: The VideoRoom's video codecs, in the order Janus prefers them.
    videocodec: str = "h264,vp8"
    #: The VideoRoom's audio codecs, in the order Janus prefers them.
    audiocodec: str = "opus"
    #: The only H.264 profile-level-id the VideoRoom takes (None: Janus's default, any).
    h264_profile: str | None = "42e01f"
    #: Whether the VideoRoom tells who is talking (Janus's own default is off).
    audiolevel_event: bool = True
    #: Whether the VideoRoom negotiates the RFC 6464 audio level on its streams (Janus's
    #: default: on). Off, members' packets carry no level and no one is told who talks.
    audiolevel_ext: bool = True
    #: How often (s) the VideoRoom asks publishers for a keyframe.
    fir_freq: int = 2
    #: Whether members hear of listeners joining (Janus's own default is off).
    notify_joining: bool = True
    #: Whether subscribing needs the private_id of a publisher handle in the room (Janus
    #: ``require_pvtid``: only members who joined can subscribe).
    require_pvtid: bool = False
    #: The AudioBridge's mixing rate (Hz; Janus's sample room mixes at 16000).
    sampling_rate: int = 48000
    #: Whether the AudioBridge room takes plain-RTP participants (voice-room links).
    allow_rtp_participants: bool = False
    #: How many TextRoom messages the room keeps and replays to members who join later.
    history: int = 20


def _plugin_dir(name: str) -> Path:
    env = os.environ.get(f"EDGEROOM_JANUS_{name.upper()}_DIR")
    return Path(env) if env else (PLUGIN_DIR if name == "plugins" else TRANSPORT_DIR)


@dataclass(frozen=True)
class JanusSettings:
    listen_ip: str = "127.0.0.1"
    port: int = 8188
    interface: str | None = None  # ICE limited to this interface (name or address)
    rooms: tuple[RoomSpec, ...] = ()
    api_secret: str | None = None
    token_auth_secret: str | None = None  # enables token auth (HMAC-signed tokens)
    debug_level: int = 3
    rtp_port_range: str | None = None
    #: Address the AudioBridge binds plain-RTP participants to (voice-room links).
    #: Default: what Janus detects, which needs a default route (else 127.0.0.1).
    media_ip: str | None = None
    #: Secure WebSockets (wss://) on this port too, with this (certificate, key) PEM pair.
    wss_port: int | None = None
    wss_cert: tuple[str, str] | None = None
    #: Rooms and members named by strings in all three plugins (Janus's ``string_ids``).
    string_ids: bool = False
    #: ICE-lite (a server with a public address answers checks, sends none), and ICE
    #: over TCP too (needs ICE-lite): as sites set a Janus on the internet.
    ice_lite: bool = False
    ice_tcp: bool = False
    #: Janus trickles its own candidates too (its answer may come before it has them all).
    full_trickle: bool = False


def write_config(confdir: Path, settings: JanusSettings) -> Path:
    """Write a complete config dir (and plugin/transport folders of symlinks) into
    ``confdir``; returns the path of ``janus.jcfg``."""
    # The files hold the room PIN, its secret and the api_secret: private to this user.
    confdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    confdir.chmod(0o700)
    plugins = confdir / "plugins"
    transports = confdir / "transports"
    empty = confdir / "none"
    for d in (plugins, transports, empty):
        d.mkdir(exist_ok=True)
    for name in PLUGINS:
        _link(_plugin_dir("plugins") / f"libjanus_{name}.so", plugins / f"libjanus_{name}.so")
    for name in TRANSPORTS:
        _link(_plugin_dir("transports") / f"libjanus_{name}.so",
              transports / f"libjanus_{name}.so")
    general: dict[str, Any] = {
        "configs_folder": str(confdir),
        "plugins_folder": str(plugins),
        "transports_folder": str(transports),
        "events_folder": str(empty),
        "loggers_folder": str(empty),
        "debug_level": settings.debug_level,
        "api_secret": settings.api_secret,
        "session_timeout": 60,
    }
    if settings.token_auth_secret:
        general["token_auth"] = True
        general["token_auth_secret"] = settings.token_auth_secret
    media: dict[str, Any] = {"rtp_port_range": settings.rtp_port_range}
    nat: dict[str, Any] = {"ice_ignore_list": "vmnet"}
    if settings.interface:
        nat["ice_enforce_list"] = settings.interface
    if settings.ice_lite:
        nat["ice_lite"] = True
    if settings.ice_tcp:
        nat["ice_tcp"] = True
    if settings.full_trickle:
        nat["full_trickle"] = True
    path = confdir / "janus.jcfg"
    _write_private(path, render({"general": general, "media": media, "nat": nat,
                            "plugins": {}, "transports": {}, "events": {}, "loggers": {}}))
    websockets: dict[str, dict[str, Any]] = {
        "general": {"json": "compact", "ws": True, "ws_port": settings.port,
                    "ws_ip": settings.listen_ip, "wss": False},
        "admin": {"admin_ws": False, "admin_wss": False},
    }
    if settings.wss_port and settings.wss_cert:
        websockets["general"].update(wss=True, wss_port=settings.wss_port,
                                     wss_ip=settings.listen_ip)
        websockets["certificates"] = {"cert_pem": settings.wss_cert[0],
                                      "cert_key": settings.wss_cert[1]}
    _write_private(confdir / "janus.transport.websockets.jcfg", render(websockets))
    ids = {"string_ids": True} if settings.string_ids else {}
    videoroom: dict[str, dict[str, Any]] = {"general": {**ids}}
    audiobridge: dict[str, dict[str, Any]] = {"general": {"local_ip": settings.media_ip,
                                                          **ids}}
    textroom: dict[str, dict[str, Any]] = {"general": {"json": "compact", **ids}}
    for room in settings.rooms:
        common = {"description": room.description, "pin": room.pin, "secret": room.secret}
        videoroom[f"room-{room.number}"] = {
            **common,
            "publishers": room.publishers,
            "bitrate": room.bitrate,
            "fir_freq": room.fir_freq,
            "audiocodec": room.audiocodec,
            "videocodec": room.videocodec,
            "h264_profile": room.h264_profile,
            "notify_joining": room.notify_joining,
            "audiolevel_ext": room.audiolevel_ext,
            "audiolevel_event": room.audiolevel_event,
            "audio_active_packets": 25,
            "audio_level_average": 60,
            "require_pvtid": room.require_pvtid,
        }
        audiobridge[f"room-{room.number}"] = {
            **common,
            "sampling_rate": room.sampling_rate,
            "allow_rtp_participants": room.allow_rtp_participants,
            "audiolevel_event": room.audiolevel_event,
            "audio_active_packets": 25,
            "audio_level_average": 60,
        }
        textroom[f"room-{room.number}"] = {**common, "history": room.history or None}
    _write_private(confdir / "janus.plugin.videoroom.jcfg", render(videoroom))
    _write_private(confdir / "janus.plugin.audiobridge.jcfg", render(audiobridge))
    _write_private(confdir / "janus.plugin.textroom.jcfg", render(textroom))
    return path


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by this user only, whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(text)


def _link(target: Path, link: Path) -> None:
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def command(confdir: Path, janus: str = "/usr/bin/janus") -> list[str]:
    """The command line that runs Janus from ``confdir`` (in the foreground)."""
    return [janus, "-F", str(confdir), "-C", str(confdir / "janus.jcfg"),
            "-P", str(confdir / "plugins"), "-o"]
