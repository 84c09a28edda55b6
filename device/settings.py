"""Each service's and driver's own settings, built from the one config file.

Services and drivers never see :class:`~device.config.Config`: each takes a small frozen
dataclass of just what it reads, defined next to it, and this module is where the
appliance builds them. A service that follows config changes at run time is handed a
``Callable[[], XSettings]`` that builds them again from the current config.

(The services' modules are imported inside the functions: they load in a thread at
start, see :func:`device.wiring.import_services`.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from device.config import Config
    from drivers.audio.settings import AudioDeviceSettings
    from drivers.camera.settings import CameraSettings
    from drivers.inventory import InventorySettings
    from services.display.settings import DisplaySettings
    from services.guest.proxy import GuestSettings
    from services.media.settings import MediaSettings
    from services.room.feature_commands import RoomFeatureSettings
    from services.room.janus.jcfg import JanusSettings
    from services.room.settings import SessionSettings
    from services.serial_control.settings import SerialControlSettings


def audio_devices(config: Config) -> AudioDeviceSettings:
    """The mic and speaker: ``[audio]`` and the sim's ``[sim]``."""
    from drivers.audio.settings import AudioDeviceSettings

    audio, sim = config.audio, config.sim
    return AudioDeviceSettings(
        backend=audio.backend, mic_device=audio.mic_device,
        speaker_device=audio.speaker_device, period_size=audio.period_size,
        buffer_size=audio.buffer_size, mic_volume=audio.mic_volume,
        speaker_volume=audio.speaker_volume, sim_mic=sim.mic,
        sim_mic_drift_ppm=sim.mic_drift_ppm, sim_speaker=sim.speaker,
        sim_speaker_max_mb=sim.speaker_max_mb, sim_speaker_drift_ppm=sim.speaker_drift_ppm)


def camera(config: Config) -> CameraSettings:
    """The camera: ``[video]`` and the sim's ``[sim]``."""
    from drivers.camera.settings import CameraSettings

    video = config.video
    return CameraSettings(backend=video.backend, device=video.device,
                          input_format=video.input_format, width=video.width,
                          height=video.height, fps=video.fps, sim_pattern=config.sim.camera)


def inventory(config: Config) -> InventorySettings:
    """What ``edgeroom devices`` and the page's device list check for."""
    from drivers.inventory import InventorySettings

    return InventorySettings(audio=audio_devices(config), camera=camera(config),
                             serial_port=config.serial.port,
                             gpio_backend=config.gpio.backend)


def server_url(config: Config) -> str:
    """The room server's WebSocket URL (the local Janus's when ``room.server = "local"``)."""
    room = config.room
    if room.server != "local":
        return room.server
    host = room.local_listen
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"ws://{host}:{room.local_port}"


def room_session(config: Config) -> SessionSettings:
    """The room session: ``[room]``, the room's side of ``[audio]`` and ``[video]``."""
    from services.room.context import RoomSettings
    from services.room.opus_send import OpusSendSettings
    from services.room.settings import SessionSettings

    room, audio, video = config.room, config.audio, config.video
    signalling = RoomSettings(
        url=server_url(config), backend=room.backend, room=room.room,
        display=room.effective_display_name, pin=room.pin, secret=room.secret,
        api_secret=room.api_secret, token=room.token, ca_file=room.ca_file, role=room.role,
        receive_video=video.receive if room.backend == "videoroom" else False,
        send_video=video.enabled,
        opus=OpusSendSettings(frame_ms=audio.frame_ms, bitrate_kbps=audio.opus_bitrate_kbps,
                              dtx=audio.opus_dtx, fec=audio.opus_fec,
                              complexity=audio.opus_complexity),
    )
    return SessionSettings(
        room=signalling, audio=audio_devices(config), camera=camera(config),
        aec=audio.aec, noise_suppression=audio.noise_suppression, agc=audio.agc,
        mic_enabled=audio.mic_enabled, mic_volume=audio.mic_volume,
        speaker_enabled=audio.speaker_enabled, speaker_volume=audio.speaker_volume,
        jitter_min_ms=audio.jitter_min_ms, jitter_max_ms=audio.jitter_max_ms,
        speaker_hold_s=audio.speaker_hold_s)


def local_sfu(config: Config) -> JanusSettings:
    """The local Janus (``room.server = "local"``) and the one room it holds."""
    from services.room.janus.jcfg import JanusSettings, RoomSpec

    room = config.room
    return JanusSettings(
        listen_ip=room.local_listen, port=room.local_port, interface=room.local_interface,
        rooms=(RoomSpec(room.room, description=room.effective_display_name, pin=room.pin,
                        secret=room.secret, history=room.history,
                        # voice-room links join plain-RTP participants (docs/links.md)
                        allow_rtp_participants=bool(config.link)
                        and room.backend == "audiobridge"),),
        api_secret=room.api_secret,
        string_ids=isinstance(room.room, str),  # a room named, not numbered
    )


def media(config: Config) -> MediaSettings:
    """Recording, streaming and the shared encoders: ``[record]``, ``[stream]``, the
    encoder keys of ``[video]``, the camera and the mic."""
    from services.media.settings import MediaSettings

    record, stream, video = config.record, config.stream, config.video
    return MediaSettings(
        camera=camera(config), audio=audio_devices(config),
        record_directory=record.directory, record_format=record.format,
        segment_seconds=record.segment_seconds, max_total_mb=record.max_total_mb,
        min_free_mb=record.min_free_mb, bitrate_kbps=video.bitrate_kbps,
        gop_seconds=video.gop_seconds, encoder=video.encoder,
        audio_bitrate_kbps=stream.audio_bitrate_kbps,
        stream_bitrate_kbps=stream.video_bitrate_kbps, rtmp_url=stream.rtmp_url,
        stream_ca_file=stream.ca_file,
        label=f"room{config.room.room}")



def serial_control(config: Config) -> SerialControlSettings:
    """The serial control line: ``[serial]``."""
    from services.serial_control.settings import SerialControlSettings

    return SerialControlSettings(port=config.serial.port, baudrate=config.serial.baudrate)


def room_features(config: Config) -> RoomFeatureSettings:
    """Metadata, requests to speak and chat moderation on the room's message channel."""
    from services.room.feature_commands import RoomFeatureSettings

    room = config.room
    return RoomFeatureSettings(secret=room.secret, speak_timeout_s=room.speak_timeout)


def guests(config: Config, room_now: int | str | None = None) -> GuestSettings:
    """Guests in the room from the page: ``[room]``, ``web.max_guests`` and
    ``web.guest_messages_per_second``; ``room_now``: the room the box is in, as its server
    takes it (a number, or a name: docs/room.md), when it is in one."""
    from services.guest.proxy import GuestSettings

    room, rate = config.room, config.web.guest_messages_per_second
    return GuestSettings(janus_url=server_url(config),
                         room=room.room if room_now is None else room_now, pin=room.pin,
                         api_secret=room.api_secret, token=room.token,
                         max_guests=config.web.max_guests, messages_per_second=float(rate),
                         burst=3 * rate)


def display(config: Config) -> DisplaySettings:
    """The room on a screen: ``[display]`` and the box's own name."""
    from services.display.settings import DisplaySettings

    d = config.display
    return DisplaySettings(layout=d.layout, hide_video_muted=d.hide_video_muted,
                           self_view=d.self_view, self_name=config.room.effective_display_name)
