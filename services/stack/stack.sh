#!/usr/bin/env bash
# The local stack without Docker: Postgres (Debian's server, private cluster), Temporal (CLI dev server,
# SQLite file) and Kafka (3.9.x jars from Maven Central, one KRaft node). Idempotent: `up` starts only what
# is not already running and records what it started in $STACK_STARTED_FILE (if set) so the caller can stop
# exactly that. Tools and downloads are cached outside the repo; data and logs live under .data/.
#
#   stack.sh up | down [service…] | status | env
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DATA="${COUNTERSIGN_DATA_DIR:-$ROOT/.data}"
CACHE="${COUNTERSIGN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/countersign}"
RUN="$DATA/run"
LOGS="$DATA/logs"

TEMPORAL_VERSION="${TEMPORAL_CLI_VERSION:-v1.5.1}"
TEMPORAL_HOST="${TEMPORAL_HOST:-127.0.0.1}"
TEMPORAL_PORT="${TEMPORAL_PORT:-7233}"
TEMPORAL_UI_PORT="${TEMPORAL_UI_PORT:-8233}"
KAFKA_VERSION="3.9.1" # keep in sync with services/stack/kafka/pom.xml
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP="${KAFKA_HEAP:--Xms256m -Xmx512m}"
PG_PORT="${PG_PORT:-5433}"
PG_OS_USER="${COUNTERSIGN_PG_OS_USER:-postgres}"

mkdir -p "$RUN" "$LOGS"

say() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$2"; }
record_started() { [ -n "${STACK_STARTED_FILE:-}" ] && echo "$1" >>"$STACK_STARTED_FILE"; return 0; }

pid_alive() { local f="$RUN/$1.pid"; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_for() { # name seconds command…
  local name=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "$name did not become healthy within ${secs}s; see $LOGS/$name.log"
    sleep 0.5
  done
}

# Start a daemon in its own session so Ctrl-C in the caller's terminal does not hit it directly;
# the caller stops it with `stack.sh down`.
spawn() { # name command…
  local name=$1; shift
  setsid nohup "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

gen_secret() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# ---------------------------------------------------------------------------------------------- Postgres
pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$d" ] && command -v pg_ctl >/dev/null 2>&1; then d=$(dirname "$(readlink -f "$(command -v pg_ctl)")"); fi
  echo "$d"
}

ensure_pg_binaries() {
  [ -n "$(pg_bindir)" ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian's postgresql server (apt-get)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  [ -n "$(pg_bindir)" ] || die "no PostgreSQL server binaries: install them (apt-get install postgresql) or set DATABASE_URL"
}

# initdb refuses to run as root, so as root the cluster belongs to an unprivileged OS user, who must be
# able to traverse the path down to .data (a fresh clone in a 0700 temp dir is not traversable).
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$PG_OS_USER" -- "$@"; else "$@"; fi
}

ensure_pg_user_access() {
  [ "$(id -u)" = 0 ] || return 0
  id "$PG_OS_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_OS_USER"
  local d="$DATA"
  while [ "$d" != "/" ]; do
    if ! runuser -u "$PG_OS_USER" -- test -x "$d" 2>/dev/null; then
      say "granting traverse (o+x) on $d so the '$PG_OS_USER' OS user can reach its cluster"
      chmod o+x "$d"
    fi
    d=$(dirname "$d")
  done
}

pg_secrets() { # creates once: passwords for the superuser, the schema owner and the app role
  local f="$DATA/pg/secrets.env"
  if [ ! -f "$f" ]; then
    umask 077
    printf 'PG_SUPER_PASSWORD=%s\nPG_OWNER_PASSWORD=%s\nPG_APP_PASSWORD=%s\n' "$(gen_secret)" "$(gen_secret)" "$(gen_secret)" >"$f"
  fi
  # shellcheck disable=SC1090
  . "$f"
}

pg_up() {
  if [ -n "${DATABASE_URL:-}" ]; then say "postgres: using DATABASE_URL"; return 0; fi
  ensure_pg_binaries
  local bin cluster="$DATA/pg/cluster"
  bin=$(pg_bindir)
  mkdir -p "$DATA/pg"
  ensure_pg_user_access
  pg_secrets
  if [ ! -f "$cluster/PG_VERSION" ]; then
    say "postgres: initdb $cluster"
    mkdir -p "$cluster"
    local pwfile="$DATA/pg/.superpw"
    (umask 077; printf '%s\n' "$PG_SUPER_PASSWORD" >"$pwfile")
    if [ "$(id -u)" = 0 ]; then chown -R "$PG_OS_USER" "$DATA/pg"; fi
    as_pg "$bin/initdb" -D "$cluster" -U postgres --pwfile="$pwfile" --auth-local=scram-sha-256 \
      --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >>"$LOGS/postgres.log" 2>&1 \
      || die "initdb failed; see $LOGS/postgres.log"
    rm -f "$pwfile"
    cat >>"$cluster/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$DATA/pg'
max_connections = 200
shared_buffers = 256MB
fsync = on
EOF
  fi
  if [ "$(id -u)" = 0 ]; then chown "$PG_OS_USER" "$LOGS" 2>/dev/null || true; touch "$LOGS/postgres.log"; chown "$PG_OS_USER" "$LOGS/postgres.log"; fi
  if as_pg "$bin/pg_ctl" -D "$cluster" status >/dev/null 2>&1; then
    say "postgres: already running on $PG_PORT"
  else
    port_open 127.0.0.1 "$PG_PORT" && die "port $PG_PORT is taken by another process; set PG_PORT"
    say "postgres: starting on 127.0.0.1:$PG_PORT"
    as_pg "$bin/pg_ctl" -D "$cluster" -l "$LOGS/postgres.log" -w -t 60 start >/dev/null || die "postgres did not start; see $LOGS/postgres.log"
    record_started postgres
  fi
  pg_bootstrap_roles
}

pg_bootstrap_roles() {
  # Two roles: the owner runs migrations and owns the tables; the app role can only read and append.
  PGPASSWORD="$PG_SUPER_PASSWORD" psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres >/dev/null <<SQL
SELECT 'CREATE ROLE countersign_owner LOGIN CREATEDB' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'countersign_owner')\gexec
SELECT 'CREATE ROLE countersign_app LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'countersign_app')\gexec
ALTER ROLE countersign_owner PASSWORD '$PG_OWNER_PASSWORD';
ALTER ROLE countersign_app PASSWORD '$PG_APP_PASSWORD';
SELECT 'CREATE DATABASE countersign OWNER countersign_owner' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'countersign')\gexec
SQL
}

