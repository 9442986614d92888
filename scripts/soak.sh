#!/usr/bin/env bash
# Soak test (issue "Hardening"; not part of `cargo test`): a release wsloop on a free loopback
# port with modest limits, abused for a bounded time by examples/soak/ (churning
# connections, garbage, non-readers, half-open handshakes, oversize frames) while its checker
# verifies echo and broadcast round trips. Meanwhile the server's RSS is sampled every second.
#
#   scripts/soak.sh                    10 minutes
#   scripts/soak.sh --duration 60s     (also 90, 2m)
#   scripts/soak.sh --duration 60s -- --churn-rate 200 --nonreaders 64   (flags for the tool)
#
# Prints the soak tool's counts, then: duration, connections served, peak RSS, RSS and open
# descriptors after all clients left against at start, checker round trips and latency,
# errors and crashes. Exits non-zero when the server crashed, the checker saw wrong bytes or
# failed round trips, or the server's descriptors did not return near their start count.
# Files: target/soak/ (server.log is the server's stderr).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=600
tool_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --duration)
      [ $# -ge 2 ] || { echo "soak.sh: --duration needs a value" >&2; exit 2; }
      if [[ "$2" =~ ^([0-9]+)(s|m)?$ ]]; then
        duration=${BASH_REMATCH[1]}
        [ "${BASH_REMATCH[2]}" = m ] && duration=$((duration * 60))
      else
        echo "soak.sh: --duration takes seconds: 600, 60s or 10m" >&2
        exit 2
      fi
      shift 2
      ;;
    --) shift; tool_args=("$@"); break ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$duration" -ge 5 ] || { echo "soak.sh: --duration must be at least 5 s" >&2; exit 2; }

# The server's limits; the tool is told the ones it must exceed.
MAX_MESSAGE=65536
HANDSHAKE_TIMEOUT=2
server_flags=(
  --bind 127.0.0.1:0
  --max-message-size "${MAX_MESSAGE}B" --max-frame-size "${MAX_MESSAGE}B"
  --max-header-size 8KiB --max-buffered 256KiB
  --handshake-timeout "${HANDSHAKE_TIMEOUT}s"
)

echo "== building (release): wsloop and examples/soak/" >&2
cargo build --release --quiet --bin wsloop --example soak

# A few hundred connections at once on each side, plus what lingers while closing.
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then hard=65536; fi
ulimit -n "$hard"

dir=target/soak
mkdir -p "$dir"
rm -f "$dir"/server.out "$dir"/server.log "$dir"/soak.out "$dir"/soak.err

server_pid=""
tool_pid=""
cleanup() {
  # Only the processes this script started.
  [ -n "$tool_pid" ] && kill "$tool_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
}
trap cleanup EXIT

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
fd_count() { { ls "/proc/$1/fd" 2>/dev/null || true; } | wc -l; }
alive() { kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
mib() { awk -v kb="$1" 'BEGIN { printf "%.1f MiB", kb / 1024 }'; }

target/release/wsloop "${server_flags[@]}" >"$dir/server.out" 2>"$dir/server.log" &
server_pid=$!
addr=""
for _ in $(seq 100); do
  addr=$(sed -n 's|^listening on ws://||p' "$dir/server.out" 2>/dev/null | head -n1)
  [ -n "$addr" ] && break
  alive "$server_pid" || break
  sleep 0.1
done
if [ -z "$addr" ]; then
  echo "soak.sh: the server did not start:" >&2
  cat "$dir/server.log" >&2
  exit 1
fi
case "$addr" in 127.0.0.1:*) ;; *) echo "soak.sh: not loopback: $addr" >&2; exit 1 ;; esac
sleep 0.5
start_rss=$(rss_kb "$server_pid")
start_fds=$(fd_count "$server_pid")
echo "== wsloop pid $server_pid on ws://$addr (${server_flags[*]:2}); start RSS $(mib "$start_rss"), $start_fds fds" >&2
echo "== soaking for ${duration} s" >&2

started=$(date +%s)
target/release/examples/soak --addr "$addr" --duration "$duration" \
  --max-message-size "$MAX_MESSAGE" --handshake-timeout "$HANDSHAKE_TIMEOUT" \
  ${tool_args[@]+"${tool_args[@]}"} >"$dir/soak.out" 2> >(tee "$dir/soak.err" >&2) &
tool_pid=$!

