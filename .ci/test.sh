#!/usr/bin/env bash
# Eddy's test command (the README's second command). On a fresh machine it installs what is
# missing (Debian packages for building librdkafka and running the broker; the broker's jars
# come from Maven Central via docker/kafka.sh), starts the local Kafka broker, runs rustfmt,
# clippy and every test (unit, grammar snapshots, in-memory engine, queries/, end to end on
# the broker), then the benchmark's smoke size, and stops the broker it started even when a
# test fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/eddy/target}
export CARGO_TERM_COLOR=never

missing=()
command -v cc >/dev/null || missing+=(build-essential)
command -v make >/dev/null || missing+=(make)
command -v javac >/dev/null || missing+=(openjdk-17-jdk-headless) # the benchmark's Kafka Streams peer
command -v mvn >/dev/null || missing+=(maven)
command -v perl >/dev/null || missing+=(perl) # librdkafka's configure
# The schema registry test runs Confluent's Python serializers (pip, in a virtual environment).
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3 python3-venv)
if ((${#missing[@]})); then
  echo "installing ${missing[*]}"
  if [[ $(id -u) -eq 0 ]]; then sudo=(); else sudo=(sudo); fi
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "Rust (cargo) is needed: https://rustup.rs" >&2; exit 1; }

source docker/broker.bash
ensure_broker
trap release_broker EXIT

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
# The benchmark at its smoke size: Eddy and Kafka Streams on the same topic, every answer
# checked against the generator's (no timing is asserted).
benches/run.sh --size smoke
