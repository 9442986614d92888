#!/usr/bin/env bash
# Runs the Autobahn TestSuite's client cases: kosoku as the fuzzing server, wsloop's client
# core (examples/autobahn-client.rs) as the client under test, compression (12.*, 13.*)
# included: the client offers permessage-deflate in every case.
# Exits non-zero when any case FAILED or was UNIMPLEMENTED, or when no case ran.
#
#   tests/autobahn/run-client.sh [PORT]    reports land in target/autobahn-client/
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/autobahn/wait-for.sh
port="${1:-9302}"
out=target/autobahn-client
command -v kosoku >/dev/null || python3 -m pip install --quiet --disable-pip-version-check kosoku
python3 tests/autobahn/patch-kosoku.py
cargo build --release --quiet --example autobahn-client
rm -rf "$out" && mkdir -p "$out"

kosoku -m fuzzingserver "127.0.0.1:$port" -o "$out" > "$out/kosoku.log" 2>&1 &
fuzzer=$!
trap 'kill "$fuzzer" 2>/dev/null || true' EXIT
wait_for "$out/kosoku.log" "listening" "$fuzzer"

timeout 900 ./target/release/examples/autobahn-client "ws://127.0.0.1:$port" > "$out/client.log" 2>&1 || true
tail -n 1 "$out/client.log"
for _ in $(seq 100); do
  [ -f "$out/index.json" ] && break
  sleep 0.1
done
python3 tests/autobahn/summary.py "$out/index.json"
