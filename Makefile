# Two commands do everything on a fresh machine:
#   make demo   set up .venv, then translate sample sentences and show the alignment
#   make test   set up .venv, then the checks (ruff, mypy, layer contracts) and the whole suite
#   make test-fast   the same without the slow training tests (about 80 s)
#
# The set-up installs torch first, pinned, so pip never pulls a newer multi-GB build:
# TORCH defaults to torch==2.13.0 (a local CPU wheel on our machines; on a machine with an
# NVIDIA GPU and internet access, PyPI serves the CUDA build of the same version).
# Another build:  make setup TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin

.PHONY: demo test test-fast check setup browser lint bench-help clean

DEMO_MODEL ?= $(firstword $(wildcard models/en-de) runs/demo)
DEMO_STEPS ?= 300
DEMO_TEXT  ?= "A man in an orange hat is looking at something." "Two dogs are playing in the snow."

demo: setup
	@if [ ! -f "$(DEMO_MODEL)/seqattn.json" ]; then \
	  echo "No trained model ships in models/ yet: training a tiny one on sample_data/ first" \
	       "($(DEMO_STEPS) steps, a few minutes on a CPU; its translations will be rough)." >&2; \
	  $(BIN)/seqattn train --preset sample-tiny --out $(DEMO_MODEL) \
	    --set training.max_steps=$(DEMO_STEPS) --set training.valid_every=$(DEMO_STEPS) \
	    $$([ -f "$(DEMO_MODEL)/train_state.pt" ] && echo --resume) || exit $$?; \
	fi
	@$(BIN)/seqattn translate -m $(DEMO_MODEL) --align $(DEMO_TEXT)

test: check browser
	$(BIN)/python -m pytest -q

test-fast: setup browser
	$(BIN)/ruff check seqattn tests bench
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q -m "not slow"

# ruff, mypy and the layer contracts of pyproject.toml (no import cycle; the library never
# imports the CLI; models import neither training, decoding nor alignment; ...)
check: setup
	$(BIN)/ruff check seqattn tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

setup: $(VENV)/.installed

# The explorer's browser test (tests/test_serve_browser.py) drives Debian's chromium through its
# chromedriver: installed with apt-get where missing (as root, or through sudo), with a CJK font
# (the explorer's and the PNG heatmap's tests draw Chinese words).
browser:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  if command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium and chromium-driver (apt-get) for the browser test" >&2; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	      chromium chromium-driver fonts-noto-cjk >/dev/null; \
	  else \
	    echo "the browser test needs chromium and chromedriver; install them, or set" \
	         "SEQATTN_SKIP_BROWSER=1 to skip it" >&2; \
	  fi; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check $(TORCH)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

lint: check

bench-help: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/help_time.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .import_linter_cache *.egg-info
