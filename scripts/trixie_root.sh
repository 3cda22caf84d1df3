#!/usr/bin/env bash
# A cached Debian 13 (trixie) root for the real-Blender tier: Debian's `blender` (4.3, Python 3.13,
# a real executable with a window), Xvfb, xdotool and ImageMagick, and a Python 3.13 venv with
# bpy 5.2.3 (requirements/blender52.txt). It lives outside the checkout and is reused.
#
#   scripts/trixie_root.sh build              make or complete the root (idempotent; needs root)
#   scripts/trixie_root.sh run CMD [ARGS...]  run CMD inside it, in this checkout (same path)
#   scripts/trixie_root.sh path               print where the root is
#
# FATHOM_TRIXIE_ROOT (default /var/cache/fathom/trixie-root) chooses the folder;
# FATHOM_DEBIAN_MIRROR (default http://deb.debian.org/debian) the mirror.
# `run` uses a private mount namespace, so /proc, /sys, /dev and the checkout are mounted only
# for as long as CMD runs and nothing is left mounted afterwards, even if it is killed.
set -euo pipefail

ROOT=${FATHOM_TRIXIE_ROOT:-/var/cache/fathom/trixie-root}
MIRROR=${FATHOM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CHECKOUT=$(cd "$(dirname "$0")/.." && pwd -P)
PACKAGES="blender xvfb xauth xdotool imagemagick libegl1 libgl1-mesa-dri python3-numpy python3-requests python3-venv"
VENV=/opt/fathom/bpy52        # inside the root
CA=/etc/ssl/certs/fathom-host-ca.crt  # inside the root: the host's CA bundle, for pip

log() { echo "trixie_root: $*" >&2; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    log "needs root (debootstrap, chroot and mounts); run it with sudo"
    exit 1
  fi
}

# Run a command in the root with /proc, /sys, /dev and the checkout mounted, in a private mount
# namespace (the mounts vanish with it). The checkout keeps its path, so paths agree both sides.
in_root() {
  local env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
             TERM="${TERM:-dumb}" DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
             PYTHONDONTWRITEBYTECODE=1 PIP_CERT=$CA SSL_CERT_FILE=$CA REQUESTS_CA_BUNDLE=$CA FATHOM_IN_TRIXIE_ROOT=1 FATHOM_BPY52_VENV=$VENV)
  # The full-size stand-in models (tests/conftest.py), mounted read-only at their real path.
  local models
  models=$(realpath -q "${FATHOM_SHARED_MODELS:-$CHECKOUT/../shared/models}" || true)
  [ -d "$models" ] && env+=(FATHOM_SHARED_MODELS="$models") || models=""
  local name
  for name in $(compgen -e); do  # the project's own settings and pytest's pass through
    case $name in FATHOM_SHARED_MODELS) ;; FATHOM_*|PYTEST_ADDOPTS) env+=("$name=${!name}") ;; esac
  done
  unshare --mount --propagation private -- /bin/bash -euc '
    root=$1 checkout=$2 models=$3; shift 3
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"  # a clean /tmp each run, gone afterwards
    mkdir -p "$root$checkout"
    mount --bind "$checkout" "$root$checkout"
    if [ -n "$models" ]; then
      mkdir -p "$root$models"
      mount --bind -o ro "$models" "$root$models"
    fi
    exec chroot "$root" "$@"
  ' _ "$ROOT" "$CHECKOUT" "$models" /usr/bin/env -i "${env[@]}" /bin/bash -c 'cd "$0" && exec "$@"' "$CHECKOUT" "$@"
}

build() {
  need_root
  local started=$SECONDS
  if [ ! -f "$ROOT/.fathom-debootstrap" ]; then
    if ! command -v debootstrap >/dev/null; then
      log "installing debootstrap on this machine"
      apt-get update -q && apt-get install -y -q --no-install-recommends debootstrap
    fi
    rm -rf "$ROOT"
    mkdir -p "$(dirname "$ROOT")"
    log "debootstrap trixie into $ROOT"
    debootstrap --variant=minbase trixie "$ROOT" "$MIRROR" >"$(dirname "$ROOT")/debootstrap.log" 2>&1 || {
      tail -20 "$(dirname "$ROOT")/debootstrap.log" >&2; exit 1; }
    touch "$ROOT/.fathom-debootstrap"
  fi
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  ln -sfn ../proc/self/mounts "$ROOT/etc/mtab"  # Blender lists the mounted file systems
  mkdir -p "$(dirname "$ROOT$CA")"
  cp /etc/ssl/certs/ca-certificates.crt "$ROOT$CA"

  local want="$PACKAGES"
  if [ "$(cat "$ROOT/.fathom-packages" 2>/dev/null)" != "$want" ]; then
    log "apt-get install $want"
    in_root /bin/bash -ec "apt-get update -q && apt-get install -y -q --no-install-recommends $want" \
      >"$(dirname "$ROOT")/apt.log" 2>&1 || { tail -20 "$(dirname "$ROOT")/apt.log" >&2; exit 1; }
    echo "$want" >"$ROOT/.fathom-packages"
  fi

  if ! cmp -s "$CHECKOUT/requirements/blender52.txt" "$ROOT$VENV/requirements.txt"; then
    log "venv $VENV: $(grep -v '^#' "$CHECKOUT/requirements/blender52.txt" | xargs)"
    rm -rf "$ROOT$VENV"
    in_root /bin/bash -ec "python3 -m venv $VENV && $VENV/bin/python -m pip install -q -r requirements/blender52.txt"
    cp "$CHECKOUT/requirements/blender52.txt" "$ROOT$VENV/requirements.txt"
  fi
  log "ready in $((SECONDS - started)) s: $ROOT ($(in_root blender --version 2>/dev/null | head -1);" \
      "$(in_root "$VENV/bin/python" -c 'import sys; print("Python", sys.version.split()[0])'))"
}

case "${1:-}" in
  build) build ;;
  run)
    shift
    need_root
    [ -f "$ROOT/.fathom-packages" ] && [ -f "$ROOT$VENV/requirements.txt" ] || {
      log "$ROOT is not built yet: run scripts/trixie_root.sh build"; exit 1; }
    status=0
    in_root "$@" || status=$?
    if [ -n "${SUDO_UID:-}" ]; then  # under sudo: what the run wrote into the checkout goes back to its user
      chown -R "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$CHECKOUT/out" "$CHECKOUT/wheels" 2>/dev/null || true
    fi
    exit "$status" ;;
  path) echo "$ROOT" ;;
  *) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
