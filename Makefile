# Installs into the current Python environment (activate a venv first if you want one).
PYTHON ?= python3

.PHONY: install test lint bench

install:
	$(PYTHON) -m pip install -q -e '.[dev]'

test:
	$(PYTHON) -m ruff check runner tests bench
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check runner tests bench

bench:
	$(PYTHON) bench/run.py
