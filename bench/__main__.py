"""``make bench``: run every benchmark, print the table, write bench/results/<time>.json.

Benchmarks report; they do not assert thresholds. A benchmark that fails is listed with
its error and the others still run.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import time
import traceback
from pathlib import Path

from bench.report import Row, Skipped, table, write_json


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help="only these benchmarks (e.g. dsp encode)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also show the warnings of the appliances under test")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        # Reconnects, decode hiccups and the like are what several benchmarks provoke.
        for name in ("services", "device", "drivers", "aiortc", "aioice", "tests.harness"):
            logging.getLogger(name).setLevel(logging.ERROR)
    here = Path(__file__).parent
    modules = sorted(m.name for m in pkgutil.iter_modules([str(here)])
                     if m.name.startswith("bench_"))
    if args.names:
        modules = [m for m in modules if m.removeprefix("bench_") in args.names]
    rows: list[Row] = []
    failures: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for name in modules:
        started = time.monotonic()
        print(f"== {name}", flush=True)
        try:
            module = importlib.import_module(f"bench.{name}")
            got = module.run()
            rows.extend(got)
            print(table(got), flush=True)
        except Skipped as exc:
            skipped[name] = str(exc)
            print(f"SKIPPED {name}: {exc}", flush=True)
        except Exception as exc:
            failures[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
    print()
    print(table(rows))
    for name, why in failures.items():
        print(f"FAILED {name}: {why}")
    for row in rows:  # a row whose trials all failed prints "-": say so where it is seen
        if row.ours is None:
            print(f"NO FIGURE {row.group} | {row.metric}: {row.notes or 'no notes'}")
    for name, why in skipped.items():
        print(f"SKIPPED {name} (no figures): {why}")
    path = write_json(rows, Path(args.out), failures, skipped)
    print(f"\nwritten {path}")
    return 1 if failures and not rows else 0


if __name__ == "__main__":
    sys.exit(main())
