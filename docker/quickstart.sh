#!/usr/bin/env bash
# Eddy's main job, on this machine (the README's first command): starts the local Kafka broker,
# builds Eddy, runs the server with every file of queries/ (card fraud and the orders
# system), feeds it sample authorizations, orders, payments, customers and stock, and shows
# orders being VALIDATED or FAILED and the fraud alerts as Eddy computes them. Ctrl-C stops everything
# this script started (the broker too, unless it was already running).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/eddy/target}
bootstrap=127.0.0.1:${EDDY_KAFKA_PORT:-9092}
logs=${EDDY_CACHE:-$HOME/.cache/eddy}/quickstart
mkdir -p "$logs"

source docker/broker.bash
ensure_broker
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  release_broker
}
trap cleanup EXIT
trap 'exit 0' INT TERM

echo "building eddy..." >&2
cargo build -q --bin eddy
eddy=$CARGO_TARGET_DIR/debug/eddy

"$eddy" server --bootstrap-servers "$bootstrap" --queries-file queries/ >"$logs/server.log" 2>&1 &
pids+=($!)
# The server creates the input topics; wait for it before producing.
for _ in $(seq 1 150); do grep -q "persistent queries" "$logs/server.log" && break; sleep 0.2; done
grep -q "persistent queries" "$logs/server.log" || { cat "$logs/server.log" >&2; exit 1; }
"$eddy" datagen --bootstrap-servers "$bootstrap" --rate "${RATE:-20}" --cards "${CARDS:-200}" \
  --orders "${ORDERS:-1}" >"$logs/datagen.log" 2>&1 &
pids+=($!)

cat >&2 <<MSG
Eddy is running every file of queries/ on Kafka at $bootstrap: the talk's card fraud rule
and the orders system (order details, fraud, inventory, validations, email, orders view).
Sample authorizations, orders, payments, customers and stock flow in. Below, as Eddy
decides them: [order] orders becoming VALIDATED or FAILED (topic 'orders-state'), and
[fraud] cards used more than 3 times in 5 minutes (topic 'POSSIBLE_FRAUD'). Ctrl-C stops.
Pull an order's state meanwhile:
  $eddy cli -e "SELECT * FROM orders_view WHERE order_key = '<id>';"
Logs: $logs
MSG
"$eddy" print orders-state --bootstrap-servers "$bootstrap" > >(sed -u 's/^/[order] /') &
pids+=($!)
"$eddy" print POSSIBLE_FRAUD --bootstrap-servers "$bootstrap" --window-size-ms 300000 > >(sed -u 's/^/[fraud] /') &
pids+=($!)
wait "${pids[-1]}"
