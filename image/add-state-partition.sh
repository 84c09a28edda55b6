#!/bin/bash
# Append the writable state partition (ext4, label "edgeroom-state") to a built image,
# for images built with EDGEROOM_READONLY_ROOT=1. Run it on the .img before flashing:
#
#   image/add-state-partition.sh deploy/edgeroom.img 2048     (size in MiB)
#
# The partition holds /var/lib/edgeroom, and its config/ directory is bound onto
# /etc/edgeroom, so state and config edits survive reboots while / stays read-only.
# Needs sfdisk (util-linux) and mkfs.ext4 (e2fsprogs 1.43 or newer); no root, no loop device.
set -euo pipefail

if [ "$#" -ne 2 ]; then
	echo "usage: $0 IMAGE SIZE_MIB" >&2
	exit 2
fi
image="$1"
size_mib="$2"
[ -f "${image}" ] || { echo "$0: ${image} is not a file" >&2; exit 1; }
case "${size_mib}" in
'' | *[!0-9]*) echo "$0: SIZE_MIB must be a whole number of MiB" >&2; exit 1 ;;
esac
[ "${size_mib}" -ge 16 ] || { echo "$0: SIZE_MIB must be at least 16" >&2; exit 1; }
if sfdisk --dump "${image}" | grep -q '^label: gpt'; then
	echo "$0: ${image} has a GPT partition table; pi-gen images use MBR" >&2
	exit 1
fi
starts=$(sfdisk --dump "${image}" | sed -n 's/.* : start= *\([0-9]*\),.*/\1/p')
for part_start in ${starts}; do
	# The ext4 volume label sits 0x78 bytes into the superblock, 1024 bytes in.
	label=$(dd if="${image}" iflag=skip_bytes,count_bytes skip=$(( part_start * 512 + 1024 + 0x78 )) \
		count=16 status=none | tr -d '\0')
	if [ "${label}" = edgeroom-state ]; then
		echo "$0: ${image} already has an edgeroom-state partition" >&2
		exit 1
	fi
done
if [ "$(sfdisk --dump "${image}" | grep -c ' : start=')" -ge 4 ]; then
	echo "$0: ${image} already has four primary partitions" >&2
	exit 1
fi

# The new partition starts on the next 4 MiB boundary after the last one.
last_end=$(sfdisk --dump "${image}" |
	sed -n 's/.* : start= *\([0-9]*\), *size= *\([0-9]*\),.*/\1 \2/p' |
	awk '{ if ($1 + $2 > e) e = $1 + $2 } END { print e + 0 }')
align=8192
start=$(( (last_end + align - 1) / align * align ))
image_bytes=$(stat -c %s "${image}")
need_bytes=$(( start * 512 + size_mib * 1024 * 1024 ))
if [ "${image_bytes}" -lt "${need_bytes}" ]; then
	truncate -s "${need_bytes}" "${image}"
fi
echo "start=${start}, size=$(( size_mib * 2048 )), type=83" | sfdisk --quiet --append "${image}"

staging="$(mktemp -d)"
trap 'rm -rf "${staging}"' EXIT
mkdir -m 700 "${staging}/config"
mkfs.ext4 -q -F -L edgeroom-state -d "${staging}" -E "offset=$(( start * 512 ))" \
	"${image}" "$(( size_mib * 1024 ))k"
echo "${image}: edgeroom-state partition of ${size_mib} MiB at sector ${start}"
