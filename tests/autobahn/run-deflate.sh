#!/usr/bin/env bash
# Runs the whole Autobahn TestSuite server cases, compression (12.*, 13.*) included, against
# wsloop with permessage-deflate in MODE (shared or dedicated). kosoku's case 12 code (also run
# for 13.*) needs a patch to hash and decode messages right: tests/autobahn/patch-kosoku.py.
# Exits non-zero when any case FAILED or was UNIMPLEMENTED.
#
#   tests/autobahn/run-deflate.sh MODE [PORT]     reports land in target/autobahn-MODE/
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/autobahn/wait-for.sh
mode="${1:?usage: run-deflate.sh shared|dedicated [PORT]}"
port="${2:-9341}"
out="target/autobahn-$mode"
command -v kosoku >/dev/null || python3 -m pip install --quiet --disable-pip-version-check kosoku
python3 tests/autobahn/patch-kosoku.py
cargo build --release --quiet
rm -rf "$out" && mkdir -p "$out"

./target/release/wsloop --bind "127.0.0.1:$port" --log-level warn --compression "$mode" \
  > "$out/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
wait_for "$out/server.log" "listening on" "$server"

kosoku "127.0.0.1:$port" -o "$out" > "$out/kosoku.log" 2>&1 || true
tail -n 2 "$out/kosoku.log"
python3 tests/autobahn/summary.py "$out/index.json"
