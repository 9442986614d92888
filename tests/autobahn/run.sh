#!/usr/bin/env bash
# Runs the Autobahn TestSuite cases (kosoku) against a release build of wsloop's echo endpoint,
# excluding the compression cases (12.*, 13.*), and prints the counts per behaviour.
# Exits non-zero when any case FAILED or was UNIMPLEMENTED, or when no case ran.
#
#   tests/autobahn/run.sh [PORT]        reports land in target/autobahn/
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/autobahn/wait-for.sh
port="${1:-9301}"
out=target/autobahn
command -v kosoku >/dev/null || python3 -m pip install --quiet --disable-pip-version-check kosoku
cargo build --release --quiet
rm -rf "$out" && mkdir -p "$out"

./target/release/wsloop --bind "127.0.0.1:$port" --log-level warn > "$out/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
wait_for "$out/server.log" "listening on" "$server"

kosoku "127.0.0.1:$port" -x '12.*' -x '13.*' -o "$out" > "$out/kosoku.log" 2>&1 || true
tail -n 2 "$out/kosoku.log"
python3 tests/autobahn/summary.py "$out/index.json"
