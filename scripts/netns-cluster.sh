#!/usr/bin/env bash
# Two wsloop instances and redis-server on three "hosts": network namespaces joined by a bridge
# (10.77.0.0/24), each with its own stack and addresses, so nothing crosses over loopback. Then
# examples/cluster-bench from the host (latency at 1,000 msgs/s, then a 200,000-message burst
# from one instance to the other through Redis). Needs root (ip netns), redis-server and iproute2;
# with DELAY (say 1ms) every host's link delays its packets by that much (tc netem).
#
#   sudo scripts/netns-cluster.sh            DELAY=1ms sudo -E scripts/netns-cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in ip redis-server; do
  command -v "$tool" >/dev/null || { echo "netns-cluster: $tool is missing" >&2; exit 1; }
done
if ! ip netns add wsloop-probe 2>/dev/null; then
  echo "netns-cluster: skipped: network namespaces need root (CAP_SYS_ADMIN) here" >&2
  exit 0
fi
ip netns del wsloop-probe
cargo build --release --quiet --bin wsloop --example cluster-bench

hosts=(redis one two)
bridge=wsloop-br0
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  for host in "${hosts[@]}"; do ip netns del "wsloop-$host" 2>/dev/null || true; done
  ip link del "$bridge" 2>/dev/null || true
}
trap cleanup EXIT
cleanup

ip link add "$bridge" type bridge
ip addr add 10.77.0.254/24 dev "$bridge"
ip link set "$bridge" up
n=1
for host in "${hosts[@]}"; do
  ns="wsloop-$host"
  ip netns add "$ns"
  ip link add "veth-$host" type veth peer name eth0 netns "$ns"
  ip link set "veth-$host" master "$bridge" up
  ip -n "$ns" addr add "10.77.0.$n/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  if [ -n "${DELAY:-}" ]; then ip netns exec "$ns" tc qdisc add dev eth0 root netem delay "$DELAY"; fi
  n=$((n + 1))
done

ip netns exec wsloop-redis redis-server --bind 10.77.0.1 --port 6379 --save "" --appendonly no \
  --protected-mode no >/dev/null &
pids+=($!)
for _ in $(seq 50); do (echo > /dev/tcp/10.77.0.1/6379) 2>/dev/null && break; sleep 0.1; done
for i in 2 3; do
  ip netns exec "wsloop-${hosts[$((i - 1))]}" ./target/release/wsloop --bind "10.77.0.$i:9001" \
    --log-level warn --cluster redis://10.77.0.1:6379 &
  pids+=($!)
done
for i in 2 3; do
  for _ in $(seq 50); do (echo > "/dev/tcp/10.77.0.$i/9001") 2>/dev/null && break; sleep 0.1; done
done
echo "redis 10.77.0.1, instances 10.77.0.2 and 10.77.0.3 (each in its own network namespace)"
./target/release/examples/cluster-bench ws://10.77.0.2:9001/broadcast ws://10.77.0.3:9001/broadcast
