# Two commands on a fresh machine (Python 3.11 with venv; no GPU needed):
#   make repro   set up .venv and run the whole pipeline (DVC, CPU default profile)
#   make test    set up .venv and run every test (pytest unit tests + nbval notebook validation)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup browser repro test bench refresh-notebooks

# setup: the venv with the pinned packages, flatlib installed editable, and the venv registered as the Jupyter
# kernel "Python (flatlib)" (name flatlib, in the user's kernels), so a JupyterLab installed elsewhere finds it
setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m ipykernel install --user --name flatlib --display-name "Python (flatlib)"
	touch $@

# repro: the independent stages at once, one per core on one thread each (flatlib.stages.parallel: DVC decides what
# runs; on 2 cores 1.6x the throughput of one 2-thread stage at a time, README), then dvc repro records the rest
JOBS   ?= $(shell nproc)
repro: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m flatlib.stages.parallel --jobs $(JOBS) --threads-per-job 1
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

SMOKE  ?= .smoke

# browser: Debian's chromium for the page tests (tests/test_pages.py renders docs/ at 1400 and 390 px), installed with
# apt-get as root or with passwordless sudo; where neither works the page tests skip and say why
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); $$SUDO apt-get update -q && \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } || \
	  echo "Chromium could not be installed: tests/test_pages.py will skip"

test: setup browser
	FLATLIB_SMOKE_DIR=$(SMOKE) $(BIN)/python -m pytest
	cd $(SMOKE)/expected && PATH="$(CURDIR)/$(BIN):$$PATH" $(CURDIR)/$(BIN)/python -m pytest --nbval --nbval-current-env \
		-p no:cacheprovider --rootdir . *.ipynb

# After an intended change of results: rerun the smoke pipeline and store its executed notebooks as the
# outputs nbval validates against (then review `git diff tests/nbval` and commit).
refresh-notebooks: setup
	FLATLIB_SMOKE_DIR=$(SMOKE) $(BIN)/python -m pytest tests/test_pipeline.py -q
	cp $(SMOKE)/reports/*.ipynb tests/nbval/

bench: setup
	$(BIN)/python benchmarks/bench.py