pg_down() {
  local bin cluster="$DATA/pg/cluster"
  [ -f "$cluster/PG_VERSION" ] || return 0
  bin=$(pg_bindir)
  if as_pg "$bin/pg_ctl" -D "$cluster" status >/dev/null 2>&1; then
    say "postgres: stopping"
    as_pg "$bin/pg_ctl" -D "$cluster" -m fast -w stop >/dev/null || true
  fi
}

# ---------------------------------------------------------------------------------------------- Temporal
temporal_bin() {
  if [ -n "${TEMPORAL_CLI:-}" ]; then echo "$TEMPORAL_CLI"; return; fi
  if command -v temporal >/dev/null 2>&1; then command -v temporal; return; fi
  echo "$CACHE/temporal-$TEMPORAL_VERSION/temporal"
}

ensure_temporal() {
  local bin; bin=$(temporal_bin)
  [ -x "$bin" ] && return 0
  need go "the Temporal CLI is not on PATH and Go is missing to build it: install Go 1.22+ (or put 'temporal' on PATH)"
  say "temporal: building the official CLI $TEMPORAL_VERSION from the Go module proxy (once, a few minutes)"
  mkdir -p "$CACHE/temporal-$TEMPORAL_VERSION"
  GOBIN="$CACHE/temporal-$TEMPORAL_VERSION" go install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_VERSION" \
    >>"$LOGS/temporal-build.log" 2>&1 || die "building the Temporal CLI failed; see $LOGS/temporal-build.log"
}

temporal_healthy() { "$(temporal_bin)" operator cluster health --address "$TEMPORAL_HOST:$TEMPORAL_PORT" 2>/dev/null | grep -q SERVING; }

temporal_up() {
  ensure_temporal
  if temporal_healthy; then say "temporal: already serving on $TEMPORAL_PORT"; return 0; fi
  port_open "$TEMPORAL_HOST" "$TEMPORAL_PORT" && die "port $TEMPORAL_PORT is taken but not by a healthy Temporal; set TEMPORAL_PORT"
  mkdir -p "$DATA/temporal"
  say "temporal: starting dev server on $TEMPORAL_HOST:$TEMPORAL_PORT (UI http://$TEMPORAL_HOST:$TEMPORAL_UI_PORT)"
  # --db-filename keeps workflows and timers across restarts of the server.
  spawn temporal "$(temporal_bin)" server start-dev --ip "$TEMPORAL_HOST" --port "$TEMPORAL_PORT" \
    --ui-port "$TEMPORAL_UI_PORT" --db-filename "$DATA/temporal/temporal.db" --log-level warn \
    --dynamic-config-value frontend.enableUpdateWorkflowExecution=true
  record_started temporal
  wait_for temporal 90 temporal_healthy
}

# ---------------------------------------------------------------------------------------------- Kafka
kafka_libs() { echo "$CACHE/kafka-$KAFKA_VERSION/libs"; }

ensure_kafka() {
  local libs; libs=$(kafka_libs)
  [ -f "$libs/kafka_2.13-$KAFKA_VERSION.jar" ] && return 0
  need java "Java is missing: install a JDK or JRE 17+ (apt-get install openjdk-17-jre-headless)"
  need mvn "Maven is missing: install it (apt-get install maven) to fetch the Kafka jars"
  say "kafka: fetching Apache Kafka $KAFKA_VERSION jars from Maven Central (once)"
  mvn -B -q -f "$ROOT/services/stack/kafka/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$libs.tmp" >>"$LOGS/kafka-fetch.log" 2>&1 || die "fetching Kafka failed; see $LOGS/kafka-fetch.log"
  rm -rf "$libs" && mv "$libs.tmp" "$libs"
}

