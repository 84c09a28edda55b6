#!/bin/bash -e
# pi-gen sub-stage, host side: copy the appliance's files into the root filesystem.
# Runs with ROOTFS_DIR set (pi-gen exports it; the image tests set it too).
# files/systemd, files/wheels, files/doc and files/build.env are filled in by
# image/assemble-stage.sh; the rest of files/ lives in the repository.

: "${ROOTFS_DIR:?ROOTFS_DIR must name the root filesystem being built}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FILES="${HERE}/files"

for needed in systemd/edgeroom.service systemd/sysusers.d/edgeroom.conf \
	systemd/tmpfiles.d/edgeroom.conf build.env; do
	if [ ! -e "${FILES}/${needed}" ]; then
		echo "01-run.sh: ${FILES}/${needed} is missing; assemble the stage with image/assemble-stage.sh" >&2
		exit 1
	fi
done
if ! compgen -G "${FILES}/wheels/edgeroom-*.whl" > /dev/null; then
	echo "01-run.sh: no edgeroom wheel in ${FILES}/wheels" >&2
	exit 1
fi

# Units, the service user, its directories, and the GPIO device group rule.
install -D -m 644 "${FILES}/systemd/edgeroom.service" "${ROOTFS_DIR}/usr/lib/systemd/system/edgeroom.service"
install -D -m 644 "${FILES}/systemd/sysusers.d/edgeroom.conf" "${ROOTFS_DIR}/usr/lib/sysusers.d/edgeroom.conf"
install -D -m 644 "${FILES}/systemd/tmpfiles.d/edgeroom.conf" "${ROOTFS_DIR}/usr/lib/tmpfiles.d/edgeroom.conf"
install -D -m 644 "${FILES}/systemd/udev/60-edgeroom-gpio.rules" "${ROOTFS_DIR}/usr/lib/udev/rules.d/60-edgeroom-gpio.rules"

# journald size cap and the hardware watchdog.
install -D -m 644 "${FILES}/journald.conf" "${ROOTFS_DIR}/etc/systemd/journald.conf.d/50-edgeroom.conf"
install -D -m 644 "${FILES}/watchdog.conf" "${ROOTFS_DIR}/etc/systemd/system.conf.d/50-edgeroom-watchdog.conf"

# SSH: keys only, host keys made on the device.
install -D -m 644 "${FILES}/sshd.conf" "${ROOTFS_DIR}/etc/ssh/sshd_config.d/50-edgeroom.conf"
install -D -m 644 "${FILES}/edgeroom-ssh-hostkeys.service" \
	"${ROOTFS_DIR}/usr/lib/systemd/system/edgeroom-ssh-hostkeys.service"

# Default config (comments only) and the operator docs.
install -D -m 644 "${FILES}/edgeroom.toml" "${ROOTFS_DIR}/usr/share/edgeroom/edgeroom.toml"
install -d -m 755 "${ROOTFS_DIR}/usr/share/doc/edgeroom"
if compgen -G "${FILES}/doc/*.md" > /dev/null; then
	install -m 644 "${FILES}"/doc/*.md "${ROOTFS_DIR}/usr/share/doc/edgeroom/"
fi

# What the chroot script installs from; it deletes this directory when done.
BUILD_DIR="${ROOTFS_DIR}/tmp/edgeroom-build"
rm -rf "${BUILD_DIR}"
install -d -m 755 "${BUILD_DIR}/wheels"
install -m 644 "${FILES}"/wheels/*.whl "${BUILD_DIR}/wheels/"
install -m 644 "${FILES}/constraints.txt" "${FILES}/build.env" "${BUILD_DIR}/"
# Used only when the image is built with EDGEROOM_READONLY_ROOT=1.
install -m 644 "${FILES}/journald-volatile.conf" "${FILES}/edgeroom-readonly-root.service" "${BUILD_DIR}/"
