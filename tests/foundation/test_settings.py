"""device/settings.py: each service's and driver's settings, built from the config."""

from __future__ import annotations

import dataclasses

import pytest

from device import settings
from device.config import Config

CHANGED = Config().replace({
    "room": {"server": "ws://10.0.0.5:8188", "backend": "audiobridge", "room": 42,
             "display_name": "Hall", "pin": "1234", "secret": "s", "speak_timeout": 9,
             "role": "listener"},
    "audio": {"backend": "alsa", "mic_device": "plughw:1,0", "speaker_device": "hw:2,0",
              "period_size": 480, "buffer_size": 1920, "mic_volume": 70, "speaker_volume": 60,
              "aec": False, "noise_suppression": False, "agc": True, "mic_enabled": False,
              "speaker_enabled": False, "jitter_min_ms": 40, "jitter_max_ms": 300,
              "speaker_hold_s": 7.5},
    "video": {"backend": "v4l2", "device": "/dev/video2", "input_format": "mjpeg",
              "width": 320, "height": 240, "fps": 15, "enabled": False},
    "sim": {"mic": "silence", "speaker": "out.wav", "speaker_max_mb": 5,
            "mic_drift_ppm": 100, "speaker_drift_ppm": -50},
    "serial": {"port": "loop://", "baudrate": 9600},
    "gpio": {"backend": "mock"},
})


def test_the_drivers_settings_carry_every_key_they_read() -> None:
    audio = settings.audio_devices(CHANGED)
    assert dataclasses.asdict(audio) == {
        "backend": "alsa", "mic_device": "plughw:1,0", "speaker_device": "hw:2,0",
        "period_size": 480, "buffer_size": 1920, "mic_volume": 70, "speaker_volume": 60,
        "sim_mic": "silence", "sim_mic_drift_ppm": 100, "sim_speaker": "out.wav",
        "sim_speaker_max_mb": 5, "sim_speaker_drift_ppm": -50}
    camera = settings.camera(CHANGED)
    assert dataclasses.asdict(camera) == {
        "backend": "v4l2", "device": "/dev/video2", "input_format": "mjpeg", "width": 320,
        "height": 240, "fps": 15, "sim_pattern": "pattern"}
    inventory = settings.inventory(CHANGED)
    assert (inventory.audio, inventory.camera) == (audio, camera)
    assert (inventory.serial_port, inventory.gpio_backend) == ("loop://", "mock")
    serial = settings.serial_control(CHANGED)
    assert (serial.port, serial.baudrate) == ("loop://", 9600)
    with pytest.raises(dataclasses.FrozenInstanceError):
        audio.mic_device = "default"  # type: ignore[misc]


def test_the_room_session_settings() -> None:
    session = settings.room_session(CHANGED)
    room = session.room
    assert (room.url, room.backend, room.room, room.display, room.pin, room.role) == (
        "ws://10.0.0.5:8188", "audiobridge", 42, "Hall", "1234", "listener")
    assert room.receive_video is False  # a voice room has no video to receive
    assert room.send_video is False
    assert (session.aec, session.noise_suppression, session.agc) == (False, False, True)
    assert (session.mic_enabled, session.mic_volume) == (False, 70)
    assert (session.speaker_enabled, session.speaker_volume) == (False, 60)
    assert (session.jitter_min_ms, session.jitter_max_ms) == (40, 300)
    assert session.speaker_hold_s == 7.5
    assert session.audio == settings.audio_devices(CHANGED)
    assert session.camera == settings.camera(CHANGED)
    features = settings.room_features(CHANGED)
    assert (features.secret, features.speak_timeout_s) == ("s", 9)


def test_the_local_room_server_url() -> None:
    local = Config().replace({"room": {"server": "local", "local_listen": "0.0.0.0",
                                       "local_port": 8200}})
    assert settings.server_url(local) == "ws://127.0.0.1:8200"
    assert settings.room_session(local).room.url == "ws://127.0.0.1:8200"
    assert settings.guests(local).janus_url == "ws://127.0.0.1:8200"
    sfu = settings.local_sfu(local)
    assert (sfu.listen_ip, sfu.port) == ("0.0.0.0", 8200)
    assert sfu.string_ids is False
    assert settings.server_url(CHANGED) == "ws://10.0.0.5:8188"


def test_a_named_local_room_makes_a_local_server_that_names_its_rooms(tmp_path) -> None:
    from services.room.janus.jcfg import write_config

    named = Config().replace({"room": {"server": "local", "room": "lobby"}})
    sfu = settings.local_sfu(named)
    assert sfu.string_ids is True and sfu.rooms[0].number == "lobby"
    write_config(tmp_path, sfu)
    for plugin in ("videoroom", "audiobridge", "textroom"):
        text = (tmp_path / f"janus.plugin.{plugin}.jcfg").read_text()
        assert "string_ids = true" in text and "room-lobby: {" in text, (plugin, text)
    numbered = settings.local_sfu(Config().replace({"room": {"server": "local"}}))
    write_config(tmp_path, numbered)
    assert "string_ids" not in (tmp_path / "janus.plugin.videoroom.jcfg").read_text()
