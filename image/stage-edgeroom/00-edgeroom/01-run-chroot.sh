#!/bin/bash
# pi-gen sub-stage, inside the image's root filesystem (pi-gen feeds this file to bash on
# stdin; the image tests do the same with chroot). 01-run.sh has copied the files first.
# Everything runs inside main(), which reads /dev/null, so no command can swallow the
# rest of this script from stdin.
set -euo pipefail

BUILD=/tmp/edgeroom-build
VENV=/opt/edgeroom/venv
export DEBIAN_FRONTEND=noninteractive

log() {
	echo "edgeroom stage: $*" >&2
}

install_venv() {
	local pip=("${VENV}/bin/pip" install --no-cache-dir --disable-pip-version-check
		--find-links "${BUILD}/wheels" --constraint "${BUILD}/constraints.txt")
	if [ "${EDGEROOM_PIP_OFFLINE:-0}" = 1 ]; then
		pip+=(--no-index)
	fi
	# The venv sees Raspberry Pi OS's python3-picamera2 and python3-lgpio.
	python3 -m venv --system-site-packages "${VENV}"

	# pyalsaaudio is published as source only: compile it here unless the wheel
	# directory brings a built wheel, and take the compiler out again afterwards.
	local build_deps=() pkg
	if ! compgen -G "${BUILD}/wheels/pyalsaaudio-*.whl" > /dev/null; then
		for pkg in gcc libc6-dev libasound2-dev python3-dev; do
			dpkg-query -W -f='${Status}' "${pkg}" 2> /dev/null | grep -q 'ok installed' ||
				build_deps+=("${pkg}")
		done
	fi
	if [ "${#build_deps[@]}" -gt 0 ]; then
		log "installing build dependencies ${build_deps[*]}"
		apt-get install -y --no-install-recommends "${build_deps[@]}"
	fi
	# By file name, so an index can never substitute another package called edgeroom.
	"${pip[@]}" "${BUILD}"/wheels/edgeroom-*.whl
	if [ "${#build_deps[@]}" -gt 0 ]; then
		apt-get purge -y --auto-remove "${build_deps[@]}"
	fi
	ln -sf "${VENV}/bin/edgeroom" /usr/local/bin/edgeroom
}

remove_passwords() {
	# No account keeps a password: '*' allows no password login at all (console, SSH
	# password), while SSH keys still work for the admin user when the builder gave one.
	local user
	awk -F: '$2 != "*" && $2 != "!" && $2 != "!*" {print $1}' /etc/shadow |
		while read -r user; do
			usermod -p '*' "${user}"
		done
	rm -f /etc/shadow- /etc/gshadow- /etc/passwd- /etc/group-
}

remove_device_secrets() {
	# Everything that must differ between two devices is made on the device.
	rm -f /etc/ssh/ssh_host_*
	rm -f /etc/ssl/private/ssl-cert-snakeoil.key /etc/ssl/certs/ssl-cert-snakeoil.pem
	: > /etc/machine-id
	rm -f /var/lib/dbus/machine-id /var/lib/systemd/random-seed
	find /var/lib/edgeroom -mindepth 1 -delete
}

setup_ssh() {
	if [ ! -e /usr/lib/systemd/system/ssh.service ] && [ ! -e /lib/systemd/system/ssh.service ]; then
		rm -f /usr/lib/systemd/system/edgeroom-ssh-hostkeys.service
		return
	fi
	systemctl enable edgeroom-ssh-hostkeys.service
	if [ "${EDGEROOM_SSH:-0}" = 1 ]; then
		systemctl enable ssh.service
	else
		systemctl disable ssh.service
		rm -f /etc/systemd/system/sshd.service
	fi
}

setup_readonly_root() {
	[ "${EDGEROOM_READONLY_ROOT:-0}" = 1 ] || return 0
	log "read-only root: state on the edgeroom-state partition, journal in RAM"
	install -D -m 644 "${BUILD}/journald-volatile.conf" \
		/etc/systemd/journald.conf.d/60-edgeroom-volatile.conf
	if ! grep -q 'edgeroom-state' /etc/fstab; then
		cat >> /etc/fstab <<-FSTAB
			LABEL=edgeroom-state /var/lib/edgeroom ext4 defaults,noatime,nofail,x-systemd.device-timeout=10s 0 2
			/var/lib/edgeroom/config /etc/edgeroom none bind,nofail,x-systemd.requires-mounts-for=/var/lib/edgeroom 0 0
		FSTAB
	fi
	install -m 644 "${BUILD}/edgeroom-readonly-root.service" /usr/lib/systemd/system/
	touch /etc/edgeroom-readonly-root
	systemctl enable edgeroom-readonly-root.service
}

main() {
	# shellcheck source=/dev/null
	. "${BUILD}/build.env"

	log "service user, groups and directories"
	systemd-sysusers /usr/lib/sysusers.d/edgeroom.conf
	systemd-tmpfiles --create /usr/lib/tmpfiles.d/edgeroom.conf
	if [ ! -e /etc/edgeroom/edgeroom.toml ]; then
		install -m 600 -o edgeroom -g edgeroom /usr/share/edgeroom/edgeroom.toml /etc/edgeroom/edgeroom.toml
	fi

	log "appliance venv in ${VENV}"
	install_venv

	log "units"
	systemctl enable edgeroom.service
	# The appliance starts and supervises its own Janus (room.server = "local").
	if [ -e /usr/lib/systemd/system/janus.service ] || [ -e /lib/systemd/system/janus.service ]; then
		systemctl disable janus.service
	fi
	setup_ssh
	setup_readonly_root

	log "removing passwords and per-device secrets"
	remove_passwords
	remove_device_secrets

	rm -rf "${BUILD}"
	apt-get clean
	log "done"
}

main "$@" < /dev/null
