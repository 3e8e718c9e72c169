#!/usr/bin/env bash
# `make test`: provision the real stack, then every tier: typecheck, lint, unit, integration.
# Integration tests run against a fresh database and a fresh Kafka topic of their own, and start the
# API, worker and publisher themselves (test/int/harness.ts), so they can kill and restart them.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/processes.sh"

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_apps
  stop_started_stack
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$ROOT"
provision
migrate
bundle
echo "== typecheck"; npx tsc --noEmit -p .
echo "== lint"; npx eslint --max-warnings=0 .
echo "== unit and integration"; npx vitest run
