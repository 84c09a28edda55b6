# edgeroom: `make run` starts the appliance on simulated hardware, `make test` runs every test.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STATE ?= $(CURDIR)/state
PYTEST_ARGS ?=

.PHONY: help deps run test test-hardware lint bench soak image clean

help:
	@echo "make run    start the appliance (simulated hardware, local Janus, page on :8080)"
	@echo "make test   install what the tests need, then run the whole suite"
	@echo "make bench  run the benchmarks (table + JSON in bench/results/)"
	@echo "make soak   one appliance under a page, joins and Janus restarts for SOAK_MINUTES (60)"
	@echo "make lint   ruff and mypy"
	@echo "make test-hardware  the tests that need a real board (camera, GPIO, sound card)"
	@echo "make image  build the Raspberry Pi OS image (see docs/image.md)"

deps:
	@scripts/deps.sh all

run: deps
	@mkdir -p $(STATE)
	$(VENV)/bin/edgeroom run --sim --state-dir $(STATE) --config $(STATE)/edgeroom.toml

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

# On a real board only: the hardware tests (camera, GPIO loopback, sound card).
test-hardware: deps
	$(PY) -m pytest -o addopts="-ra --strict-markers" tests/hardware $(PYTEST_ARGS)

bench: deps
	$(PY) -m bench $(BENCH_ARGS)

# Memory, fds and threads of one appliance over time (docs/performance.md); not in bench.
SOAK_MINUTES ?= 60
soak: deps
	$(PY) -m bench.soak --minutes $(SOAK_MINUTES)

image:
	image/build.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache state build dist *.egg-info
