"""The checks `make lint` runs on the code's structure, and the status providers."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from device.providers import StatusProviders

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import check_cycles  # noqa: E402
import check_module_size  # noqa: E402


def test_cycles_are_found_with_one_loop_through_each() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"f"}, "f": {"e"}, "g": set()}
    found = check_cycles.cycles(edges)
    assert sorted(found) == [["a", "b", "c"], ["e", "f"]]
    assert check_cycles.loop_through(["a", "b", "c"], edges) == ["a", "b", "c", "a"]
    assert check_cycles.cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_this_code_has_no_import_cycles_and_type_checking_imports_count() -> None:
    edges = check_cycles.import_graph()
    assert "device.app" in edges and "drivers.common.bus" in edges
    assert check_cycles.cycles(edges) == []
    # device.wiring imports device.host only under TYPE_CHECKING: the graph has it.
    assert "device.host" in edges["device.wiring"]


def test_module_size_limit(tmp_path: Path) -> None:
    for package in ("device", "drivers", "services"):
        (tmp_path / package).mkdir()
    (tmp_path / "drivers" / "ok.py").write_text("x = 1\n" * 400)
    (tmp_path / "services" / "big.py").write_text("x = 1\n" * 401)
    assert check_module_size.too_long(tmp_path) == [(Path("services/big.py"), 401)]
    assert check_module_size.main(["", str(tmp_path)]) == 1
    assert check_module_size.too_long(ROOT) == []


def test_status_providers_answer_by_name_and_a_failing_one_is_null(
        caplog: pytest.LogCaptureFixture) -> None:
    providers = StatusProviders()
    providers.add("media", lambda: {"recording": False})

    def broken() -> dict[str, object]:
        raise RuntimeError("gone")

    providers.add("sfu", broken)
    with caplog.at_level(logging.ERROR):
        assert providers.collect() == {"media": {"recording": False}, "sfu": None}
    assert "status of sfu failed" in caplog.text
    providers.remove("sfu")
    assert "sfu" not in providers and list(providers) == ["media"]
    with pytest.raises(TypeError, match="must be callable"):
        providers.add("devices", {"microphones": []})  # type: ignore[arg-type]