# Sample once a second until the tool is done (bounded: it stops itself at the deadline and
# needs a few seconds to finish; past 60 s more it is stopped here).
peak_rss=$start_rss
peak_fds=$start_fds
crashed=0
limit=$((started + duration + 60))
while alive "$tool_pid"; do
  if ! alive "$server_pid"; then
    crashed=1
    break
  fi
  rss=$(rss_kb "$server_pid")
  fds=$(fd_count "$server_pid")
  [ "$rss" -gt "$peak_rss" ] && peak_rss=$rss
  [ "$fds" -gt "$peak_fds" ] && peak_fds=$fds
  if [ "$(date +%s)" -gt "$limit" ]; then
    echo "soak.sh: the soak tool overran its deadline; stopping it" >&2
    kill "$tool_pid" 2>/dev/null || true
    break
  fi
  sleep 1
done
tool_rc=0
wait "$tool_pid" || tool_rc=$?
tool_pid=""
ended=$(date +%s)

# All clients have left: wait (at most 10 s) for the server's descriptors to come back.
settle_start=$(date +%s.%N)
end_fds=$(fd_count "$server_pid")
for _ in $(seq 100); do
  alive "$server_pid" || { crashed=1; break; }
  end_fds=$(fd_count "$server_pid")
  [ "$end_fds" -le "$start_fds" ] && break
  sleep 0.1
done
settle=$(awk -v a="$settle_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
end_rss=$(rss_kb "$server_pid")
alive "$server_pid" || crashed=1

server_rc="-"
if [ "$crashed" = 0 ]; then
  kill -TERM "$server_pid"
  server_rc=0
  wait "$server_pid" || server_rc=$?
else
  wait "$server_pid" || server_rc=$?
fi
server_pid=""

# The tool's own block, verbatim.
cat "$dir/soak.out"

field() { sed -n "s/^RESULT .*\b$1=\([0-9]*\).*/\1/p" "$dir/soak.out"; }
latency() { grep -m1 "^checker $1" "$dir/soak.out" | sed 's/^checker [a-z]* ([^)]*) *//'; }
upgrades=$(field upgrades)
round_trips=$(field checker_round_trips)
checker_errors=$(field checker_errors)
log_lines=$(wc -l <"$dir/server.log")
log_bytes=$(wc -c <"$dir/server.log")
log_warn=$(grep -c ' WARN ' "$dir/server.log" || true)
log_error=$(grep -c ' ERROR ' "$dir/server.log" || true)
panics=$(grep -c 'panicked' "$dir/server.log" || true)
fd_slack=2

echo "=== soak.sh summary ==="
printf '%-36s %s s (soak tool ran %s s; settle wait %s s)\n' "duration" "$duration" "$((ended - started))" "$settle"
printf '%-36s %s\n' "server" "wsloop ${server_flags[*]:2}"
printf '%-36s %s\n' "connections served (upgrades)" "${upgrades:-?}"
printf '%-36s %s\n' "peak RSS" "$(mib "$peak_rss") (peak fds $peak_fds)"
if [ "$crashed" = 0 ]; then
  printf '%-36s %s\n' "RSS at start / after clients left" "$(mib "$start_rss") / $(mib "$end_rss")"
  printf '%-36s %s\n' "open fds at start / after clients left" "$start_fds / $end_fds"
else
  printf '%-36s %s\n' "RSS at start / after clients left" "$(mib "$start_rss") / n/a (server gone)"
  printf '%-36s %s\n' "open fds at start / after clients left" "$start_fds / n/a (server gone)"
fi
printf '%-36s %s\n' "checker round trips" "${round_trips:-0}"
printf '%-36s %s\n' "checker echo latency" "$(latency echo)"
printf '%-36s %s\n' "checker broadcast latency" "$(latency broadcast)"
printf '%-36s %s\n' "errors (checker)" "${checker_errors:-unknown} (soak tool exit status $tool_rc)"
if [ "$crashed" = 0 ]; then
  printf '%-36s %s\n' "crashes" "0 (server exit status after SIGTERM: $server_rc)"
else
  printf '%-36s %s\n' "crashes" "1 (the server exited by itself, status $server_rc)"
fi
printf '%-36s %s\n' "server log" "$log_lines lines, $((log_bytes / 1024)) KiB ($log_warn WARN, $log_error ERROR, $panics handler panics): $dir/server.log"

status=0
if [ "$crashed" != 0 ]; then
  echo "FAIL: the server exited during the soak (see $dir/server.log)"
  status=1
fi
if [ "$tool_rc" != 0 ] || [ "${checker_errors:-1}" != 0 ]; then
  echo "FAIL: the checker saw wrong bytes or failed round trips"
  status=1
fi
if [ "$crashed" = 0 ] && [ "$end_fds" -gt $((start_fds + fd_slack)) ]; then
  echo "FAIL: the server holds $end_fds fds after all clients left (started with $start_fds)"
  status=1
fi
if [ "$server_rc" != 0 ] && [ "$crashed" = 0 ]; then
  echo "FAIL: the server did not exit cleanly on SIGTERM (status $server_rc)"
  status=1
fi
[ "$status" = 0 ] && echo "PASS"
exit "$status"
