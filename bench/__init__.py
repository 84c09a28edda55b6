"""Benchmarks run by ``make bench``; each module ``bench_*.py`` has ``run() -> list[Row]``."""
