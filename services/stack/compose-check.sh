#!/usr/bin/env bash
# The Compose file's checker: services/stack/compose-check, a small program over compose-spec/compose-go (the
# loader `docker compose` itself uses: the Compose Specification's schema, interpolation, merge keys and the
# model's consistency checks), built once from the Go module proxy and cached outside the repository, like the
# Kubernetes checkers (k8s-tools.sh). No Docker engine or compose plugin is needed.
#
#   compose-check.sh ensure   builds it when missing, then prints the environment the tests read
#   compose-check.sh env      prints that environment (the binary's path), building nothing
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${COUNTERSIGN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/countersign}"
DATA="${COUNTERSIGN_DATA_DIR:-$ROOT/.data}"
LOGS="$DATA/logs"
SRC="$ROOT/services/stack/compose-check"
# Keyed by the program and its pinned module versions.
KEY="$(cat "$SRC/main.go" "$SRC/go.mod" "$SRC/go.sum" | sha256sum | cut -c1-12)"
BIN="$CACHE/compose-check-$KEY/compose-check"

say() { printf '[compose-check] %s\n' "$*" >&2; }
die() { printf '[compose-check] error: %s\n' "$*" >&2; exit 1; }

ensure() {
  [ -x "$BIN" ] && return 0
  command -v go >/dev/null || die "Go is missing to build the Compose checker: install Go 1.24+"
  say "building the Compose checker (compose-spec/compose-go) from the Go module proxy (once)"
  mkdir -p "$(dirname "$BIN")" "$LOGS"
  (cd "$SRC" && go build -o "$BIN.tmp" .) >>"$LOGS/compose-check-build.log" 2>&1 \
    || die "building the Compose checker failed; see $LOGS/compose-check-build.log"
  mv "$BIN.tmp" "$BIN"
}

print_env() {
  echo "export COUNTERSIGN_COMPOSE_CHECK='$BIN'"
}

case "${1:-}" in
  ensure) ensure; print_env ;;
  env) print_env ;;
  *) echo "usage: $0 ensure | env" >&2; exit 2 ;;
esac
