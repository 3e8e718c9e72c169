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
  # Written by `bundle` (services/build/build.ts) beside the built processes.
  export COUNTERSIGN_WORKFLOW_BUNDLE="$ROOT/dist/workflow-bundle.js"
  mkdir -p "$COUNTERSIGN_DATA_DIR/logs"
}

migrate() { node --import tsx "$ROOT/services/events/migrate-main.ts"; }
# Every process built to plain JavaScript in dist/, with the workflow bundle (what the container image runs).
bundle() { node --import tsx "$ROOT/services/build/build.ts"; }
# The web console's static files (services/console/dist), served by the API at /.
build_console() { node --import tsx "$ROOT/services/console/build.ts"; }
# The deployment's keys, created once before any process starts: no process creates a key of its own.
init_keys() { node --import tsx "$ROOT/services/stack/init-keys.ts" >/dev/null; }

run_app() { # name entry: one run of the process (built .mjs, or a TypeScript source through tsx), its output appended to its log
  local name=$1 entry=$2
  if [[ $entry == *.mjs ]]; then
    exec node "$entry" >>"$COUNTERSIGN_DATA_DIR/logs/$name.log" 2>&1
  else
    exec node --import tsx "$ROOT/$entry" >>"$COUNTERSIGN_DATA_DIR/logs/$name.log" 2>&1
  fi
}

# start_app name entry (a built .mjs path, or a TypeScript source under ROOT run through tsx): runs the
# process under a supervisor that starts it again when it dies, after a backoff (1 s, doubling to 30 s; back
# to 1 s once a run has lasted a minute), saying so. TERM or INT to the supervisor stops the process and it.
start_app() {
  local name=$1 entry=$2
  (
    child=
    trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; [ -n "$child" ] && wait "$child"; exit 0' TERM INT
    delay=1
    while :; do
      started=$SECONDS
      ( run_app "$name" "$entry" ) &
      child=$!
      wait "$child"
      rc=$?
      child=
      if (( SECONDS - started >= 60 )); then delay=1; fi
      echo "[up] $name exited (status $rc); starting it again in ${delay}s (log: $COUNTERSIGN_DATA_DIR/logs/$name.log)"
      sleep "$delay" &
      child=$!
      wait "$child"
      child=
      delay=$(( delay * 2 > 30 ? 30 : delay * 2 ))
    done
  ) &
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
