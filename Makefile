# Two commands do everything from a fresh clone: `make study` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
CORES  ?= all
# PRESET unset: run params.yaml as it is. PRESET=quick|smoke|paper: rewrite params.yaml from
# that preset first (like `dvc exp run --set-param`; the change shows in `git diff params.yaml`).
PRESET ?=
PYTEST_ARGS ?= -n 2

# Snakemake's jobs call `iugc`; put the venv first on PATH for them.
export PATH := $(BIN):$(PATH)

.PHONY: install study test report lint clean-results

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[workflow,dev]'
	touch $@

install: $(VENV)/.installed

study: install
ifneq ($(PRESET),)
	$(BIN)/iugc params --preset $(PRESET) --out params.yaml
endif
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --cores 1 --report reports/report.html

# One thread per test worker: two workers on two cores beat oversubscribed torch thread pools.
test: install
	OMP_NUM_THREADS=1 $(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/snakemake --lint

# Removes everything the study wrote (git-ignored files under the output folders).
clean-results:
	git clean -fdX data results reports
	rm -rf .snakemake/iugc-params .snakemake/iugc-hashes.json
