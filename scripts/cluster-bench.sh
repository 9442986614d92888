#!/usr/bin/env bash
# Cross-instance delivery through Redis: a redis-server and two wsloop instances with --cluster
# on loopback, then examples/cluster-bench.rs (latency at 1,000 msgs/s, then a 200,000-message
# burst). Needs redis-server (apt-get install redis-server).
#
#   scripts/cluster-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { echo "cluster-bench: redis-server is missing" >&2; exit 1; }
cargo build --release --quiet --bin wsloop --example cluster-bench
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_port=$(free_port)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
pids+=($!)
for _ in $(seq 50); do (echo > "/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break; sleep 0.1; done
urls=()
for i in 1 2; do
  out=$(mktemp)
  ./target/release/wsloop --bind 127.0.0.1:0 --log-level warn --cluster "redis://127.0.0.1:$redis_port" >"$out" &
  pids+=($!)
  for _ in $(seq 50); do grep -q "listening on" "$out" && break; sleep 0.1; done
  urls+=("$(sed -n 's/^listening on //p' "$out")/broadcast")
done
./target/release/examples/cluster-bench "${urls[0]}" "${urls[1]}"
