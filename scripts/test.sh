#!/usr/bin/env bash
# Runs the whole test suite (network-namespace tests need root), after setting up what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports
exec .venv/bin/pytest "$@"
