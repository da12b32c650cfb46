#!/bin/bash -e
# pi-gen, outside the chroot: copy kioskd's source (this repository, three levels up from the
# stage) into the image for the install step; 03-run.sh removes it again.
KIOSKD_SRC="$(cd "${STAGE_DIR}/../../.." && pwd)"
rm -rf "${ROOTFS_DIR}/tmp/kioskd-src"
mkdir -p "${ROOTFS_DIR}/tmp/kioskd-src"
tar -C "${KIOSKD_SRC}" -c --exclude=.git --exclude=.venv --exclude=node_modules \
	--exclude=__pycache__ --exclude='*.egg-info' \
	pyproject.toml constraints.txt README.md device config systemd image-build \
	| tar -x -C "${ROOTFS_DIR}/tmp/kioskd-src"
