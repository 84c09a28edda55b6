# edgeroom: `make run` starts the appliance on simulated hardware, `make test` runs every test.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STATE ?= $(CURDIR)/state
PYTEST_ARGS ?=

.PHONY: help deps run test test-image test-hardware lint bench soak image clean

help:
	@echo "make run    start the appliance (simulated hardware, local Janus, page on :8080)"
	@echo "make test   install what the tests need, then run the whole suite"
	@echo "make bench  run the benchmarks (table + JSON in bench/results/)"
	@echo "make soak   one appliance under a page, joins and Janus restarts for SOAK_MINUTES (60)"
	@echo "make lint   ruff, mypy, the import layers, no import cycles, modules <= 400 lines"
	@echo "make test-image  build the arm64 root under qemu-user, check it and boot it in QEMU"
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
	$(VENV)/bin/lint-imports
	$(PY) scripts/check_cycles.py
	$(PY) scripts/check_module_size.py

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

# The arm64 image: the root built under qemu-user and checked in a chroot, then booted in
# QEMU (tests/arm64, see docs/image.md). Root; the cache is $(EDGEROOM_TEST_CACHE).
# IMAGE_TEST_BUDGET caps the whole run in seconds (cold cache: about 22 min here).
EDGEROOM_TEST_CACHE ?= /var/cache/edgeroom-test
IMAGE_TEST_BUDGET ?= 10800
test-image: deps
	EDGEROOM_TEST_CACHE=$(EDGEROOM_TEST_CACHE) timeout --signal=INT --kill-after=120 \
		$(IMAGE_TEST_BUDGET) $(PY) -m pytest -o addopts="-ra --strict-markers" tests/arm64 \
		$(PYTEST_ARGS)

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
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .grimp_cache .import_linter_cache state build dist *.egg-info
