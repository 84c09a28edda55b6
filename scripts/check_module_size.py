#!/usr/bin/env python3
"""No module under device/, drivers/ or services/ over 400 lines (``make lint``).

A module that grows past the limit is split along its seams into small modules with one
job each. Every module over the limit is printed with its length; the exit status is 1 if
any.
"""

from __future__ import annotations

import sys
from pathlib import Path

LIMIT = 400
PACKAGES = ("device", "drivers", "services")


def too_long(root: Path, limit: int = LIMIT) -> list[tuple[Path, int]]:
    """(path, lines) of every ``.py`` file under the packages with more than ``limit``."""
    out = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            with path.open("rb") as fh:
                lines = sum(1 for _ in fh)
            if lines > limit:
                out.append((path.relative_to(root), lines))
    return out


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    found = too_long(root)
    for path, lines in found:
        print(f"{path}: {lines} lines (at most {LIMIT}: split it along its seams)")
    if found:
        return 1
    print(f"every module under {', '.join(p + '/' for p in PACKAGES)} is at most {LIMIT} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
