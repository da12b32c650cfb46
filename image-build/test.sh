#!/usr/bin/env bash
# Build the kiosk's root file systems and test them, short of a Pi: the README's third command.
#
#   image-build/test.sh [--keep DIR]
#
# 1. installs what it needs (mmdebstrap, qemu-user-static, qemu-system-arm, systemd-container),
# 2. builds an arm64 (the Pi's architecture, under qemu-user) and an amd64 Debian Bookworm root
#    file system with image-build/build-rootfs.sh, which runs the same install script as the
#    pi-gen stage,
# 3. checks both (tests/image/test_rootfs.py: pinned wheels, kioskd runs, SDL's KMS/DRM driver,
#    units enabled and verified) and boots both: amd64 under systemd-nspawn, arm64 in a
#    qemu-system-aarch64 virtual machine with Debian's kernel (tests/image/test_boot.py:
#    provisioned from the boot partition folder, kioskd.service active, a call through a relay
#    in the same machine).
#
# --keep DIR keeps the root file systems in DIR/arm64 and DIR/amd64 (and reuses them next time);
# by default they are built in a temporary folder and removed. Needs root and the network to
# Debian's archive and PyPI. Takes about 17 minutes on two cores, most of it arm64 emulation.
set -euo pipefail
cd "$(dirname "$0")/.."

keep=""
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "image test: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "image test: run as root" >&2; exit 1; }

missing=()
for p in mmdebstrap qemu-user-static qemu-system-arm systemd-container e2fsprogs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "image test: installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
scripts/setup.sh --test >/dev/null  # the test suite's venv (pytest)

if [ -n "$keep" ]; then
  work=$(realpath -m "$keep")
  mkdir -p "$work"
else
  work=$(mktemp -d /var/tmp/kioskd-rootfs.XXXXXX)
  trap 'rm -rf "$work"' EXIT
fi
for arch in arm64 amd64; do
  if [ -x "$work/$arch/opt/kioskd/.venv/bin/kioskd" ]; then
    echo "image test: reusing the $arch root file system in $work/$arch"
  else
    rm -rf "$work/$arch"
    # arm64 boots in a virtual machine (qemu-system-aarch64): it needs Debian's kernel.
    kernel=()
    [ "$arch" = arm64 ] && kernel=(--kernel)
    image-build/build-rootfs.sh --arch "$arch" "${kernel[@]}" "$work/$arch"
  fi
done
KIOSKD_ROOTFS_ARM64="$work/arm64" KIOSKD_ROOTFS_AMD64="$work/amd64" \
  .venv/bin/python -m pytest -q tests/image
