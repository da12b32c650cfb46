#!/usr/bin/env bash
# Install what the ALSA back ends (kioskd.media.alsa: the microphone and the speaker) need:
# the ALSA headers to build pyalsaaudio, alsa-utils (aplay -L, arecord -L, speaker-test: to
# find and check a kiosk's sound card), and pyalsaaudio in .venv. Safe to run again: it only
# installs what is missing.
#
# libasound2-plugins is not needed: the `file` and `null` PCMs the tests use are built into
# libasound itself, and the plugins package pulls in FFmpeg and JACK libraries.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libasound2-dev alsa-utils)

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-alsa: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends \
    "${missing[@]}"
fi

if [ -x .venv/bin/python ] && ! .venv/bin/python -c 'import alsaaudio' 2>/dev/null; then
  echo "install-alsa: installing the pyalsaaudio Python package"
  # pyalsaaudio is compiled against libasound2-dev here; it is the "alsa" extra of kioskd.
  constraints=()
  [ -f constraints.txt ] && constraints=(-c constraints.txt)
  .venv/bin/pip install -q --disable-pip-version-check "${constraints[@]}" "pyalsaaudio ~= 0.11"
fi

if [ -x .venv/bin/python ]; then
  .venv/bin/python -c 'import alsaaudio; print("install-alsa: pyalsaaudio imports")'
else
  echo "install-alsa: no .venv here (run scripts/setup.sh first); pyalsaaudio not installed"
fi
