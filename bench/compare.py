"""Compare two ``make bench`` JSON files row by row: ``python -m bench.compare OLD NEW``.

For every row present in both, it prints the ours/reference ratio of each run and how far
the new ratio moved, in the direction that is worse for the appliance. Rows without a
reference compare their own figure. ``--limit 10`` marks the rows that moved more than 10%
the wrong way; the exit status is 1 when any did.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _key(row: dict[str, Any]) -> tuple[str, str]:
    return row["group"], row["metric"]


def _figure(row: dict[str, Any]) -> tuple[float | None, str]:
    if row.get("ratio") is not None:
        return float(row["ratio"]), "ratio"
    if row.get("ours") is not None:
        return float(row["ours"]), "ours"
    return None, ""


def compare(old: dict[str, Any], new: dict[str, Any],
            limit_pct: float) -> list[dict[str, Any]]:
    """One entry per row in both files. ``worse_pct`` is positive when the new run is worse."""
    before = {_key(r): r for r in old["rows"]}
    out = []
    for row in new["rows"]:
        prior = before.get(_key(row))
        if prior is None:
            continue
        a, kind_a = _figure(prior)
        b, kind_b = _figure(row)
        if a is None or b is None or kind_a != kind_b or a == 0:
            worse = None
        else:
            change = (b - a) / abs(a) * 100.0
            worse = change if row.get("lower_is_better", True) else -change
        out.append({"group": row["group"], "metric": row["metric"], "compared": kind_b,
                    "old": a, "new": b, "worse_pct": worse,
                    "flag": worse is not None and worse > limit_pct})
    return out


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare")
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--limit", type=float, default=10.0,
                        help="percent a figure may move the wrong way (default 10)")
    args = parser.parse_args(argv)
    try:
        old = json.loads(args.old.read_text())
        new = json.loads(args.new.read_text())
    except (OSError, ValueError) as exc:
        print(f"cannot read the bench results: {exc}", file=sys.stderr)
        return 2
    rows = compare(old, new, args.limit)
    width = max((len(f"{r['group']} | {r['metric']}") for r in rows), default=10)
    for r in rows:
        name = f"{r['group']} | {r['metric']}".ljust(width)
        worse = "-" if r["worse_pct"] is None else f"{r['worse_pct']:+.1f}%"
        mark = "  <-- worse than the limit" if r["flag"] else ""
        print(f"{name} | {r['compared']:5} | {_fmt(r['old']):>8} -> {_fmt(r['new']):>8} "
              f"| worse by {worse}{mark}")
    flagged = sum(r["flag"] for r in rows)
    print(f"\n{len(rows)} rows in both files; {flagged} moved more than "
          f"{args.limit:g}% the wrong way")
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
