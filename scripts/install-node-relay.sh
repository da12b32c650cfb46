#!/usr/bin/env bash
# Install what the interop tests (tests/interop) need: Node.js and npm (Debian's packages, only
# if `node` is missing) and the Node relay's one dependency, socket.io v4, from its lock file.
# Safe to run again: it only installs what is missing.
#   scripts/install-node-relay.sh
#   .venv/bin/pytest tests/interop -q
set -euo pipefail
cd "$(dirname "$0")/.."

relay_dir=tests/interop/node-relay

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "install-node-relay: installing nodejs and npm"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends \
    nodejs npm
fi

if [ ! -d "$relay_dir/node_modules/socket.io" ]; then
  echo "install-node-relay: installing socket.io into $relay_dir/node_modules"
  (cd "$relay_dir" && npm ci --no-audit --no-fund)
fi

echo "install-node-relay: node $(node --version), socket.io $(cd "$relay_dir" && node -p 'require("socket.io/package.json").version')"
