#!/usr/bin/env bash
# Eddy's benchmark in one command: the talk's fraud rule run by Eddy and by Kafka Streams over
# the same preloaded topic on the local broker, beside the broker's consume ceiling, every
# answer checked. See benches/README.md.
#
#   benches/run.sh                 smoke size (100k events; correctness only, as in CI)
#   benches/run.sh --size full     10M events over 12 h of event time: the real figures
#   benches/run.sh --size 2000000  any number of events
#   other options go to the harness (benches/fraud/main.rs), e.g. --latency-rate 0, --report FILE
#
# It fetches Kafka Streams from Maven Central into the cache (benches/streams/pom.xml),
# compiles benches/streams/WindowedCount.java with javac, builds Eddy and the harness (release
# for real sizes, the debug build for smoke), starts the broker unless one runs (and stops what it started).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/eddy/target}
cache=${EDDY_CACHE:-$HOME/.cache/eddy}

size=smoke
args=()
while (($#)); do
  case $1 in
    --size) size=${2:?--size needs a value}; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [[ $size == smoke ]]; then profile=dev; else profile=release; fi

kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' benches/streams/pom.xml)
jars="$cache/kafka-streams-$kafka_version/jars"
if [[ ! -f $jars/.complete ]]; then
  echo "run.sh: fetching Kafka Streams $kafka_version from Maven Central into $jars" >&2
  rm -rf "$jars" && mkdir -p "$jars"
  mvn -q -B -f benches/streams/pom.xml dependency:copy-dependencies \
    -DoutputDirectory="$jars" -DincludeScope=runtime >&2
  touch "$jars/.complete"
fi
classes="$cache/bench-classes"
mkdir -p "$classes"
javac -d "$classes" -cp "$jars/*" benches/streams/WindowedCount.java

source docker/broker.bash
ensure_broker
trap release_broker EXIT

# cargo builds the eddy binary with the bench (same profile and features) and the harness
# runs that one.
cargo bench -q --profile "$profile" --bench fraud -- --size "$size" \
  --streams-classpath "$jars/*:$classes" "${args[@]}"
