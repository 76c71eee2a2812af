# CampusConnect: `make up` starts everything natively, `make test` runs every test against it.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTEST := uv run --frozen pytest
# single (default) or cluster: 3 Kafka brokers, 2 Connect workers, Redis Cluster 3+3, every
# service twice behind HAProxy. Kept in .stack/data/topology until `make clean`.
TOPOLOGY ?=
# The single-node suites refuse a cluster's data (stack/up.sh says to `make clean` first).
test test-docs test-integration: TOPOLOGY := single

.PHONY: help install env up down status logs clean seed helm test test-docs test-unit test-integration test-e2e lint bench bench-topologies chaos demo-consistency demo-failure lag docker images compose-up compose-down test-containers test-compose test-cluster

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

install: ## install everything that is missing (apt packages, uv, jars, Go build)
	@stack/install.sh

up: ## install what is missing and start the whole stack (TOPOLOGY=cluster for the cluster)
	@TOPOLOGY=$(TOPOLOGY) stack/up.sh

down: ## stop every process
	@stack/down.sh

status: ## what is running
	@stack/status.sh

logs: ## follow every component's log (C=name for one)
	@tail -n 50 -F .stack/logs/$(if $(C),$(C),*).log

clean: down ## stop and wipe all data (keeps downloaded jars and binaries)
	@rm -rf .stack/data .stack/run && echo "data wiped"

seed: ## load sample users, groups, memberships, friendships and posts.json
	@uv run --frozen campus seed

helm: ## build Helm (pinned) from the Go module proxy for the chart tests; a no-op once built
	@stack/helm/install.sh

lint: ## ruff and mypy
	uv run --frozen ruff check .
	uv run --frozen ruff format --check .
	uv run --frozen mypy -p campus_common -p campus_users -p campus_documents -p campus_graph -p campus_timeseries -p campus_gateway -p campus_cli

test: up helm ## start the stack if needed and run every native test (the docs suite first: it wipes the stack); containers: test-containers, test-compose
	@status=0; \
	$(PYTEST) -m docs tests/docs || status=$$?; \
	$(PYTEST) -m "not docs and not containers and not compose and not cluster" tests || status=$$?; \
	exit $$status

test-docs: up ## run every command the README, teaching guide and service READMEs show (wipes data)
	$(PYTEST) -m docs tests/docs

test-cluster: ## failover tests on the cluster topology (starts it; wipes a single-node stack's data first)
	@if [ "$$(cat .stack/data/topology 2>/dev/null || echo none)" != cluster ]; then $(MAKE) clean; fi
	@$(MAKE) up TOPOLOGY=cluster
	$(PYTEST) -m cluster tests/cluster

test-unit: helm ## pure logic only, no servers (the chart tests use Helm)
	$(PYTEST) -m unit tests/unit

test-integration: up ## tests against the running stack
	$(PYTEST) -m integration tests/integration

chaos: up ## random faults under the mixed load for MINUTES (default 10), then a table
	uv run --frozen campus chaos --minutes $(if $(MINUTES),$(MINUTES),10)

bench: up ## run the benchmark suite (QUICK=1 for a short run)
	uv run --frozen python -m bench $(if $(QUICK),--quick,)

bench-topologies: ## WIPES DATA: single node, then cluster, on this machine: CDC throughput, commit → store latency, idle memory side by side (REPS=3; about 35 min)
	uv run --frozen python -m bench.topologies --wipe $(if $(REPS),--reps $(REPS),)

env: ## generate .env from .env.example (secrets included) without starting anything
	@bash -c '. stack/lib.sh' && echo ".env ready"

demo-consistency: ## pause each projection, write, watch the stores disagree then converge
	@uv run --frozen campus demo consistency

demo-failure: ## exercise 2: stop one store (STORE=redis|neo4j|documents|kafka) and watch
	@uv run --frozen campus demo failure $(if $(STORE),$(STORE),redis)

lag: ## live consumer-lag table
	@uv run --frozen campus lag

docker: ## install Docker (Debian's docker.io) and start dockerd when none answers
	@stack/docker/engine.sh

images: ## build every image (base image by debootstrap when Docker Hub is unreachable)
	@stack/docker/images.sh

compose-up: env ## docker-compose up: official images where pullable, else `make images`' ones
	@stack/docker/compose.sh up

compose-down: ## remove the compose stack: containers, networks and volumes
	@stack/docker/compose.sh down

test-containers: images ## testcontainers suite against the local images (fresh containers)
	$(PYTEST) -m containers tests/containers
	@stack/docker/leftovers.sh

test-compose: env images ## bring compose up, run its tests, tear it down
	$(PYTEST) -m compose tests/compose
	@stack/docker/leftovers.sh
