#!/usr/bin/env bash
# A real, single-node Apache Kafka 4.x broker (KRaft, combined broker+controller) on 127.0.0.1,
# fetched from Maven Central with Maven and run with plain `java`. No Docker needed.
#
#   docker/kafka.sh start    fetch the jars once, format storage once, start, wait, print the bootstrap address
#   docker/kafka.sh stop     stop the broker this script started (and only that one)
#   docker/kafka.sh status   say whether it runs
#   docker/kafka.sh reset    stop, then delete the broker's data (topics, offsets)
#
# Environment: EDDY_CACHE (default ~/.cache/eddy) holds the jars and the broker's data;
# EDDY_KAFKA_PORT (default 9092) is the client port, the controller listens on the next one.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
cache=${EDDY_CACHE:-$HOME/.cache/eddy}
libs="$cache/kafka-$kafka_version/libs"
port=${EDDY_KAFKA_PORT:-9092}
controller_port=$((port + 1))
data="$cache/kafka-data-$port"
pidfile="$data/broker.pid"
log="$data/broker.log"
bootstrap="127.0.0.1:$port"
java_log_opts=(-Dorg.slf4j.simpleLogger.defaultLogLevel=warn
  -Dorg.slf4j.simpleLogger.log.kafka.server.KafkaRaftServer=info
  -Dorg.slf4j.simpleLogger.log.kafka.server.BrokerServer=info)

say() { echo "kafka.sh: $*" >&2; }

running_pid() {
  [[ -f $pidfile ]] || return 1
  local pid
  pid=$(cat "$pidfile")
  # Only a process that is our broker counts: a stale pid may have been reused.
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka.Kafka $data/server.properties"; then
    echo "$pid"
    return 0
  fi
  return 1
}

fetch_jars() {
  [[ -f $libs/.complete ]] && return 0
  command -v mvn >/dev/null || { say "Maven (mvn) is needed to fetch the broker from Maven Central"; exit 1; }
  say "fetching Apache Kafka $kafka_version from Maven Central into $libs"
  rm -rf "$libs"
  mkdir -p "$libs"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$libs" -DincludeScope=runtime >&2
  touch "$libs/.complete"
}

write_config() {
  mkdir -p "$data/logs"
  cat >"$data/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data/logs
num.partitions=2
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
log.retention.ms=-1
log.segment.bytes=268435456
EOF
}

format_storage() {
  [[ -f $data/logs/meta.properties ]] && return 0
  local cluster_id
  cluster_id=$(java -Xmx128m -cp "$libs/*" "${java_log_opts[@]}" kafka.tools.StorageTool random-uuid)
  java -Xmx256m -cp "$libs/*" "${java_log_opts[@]}" kafka.tools.StorageTool format \
    --standalone -t "$cluster_id" -c "$data/server.properties" >"$data/format.log" 2>&1 ||
    { cat "$data/format.log" >&2; exit 1; }
}

wait_ready() {
  local pid=$1 deadline=$((SECONDS + 90))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      say "the broker exited during start-up; the end of $log:"
      tail -n 30 "$log" >&2
      rm -f "$pidfile"
      exit 1
    fi
    if grep -q "Kafka Server started" "$log" 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  say "the broker did not answer within 90 s; see $log"
  exit 1
}

start() {
  if running_pid >/dev/null; then
    say "already running (pid $(running_pid))"
    echo "$bootstrap"
    return 0
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    say "port $port is taken by another process; set EDDY_KAFKA_PORT to use another port"
    exit 1
  fi
  command -v java >/dev/null || { say "Java 17+ is needed to run the broker"; exit 1; }
  fetch_jars
  write_config
  format_storage
  local started=$SECONDS
  : >"$log"
  # setsid: the broker outlives this script and ignores the terminal's Ctrl-C.
  setsid java -Xms512m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    "${java_log_opts[@]}" -cp "$libs/*" kafka.Kafka "$data/server.properties" \
    >"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  wait_ready "$!"
  say "broker $kafka_version started in $((SECONDS - started)) s (pid $(cat "$pidfile"), data in $data)"
  echo "$bootstrap"
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    say "not running"
    rm -f "$pidfile"
    return 0
  fi
  kill -TERM "$pid"
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    say "no clean shutdown within 30 s; killing pid $pid"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  say "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    if pid=$(running_pid); then echo "running (pid $pid) on $bootstrap"; else echo "stopped"; exit 3; fi
    ;;
  reset)
    stop
    rm -rf "$data"
    say "data removed"
    ;;
  *)
    echo "usage: $0 start|stop|status|reset" >&2
    exit 2
    ;;
esac