kafka_config() {
  local dir="$DATA/kafka"
  mkdir -p "$dir/logs"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/logs
num.partitions=3
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=-1
# The event topic is created with max.message.bytes=4194304 (services/events/event-size.ts); topics made
# without an override get the same, and replication fetches batches that large.
message.max.bytes=4194304
replica.fetch.max.bytes=4194304
EOF
  cat >"$dir/log4j.properties" <<EOF
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
EOF
}

kafka_java() { # main-class args…
  local main=$1; shift
  # shellcheck disable=SC2086
  java $KAFKA_HEAP -XX:+UseG1GC -Djava.awt.headless=true -Dlog4j.configuration="file:$DATA/kafka/log4j.properties" \
    -cp "$(kafka_libs)/*" "$main" "$@"
}

kafka_healthy() { port_open 127.0.0.1 "$KAFKA_PORT" && grep -q "Kafka Server started" "$LOGS/kafka.log"; }

kafka_up() {
  ensure_kafka
  need java "Java is missing: install a JDK or JRE 17+ (apt-get install openjdk-17-jre-headless)"
  if pid_alive kafka && port_open 127.0.0.1 "$KAFKA_PORT"; then say "kafka: already running on $KAFKA_PORT"; return 0; fi
  port_open 127.0.0.1 "$KAFKA_PORT" && die "port $KAFKA_PORT is taken by another process; set KAFKA_PORT"
  kafka_config
  if [ ! -f "$DATA/kafka/logs/meta.properties" ]; then
    local cid; cid=$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    say "kafka: formatting KRaft storage (cluster $cid)"
    kafka_java kafka.tools.StorageTool format -t "$cid" -c "$DATA/kafka/server.properties" >>"$LOGS/kafka.log" 2>&1 \
      || die "formatting Kafka storage failed; see $LOGS/kafka.log"
  fi
  say "kafka: starting on 127.0.0.1:$KAFKA_PORT"
  mv -f "$LOGS/kafka.log" "$LOGS/kafka.prev.log" 2>/dev/null || true
  # shellcheck disable=SC2086
  spawn kafka java $KAFKA_HEAP -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$DATA/kafka/log4j.properties" -cp "$(kafka_libs)/*" kafka.Kafka "$DATA/kafka/server.properties"
  record_started kafka
  wait_for kafka 90 kafka_healthy
}

stop_pidfile() { # name
  local f="$RUN/$1.pid" pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    say "$1: stopping"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

status() {
  local s
  if [ -n "${DATABASE_URL:-}" ]; then s="external (DATABASE_URL)"
  elif port_open 127.0.0.1 "$PG_PORT"; then s="up   127.0.0.1:$PG_PORT"; else s="down"; fi
  printf '%-9s %s\n' postgres "$s"
  if temporal_healthy; then s="up   $TEMPORAL_HOST:$TEMPORAL_PORT  ui http://$TEMPORAL_HOST:$TEMPORAL_UI_PORT"; else s="down"; fi
  printf '%-9s %s\n' temporal "$s"
  if port_open 127.0.0.1 "$KAFKA_PORT"; then s="up   127.0.0.1:$KAFKA_PORT"; else s="down"; fi
  printf '%-9s %s\n' kafka "$s"
}

# Prints the environment the app processes need (sourced by the Makefile recipes and the test runner).
print_env() {
  if [ -z "${DATABASE_URL:-}" ]; then
    pg_secrets
    echo "export DATABASE_URL='postgres://countersign_app:$PG_APP_PASSWORD@127.0.0.1:$PG_PORT/countersign'"
    echo "export DATABASE_ADMIN_URL='postgres://countersign_owner:$PG_OWNER_PASSWORD@127.0.0.1:$PG_PORT/countersign'"
    # Superuser of the private cluster: only the tamper tests use it (to play an attacker with full access).
    echo "export DATABASE_SUPER_URL='postgres://postgres:$PG_SUPER_PASSWORD@127.0.0.1:$PG_PORT/postgres'"
  fi
  echo "export TEMPORAL_ADDRESS='${TEMPORAL_ADDRESS:-$TEMPORAL_HOST:$TEMPORAL_PORT}'"
  echo "export TEMPORAL_CLI='$(temporal_bin)'"
  echo "export KAFKA_BROKERS='${KAFKA_BROKERS:-127.0.0.1:$KAFKA_PORT}'"
  echo "export COUNTERSIGN_DATA_DIR='$DATA'"
}

case "${1:-}" in
  up) pg_up; temporal_up; kafka_up; say "stack is up" ;;
  down)
    shift
    services=("$@"); [ ${#services[@]} -gt 0 ] || services=(kafka temporal postgres)
    for s in "${services[@]}"; do
      case "$s" in postgres) pg_down ;; temporal|kafka) stop_pidfile "$s" ;; *) die "unknown service $s" ;; esac
    done ;;
  status) status ;;
  env) print_env ;;
  *) echo "usage: $0 up | down [postgres|temporal|kafka…] | status | env" >&2; exit 2 ;;
esac
