#!/usr/bin/env bash
# Turn a Raspberry Pi OS (or Debian) system into a kiosk: kioskd installed as a systemd service,
# the steps of docs/operations.md ("Install") in one command. Run as root from a copy of the
# repository, on the device itself or inside a chroot of its image (the pi-gen stage and
# image-build/build-rootfs.sh both run it). Safe to run again: it upgrades the program and never
# overwrites an admin's configuration or token.
#
#   image-build/install.sh [--appliance] [--signaling-url URL] [--token-file FILE] [--no-apt]
#
#   --appliance          also what a flashed kiosk needs: the screen, camera and sound as its
#                        defaults, provisioning from /boot/firmware/kioskd/, a journal that spares
#                        the SD card, and the console left to the kiosk (no login prompt on tty1)
#   --signaling-url URL  the call server, written to /etc/kioskd/kioskd.conf.d/50-install.toml
#   --token-file FILE    the kiosk's token, copied to /etc/kioskd/token (root only)
#   --no-apt             skip the system packages (already there)
set -euo pipefail
cd "$(dirname "$0")/.."

appliance=0
signaling_url=""
token_file=""
use_apt=1
while [ $# -gt 0 ]; do
  case "$1" in
    --appliance) appliance=1; shift ;;
    --signaling-url) signaling_url=$2; shift 2 ;;
    --token-file) token_file=$2; shift 2 ;;
    --no-apt) use_apt=0; shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "install: run as root (sudo $0 ...)" >&2; exit 1; }
venv=/opt/kioskd/.venv
etc=/etc/kioskd
if [ -n "$token_file" ] && [ ! -r "$token_file" ]; then
  echo "install: cannot read the token file $token_file" >&2
  exit 1
fi
# A running systemd (a Pi being installed by hand) or not (a chroot: pi-gen, build-rootfs.sh).
running=0
[ -d /run/systemd/system ] && running=1

# 1. System packages: Python, a compiler and ALSA's headers for pyalsaaudio; the libraries
#    SDL's KMS/DRM driver loads (a console without X); on a Pi the camera library, which comes
#    from the OS, not from PyPI.
if [ "$use_apt" = 1 ]; then
  read -r -a packages <<< "$(grep -v '^#' image-build/packages.txt | tr '\n' ' ')"
  apt-cache show python3-picamera2 >/dev/null 2>&1 && packages+=(python3-picamera2)
  echo "install: system packages: ${packages[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"
fi

# 2. The program, in a venv that sees the OS's packages (picamera2), pinned by constraints.txt.
#    Built from a copy: pip writes its build files next to the source.
echo "install: the program in ${venv}"
[ -x "$venv/bin/python" ] || python3 -m venv --system-site-packages "$venv"
source_copy=$(mktemp -d)
trap 'rm -rf "$source_copy"' EXIT
tar -c --exclude=.git --exclude=.venv --exclude=node_modules --exclude='*.egg-info' \
    pyproject.toml constraints.txt README.md device | tar -x -C "$source_copy"
"$venv/bin/pip" install -q --disable-pip-version-check --no-cache-dir --use-pep517 \
    -c constraints.txt \
    "$source_copy[alsa]"
# The service cannot write into /opt (ProtectSystem=strict): compile the bytecode now.
"$venv/bin/python" -m compileall -q "$venv" >/dev/null || true

# 3. The user and its groups, /etc/kioskd.
install -D -m 0644 systemd/kioskd.sysusers /usr/lib/sysusers.d/kioskd.conf
install -D -m 0644 systemd/kioskd.tmpfiles /usr/lib/tmpfiles.d/kioskd.conf
systemd-sysusers kioskd.conf
systemd-tmpfiles --create kioskd.conf

# 4. The configuration: the commented file once, the server address as a drop-in (the main
#    file, which the admin edits, wins over it), the token if given.
if [ -e "$etc/kioskd.toml" ]; then
  echo "install: keeping the configuration in $etc/kioskd.toml"
else
  install -m 0644 config/kioskd.toml "$etc/kioskd.toml"
fi
if [ -n "$signaling_url" ]; then
  printf '# Written by image-build/install.sh; kioskd.toml overrides it.\n[signaling]\nurl = "%s"\n' \
    "$signaling_url" > "$etc/kioskd.conf.d/50-install.toml"
fi
if [ -n "$token_file" ]; then
  install -m 0600 -o root -g root "$token_file" "$etc/token"
fi

# 5. An appliance: its own defaults, provisioning, the SD card, the console.
if [ "$appliance" = 1 ]; then
  if "$venv/bin/python" -c 'import importlib.util as u; exit(u.find_spec("picamera2") is None)'; then
    camera='source = "picamera2"'
  else
    echo "install: no picamera2 (python3-picamera2) here: the camera stays synthetic"
    camera='source = "synthetic"'
  fi
  cat > "$etc/kioskd.conf.d/10-appliance.toml" <<EOF
# Written by image-build/install.sh --appliance: a kiosk's own screen, camera and sound.
# Drop-ins named later (50-provisioned.toml from the boot partition) and kioskd.toml win.
[display]
mode = "fullscreen"
[video]
$camera
[audio]
source = "alsa"
sink = "alsa"
EOF
  install -m 0644 image-build/files/kioskd-provision.service /etc/systemd/system/
  install -D -m 0644 image-build/files/journald-kioskd.conf \
      /etc/systemd/journald.conf.d/50-kioskd.conf
  mkdir -p /boot/firmware/kioskd
  cp image-build/files/boot-kioskd-README.txt /boot/firmware/kioskd/README.txt
  # The console belongs to the kiosk's screen: no login prompt drawn over it.
  systemctl mask getty@tty1.service
  systemctl enable kioskd-provision.service
fi
if [ ! -s "$etc/token" ] && [ "$appliance" = 0 ]; then
  echo "install: no token yet: put the kiosk's token in /etc/kioskd/token (mode 0600)," \
       "then systemctl restart kioskd"
fi
"$venv/bin/kioskctl" config check "$etc/kioskd.toml"

# 6. The service, enabled; started at once on a running system that has its token.
install -D -m 0644 systemd/kioskd.service /etc/systemd/system/kioskd.service
if [ "$running" = 1 ]; then
  systemctl daemon-reload
  if [ -s "$etc/token" ]; then
    systemctl enable --now kioskd.service
  else
    systemctl enable kioskd.service
  fi
else
  systemctl enable kioskd.service
fi
echo "install: done; kioskctl status says how the kiosk is (docs/operations.md)"
