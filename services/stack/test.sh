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
echo "== unit and integration"
results="$COUNTERSIGN_DATA_DIR/test-results.json"
rm -f "$results"
set +e
npx vitest run --reporter=default --reporter=json --outputFile.json="$results"
rc=$?
set -e
# One plain closing line (`N passed, N failed`) that any CI can read.
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' "$results" || echo "vitest: 0 passed, 1 failed"
exit $rc
