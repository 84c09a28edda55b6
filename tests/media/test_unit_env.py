"""The appliance runs with the environment of its systemd unit, in tests and benchmarks
as on the device: the unit limits glibc's malloc arenas (``MALLOC_ARENA_MAX``), and a
process started without that would measure memory the device never uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.harness.appliance import REPO, ApplianceProcess
from tests.harness.polling import wait_for
from tests.harness.unit_env import UNIT, unit_environment

pytestmark = [pytest.mark.timeout(60)]


def test_the_unit_limits_malloc_arenas_and_gives_its_runtime_dir(tmp_path: Path) -> None:
    assert UNIT == REPO / "systemd" / "edgeroom.service"
    env = unit_environment(tmp_path / "run")
    assert env["MALLOC_ARENA_MAX"] == "2"
    # fixed, so libvpx's zeroed buffers always get mappings of their own (test_vp8.py)
    assert env["MALLOC_MMAP_THRESHOLD_"] == str(4 << 20)
    assert env["MALLOC_TRIM_THRESHOLD_"] == str(8 << 20)
    assert env["LG_WD"] == str(tmp_path / "run")  # /run/edgeroom, mapped
    assert (tmp_path / "run").is_dir()
    assert unit_environment(tmp_path / "x", tmp_path / "no.service") == {}


def test_the_harness_starts_the_appliance_with_the_units_environment(
        network: Any, tmp_path: Path) -> None:
    host = network.add_host("unitenv")
    app = ApplianceProcess(host, tmp_path / "box", {
        "room": {"auto_join": False}, "web": {"listen": "127.0.0.1:8080"}})
    app.start()
    try:
        assert app.pid is not None
        pid = app.pid
        wait_for(lambda: " up (" in app.log_text(), 30, "the appliance started")
        environ = dict(item.partition("=")[::2] for item in
                       Path(f"/proc/{pid}/environ").read_text().split("\0") if item)
        assert environ.get("MALLOC_ARENA_MAX") == "2"
        assert environ.get("MALLOC_MMAP_THRESHOLD_") == str(4 << 20)
        assert environ.get("LG_WD") == str(tmp_path / "box" / "run")
        assert app.alive()
    finally:
        app.stop()
