# mtf_arch: the two commands a newcomer needs (see README):
#   make demo   set up, build the offline corpus, run the embedded default
#   make test   set up, build the offline corpus, run the whole test suite
# Both are safe to rerun: each step is skipped when its output is current.

SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.11 python3.10 python3.9 python3; do \
             command -v $$p >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV ?= .venv
BIN := $(VENV)/bin
# The offline corpus and vocabulary (see mtf_arch/corpus.py).
export MTF_ARCH_DATA_DIR ?= $(HOME)/.cache/mtf_arch
JOBS ?= 2
STAMP := $(VENV)/.requirements-installed
PKG_SOURCES := setup.py mtf_arch.pth mtf_arch_hook.py \
  $(shell find mtf_arch gin launch analysis -type f \( -name '*.py' -o -name '*.gin' \) 2>/dev/null)

.PHONY: demo test setup data lint format clean

demo: data
	$(BIN)/python -m launch.study $(or $(ARGS),launch/studies/mini.toml) --jobs $(JOBS)

test: data
	$(BIN)/ruff check mtf_arch mtf_arch_hook.py launch analysis bench tests setup.py
	$(BIN)/yapf --diff --recursive mtf_arch mtf_arch_hook.py launch analysis bench tests setup.py
	$(BIN)/python -m pytest -n $(JOBS) tests $(PYTEST_ARGS)

setup: $(VENV)/.package-installed

$(STAMP): requirements.txt
	@if [ -z "$(PYTHON)" ]; then echo "mtf_arch: no python3 found; install Python 3.9-3.11" >&2; exit 1; fi
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 9) <= v <= (3, 11) else "mtf_arch: Python %d.%d found (%s), but TensorFlow 2.15 needs Python 3.9-3.11: run make PYTHON=/path/to/python3.11" % (v + (sys.executable,)))'
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-deps -r requirements.txt
	@touch $@

$(VENV)/.package-installed: $(STAMP) $(PKG_SOURCES)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation .
	@rm -rf build mtf_arch.egg-info
	@touch $@

data: setup
	$(BIN)/python -m mtf_arch.corpus

format: setup
	$(BIN)/yapf --in-place --recursive mtf_arch mtf_arch_hook.py launch analysis bench tests setup.py

clean:
	rm -rf $(VENV) build *.egg-info
