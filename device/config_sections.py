"""The sections of the config file, one frozen dataclass each, every key declared once
with its default, its documentation and its constraints (:func:`setting`).

:class:`device.config.Config` holds one of each; the names are importable from
:mod:`device.config` too.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any, Literal


def setting(
    default: Any,
    doc: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    pattern: str | None = None,
    secret: bool = False,
    restart: str | None = None,
    check: str | None = None,
) -> Any:
    """Declare a config key: its default, what it means, and its constraints.

    ``restart`` names the subsystem that must restart when the key changes at run time;
    ``check`` names an extra check of the value in :data:`device.config_check.CHECKS`.
    """
    meta = {
        "doc": doc,
        "minimum": minimum,
        "maximum": maximum,
        "pattern": pattern,
        "secret": secret,
        "restart": restart,
        "check": check,
    }
    if isinstance(default, dict | list):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class RoomConfig:
    server: str = setting(
        "local",
        'Janus WebSocket URL ("ws://host:8188") or "local" to run and supervise a Janus here.',
        pattern=r"^(local|wss?://[^\s/]+(:\d+)?(/\S*)?)$",
        restart="room",
    )
    backend: Literal["videoroom", "audiobridge"] = setting(
        "videoroom", "Janus plugin: a video room (SFU) or a voice room (server-side mix).",
        restart="room",
    )
    room: int | str = setting(
        1234, 'Room number, or the room\'s name on a server that names its rooms by strings '
        '(Janus string_ids), e.g. "lobby".', minimum=1, maximum=2**53,
        check="room_name", restart="room")
    display_name: str = setting(
        "", "Name shown to the other members (empty: the host name).", restart="room"
    )

    @property
    def effective_display_name(self) -> str:
        return self.display_name or socket.gethostname()
    pin: str | None = setting(None, "Room PIN, if the room has one.", secret=True, restart="room")
    secret: str | None = setting(
        None, "Room secret: enables moderation (mute others in the room, kick).", secret=True
    )
    api_secret: str | None = setting(
        None, "Janus api_secret, if the server requires one.", secret=True, restart="room"
    )
    token: str | None = setting(
        None, "Janus token (token-based auth), if the server requires one.", secret=True,
        restart="room",
    )
    ca_file: str | None = setting(
        None, "PEM file of the CA (or the self-signed certificate) that a wss:// room "
        "server's certificate is checked against (default: the system's CAs).",
        restart="room",
    )
    role: Literal["publisher", "listener"] = setting(
        "publisher", "publisher sends mic and camera; listener only receives."
    )
    auto_join: bool = setting(True, "Join the room at start.")
    history: int = setting(
        20, 'Messages the local Janus (server = "local") keeps per room and replays to '
        "members who join later (0: none).", minimum=0, maximum=1000, restart="room")
    speak_timeout: float = setting(
        30.0, "Seconds a request to speak waits for a moderator's answer.",
        minimum=1, maximum=300, restart="room")
    local_listen: str = setting(
        "127.0.0.1",
        'Address the local Janus (server = "local") binds its WebSocket API to.',
        restart="room",
    )
    local_port: int = setting(
        8188, "Port of the local Janus WebSocket API.", minimum=1, maximum=65535, restart="room"
    )
    local_interface: str | None = setting(
        None, "Network interface the local Janus uses for media (default: all).", restart="room"
    )


@dataclass(frozen=True)
class AudioConfig:
    backend: Literal["auto", "alsa", "sim"] = setting(
        "auto", 'Audio backend: "alsa", "sim", or "auto" (sim with --sim, else alsa).',
        restart="audio",
    )
    mic_device: str = setting("default", "ALSA capture device (default, plughw:1,0, ...).",
                              restart="audio")
    speaker_device: str = setting("default", "ALSA playback device.", restart="audio")
    period_size: int = setting(
        480, "ALSA period in frames at the device rate (480 = 10 ms at 48 kHz; raise it "
        "for a card that underruns, see docs/audio.md).", minimum=32, maximum=16384,
        restart="audio",
    )
    buffer_size: int = setting(
        1440, "ALSA buffer in frames at the device rate (1440 = 3 periods of 480).",
        minimum=64, maximum=65536, restart="audio",
    )
    mic_enabled: bool = setting(True, "Microphone on at start.")
    speaker_enabled: bool = setting(True, "Speaker on at start.")
    mic_volume: int = setting(100, "Microphone gain, 0-100.", minimum=0, maximum=100)
    speaker_volume: int = setting(80, "Speaker volume, 0-100.", minimum=0, maximum=100)
    speaker_hold_s: float = setting(
        3.0, "In a room, seconds the speaker plays on (silence) after the last voice that "
        "can be heard went, before the device rests: a voice back within it does not "
        "close and reopen the device.", minimum=0.0, maximum=600.0, restart="room")
    aec: bool = setting(True, "Acoustic echo cancellation.")
    noise_suppression: bool = setting(True, "Noise suppression.")
    agc: bool = setting(True, "Automatic gain control.")
    jitter_min_ms: float = setting(
        10.0, "Least delay the receive jitter buffer keeps, in ms (it adapts above this to "
        "the measured jitter).", minimum=0.0, maximum=500.0, restart="room")
    jitter_max_ms: float = setting(
        300.0, "Most delay the receive jitter buffer may grow to, in ms.", minimum=20.0,
        maximum=2000.0, restart="room")
    frame_ms: Literal[10, 20] = setting(
        20, "Audio per Opus packet sent to the room, ms: 20, or 10 (less delay, twice the "
        "packets).", restart="room")
    opus_bitrate_kbps: int = setting(
        32, "Opus bitrate of the mic sent to the room (in-band FEC is taken from it).",
        minimum=6, maximum=510, restart="room")
    opus_complexity: int = setting(
        9, "libopus encoder effort for the mic, 0-10 (9 is libopus's own default): 5 (as "
        "libwebrtc on phones) costs about half as much per frame for the same speech, but "
        "keeps steady tones in hybrid mode, which conceal worse under loss (docs/audio.md).",
        minimum=0, maximum=10, restart="room")
    opus_fec: bool = setting(
        True, "Opus in-band FEC in what the mic sends, following the loss the server "
        "reports (with 20 ms packets; costs nothing on a clean link, docs/audio.md).",
        restart="room")
    opus_dtx: bool = setting(
        False, "Opus discontinuous transmission: send almost nothing while the mic is "
        "silent.", restart="room")
    input_sensitivity: int = setting(
        50, "How easily the box counts its own mic as talking (the local talking event "
        "and the level LED), 0-100: the threshold is -10 dBFS at 0 and -70 dBFS at 100.",
        minimum=0, maximum=100)
    announcements: bool = setting(
        True, "Play the announce custom messages other members send on the speaker.")


@dataclass(frozen=True)
class VideoConfig:
    enabled: bool = setting(True, "Send the camera to the room.")
    receive: bool | Literal["auto"] = setting(
        "auto", 'Receive other members\' video: true, false (audio only, less CPU and memory), '
        'or "auto": only while something on the box shows it (the screen, see [display]).',
        restart="room")
    backend: Literal["auto", "picamera2", "v4l2", "sim"] = setting(
        "auto", 'Camera backend; "auto" picks picamera2, then V4L2 (sim with --sim).',
        restart="video",
    )
    device: str = setting("/dev/video0", "V4L2 device path.", restart="video")
    input_format: str = setting(
        "", 'V4L2 pixel format to ask for ("mjpeg", "yuyv422", "nv12"); empty = the default.',
        pattern=r"^[a-z0-9_]*$", restart="video",
    )
    width: int = setting(640, "Capture width in pixels.", minimum=16, maximum=3840,
                         restart="video")
    height: int = setting(480, "Capture height in pixels.", minimum=16, maximum=2160,
                          restart="video")
    fps: int = setting(30, "Capture frame rate.", minimum=1, maximum=120, restart="video")
    mirror: bool = setting(False, "Mirror the camera's picture (left and right swapped).")
    rotate: Literal[0, 90, 180, 270] = setting(
        0, "Rotate the camera's picture clockwise by this many degrees (for a box mounted "
        "sideways or upside down).")
    bitrate_kbps: int = setting(1000, "Target video bitrate.", minimum=50, maximum=20000)
    gop_seconds: float = setting(2.0, "Longest time between keyframes.", minimum=0.1,
                                 maximum=60.0)
    encoder: Literal["auto", "libx264", "h264_v4l2m2m"] = setting(
        "auto", "H.264 encoder; auto prefers the hardware one and falls back to libx264.",
        restart="video",
    )


@dataclass(frozen=True)
class DisplayConfig:
    enabled: bool = setting(True, "Show the room on a screen (HDMI) when there is one.",
                            restart="display")
    backend: Literal["auto", "kms", "sim", "off"] = setting(
        "auto", 'Screen backend: "auto" uses DRM/KMS when pykms and a DRM device are present '
        '(else none); "sim" renders for the page (GET /api/display.jpg).', restart="display")
    layout: Literal["grid", "speaker", "single"] = setting(
        "grid", "Layout at start: every member, the talker large, or one member.",
        restart="display")
    hide_video_muted: bool = setting(
        False, "Leave out members who send no video.", restart="display")
    self_view: bool = setting(
        False, "Show this box's own camera as a tile (while the camera runs).",
        restart="display")
    resolution: str = setting(
        "auto", 'Screen size, "auto" (the screen\'s preferred mode; 1280x720 for the sim) '
        'or WIDTHxHEIGHT.', pattern=r"^(auto|\d{2,5}x\d{2,5})$", restart="display")


@dataclass(frozen=True)
class GpioConfig:
    backend: Literal["auto", "lgpio", "mock"] = setting(
        "auto", 'Pin factory: "lgpio" on the board, "mock" in sim; auto picks.', restart="gpio"
    )
    buttons: dict[str, int] = setting(
        {}, "Button role -> BCM pin (call, mute, ptt, vol_up, vol_down, camera, hand, record).",
        restart="gpio",
    )
    leds: dict[str, int] = setting(
        {}, "LED role -> BCM pin (status, mute, camera, level, mic_active).", restart="gpio")
    active_high: bool = setting(False, "Buttons read high when pressed.", restart="gpio")
    pull_up: bool = setting(True, "Use the internal pull-up (button to ground).", restart="gpio")
    bounce_time: float = setting(0.02, "Debounce time in seconds.", minimum=0.0, maximum=1.0,
                                 restart="gpio")
    hold_time: float = setting(1.0, "Seconds before a held button counts as held.",
                               minimum=0.1, maximum=30.0, restart="gpio")
    repeat_interval: float = setting(0.25, "Auto-repeat interval while held (volume).",
                                     minimum=0.05, maximum=5.0, restart="gpio")
    reset_hold_time: float = setting(10.0, "Seconds to hold call for a factory reset.",
                                     minimum=2.0, maximum=60.0)
    volume_target: Literal["speaker", "mic"] = setting(
        "speaker", "What vol_up/vol_down change: the speaker, or the mic level sent to the room."
    )


@dataclass(frozen=True)
class SerialConfig:
    port: str | None = setting(None, "Device path or pyserial URL (loop://); unset = off.",
                               restart="serial")
    baudrate: int = setting(115200, "Baud rate (8N1).", minimum=50, maximum=4_000_000,
                            restart="serial")


@dataclass(frozen=True)
class WebConfig:
    listen: str = setting(
        "", 'host:port of the config page; empty = "0.0.0.0:8080", or 127.0.0.1:8080 with --sim. '
        "Host: an IPv4 address, [IPv6] or a host name; port 1-65535 (0: any free one, for "
        "tests). A change from the page must name an address of this box.",
        pattern=r"^$|^(\[[0-9a-fA-F:]+\]|[^\s:]+):\d{1,5}$",
        restart="web", check="listen",
    )
    https: bool = setting(False, "Serve HTTPS with a per-device self-signed certificate.",
                          restart="web")
    max_connections: int = setting(
        256, "Most connections to the page at once (past it the oldest half-sent request "
             "is closed, or the new connection gets 503); kept below the open-file limit.",
        minimum=8, maximum=65536, restart="web")
    header_seconds: int = setting(
        10, "A request's headers must arrive within this; an idle connection closes "
            "after it.", minimum=1, maximum=300, restart="web")
    body_seconds: int = setting(30, "A request's body must arrive within this.",
                                minimum=1, maximum=600, restart="web")
    login_failures: int = setting(
        5, "Failed logins from one address in 10 minutes before it is locked out for 10 "
           "minutes.", minimum=1, maximum=1000, restart="web")
    login_failures_total: int = setting(
        20, "Failed logins from all addresses in 10 minutes before every login is "
            "refused until the oldest is 10 minutes old.", minimum=1, maximum=100000,
        restart="web")
    max_guests: int = setting(4, "Guests (with a guest link) in the room page at once.",
                              minimum=0, maximum=32)
    guest_messages_per_second: int = setting(
        20, "Signalling messages a second one guest may send (bursts of three seconds' "
        "worth pass).", minimum=1, maximum=1000)


@dataclass(frozen=True)
class StreamConfig:
    rtmp_url: str | None = setting(
        None, "RTMP URL the live stream is pushed to (may contain the stream key).",
        pattern=r"^rtmps?://\S+$", secret=True,
    )
    video_bitrate_kbps: int = setting(1500, "Stream video bitrate.", minimum=100,
                                      maximum=20000)
    audio_bitrate_kbps: int = setting(96, "Stream AAC bitrate.", minimum=16, maximum=320)
    ca_file: str | None = setting(
        None, "PEM file of the CA (or the self-signed certificate) that an rtmps:// "
        "server's certificate is checked against (default: the system's CAs).",
    )


@dataclass(frozen=True)
class RecordConfig:
    directory: str = setting("recordings", "Where recordings go (relative to the state dir).")
    format: Literal["mkv", "mp4"] = setting("mkv", "Container: mkv or fragmented mp4.")
    segment_seconds: int = setting(300, "Length of each file.", minimum=2, maximum=86400)
    max_total_mb: int = setting(2048, "Oldest files are deleted past this total.",
                                minimum=1, maximum=10_000_000)
    min_free_mb: int = setting(200, "Recording stops when free disk falls below this.",
                               minimum=0, maximum=10_000_000)


@dataclass(frozen=True)
class SimConfig:
    mic: str = setting("tone:440", 'Sim mic: "tone:<hz>", "silence", or a WAV path (looped).',
                       pattern=r"^(tone:\d+(\.\d+)?|silence|.+\.wav)$", restart="audio")
    speaker: str = setting("speaker.wav", "WAV file (in the state dir) the sim speaker writes.",
                           restart="audio")
    speaker_max_mb: int = setting(50, "Size at which the sim speaker WAV is rotated.",
                                  minimum=1, maximum=10000)
    speaker_drift_ppm: float = setting(
        0.0, "How fast the sim speaker's clock runs against the system clock, in ppm "
        "(negative: slow), as a sound card's crystal would.", minimum=-10000.0,
        maximum=10000.0, restart="audio")
    mic_drift_ppm: float = setting(
        0.0, "How fast the sim mic's clock runs against the system clock, in ppm.",
        minimum=-10000.0, maximum=10000.0, restart="audio")
    camera: Literal["pattern"] = setting("pattern", "Sim camera source.", restart="video")
