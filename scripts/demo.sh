#!/usr/bin/env bash
# Set up kioskd and run the demo: the reference relay, the browser caller page and a kiosk on
# synthetic media. It prints the address and token to open in a browser. Ctrl-C stops it all.
#   scripts/demo.sh --help   lists the options (before installing anything)
set -euo pipefail
cd "$(dirname "$0")/.."
for arg in "$@"; do
  if [ "$arg" = "-h" ] || [ "$arg" = "--help" ]; then
    if [ -x .venv/bin/python ]; then
      exec .venv/bin/python -m kioskd.demo --help
    fi
    # Not set up yet: the demo's own help needs no installed package.
    exec env PYTHONPATH=device python3 -m kioskd.demo --help
  fi
done
scripts/setup.sh
exec .venv/bin/python -m kioskd.demo "$@"
