#!/usr/bin/env bash
# Sets up, builds and runs grouplab with its embedded broker: the page is at http://127.0.0.1:3000.
# Arguments go to the server, e.g. `scripts/run.sh --bootstrap-servers localhost:9092`
# (`target/debug/grouplab --help` lists them all).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo xtask run -- "$@"
