#!/usr/bin/env bash
# Set up kioskd on a fresh Debian / Raspberry Pi OS machine: system packages, a virtualenv in
# .venv, and the pinned Python packages. Safe to run again: it only installs what is missing.
#   scripts/setup.sh          the daemon, the relay and the demo
#   scripts/setup.sh --test   also what the test suite needs (Chromium, Firefox ESR, Xvfb,
#                             redis-server, PipeWire, Node.js with socket.io and puppeteer-core,
#                             pytest...)
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1

packages=(python3 python3-venv python3-dev gcc iproute2 util-linux)
[ "$with_tests" = 1 ] && packages+=(chromium firefox-esr fonts-liberation xvfb systemd
                                     libasound2-dev redis-server coturn pipewire-alsa
                                     wireplumber)

# Not `dpkg -s`: it succeeds for a removed package whose config files are left.
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  had_pipewire=0
  installed pipewire && had_pipewire=1
  if [[ " ${missing[*]} " == *" pipewire-alsa "* ]]; then
    # pipewire-alsa makes PipeWire ALSA's `default` device for every program on the machine
    # (its conf.d/99-pipewire-default.conf). The tests use its plugin only through an ALSA
    # configuration of their own: that one file is set aside before it is installed, so
    # the default stays as it was.
    $sudo_cmd dpkg-divert --local --rename --add \
      --divert /etc/alsa/conf.d/99-pipewire-default.conf.kioskd-disabled \
      /etc/alsa/conf.d/99-pipewire-default.conf >/dev/null
  fi
  # No service may start while packages install (a redis-server or a TURN server on the
  # machine's own network): policy-rc.d says no to every start, for this install only.
  blocked_starts=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee /usr/sbin/policy-rc.d >/dev/null
    $sudo_cmd chmod 0755 /usr/sbin/policy-rc.d
    blocked_starts=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends \
    "${missing[@]}" || { [ "$blocked_starts" = 1 ] && $sudo_cmd rm -f /usr/sbin/policy-rc.d; exit 1; }
  [ "$blocked_starts" = 1 ] && $sudo_cmd rm -f /usr/sbin/policy-rc.d
  for service in redis-server coturn; do
    [[ " ${missing[*]} " == *" $service "* ]] || continue
    # The tests start private redis-servers and TURN servers of their own, on loopback in
    # their own namespace: the system service is not wanted, now or at the next boot.
    echo "setup: stopping and disabling the $service system service"
    if [ -d /run/systemd/system ]; then
      $sudo_cmd systemctl disable --now "$service.service" >/dev/null 2>&1 || true
    else
      $sudo_cmd service "$service" stop >/dev/null 2>&1 || true
      $sudo_cmd update-rc.d "$service" disable >/dev/null 2>&1 || true
    fi
  done
  # Likewise the tests start private PipeWire daemons; the packages would start one in every
  # user's session from now on. Only the units of packages this script brought are disabled.
  user_units=()
  [ "$had_pipewire" = 0 ] && installed pipewire && user_units+=(pipewire.socket pipewire.service)
  [[ " ${missing[*]} " == *" wireplumber "* ]] && user_units+=(wireplumber.service)
  if [ "${#user_units[@]}" -gt 0 ]; then
    echo "setup: disabling the PipeWire user-session units: ${user_units[*]}"
    $sudo_cmd systemctl --global disable "${user_units[@]}" >/dev/null 2>&1 || true
  fi
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: kioskd needs Python 3.11 or newer; $python is $("$python" --version 2>&1)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  # On a Pi, picamera2 comes from the OS (python3-picamera2): let the venv see it.
  if [ -e /proc/device-tree/model ] && grep -q "Raspberry Pi" /proc/device-tree/model 2>/dev/null; then
    "$python" -m venv --system-site-packages .venv
  else
    "$python" -m venv .venv
  fi
fi
# pygame-ce replaced pygame (the same `import pygame`): two of them in one venv overwrite each
# other's files, so both go and pygame-ce comes back whole.
if .venv/bin/pip show -q pygame >/dev/null 2>&1; then
  echo "setup: replacing pygame with pygame-ce"
  .venv/bin/pip uninstall -q -y pygame pygame-ce
fi
extras=""
[ "$with_tests" = 1 ] && extras="[test,alsa,relay-redis]"
echo "setup: installing Python packages (pinned by constraints.txt)"
.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e ".${extras}"
if [ "$with_tests" = 1 ]; then
  # The interop tests run the web app's kind of backend: a Node.js socket.io server.
  scripts/install-node-relay.sh
  # The Firefox tests drive Debian's firefox-esr with puppeteer-core (Node.js).
  scripts/install-firefox-driver.sh
fi
echo "setup: done"
