# DeepRC: the two commands are `make demo` and `make test`; both set everything up.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.deeprc-installed
EXTRAS ?= mpi,test
PIP_FLAGS ?= --disable-pip-version-check --progress-bar off
PYTEST_ARGS ?=

.PHONY: install demo test test-fast infra bench clean constraints help

help:
	@echo "make install  create $(VENV) and install DeepRC with pinned versions (constraints.txt)"
	@echo "make demo     run the main job: pipelines/demo.yaml on this machine (pilot runner)"
	@echo "make test     the whole test suite (starts real Slurm and podman when run as root)"
	@echo "make bench    the benchmarks (comm, dataframe, pilot vs batch)"
	@echo "make clean    remove the venv, run folders and caches"

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) -q -c constraints.txt -e '.[$(EXTRAS)]'
	@touch $(STAMP)

demo: install
	$(BIN)/deeprc-deploy run pipelines/demo.yaml --site local

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
	{ echo "# Versions verified together on Debian 12 / Python 3.11 (make install uses this file)."; \
	  echo "# Regenerate: make constraints"; \
	  $(BIN)/pip freeze | grep -v -E '^(-e |deeprc)'; } > constraints.txt.new && mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) runs rp.session.* .pytest_cache .hypothesis build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
