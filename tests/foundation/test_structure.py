"""The checks `make lint` runs on the code's structure, and the status providers."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tomllib
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


def _tree_for_the_contracts(root: Path) -> None:
    """Empty packages for every module the import contracts of pyproject.toml name, and
    pyproject.toml itself."""
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    names = set(options["root_packages"])
    for contract in options["contracts"]:
        for key in ("layers", "source_modules", "forbidden_modules"):
            names.update(contract.get(key, ()))
    for name in sorted(names):
        package = root.joinpath(*name.split("."))
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").touch()
    (root / "device" / "config.py").write_text("class Config:\n    pass\n")
    (root / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    lint = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    return subprocess.run([sys.executable, "-c", lint, "--no-cache"], cwd=root,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(root)}, check=False)


@pytest.mark.parametrize("layer", ["services", "drivers"])
def test_the_layer_contract_counts_type_checking_imports(tmp_path: Path, layer: str) -> None:
    _tree_for_the_contracts(tmp_path)
    module = tmp_path / layer / "uses_config.py"
    module.write_text("from typing import TYPE_CHECKING\n\nx = 1\n")
    clean = _lint_imports(tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    module.write_text("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                      "    from device.config import Config\n")
    broken = _lint_imports(tmp_path)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"{layer}.uses_config -> device.config" in broken.stdout
    assert f"{layer} is not allowed to import device" in broken.stdout


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
