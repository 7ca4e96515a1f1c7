# Two commands on a fresh machine (Python 3.11 with venv; no GPU needed):
#   make repro   set up .venv and run the whole pipeline (dvc repro, CPU default profile)
#   make test    set up .venv and run every test (pytest unit tests + nbval notebook validation)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup repro test bench

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

repro: setup
	$(BIN)/dvc repro

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/train_speed.py
