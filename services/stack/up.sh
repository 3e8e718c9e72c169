#!/usr/bin/env bash
# `make up`: everything in the foreground; Ctrl-C stops what this started, cleanly.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/processes.sh"

cleanup() {
  trap - EXIT INT TERM
  echo; echo "[up] stopping"
  stop_apps
  stop_started_stack
}
trap cleanup EXIT
trap 'exit 130' INT TERM

provision
migrate
init_keys
bundle
build_console
# Built by `bundle` into dist/: the processes run as the container image runs them, plain node, no tsx.
start_app worker "$ROOT/dist/worker.mjs"
start_app publisher "$ROOT/dist/publisher.mjs"
start_app api "$ROOT/dist/api.mjs"
node "$ROOT/dist/seed.mjs" >/dev/null

URL="http://${COUNTERSIGN_HOST:-127.0.0.1}:${COUNTERSIGN_PORT:-8080}"
for _ in $(seq 1 120); do curl -fsS "$URL/readyz" >/dev/null 2>&1 && break; sleep 0.5; done
curl -fsS "$URL/readyz" >/dev/null || { echo "[up] the API did not become ready; see $COUNTERSIGN_DATA_DIR/logs/api.log"; exit 1; }
KEY_FILE="${COUNTERSIGN_BOOTSTRAP_KEY_FILE:-$COUNTERSIGN_DATA_DIR/bootstrap-key}"
AGENT_KEY_FILE="$COUNTERSIGN_DATA_DIR/agent-key"

cat <<MSG

Countersign is up.
  Console        $URL/   (sign in with an API key of a person, e.g. the bootstrap key below)
  API            $URL   (OpenAPI: $URL/openapi.json, reference: $URL/docs)
  Temporal UI    http://${TEMPORAL_HOST:-127.0.0.1}:${TEMPORAL_UI_PORT:-8233}
  Kafka          $KAFKA_BROKERS  topic ${COUNTERSIGN_KAFKA_TOPIC:-countersign.events}
  Postgres       ${DATABASE_URL%%:*}://…@${DATABASE_URL##*@}
  Logs           $COUNTERSIGN_DATA_DIR/logs/
  Bootstrap key  $KEY_FILE   (platform admin; admin, author, auditor of tenant ${COUNTERSIGN_DEFAULT_TENANT:-default}; for setting up)
  Agent key      $AGENT_KEY_FILE   (agent support-bot: its key decides as support-bot only)

Ask for a decision as support-bot:
  curl -s -X POST $URL/v1/decisions -H "authorization: Bearer \$(cat $AGENT_KEY_FILE)" -H 'content-type: application/json' \\
    -d '{"agent":{"id":"support-bot"},"action":{"tool":"payment_tool","operation":"Refund"},"context":{"amount":120}}'

Audit it from Kafka alone:  npx countersign audit replay --from kafka
Ctrl-C stops everything this started.
MSG

# Stay in the foreground. A process that dies is started again by its supervisor (start_app), which says so.
set +e
wait "${APP_PIDS[@]}"
