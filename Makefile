# DeepRC: the two commands are `make demo` and `make test`; both set everything up.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.deeprc-installed
EXTRAS ?= mpi,test
PIP_FLAGS ?= --disable-pip-version-check --progress-bar off
# torch's build: cpu (PyTorch's CPU index), a CUDA tag such as cu128, or pypi (PyPI's own build);
# TORCH_INDEX_URL overrides the index (a mirror). See deploy/install_torch.py.
TORCH_VARIANT ?= cpu
TORCH_INDEX_URL ?=
export TORCH_VARIANT TORCH_INDEX_URL
PYTEST_ARGS ?=

.PHONY: install demo test test-fast infra bench clean constraints help

help:
	@echo "make install  create $(VENV) and install DeepRC with pinned versions (constraints.txt)"
	@echo "make demo     run the main job: pipelines/demo.yaml on this machine (pilot runner)"
	@echo "make test     the whole test suite (starts real Slurm and podman when run as root)"
	@echo "make bench    the benchmarks (comm, dataframe, pilot vs batch)"
	@echo "make clean    remove the venv, run folders and caches"

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt deploy/install_torch.py
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
	  { echo "make install: DeepRC needs Python 3.10 or newer; $(PYTHON) is $$($(PYTHON) -V 2>&1). Fix: make PYTHON=python3.11 install"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python deploy/install_torch.py --constraints constraints.txt $(PIP_FLAGS) -q
	$(BIN)/pip install $(PIP_FLAGS) -q -c constraints.txt -e '.[$(EXTRAS)]'
	@touch $(STAMP)

# Prints where the time went: install, then the run's own split (pilot start, stages, report).
demo:
	@t0=$$(date +%s); $(MAKE) --no-print-directory install || exit 1; t1=$$(date +%s); \
	$(BIN)/deeprc-deploy run pipelines/demo.yaml --site local; rc=$$?; t2=$$(date +%s); \
	echo "make demo: install $$((t1 - t0)) s, pipeline $$((t2 - t1)) s (command to report), total $$((t2 - t0)) s"; \
	exit $$rc

test: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -ra --durations=25 $(PYTEST_ARGS)

test-fast: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -ra -m "not slow and not podman and not slurm and not cluster" $(PYTEST_ARGS)

infra:
	bash tests/infra/slurm.sh
	bash tests/infra/cluster.sh
	bash tests/infra/podman.sh

bench: install
	$(BIN)/python benchmarks/comm.py --ranks 2
	$(BIN)/python benchmarks/dataframe.py --rows 1000000 --ranks 2
	$(BIN)/python benchmarks/pilot_vs_batch.py

constraints: install
	$(BIN)/python deploy/freeze_constraints.py constraints.txt

clean:
	rm -rf $(VENV) runs rp.session.* .pytest_cache .hypothesis build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
