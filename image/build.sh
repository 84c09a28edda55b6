#!/bin/bash
# Build the edgeroom Raspberry Pi OS Lite image (arm64) with pi-gen.
#
#   image/build.sh                      (as root; `make image` calls it)
#
# Host needs: Debian bookworm or newer (or Ubuntu 22.04+), root, about 25 GB free disk,
# network access to the Raspberry Pi OS archive and PyPI, git, python3 with pip, and
# pi-gen's own dependencies:
#   apt-get install coreutils quilt parted qemu-user-static debootstrap zerofree zip \
#     dosfstools libarchive-tools libcap2-bin grep rsync xz-utils file git curl bc \
#     gpg pigz xxd arch-test
# On a non-arm64 host, binfmt_misc must be enabled for qemu-aarch64 (qemu-user-static
# does it). With EDGEROOM_PIGEN_DOCKER=1 pi-gen's build-docker.sh is used instead, and
# the host needs docker (and binfmt) only.
#
# Environment:
#   PIGEN_DIR             pi-gen checkout to use (default image/work/pi-gen; cloned if absent)
#   PIGEN_REPO, PIGEN_REF where to clone it from (default RPi-Distro/pi-gen, branch arm64)
#   EDGEROOM_SSH_PUBKEY   path of an SSH public key for the admin user "edgeadmin";
#                         without it SSH stays off
#   EDGEROOM_READONLY_ROOT=1  read-only root overlay (see docs/image.md)
#   EDGEROOM_PIGEN_DOCKER=1   build inside docker with pi-gen's build-docker.sh
# The image lands in $PIGEN_DIR/deploy/.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${REPO}/image/work"
PIGEN_DIR="${PIGEN_DIR:-${WORK}/pi-gen}"
PIGEN_REPO="${PIGEN_REPO:-https://github.com/RPi-Distro/pi-gen.git}"
PIGEN_REF="${PIGEN_REF:-arm64}"

die() {
	echo "image/build.sh: $*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || die "run as root (pi-gen mounts and chroots)"
for flag in EDGEROOM_READONLY_ROOT EDGEROOM_PIGEN_DOCKER; do
	case "${!flag:-0}" in
	0 | 1) ;;
	*) die "${flag} must be 0 or 1" ;;
	esac
done
command -v git > /dev/null || die "git is needed"
python3 -m pip --version > /dev/null 2>&1 || die "python3 with pip is needed"

ssh_key=""
if [ -n "${EDGEROOM_SSH_PUBKEY:-}" ]; then
	[ -r "${EDGEROOM_SSH_PUBKEY}" ] || die "cannot read ${EDGEROOM_SSH_PUBKEY}"
	ssh_key="$(head -n 1 "${EDGEROOM_SSH_PUBKEY}")"
	case "${ssh_key}" in
	ssh-* | ecdsa-* | sk-*) ;;
	*) die "${EDGEROOM_SSH_PUBKEY} does not look like an SSH public key" ;;
	esac
fi

mkdir -p "${WORK}"
if [ ! -d "${PIGEN_DIR}" ]; then
	git clone --depth 1 --branch "${PIGEN_REF}" "${PIGEN_REPO}" "${PIGEN_DIR}"
fi
[ -x "${PIGEN_DIR}/build.sh" ] || die "${PIGEN_DIR} is not a pi-gen checkout"

echo "image/build.sh: building the edgeroom wheel"
rm -rf "${WORK}/dist"
python3 -m pip wheel --quiet --no-deps -w "${WORK}/dist" "${REPO}"

EDGEROOM_SSH=0
[ -n "${ssh_key}" ] && EDGEROOM_SSH=1
EDGEROOM_SSH="${EDGEROOM_SSH}" EDGEROOM_READONLY_ROOT="${EDGEROOM_READONLY_ROOT:-0}" \
	EDGEROOM_PIP_OFFLINE=0 \
	"${REPO}/image/assemble-stage.sh" "${PIGEN_DIR}/stage-edgeroom" "${WORK}/dist"

# Only the appliance image is exported, not the plain Lite one.
touch "${PIGEN_DIR}/stage2/SKIP_IMAGES"

# pi-gen insists on a first-user password when the first-boot rename wizard is off.
# It is random, never shown or kept: the stage replaces it with "no password".
umask 077
config="${PIGEN_DIR}/config"
trap 'rm -f "${config}"' EXIT
{
	cat "${REPO}/image/config"
	printf 'FIRST_USER_PASS=%q\n' "$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
	if [ -n "${ssh_key}" ]; then
		echo "ENABLE_SSH=1"
		echo "PUBKEY_ONLY_SSH=1"
		echo "PASSWORDLESS_SUDO=1"
		printf 'PUBKEY_SSH_FIRST_USER=%q\n' "${ssh_key}"
	fi
} > "${config}"

cd "${PIGEN_DIR}"
if [ "${EDGEROOM_PIGEN_DOCKER:-0}" = 1 ]; then
	./build-docker.sh
else
	./build.sh
fi
echo "image/build.sh: done; the image is in ${PIGEN_DIR}/deploy/"
