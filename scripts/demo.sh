#!/usr/bin/env bash
# Set up kioskd and run the demo: the reference relay, the browser caller page and a kiosk on
# synthetic media. It prints the address and token to open in a browser. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m kioskd.demo "$@"
