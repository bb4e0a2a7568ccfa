#!/usr/bin/env bash
# Installs what grouplab needs to build, skipping whatever is already there.
#   scripts/setup.sh          the pinned Rust toolchain with its WASM target, a C toolchain,
#                             binaryen's wasm-opt from npm (tools/binaryen) with Node.js,
#                             Debian's redis-server for the Redis Streams labs, and Debian's
#                             rabbitmq-server (with Erlang) for the RabbitMQ labs
#   scripts/setup.sh --tests  the same, plus Debian's Chromium and ChromeDriver for browser tests, and
#                             the Kafka clients the tests run as a learner's own consumers: Debian's
#                             kcat, KafkaJS, and a Python virtual environment with
#                             confluent-kafka, aiokafka, redis-py and pika (all in end2end/clients/)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=no
apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "Please install these packages with your system's package manager: $*" >&2
    exit 1
  fi
  if [ "$apt_updated" = no ]; then
    as_root apt-get update -qq
    apt_updated=yes
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# The Rust toolchain named in rust-toolchain.toml (rustup may be set not to install it on its own).
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if ! command -v rustup >/dev/null; then
  echo "rustup is needed to install Rust $toolchain: see https://rustup.rs" >&2
  exit 1
fi
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

# librdkafka and SQLite are compiled from source: they need a C toolchain and make.
missing=()
for tool in cc c++ make perl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "Installing a C toolchain (missing: ${missing[*]})"
  apt_install build-essential perl
fi

# binaryen's wasm-opt shrinks the front end; it comes from npm (tools/binaryen), because Debian's
# binaryen 108 silently breaks the module. It runs on Node.js.
packages=()
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
if [ ${#packages[@]} -gt 0 ]; then
  say "Installing ${packages[*]} for wasm-opt"
  apt_install "${packages[@]}"
fi
if ! cmp -s tools/binaryen/package-lock.json tools/binaryen/node_modules/.installed-lock.json; then
  say "Installing binaryen (wasm-opt) into tools/binaryen/node_modules"
  (cd tools/binaryen && npm ci --no-audit --no-fund --loglevel=error)
  cp tools/binaryen/package-lock.json tools/binaryen/node_modules/.installed-lock.json
fi

# The Redis Streams labs run a redis-server of grouplab's own, on loopback, with nothing on disk.
if ! command -v redis-server >/dev/null && [ ! -x /usr/bin/redis-server ]; then
  say "Installing redis-server for the Redis Streams labs"
  apt_install redis-server
fi

# The RabbitMQ labs run a rabbitmq-server of grouplab's own, on loopback ports, in .grouplab/.
# The package also starts a system-wide broker where a service manager runs; grouplab does not use it.
if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
  say "Installing rabbitmq-server for the RabbitMQ labs"
  apt_install rabbitmq-server
fi

if [ "${1:-}" = "--tests" ]; then
  packages=()
  command -v chromium >/dev/null || packages+=(chromium)
  command -v chromedriver >/dev/null || packages+=(chromium-driver)
  command -v kcat >/dev/null || packages+=(kcat)
  python3 -c 'import venv, ensurepip' 2>/dev/null || packages+=(python3-venv)
  if [ ${#packages[@]} -gt 0 ]; then
    say "Installing ${packages[*]} for the tests"
    apt_install "${packages[@]}"
  fi

  clients=end2end/clients
  if [ ! -x "$clients/.venv/bin/python" ]; then
    say "Creating a Python virtual environment for the test clients"
    python3 -m venv "$clients/.venv"
  fi
  if ! cmp -s "$clients/requirements.txt" "$clients/.venv/installed.txt"; then
    say "Installing confluent-kafka, aiokafka, redis-py and pika into $clients/.venv"
    "$clients/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$clients/requirements.txt"
    cp "$clients/requirements.txt" "$clients/.venv/installed.txt"
  fi
  if ! cmp -s "$clients/package-lock.json" "$clients/node_modules/.installed-lock.json"; then
    say "Installing KafkaJS into $clients/node_modules"
    (cd "$clients" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$clients/package-lock.json" "$clients/node_modules/.installed-lock.json"
  fi
fi
