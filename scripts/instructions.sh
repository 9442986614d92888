#!/usr/bin/env bash
# Instructions per echoed message, counted by callgrind: the server's whole user-space path
# (decode, handler call, queue, write, timers), the same on every run however noisy the machine.
# CPU time is what scripts/bench.sh compares; this says where it goes and whether a change to
# the per-message path moved it, in a minute and without rounds.
#
#   scripts/instructions.sh                     a burst-16 echo of 20 B (the per-frame shape)
#   scripts/instructions.sh --size 20 --pipeline 1 --connections 100    any `wsloop bench` load
#   BINARY=/tmp/other/wsloop scripts/instructions.sh   another build (release, with symbols for
#                                                       the function list: line-tables-only)
#
# Prints the instructions the server ran, the messages it received (its /metrics counter) and
# their quotient, then the functions that ran the most instructions per message. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "instructions: valgrind is missing" >&2; exit 1; }
if [ -z "${BINARY:-}" ]; then
  CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release --quiet --bin wsloop \
    --target-dir target/instructions
  BINARY=target/instructions/release/wsloop
fi
cargo build --release --quiet --bin wsloop # the load generator, always this build
load=("$@")
[ ${#load[@]} -gt 0 ] || load=(--connections 100 --size 20 --pipeline 16 --burst)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out" \
  "$BINARY" --log-level warn --metrics --bind "127.0.0.1:$port" 2>"$out/server.log" &
server=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.2
done
taskset -c 1 target/release/wsloop bench "ws://127.0.0.1:$port/" --duration 6s "${load[@]}" \
  >"$out/bench.log"
messages=$(curl -sf "http://127.0.0.1:$port/metrics" |
  awk '/^wsloop_messages_received_total/ { s += $NF } END { print s }')
kill -INT "$server"
wait "$server" || true
total=$(awk '/^summary:/ { print $2 }' "$out/callgrind.out")
echo "load: ${load[*]}"
echo "instructions $total, messages $messages: $((total / messages)) per message"
echo "per message, by function (self):"
callgrind_annotate "$out/callgrind.out" 2>/dev/null |
  awk -v m="$messages" '/^ *[0-9,]+ \(/ { n = $1; gsub(",", "", n); if (n / m >= 2) {
      sub(/^ *[0-9,]+ \( *[0-9.]+%\) +/, ""); printf "%8.1f  %s\n", n / m, substr($0, 1, 110) } }' |
  head -25
