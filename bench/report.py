"""Rows of figures, a printed table and the JSON file."""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class Skipped(Exception):
    """A benchmark that cannot run on this machine (the message says why). Listed as
    skipped, never as a result."""


@dataclass
class Row:
    """One figure of ours beside the reference measured in the same run."""

    group: str
    metric: str
    ours: float | None
    unit: str
    reference: float | None = None
    reference_name: str = ""
    lower_is_better: bool = True
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.reference in (None, 0):
            return None
        assert self.reference is not None
        return self.ours / self.reference

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratio"] = self.ratio
        return d


def _fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def table(rows: list[Row]) -> str:
    head = ["group", "metric", "ours", "reference", "ref. is", "ratio", "unit", "notes"]
    body = [[r.group, r.metric, _fmt(r.ours), _fmt(r.reference), r.reference_name,
             _fmt(r.ratio), r.unit, r.notes] for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body, strict=False)]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(head, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def write_json(rows: list[Row], directory: Path, failures: dict[str, str],
               skipped: dict[str, str] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = directory / f"{stamp}.json"
    path.write_text(json.dumps({
        "when": stamp,
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": __import__("os").cpu_count()},
        "rows": [r.to_dict() for r in rows],
        "failures": failures,
        "skipped": skipped or {},
    }, indent=2))
    return path
