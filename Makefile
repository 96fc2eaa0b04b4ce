# Two commands do everything from a fresh clone: `make study` and `make test`. `make test-cluster`
# (root only) runs the one test that starts a one-node Slurm cluster on this machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
CORES  ?= all
# PRESET unset: run params.yaml as it is. PRESET=quick|smoke|paper: rewrite params.yaml from
# that preset first, and dvc.yaml with it (like `dvc exp run --set-param`; the change shows in
# `git diff params.yaml dvc.yaml`).
PRESET ?=
# DATA=path/to/tree: run on a dataset in IUGC 2025 layout (data.source iugc2025, data.root DATA).
DATA ?=
PYTEST_ARGS ?= -n 2 --dist loadfile

# Snakemake's jobs call `iugc`; put the venv first on PATH for them.
export PATH := $(BIN):$(PATH)

.PHONY: install data study _study test test-cluster bench lint clean-results

# --no-cache-dir: installing writes nothing outside the checkout (no pip cache in the home folder).
# The environment takes about 7 GB (torch's CUDA build is the bulk): say so before pip fails
# half-way with "No space left on device".
$(VENV)/.installed: pyproject.toml
	@free_kb=$$(df -Pk . | awk 'NR == 2 {print $$4}'); [ "$$free_kb" -ge 8000000 ] \
	  || echo "make install: only $$((free_kb / 1000000)) GB free here and the environment takes about 7 GB; free some space if pip stops with 'No space left on device'" >&2
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-cache-dir --upgrade pip
	$(BIN)/python -m pip install -q --no-cache-dir -e '.[workflow,dev]'
	touch $@

install: $(VENV)/.installed

# params.yaml (and dvc.yaml, which follows it) from PRESET and DATA; the tree is checked first.
# `make data DATA=...` alone prepares `dvc repro`.
data: install
ifneq ($(PRESET),)
	$(BIN)/iugc params --preset $(PRESET) --out params.yaml
endif
ifneq ($(DATA),)
	$(BIN)/iugc validate-data $(DATA) > /dev/null
	$(BIN)/iugc params --from params.yaml --set data.source=iugc2025 --set data.root=$(abspath $(DATA)) --out params.yaml
endif
ifneq ($(PRESET)$(DATA),)
	$(BIN)/iugc dvc-yaml
endif

# One command that also recovers: the flock guarantees that no other `make study`, and no job of
# one (jobs inherit the lock, so a job left running by a killed Snakemake holds it until it
# ends), runs in this folder; a Snakemake lock found then is stale and is removed, and jobs a
# kill left incomplete run again (the default profile's rerun-incomplete). dvc.lock is brought
# up to date even when nothing had to run, so `dvc status` agrees with Snakemake afterwards.
# flock's own exit code for a held lock says why it refused (testing the lock again afterwards
# raced with a job that ended in between: refused, but silent).
study: install data
	@mkdir -p .snakemake
	@flock --nonblock --conflict-exit-code 75 .snakemake/make-study.lock $(MAKE) --no-print-directory _study \
	  || { status=$$?; [ $$status -ne 75 ] \
	       || echo "make study: another study, or a job of an interrupted one, is still running in this folder; wait for it to end, then run make study again" >&2; \
	       exit $$status; }

_study:
	$(BIN)/snakemake --unlock --quiet all
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/dvc commit --force --quiet
	@echo "make study: the report is reports/report.html"

# One thread per test worker: two workers on two cores beat oversubscribed torch thread pools.
# Everything but the Slurm test: needs no privileges and writes only in the checkout and the
# system's temporary folder.
test: install
	OMP_NUM_THREADS=1 $(BIN)/pytest -m "not slurm" $(PYTEST_ARGS)

# The smoke study through a one-node Slurm cluster this machine starts for it
# (workflow/profiles/slurm-local/local-cluster.sh): needs root, installs slurm-wlm and munge where
# missing, writes /etc/slurm (and /etc/munge/munge.key where there is none); refuses a machine
# that already runs Slurm or munge.
test-cluster: install
	@[ "$$(id -u)" -eq 0 ] || { echo "make test-cluster: needs root (it installs Slurm and munge and writes /etc/slurm, /etc/munge); make test runs everything else" >&2; exit 2; }
	OMP_NUM_THREADS=1 $(BIN)/pytest -m slurm tests/test_cluster_and_real_data.py

# The benchmarks (training step against this machine's matmul rate, data pipeline, inference,
# memory); STUDY=path also times `snakemake -n` and `dvc status` in that finished study.
bench: install
	$(BIN)/python benchmarks/run.py --json reports/bench.json $(if $(STUDY),--study $(STUDY))

# The device check (benchmarks/gpu_check.sh): prepared here on the CPU (the wheels a GPU machine
# without network lacks into .whl/, real frames and the data stages into .gpucheck/; both are
# git-ignored), then `make gpu-check` (or `bash benchmarks/gpu_check.sh OUT`) on the GPU machine.
.PHONY: gpu-check-prepare gpu-check
GPU_CHECK_DATA ?= ../shared/data/psfhs_aop
gpu-check-prepare: install
	rm -rf .whl && $(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
	  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 -d .whl -r benchmarks/gpu_check_wheels.txt
	$(BIN)/python benchmarks/gpu_check.py prepare --data $(GPU_CHECK_DATA)

gpu-check:
	bash benchmarks/gpu_check.sh $(OUT)

lint: install
	$(BIN)/snakemake --lint

# Removes everything the study wrote (git-ignored files under the output folders).
clean-results:
	git clean -fdX data results reports
	rm -rf .snakemake/iugc-params .snakemake/iugc-hashes.json
