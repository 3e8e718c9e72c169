# Countersign: two commands. `make up` runs everything in the foreground (Ctrl-C stops what it started);
# `make test` provisions the same stack, runs every test tier, and stops what it started.
SHELL := bash
.DEFAULT_GOAL := help
.PHONY: help up test down status deps bench

help:
	@echo "make up      start Postgres, Temporal, Kafka, the API, the worker and the publisher (foreground)"
	@echo "make test    typecheck, lint, unit and integration tests against the real stack"
	@echo "make down    stop the stack services"
	@echo "make status  show which stack services are up"

node_modules/.package-lock.json: package.json package-lock.json
	@command -v node >/dev/null || { echo "Node.js 20+ is missing: install it (apt-get install nodejs npm)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error

deps: node_modules/.package-lock.json

up: deps
	@bash services/stack/up.sh

test: deps
	@bash services/stack/test.sh

down:
	@bash services/stack/stack.sh down

status:
	@bash services/stack/stack.sh status
