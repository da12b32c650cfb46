#!/usr/bin/env bash
# Set up everything the tests need, lint and type-check the daemon, then run the whole suite.
# Extra arguments go to pytest. The suite re-executes itself inside a private, loopback-only
# network namespace (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
echo "test: ruff and mypy over device/"
.venv/bin/ruff check device
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
