# Two commands do everything on a fresh machine:
#   make demo   set up .venv, then translate sample sentences and show the alignment
#   make test   set up .venv, then run the whole test suite
#
# The set-up installs torch first, pinned, so pip never pulls a newer multi-GB build:
# TORCH defaults to torch==2.13.0 (a local CPU wheel on our machines; on a machine with an
# NVIDIA GPU and internet access, PyPI serves the CUDA build of the same version).
# Another build:  make setup TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin

.PHONY: demo test setup lint bench-help clean

demo: setup
	@echo "seqattn: no translation model ships yet (train/translate land next); showing one attention step instead" >&2
	@$(BIN)/seqattn explain

test: setup
	$(BIN)/python -m pytest -q

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check $(TORCH)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

lint: setup
	$(BIN)/ruff check seqattn tests bench

bench-help: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/help_time.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
