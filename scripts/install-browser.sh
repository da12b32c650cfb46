#!/usr/bin/env bash
# Install what the end-to-end tests (tests/e2e) need: Debian's Chromium and the Playwright
# Python package that drives it. Safe to run again: it only installs what is missing.
#
# Playwright is used with `executable_path=/usr/bin/chromium`, so no browser is ever downloaded
# (never run `playwright install`): the browser and its libraries come from Debian's packages.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium pulls in its own libraries; the fonts make screenshots of the caller page readable.
packages=(chromium fonts-liberation)

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-browser: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends \
    "${missing[@]}"
fi

if [ -x .venv/bin/python ] && ! .venv/bin/python -c 'import playwright' 2>/dev/null; then
  echo "install-browser: installing the playwright Python package"
  constraints=()
  [ -f constraints.txt ] && constraints=(-c constraints.txt)
  .venv/bin/pip install -q --disable-pip-version-check "${constraints[@]}" playwright
fi

/usr/bin/chromium --version
