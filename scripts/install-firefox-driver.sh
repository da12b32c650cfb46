#!/usr/bin/env bash
# Install what the Firefox tests (tests/e2e/test_firefox.py) need beside Debian's firefox-esr
# (scripts/setup.sh --test installs that): Node.js and npm (Debian's packages, only if `node` is
# missing) and puppeteer-core, pinned by its lock file, which drives the browser over WebDriver
# BiDi. puppeteer-core never downloads a browser; --ignore-scripts keeps it that way.
# Safe to run again: it only installs what is missing.
#   scripts/install-firefox-driver.sh
set -euo pipefail
cd "$(dirname "$0")/.."

driver_dir=tests/support/firefox

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "install-firefox-driver: installing nodejs and npm"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends \
    nodejs npm
fi

if [ ! -d "$driver_dir/node_modules/puppeteer-core" ]; then
  echo "install-firefox-driver: installing puppeteer-core into $driver_dir/node_modules"
  (cd "$driver_dir" && npm ci --no-audit --no-fund --ignore-scripts)
fi

version=$(cd "$driver_dir" && node -p 'require("puppeteer-core/package.json").version')
echo "install-firefox-driver: node $(node --version), puppeteer-core $version," \
  "$(firefox-esr --version 2>/dev/null || echo "no firefox-esr")"
