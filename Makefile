# modelship developer commands. `make help` lists them.
SHELL := bash
VENV := .venv/bin
CLUSTER_ROOT ?= .cluster/default

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z][a-z0-9_-]*:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "} {printf "  make %-12s %s\n", $$1, $$2}'

.PHONY: setup
setup: ## Install everything: Debian packages, .venv, the Go-built control-plane toolchain
	hack/bootstrap.sh

.PHONY: toolchain
toolchain: ## Build etcd, kube-*, kubectl, kwok and helm from Go modules (cached by version)
	hack/toolchain/build.sh

.PHONY: up
up: setup ## Start the local cluster (control plane, nodes, Prometheus, model store) with modelship
	$(VENV)/modelship-cluster --root $(CLUSTER_ROOT) up --crds crds

.PHONY: down
down: ## Stop the local control plane and delete its state
	@if [ -x $(VENV)/modelship-cluster ]; then $(VENV)/modelship-cluster --root $(CLUSTER_ROOT) down; fi

.PHONY: crds
crds: ## Regenerate crds/ and docs/api.md from operator/api, config/default from the chart
	$(VENV)/python hack/gen_api.py
	$(VENV)/python hack/gen_kustomize.py

.PHONY: lint
lint: ## ruff, ruff format --check, mypy --strict, generated files up to date
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy operator model_server hack/localcluster
	$(VENV)/python hack/gen_api.py --check
	$(VENV)/python hack/gen_kustomize.py --check
	$(VENV)/python hack/gen_protos.py --check

.PHONY: test
test: setup lint ## Run every test (unit, integration, e2e) against the real control plane
	$(VENV)/pytest -m "unit or integration or e2e" $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: ## Run the unit tests only
	$(VENV)/pytest -m unit $(PYTEST_ARGS)

.PHONY: images
images: ## Build the image (localhost/modelship:dev) with buildah on a debootstrapped base; needs root
	hack/images/build.sh

.PHONY: protos
protos: ## Regenerate model_server/proto/*_pb2* from the .proto files
	$(VENV)/python hack/gen_protos.py
