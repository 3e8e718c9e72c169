# Shared by up.sh and test.sh: start the stack, migrate, bundle, and manage the app processes.
# shellcheck shell=bash
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STACK="$ROOT/services/stack/stack.sh"
STARTED_FILE="$(mktemp)"
export STACK_STARTED_FILE="$STARTED_FILE"
APP_PIDS=()

provision() {
  bash "$STACK" up
  eval "$(bash "$STACK" env)"
  export COUNTERSIGN_WORKFLOW_BUNDLE="${COUNTERSIGN_WORKFLOW_BUNDLE:-$COUNTERSIGN_DATA_DIR/workflow-bundle.js}"
  mkdir -p "$COUNTERSIGN_DATA_DIR/logs"
}

migrate() { node --import tsx "$ROOT/services/events/migrate-main.ts"; }
bundle() { node --import tsx "$ROOT/services/worker/bundle.ts"; }
# The deployment's keys, created once before any process starts: no process creates a key of its own.
init_keys() { node --import tsx "$ROOT/services/stack/init-keys.ts" >/dev/null; }

start_app() { # name entry (a TypeScript source under ROOT, run through tsx, or a prebuilt .mjs path)
  local name=$1 entry=$2
  if [[ $entry == *.mjs ]]; then
    node "$entry" >>"$COUNTERSIGN_DATA_DIR/logs/$name.log" 2>&1 &
  else
    node --import tsx "$ROOT/$entry" >>"$COUNTERSIGN_DATA_DIR/logs/$name.log" 2>&1 &
  fi
  APP_PIDS+=($!)
}

stop_apps() {
  local pid
  for pid in "${APP_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${APP_PIDS[@]}"; do
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  APP_PIDS=()
}

# Stops only the stack services this invocation started, so a stack that was already up stays up.
stop_started_stack() {
  if [ -s "$STARTED_FILE" ]; then
    # shellcheck disable=SC2046
    bash "$STACK" down $(tac "$STARTED_FILE")
  fi
  rm -f "$STARTED_FILE"
}
