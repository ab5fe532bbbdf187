# `make install` installs tuner (editable, with the dev tools) into the active virtualenv or, when none is
# active, into .venv, which it creates; the other targets then use that same environment.
ifdef VIRTUAL_ENV
PYTHON ?= python3
else
PYTHON ?= .venv/bin/python
NEW_VENV := .venv/bin/python
endif

.PHONY: install test lint bench bench-scale

install: $(NEW_VENV)
	$(PYTHON) -m pip install -q -e '.[dev]'

.venv/bin/python:
	python3 -m venv .venv

test:
	$(PYTHON) -m ruff check runner tests bench
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check runner tests bench

bench:
	$(PYTHON) bench/run.py

# The 10,000-model tier (and its growth over 1,000; hotspots profiled at 10,000): longer, not in `make bench`.
bench-scale:
	$(PYTHON) bench/run.py --only plan --only hotspots --only state --scale-models 10000 --state-models 10000 --state-changes 1000
