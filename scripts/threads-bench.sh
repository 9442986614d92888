#!/usr/bin/env bash
# --threads 2 against --threads 1 on this machine: echo (100 x 20 B) and broadcast (1 -> 1000 x
# 64 B) through `wsloop bench`, ROUNDS rounds each, medians printed. Nothing is pinned: the
# server's loops and the load generator share every core, so this is a report of what a user
# gets, not a measure of the server alone (scripts/bench.sh is that).
#
#   scripts/threads-bench.sh [ROUNDS] [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
duration=${2:-5s}
cargo build --release --quiet --bin wsloop
bin=./target/release/wsloop
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true' EXIT

# One scenario on a fresh server: prints "msgs/s server_cpu_us_per_msg".
run() {
  local threads=$1 mode=$2 path=$3 conns=$4 size=$5 pipeline=$6 out
  out=$(mktemp)
  "$bin" --bind 127.0.0.1:0 --log-level warn --threads "$threads" --max-connections 20000 >"$out" &
  pid=$!
  for _ in $(seq 50); do grep -q "listening on" "$out" && break; sleep 0.1; done
  local url
  url="$(sed -n 's/^listening on //p' "$out")$path"
  local before after summary
  before=$(awk '{print $14+$15}' "/proc/$pid/stat")
  summary=$("$bin" bench "$url" --mode "$mode" --connections "$conns" --size "$size" \
    --pipeline "$pipeline" --duration "$duration" --json | tail -1)
  after=$(awk '{print $14+$15}' "/proc/$pid/stat")
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  python3 - "$summary" "$before" "$after" <<'PY'
import json, os, sys
s = json.loads(sys.argv[1])
ticks = (int(sys.argv[3]) - int(sys.argv[2])) / os.sysconf("SC_CLK_TCK")
rate = s["median_rate"]
count = s["total"]
print(f"{rate:.0f} {ticks / max(count, 1) * 1e6:.3f}")
PY
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-34s %10s %14s %14s\n' scenario threads msgs/s "cpu us/msg"
# mode, path, connections (broadcast: receivers), size, messages in flight (as scripts/bench.py)
for scenario in "echo /echo 100 20 1" "broadcast /broadcast 1000 64 32"; do
  set -- $scenario
  for threads in 1 2; do
    rates=(); cpus=()
    for _ in $(seq "$rounds"); do
      read -r rate cpu < <(run "$threads" "$1" "$2" "$3" "$4" "$5")
      rates+=("$rate"); cpus+=("$cpu")
    done
    label="echo $3 x $4 B"
    if [ "$1" = broadcast ]; then label="broadcast 1 -> $3 x $4 B"; fi
    printf '%-34s %10s %14s %14s\n' "$label" "$threads" \
      "$(printf '%s\n' "${rates[@]}" | median)" "$(printf '%s\n' "${cpus[@]}" | median)"
  done
done
