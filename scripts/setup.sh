#!/usr/bin/env bash
# Installs what grouplab needs to build, skipping whatever is already there.
#   scripts/setup.sh          the pinned Rust toolchain with its WASM target, and a C toolchain
#   scripts/setup.sh --tests  the same, plus Debian's Chromium and ChromeDriver for browser tests
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

if [ "${1:-}" = "--tests" ]; then
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    say "Installing Chromium and ChromeDriver for the browser tests"
    apt_install chromium chromium-driver
  fi
fi
