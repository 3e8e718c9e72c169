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

# The browser tests drive Debian's Chromium (a confirmation page loaded by a headless browser must answer
# nothing). Installed here when missing and we may; without it those cases fail under CI rather than skip.
ensure_chromium() {
  local b
  for b in chromium chromium-browser google-chrome; do command -v "$b" >/dev/null && return 0; done
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[test] installing Debian's chromium for the browser tests"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
      || { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends chromium >/dev/null 2>&1; } \
      || echo "[test] could not install chromium: the browser cases will fail under CI"
  else
    echo "[test] no chromium (apt-get install chromium): the browser cases will fail under CI"
  fi
}

# The TLS tests put Debian's nginx (grpc_pass) in front of Temporal as the TLS-terminating proxy that a
# production cluster sits behind. Installed here when missing and we may (not started: the test runs its own).
ensure_nginx() {
  [ -x /usr/sbin/nginx ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[test] installing Debian's nginx-light for the Temporal TLS tests"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends nginx-light >/dev/null 2>&1 \
      || { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends nginx-light >/dev/null 2>&1; } \
      || echo "[test] could not install nginx-light: the Temporal TLS cases will fail under CI"
    # The package may start a default server on :80 where services are allowed to start; the tests need none.
    if [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then /usr/sbin/nginx -s quit 2>/dev/null || true; fi
  else
    echo "[test] no nginx (apt-get install nginx-light): the Temporal TLS cases will fail under CI"
  fi
}

cd "$ROOT"
ensure_chromium
ensure_nginx
provision
migrate
init_keys
bundle
build_console
# helm and kubeconform, built once from the Go module proxy, and the Kubernetes schemas: the chart's tests.
eval "$(bash "$ROOT/services/stack/k8s-tools.sh" ensure)"
# Jaeger, built once from the Go module proxy: the OTLP receiver of the tracing test.
eval "$(bash "$ROOT/services/stack/otlp-receiver.sh" ensure)"
# The Compose file's checker (compose-spec/compose-go), built once from the Go module proxy.
eval "$(bash "$ROOT/services/stack/compose-check.sh" ensure)"
# The container image, built from the Dockerfile by buildah (its base built once and cached): the image test runs
# the processes from it with podman (test/int/image.int.test.ts).
eval "$(bash "$ROOT/services/stack/image.sh" ensure)"
echo "== typecheck"; npx tsc --noEmit -p .; npx tsc --noEmit -p services/console
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
