#!/usr/bin/env bash
# Sets up and runs every test: unit, broker integration, websocket, process clean-up, and the
# browser journeys in headless Chromium. The last line is the total, `tests: N passed, N failed`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
exec cargo xtask test
