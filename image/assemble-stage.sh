#!/bin/bash
# Assemble the pi-gen stage from the repository: image/stage-edgeroom plus the systemd
# units, the docs, the wheels to install and the build options.
#
#   image/assemble-stage.sh OUT_DIR WHEEL_DIR...
#
# OUT_DIR becomes a complete stage directory (replaced if it exists). Every *.whl in the
# WHEEL_DIRs is installed into the image; one of them must be the edgeroom wheel.
# Build options, from the environment:
#   EDGEROOM_SSH=1            enable SSH (keys only; the key itself is pi-gen's PUBKEY_SSH_FIRST_USER)
#   EDGEROOM_READONLY_ROOT=1  read-only root overlay, state on the edgeroom-state partition
#   EDGEROOM_PIP_OFFLINE=1    install from the wheel dirs only (no package index)
set -euo pipefail

if [ "$#" -lt 2 ]; then
	echo "usage: $0 OUT_DIR WHEEL_DIR..." >&2
	exit 2
fi
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$1"
shift

rm -rf "${OUT}"
mkdir -p "$(dirname "${OUT}")"
cp -a "${REPO}/image/stage-edgeroom" "${OUT}"
FILES="${OUT}/00-edgeroom/files"
chmod 755 "${OUT}/prerun.sh" "${OUT}/00-edgeroom/01-run.sh"

rm -rf "${FILES}/systemd" "${FILES}/wheels" "${FILES}/doc"
cp -a "${REPO}/systemd" "${FILES}/systemd"
mkdir -p "${FILES}/wheels" "${FILES}/doc"
for dir in "$@"; do
	if ! compgen -G "${dir}/*.whl" > /dev/null; then
		echo "$0: no wheels in ${dir}" >&2
		exit 1
	fi
	cp "${dir}"/*.whl "${FILES}/wheels/"
done
if ! compgen -G "${FILES}/wheels/edgeroom-*.whl" > /dev/null; then
	echo "$0: none of the wheel directories holds an edgeroom wheel" >&2
	exit 1
fi
if compgen -G "${REPO}/docs/*.md" > /dev/null; then
	cp "${REPO}"/docs/*.md "${FILES}/doc/"
fi

cat > "${FILES}/build.env" <<ENV
EDGEROOM_SSH=${EDGEROOM_SSH:-0}
EDGEROOM_READONLY_ROOT=${EDGEROOM_READONLY_ROOT:-0}
EDGEROOM_PIP_OFFLINE=${EDGEROOM_PIP_OFFLINE:-0}
ENV
echo "${OUT}"
