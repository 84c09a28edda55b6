"""bench.compare: rows in both runs compared by their ours/reference ratio, in the
direction that is worse for the appliance."""

from __future__ import annotations

import json
from pathlib import Path

from bench.compare import compare, main


def _run(rows: list[dict]) -> dict:
    return {"rows": rows}


def _row(metric: str, ours: float, reference: float | None, lower: bool = True) -> dict:
    ratio = None if reference is None else ours / reference
    return {"group": "g", "metric": metric, "ours": ours, "reference": reference,
            "ratio": ratio, "lower_is_better": lower}


def test_the_wrong_direction_is_flagged_and_the_right_one_is_not() -> None:
    old = _run([_row("cpu", 2.0, 1.0), _row("fps", 30.0, 30.0, lower=False),
                _row("gone", 1.0, 1.0)])
    new = _run([_row("cpu", 2.4, 1.0), _row("fps", 24.0, 30.0, lower=False),
                _row("added", 1.0, 1.0)])
    got = {r["metric"]: r for r in compare(old, new, limit_pct=10)}
    assert set(got) == {"cpu", "fps"}
    assert round(got["cpu"]["worse_pct"], 1) == 20.0 and got["cpu"]["flag"]
    assert round(got["fps"]["worse_pct"], 1) == 20.0 and got["fps"]["flag"]
    better = compare(new, old, limit_pct=10)
    assert not any(r["flag"] for r in better)


def test_rows_without_a_reference_compare_their_own_figure(tmp_path: Path, capsys) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(_run([_row("latency", 100.0, None)])))
    new.write_text(json.dumps(_run([_row("latency", 105.0, None)])))
    assert main([str(old), str(new)]) == 0
    new.write_text(json.dumps(_run([_row("latency", 120.0, None)])))
    assert main([str(old), str(new)]) == 1
    assert "worse than the limit" in capsys.readouterr().out


def test_an_unreadable_file_is_named(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path / "missing.json"), str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
