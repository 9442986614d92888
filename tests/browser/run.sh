#!/usr/bin/env bash
# Drives the browser client (static/index.html) in Debian's Chromium against a release build of
# wsloop, with Node's test runner and playwright-core. Needs node >= 20, npm and /usr/bin/chromium
# (apt-get install -y chromium); playwright-core never downloads a browser here.
#
#   tests/browser/run.sh [PORT]     server log in target/browser/, screenshots in target/browser-screenshots/
set -euo pipefail
cd "$(dirname "$0")/../.."
port="${1:-9311}"
out=target/browser
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] || { echo "browser tests: no Chromium at $CHROMIUM (apt-get install -y chromium)" >&2; exit 1; }
command -v node >/dev/null || { echo "browser tests: node is missing" >&2; exit 1; }

cargo build --release --quiet
[ -d tests/browser/node_modules/playwright-core ] \
  || (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
rm -rf "$out" && mkdir -p "$out"

./target/release/wsloop --bind "127.0.0.1:$port" --log-level warn >"$out/stdout.log" 2>"$out/server.log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q "^listening on ws://" "$out/stdout.log" && break
  kill -0 "$server" 2>/dev/null || { echo "browser tests: wsloop did not start" >&2; cat "$out/server.log" >&2; exit 1; }
  sleep 0.1
done
grep -q "^listening on ws://" "$out/stdout.log" \
  || { echo "browser tests: wsloop did not say it was listening" >&2; exit 1; }

WSLOOP_PORT="$port" node --test --test-reporter=spec tests/browser/browser.test.mjs
