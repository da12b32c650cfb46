#!/bin/bash -e
# pi-gen, outside the chroot: the Pi's boot settings for a kiosk, then the source goes.
BOOT="${ROOTFS_DIR}/boot/firmware"

# config.txt: the camera module detected, the KMS display driver SDL draws on (Raspberry Pi
# OS Bookworm has both by default; a kiosk must not depend on that staying so).
if ! grep -q "^# kioskd" "${BOOT}/config.txt"; then
	cat >> "${BOOT}/config.txt" <<'CONFIG'

[all]
# kioskd: camera and display
camera_auto_detect=1
dtoverlay=vc4-kms-v3d
max_framebuffers=2
disable_overscan=1
CONFIG
fi

# cmdline.txt (one line): the console stays dark under the kiosk's screen: no blanking, no
# logo, no cursor, no boot messages.
if ! grep -q "vt.global_cursor_default=0" "${BOOT}/cmdline.txt"; then
	sed -i '1 s/$/ consoleblank=0 logo.nologo vt.global_cursor_default=0 quiet loglevel=3/' \
		"${BOOT}/cmdline.txt"
fi

rm -rf "${ROOTFS_DIR}/tmp/kioskd-src"
