#!/usr/bin/env bash
# Installs what grouplab needs to build, skipping whatever is already there.
#   scripts/setup.sh          the pinned Rust toolchain with its WASM target and the crates it
#                             builds, a C toolchain, binaryen's wasm-opt from npm (tools/binaryen)
#                             with Node.js, Debian's redis-server for the Redis Streams labs, and
#                             Debian's rabbitmq-server (with Erlang) for the RabbitMQ labs
#   scripts/setup.sh --tests  the same, plus Debian's Chromium and ChromeDriver for browser tests, and
#                             the Kafka clients the tests run as a learner's own consumers: Debian's
#                             kcat, KafkaJS, and a Python virtual environment with
#                             confluent-kafka, aiokafka, redis-py and pika (all in end2end/clients/)
# What does not depend on each other runs at once: the toolchain and the crates download while
# Debian's packages install, in one apt-get call; the test clients' pip and npm installs together.
set -euo pipefail
cd "$(dirname "$0")/.."

tests=no
[ "${1:-}" = "--tests" ] && tests=yes

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Runs "$@" in the background with its output kept in a file; `finish` waits for every such job,
# prints its output, and fails if one failed, saying which.
job_pids=()
job_names=()
job_logs=()
in_background() {
  local name=$1
  shift
  local log
  log=$(mktemp)
  ("$@") >"$log" 2>&1 &
  job_pids+=("$!")
  job_names+=("$name")
  job_logs+=("$log")
}
finish() {
  local failed=no i
  for i in "${!job_pids[@]}"; do
    if wait "${job_pids[$i]}"; then
      cat "${job_logs[$i]}"
    else
      cat "${job_logs[$i]}" >&2
      echo "${job_names[$i]} failed" >&2
      failed=yes
    fi
    rm -f "${job_logs[$i]}"
  done
  job_pids=()
  job_names=()
  job_logs=()
  [ "$failed" = no ]
}

# The Rust toolchain named in rust-toolchain.toml (rustup may be set not to install it on its own),
# then the crates the build needs, for this machine and for the WASM front end.
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if ! command -v rustup >/dev/null; then
  echo "rustup is needed to install Rust $toolchain: see https://rustup.rs" >&2
  exit 1
fi
rust() {
  if ! rustup toolchain list | grep -q "^$toolchain"; then
    say "Installing Rust $toolchain"
    rustup toolchain install "$toolchain" --profile minimal --component rustfmt,clippy --target wasm32-unknown-unknown
  fi
  if ! rustup target list --installed --toolchain "$toolchain" | grep -qx wasm32-unknown-unknown; then
    say "Adding the wasm32-unknown-unknown target to Rust $toolchain"
    rustup target add --toolchain "$toolchain" wasm32-unknown-unknown
  fi
  for component in rustfmt clippy; do
    if ! rustup component list --installed --toolchain "$toolchain" | grep -q "^$component"; then
      rustup component add --toolchain "$toolchain" "$component"
    fi
  done
  local host
  host=$(rustc -vV | sed -n 's/^host: //p')
  cargo fetch --locked --target "$host" --target wasm32-unknown-unknown
}
in_background "installing Rust $toolchain and fetching the crates" rust

# Debian's packages, in one apt-get call.
packages=()
# librdkafka and SQLite are compiled from source: they need a C toolchain and make.
for tool in cc c++ make perl; do
  command -v "$tool" >/dev/null || { packages+=(build-essential perl); break; }
done
# binaryen's wasm-opt shrinks the front end; it comes from npm (tools/binaryen), because Debian's
# binaryen 108 silently breaks the module. It runs on Node.js.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
# The Redis Streams labs run a redis-server of grouplab's own, on loopback, with nothing on disk.
command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || packages+=(redis-server)
# The RabbitMQ labs run a rabbitmq-server of grouplab's own, on loopback ports, in .grouplab/.
# The package also starts a system-wide broker where a service manager runs; grouplab does not use it.
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || packages+=(rabbitmq-server)
if [ "$tests" = yes ]; then
  command -v chromium >/dev/null || packages+=(chromium)
  command -v chromedriver >/dev/null || packages+=(chromium-driver)
  command -v kcat >/dev/null || packages+=(kcat)
  python3 -c 'import venv, ensurepip' 2>/dev/null || packages+=(python3-venv)
fi
if [ ${#packages[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "Please install these packages with your system's package manager: ${packages[*]}" >&2
    exit 1
  fi
  say "Installing ${packages[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"
fi

# What npm and pip install, each once its lock file changes.
binaryen() {
  say "Installing binaryen (wasm-opt) into tools/binaryen/node_modules"
  (cd tools/binaryen && npm ci --no-audit --no-fund --loglevel=error)
  cp tools/binaryen/package-lock.json tools/binaryen/node_modules/.installed-lock.json
}
if ! cmp -s tools/binaryen/package-lock.json tools/binaryen/node_modules/.installed-lock.json; then
  in_background "installing binaryen" binaryen
fi
if [ "$tests" = yes ]; then
  clients=end2end/clients
  python_clients() {
    if [ ! -x "$clients/.venv/bin/python" ]; then
      say "Creating a Python virtual environment for the test clients"
      python3 -m venv "$clients/.venv"
    fi
    say "Installing confluent-kafka, aiokafka, redis-py and pika into $clients/.venv"
    "$clients/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$clients/requirements.txt"
    cp "$clients/requirements.txt" "$clients/.venv/installed.txt"
  }
  if ! cmp -s "$clients/requirements.txt" "$clients/.venv/installed.txt"; then
    in_background "installing the Python test clients" python_clients
  fi
  kafkajs() {
    say "Installing KafkaJS and axe-core into $clients/node_modules"
    (cd "$clients" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$clients/package-lock.json" "$clients/node_modules/.installed-lock.json"
  }
  if ! cmp -s "$clients/package-lock.json" "$clients/node_modules/.installed-lock.json"; then
    in_background "installing KafkaJS and axe-core" kafkajs
  fi
fi
finish
