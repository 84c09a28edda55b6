#!/usr/bin/env bash
# Installs what the appliance and its tests need, idempotently:
# the Debian packages (when run as root on Debian), a .venv, and the Python packages.
# A second run with nothing missing takes seconds.
set -euo pipefail

APT_PACKAGES=(
  libasound2-dev alsa-utils
  janus libjs-janus-gateway janus-demos
  chromium
  nginx libnginx-mod-rtmp
  ffmpeg sox espeak-ng socat
  libspeexdsp-dev libopus0
  iproute2 iputils-ping procps curl
  libasound2-plugins pulseaudio pulseaudio-utils
  systemd shellcheck mmdebstrap fdisk
  qemu-user-static binfmt-support arch-test qemu-system-arm qemu-utils e2fsprogs
)

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
EXTRAS=${EXTRAS:-dev}

say() { printf 'deps: %s\n' "$*"; }

missing_debs() {
  local pkg out=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || out+=("$pkg")
  done
  printf '%s\n' "${out[@]}"
}

install_debs() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    say "not a Debian system: install the equivalents of: ${APT_PACKAGES[*]}"
    return 0
  fi
  mapfile -t missing < <(missing_debs | sed '/^$/d')
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    say "missing Debian packages. Run as root:"
    printf '  apt-get install -y %s\n' "${missing[*]}" >&2
    exit 1
  fi
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Something is missing, so this is a first install: refresh the package lists first
  # (a new machine's lists may be absent or older than the archive).
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian janus package starts a system-wide daemon; the appliance runs its own.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now janus >/dev/null 2>&1 || true
  fi
}

install_python() {
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  local stamp="$VENV/.edgeroom-installed-$EXTRAS"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    say "installing Python packages (.[$EXTRAS])"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]"
    touch "$stamp"
  fi
}

case "${1:-all}" in
  debs) install_debs ;;
  python) install_python ;;
  all) install_debs; install_python ;;
  *) echo "usage: $0 [debs|python|all]" >&2; exit 2 ;;
esac
