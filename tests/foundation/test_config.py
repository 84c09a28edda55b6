from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from device import config
from device.errors import ConfigError


def issues_of(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as info:
        config.parse(text, "edgeroom.toml")
    return [(i.key, i.line, i.message) for i in info.value.issues]


def test_defaults_from_empty_file() -> None:
    cfg = config.parse("")
    assert cfg == config.Config()
    assert cfg.room.backend == "videoroom"
    assert cfg.serial.baudrate == 115200
    assert cfg.room.auto_join is True


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    assert config.load(tmp_path / "absent.toml") == config.Config()


def test_wrong_type_names_key_value_and_line() -> None:
    [(key, line, msg)] = issues_of('[audio]\nbackend = "sim"\nmic_volume = "loud"\n')
    assert key == "audio.mic_volume"
    assert line == 3
    assert "'loud'" in msg and "integer" in msg


def test_a_room_is_a_number_or_a_name() -> None:
    # a server with string ids names its rooms ("lobby"); others number them
    assert config.parse('[room]\nroom = "lobby"\n').room.room == "lobby"
    assert config.parse('[room]\nroom = "1234"\n').room.room == "1234"
    assert config.parse("[room]\nroom = 1234\n").room.room == 1234
    [(key, line, msg)] = issues_of('[room]\nroom = "the lobby"\n')
    assert (key, line) == ("room.room", 2)
    assert "'the lobby'" in msg and "a room name is 1-128 letters" in msg, msg
    [(_, _, msg)] = issues_of('[room]\nroom = "../../etc"\n')  # it names files too
    assert "a room name is" in msg
    [(_, _, msg)] = issues_of('[room]\nroom = "-1"\n')
    assert "starting with a letter or digit" in msg
    [(_, _, msg)] = issues_of("[room]\nroom = 0\n")
    assert "allowed range 1.." in msg
    [(_, _, msg)] = issues_of("[room]\nroom = 1.5\n")
    assert "expected integer or string" in msg


def test_out_of_range_names_allowed_range() -> None:
    [(key, line, msg)] = issues_of("\n[audio]\nmic_volume = 150\n")
    assert (key, line) == ("audio.mic_volume", 3)
    assert "150" in msg and "0..100" in msg


def test_bad_choice_lists_allowed() -> None:
    [(key, line, msg)] = issues_of('[room]\nrole = "speaker"\n')
    assert key == "room.role" and line == 2
    assert "'publisher'" in msg and "'listener'" in msg


def test_unknown_key_suggests() -> None:
    [(key, line, msg)] = issues_of("[serial]\nbaud_rate = 9600\n")
    assert (key, line) == ("serial.baud_rate", 2)
    assert "unknown key" in msg and "'baudrate'" in msg


def test_unknown_section_suggests() -> None:
    [(key, line, msg)] = issues_of("[rooms]\nroom = 1\n")
    assert (key, line) == ("rooms", 1)
    assert "'room'" in msg


def test_syntax_error_names_line() -> None:
    [(key, line, msg)] = issues_of('[room]\nroom = 12\ndisplay_name = "x\n')
    assert key == "(syntax)" and line == 3
    assert "syntax" in msg


def test_every_error_is_reported_at_once() -> None:
    found = issues_of('[room]\nroom = 0\n[audio]\naec = "yes"\n[gpio]\nbuttons = {call = 99}\n')
    assert [(k, line) for k, line, _ in found] == [
        ("room.room", 2), ("audio.aec", 4), ("gpio.buttons", 6)]


def test_roundtrip_dump_parse() -> None:
    cfg = config.parse('[room]\nroom = 7\npin = "12 34"\n[gpio]\nbuttons = {call = 17, mute = 27}\n'
                       '[sim]\nmic = "tone:880"\n')
    again = config.parse(config.dumps(cfg))
    assert again == cfg
    assert again.gpio.buttons == {"call": 17, "mute": 27}


def test_replace_validates_and_keeps_the_rest() -> None:
    cfg = config.parse("[room]\nroom = 7\n")
    new = cfg.replace({"audio": {"mic_volume": 30}})
    assert new.audio.mic_volume == 30 and new.room.room == 7
    with pytest.raises(ConfigError) as info:
        cfg.replace({"audio": {"mic_volume": -1}})
    assert info.value.issues[0].key == "audio.mic_volume"


def test_restart_scopes() -> None:
    cfg = config.Config()
    assert config.restart_scopes(cfg, cfg.replace({"room": {"room": 9}})) == {"room"}
    assert config.restart_scopes(cfg, cfg.replace({"audio": {"mic_volume": 9}})) == set()


def test_redaction_hides_secrets() -> None:
    cfg = config.parse('[room]\npin = "4321"\napi_secret = "s3"\n[stream]\n'
                       'rtmp_url = "rtmp://127.0.0.1/live/key"\n')
    shown = cfg.to_dict(redact=True)
    assert shown["room"]["pin"] == config.REDACTED
    assert shown["stream"]["rtmp_url"] == config.REDACTED
    assert "4321" not in repr(shown)


def test_describe_covers_every_key() -> None:
    keys = {row["key"] for row in config.describe()}
    for sec, values in config.Config().to_dict().items():
        assert {f"{sec}.{k}" for k in values} <= keys
    assert all(row["doc"] for row in config.describe())


def test_cli_config_check(tmp_path: Path, edgeroom_cmd: list[str],
                          clean_env: dict[str, str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text("[room]\nroom = 5\n")
    ok = subprocess.run([*edgeroom_cmd, "config", "check", str(good)], capture_output=True,
                        text=True, env=clean_env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[room]\nroom = 5\n\n[audio]\nspeaker_volume = 101\nfoo = 1\n")
    res = subprocess.run([*edgeroom_cmd, "config", "check", str(bad)], capture_output=True,
                         text=True, env=clean_env, timeout=60)
    assert res.returncode == 1
    assert f"{bad}:5: audio.speaker_volume" in res.stderr
    assert f"{bad}:6: audio.foo: unknown key" in res.stderr


def test_cli_config_show_redacts(tmp_path: Path, edgeroom_cmd: list[str],
                                 clean_env: dict[str, str]) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[room]\npin = "98765"\n')
    env = dict(clean_env, EDGEROOM_CONFIG=str(path))
    res = subprocess.run([*edgeroom_cmd, "config", "show"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "98765" not in res.stdout
    assert 'pin = "***"' in res.stdout


def test_config_reference_doc_is_current() -> None:
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("config_reference",
                                                  root / "scripts" / "config_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (root / "docs" / "config.md").read_text() == module.render(), (
        "docs/config.md is stale: run .venv/bin/python scripts/config_reference.py")


def test_a_relative_state_dir_is_made_absolute(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # The local Janus runs in another working directory and is given paths under it.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDGEROOM_STATE_DIR", raising=False)
    assert config.state_dir_from_env("state") == tmp_path / "state"
    monkeypatch.setenv("EDGEROOM_STATE_DIR", "s2")
    assert config.state_dir_from_env() == tmp_path / "s2"
