#!/usr/bin/env bash
# The Kubernetes checkers the Helm chart's tests use, built once from the Go module proxy (like the Temporal
# CLI) and cached outside the repository:
#   helm         (helm.sh/helm/v3) renders the chart (`helm template`) and lints it (`helm lint --strict`);
#   kubeconform  (github.com/yannh/kubeconform) validates what it renders against JSON Schemas of the kinds;
#   the schemas  generated from the Go types of k8s.io/api by services/stack/k8s-schemas (kubeconform's own
#                schemas are downloaded from the web at check time, which this machine cannot reach).
#
#   k8s-tools.sh ensure   builds what is missing, then prints the environment the tests read
#   k8s-tools.sh env      prints that environment (paths), building nothing
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${COUNTERSIGN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/countersign}"
DATA="${COUNTERSIGN_DATA_DIR:-$ROOT/.data}"
LOGS="$DATA/logs"
HELM_VERSION="${HELM_VERSION:-v3.21.4}"
KUBECONFORM_VERSION="${KUBECONFORM_VERSION:-v0.8.0}"
SCHEMAS_SRC="$ROOT/services/stack/k8s-schemas"
# The schemas are keyed by their generator and its module versions.
SCHEMAS_KEY="$(cat "$SCHEMAS_SRC/main.go" "$SCHEMAS_SRC/go.mod" "$SCHEMAS_SRC/go.sum" | sha256sum | cut -c1-12)"

HELM="$CACHE/helm-$HELM_VERSION/helm"
KUBECONFORM="$CACHE/kubeconform-$KUBECONFORM_VERSION/kubeconform"
SCHEMAS="$CACHE/k8s-schemas-$SCHEMAS_KEY"

say() { printf '[k8s-tools] %s\n' "$*" >&2; }
die() { printf '[k8s-tools] error: %s\n' "$*" >&2; exit 1; }

go_install() { # name module@version dir
  local name=$1 module=$2 dir=$3
  [ -x "$dir/$name" ] && return 0
  command -v go >/dev/null || die "Go is missing to build $name: install Go 1.24+"
  say "building $module from the Go module proxy (once, a few minutes)"
  mkdir -p "$dir" "$LOGS"
  GOBIN="$dir" go install "$module" >>"$LOGS/k8s-tools-build.log" 2>&1 || die "building $name failed; see $LOGS/k8s-tools-build.log"
}

ensure() {
  go_install kubeconform "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" "$(dirname "$KUBECONFORM")"
  go_install helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" "$(dirname "$HELM")"
  if [ ! -f "$SCHEMAS/deployment-apps-v1.json" ]; then
    say "generating Kubernetes JSON Schemas from k8s.io/api (services/stack/k8s-schemas)"
    mkdir -p "$LOGS"
    (cd "$SCHEMAS_SRC" && go run . "$SCHEMAS.tmp") >>"$LOGS/k8s-tools-build.log" 2>&1 || die "generating the schemas failed; see $LOGS/k8s-tools-build.log"
    rm -rf "$SCHEMAS" && mv "$SCHEMAS.tmp" "$SCHEMAS"
  fi
}

print_env() {
  echo "export COUNTERSIGN_HELM='$HELM'"
  echo "export COUNTERSIGN_KUBECONFORM='$KUBECONFORM'"
  echo "export COUNTERSIGN_K8S_SCHEMAS='$SCHEMAS'"
}

case "${1:-}" in
  ensure) ensure; print_env ;;
  env) print_env ;;
  *) echo "usage: $0 ensure | env" >&2; exit 2 ;;
esac
