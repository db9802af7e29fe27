#!/usr/bin/env bash
# The quick start: sets up podtap, then opens it on a demo service with live traffic (root).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/podtap demo "$@"
