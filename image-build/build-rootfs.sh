#!/usr/bin/env bash
# Build a Debian Bookworm root file system and make it a kiosk with the same install script the
# pi-gen stage runs (image-build/install.sh --appliance). For testing the image short of a Pi:
# arm64 is the Pi's architecture (run under qemu-user); amd64 boots natively under
# systemd-nspawn (image-build/test.sh does both).
#
#   image-build/build-rootfs.sh [--arch arm64|amd64] [--mirror URL] [--kernel] DIR
#
#   --arch     arm64 (the default) or amd64
#   --mirror   the Debian archive (default http://deb.debian.org/debian)
#   --kernel   also Debian's kernel and initramfs, to boot it in a virtual machine
#   DIR        where the root file system goes; it must not exist, or be empty
#
# Needs root, mmdebstrap, and for arm64 qemu-user-static with binfmt_misc (registered here if
# missing). Downloads Debian packages and the pinned Python wheels for the architecture.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=arm64
mirror=http://deb.debian.org/debian
kernel=0
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=$2; shift 2 ;;
    --mirror) mirror=$2; shift 2 ;;
    --kernel) kernel=1; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "build-rootfs: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || { echo "build-rootfs: give one DIR (see --help)" >&2; exit 2; }
dir=$1
case "$arch" in arm64|amd64) ;; *) echo "build-rootfs: --arch is arm64 or amd64" >&2; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "build-rootfs: run as root" >&2; exit 1; }
if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
  echo "build-rootfs: $dir is not empty" >&2
  exit 1
fi
for tool in mmdebstrap; do
  command -v "$tool" >/dev/null || {
    echo "build-rootfs: needs $tool: apt-get install mmdebstrap qemu-user-static" >&2; exit 1; }
done

# arm64 on another machine: qemu-user through binfmt_misc. Debian's qemu-user-static names an
# interpreter path in /usr/libexec that bookworm does not ship, so register the binary itself
# ("F": the kernel opens it now, so it works inside the chroot too).
if [ "$arch" = arm64 ] && [ "$(uname -m)" != aarch64 ]; then
  command -v qemu-aarch64-static >/dev/null || {
    echo "build-rootfs: arm64 here needs qemu-user-static: apt-get install qemu-user-static" >&2
    exit 1; }
  binfmt=/proc/sys/fs/binfmt_misc
  [ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt"
  if [ ! -e "$binfmt/qemu-aarch64" ]; then
    echo "build-rootfs: registering qemu-aarch64-static with binfmt_misc"
    sed 's#:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:#:/usr/bin/qemu-aarch64-static:#' \
        /usr/lib/binfmt.d/qemu-aarch64.conf > "$binfmt/register"
  fi
fi

packages=$(grep -v '^#' image-build/packages.txt | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
# What a booted system needs besides (a Pi OS image has them): init, D-Bus, udev, ip.
packages="$packages,systemd-sysv,dbus,udev,iproute2"
kernel_hooks=()
if [ "$kernel" = 1 ]; then
  packages="$packages,linux-image-$arch,initramfs-tools"
  # Set before the kernel's package builds its initramfs: only the test VM's disk modules.
  kernel_hooks=(--setup-hook="mkdir -p \"\$1/etc/initramfs-tools/conf.d\" \"\$1/etc/initramfs-tools/hooks\"
cp $PWD/image-build/vm/initramfs.conf \"\$1/etc/initramfs-tools/conf.d/kioskd-vm.conf\"
cp $PWD/image-build/vm/initramfs-hook \"\$1/etc/initramfs-tools/hooks/kioskd-vm\"")
fi
source_tar=$(mktemp)
trap 'rm -f "$source_tar"' EXIT
tar -c --exclude=.git --exclude=.venv --exclude=node_modules --exclude=__pycache__ \
    --exclude='*.egg-info' -f "$source_tar" \
    pyproject.toml constraints.txt README.md device config systemd image-build

echo "build-rootfs: Debian bookworm $arch in $dir (under emulation arm64 takes a while)"
started=$(date +%s)
# The install runs in a clean environment (nothing of the host's pip settings leaks in), with
# the host's CA bundle for the build only: pip must trust whatever proxy this machine reaches
# PyPI through, as the host does.
install_env="env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8"
install_env="$install_env PIP_CERT=/tmp/build-ca.crt SSL_CERT_FILE=/tmp/build-ca.crt"
mmdebstrap --arch="$arch" --variant=apt --include="$packages" "${kernel_hooks[@]}" \
  --customize-hook="mkdir -p \"\$1/tmp/kioskd-src\" && tar -x -C \"\$1/tmp/kioskd-src\" -f $source_tar" \
  --customize-hook="cp /etc/ssl/certs/ca-certificates.crt \"\$1/tmp/build-ca.crt\"" \
  --customize-hook="chroot \"\$1\" $install_env /tmp/kioskd-src/image-build/install.sh --appliance --no-apt" \
  --customize-hook="rm -rf \"\$1/tmp/kioskd-src\" \"\$1/tmp/build-ca.crt\"" \
  bookworm "$dir" "deb $mirror bookworm main" "deb ${mirror%/debian}/debian-security bookworm-security main"
echo "build-rootfs: done in $(( $(date +%s) - started )) s: $dir"
