# Sourced by the project's scripts (.ci/test.sh, benches/run.sh, docker/quickstart.sh):
# `ensure_broker` starts the local broker (docker/kafka.sh) unless one already runs, and
# `release_broker` stops it only if ensure_broker started it. Call release_broker from the
# script's EXIT trap.
started_broker=0

ensure_broker() {
  if ! docker/kafka.sh status >/dev/null 2>&1; then
    docker/kafka.sh start >/dev/null
    started_broker=1
  fi
}

release_broker() {
  if ((started_broker)); then docker/kafka.sh stop; fi
}
