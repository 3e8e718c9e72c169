#!/usr/bin/env bash
# The OTLP receiver the tracing test sends its spans to: Jaeger (github.com/jaegertracing/jaeger/cmd/jaeger,
# the OpenTelemetry-Collector-based Jaeger with its in-memory store and query API), built once from the Go
# module proxy through the tool module in services/stack/jaeger (go.mod, go.sum) and cached outside the
# repository, like helm and kubeconform (services/stack/k8s-tools.sh).
#
#   otlp-receiver.sh ensure   builds it when missing, then prints the environment the tests read
#   otlp-receiver.sh env      prints that environment (the binary's path), building nothing
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${COUNTERSIGN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/countersign}"
DATA="${COUNTERSIGN_DATA_DIR:-$ROOT/.data}"
LOGS="$DATA/logs"
SRC="$ROOT/services/stack/jaeger"
# The binary is keyed by the tool module (its pinned version and every dependency's).
KEY="$(cat "$SRC/go.mod" "$SRC/go.sum" | sha256sum | cut -c1-12)"
JAEGER="$CACHE/jaeger-$KEY/jaeger"

say() { printf '[otlp-receiver] %s\n' "$*" >&2; }
die() { printf '[otlp-receiver] error: %s\n' "$*" >&2; exit 1; }

ensure() {
  [ -x "$JAEGER" ] && return 0
  command -v go >/dev/null || die "Go is missing to build Jaeger: install Go 1.24+"
  say "building Jaeger from the Go module proxy (once, several minutes)"
  mkdir -p "$(dirname "$JAEGER")" "$LOGS"
  (cd "$SRC" && go build -o "$JAEGER.tmp" github.com/jaegertracing/jaeger/cmd/jaeger) >>"$LOGS/otlp-receiver-build.log" 2>&1 \
    || die "building Jaeger failed; see $LOGS/otlp-receiver-build.log"
  mv "$JAEGER.tmp" "$JAEGER"
}

print_env() {
  echo "export COUNTERSIGN_JAEGER='$JAEGER'"
}

case "${1:-}" in
  ensure) ensure; print_env ;;
  env) print_env ;;
  *) echo "usage: $0 ensure | env" >&2; exit 2 ;;
esac
