# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: run test test-fast test-slurm test-faults events-full setup lint clean docs

$(BIN)/jetimage: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

setup: $(BIN)/jetimage

run: setup
	$(BIN)/snakemake --cores $(CORES)

# Every test but the fault injection (tests/faults: make test-faults), on two processes (pytest-xdist;
# a module's tests stay on one, so its fixtures run once); the layer contracts are checked by
# tests/test_architecture.py.
test: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -n 2 --dist loadscope --ignore=tests/faults

# Unit tests only: no real workflow run or training through the command line (marker slow), no
# fault injection (under 3 minutes on 2 cores).
test-fast: setup
	$(BIN)/python -m pytest -n 2 --dist loadscope --ignore=tests/faults -m "not slow"

# The tiny workflow through a real one-node SLURM started on this machine (root, Debian/Ubuntu).
test-slurm: setup
	$(BIN)/python -m pip install --quiet -e ".[cluster]"
	tests/slurm/run.sh $(BIN)/python

# Fault injection (tests/faults): every stage killed (SIGKILL, SIGTERM) at seeded moments and run
# on a full disk (a small tmpfs: needs root), kill-and-resume of training, and invocations while a
# workflow trains.
test-faults: setup
	JETIMAGE_FAULTS=1 $(BIN)/python -m pytest tests/faults

# The full event study (config/events.yaml: about 530,000 Pythia events, hours of CPU) and the
# spread of its CNN figures over 3 training seeds (benchmarks/seed_spread.py).
events-full: setup
	$(BIN)/snakemake --cores $(CORES) --configfile config/events.yaml
	$(BIN)/python benchmarks/seed_spread.py results/events --seeds 3

# The documentation site (mkdocs-material, site/): the configuration reference must be current.
docs: setup
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	$(BIN)/python -m jetimage.config.reference --check docs/configuration.md
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# Style, types and layers: ruff, mypy on src/ (settings in pyproject.toml), the import-linter contracts.
lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/snakemake --lint

clean:
	rm -rf results/* logs .snakemake
