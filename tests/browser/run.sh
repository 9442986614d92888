#!/usr/bin/env bash
# Drives the browser client (static/index.html) in Debian's Chromium against a release build of
# wsloop, with Node's test runner and playwright-core. Needs node >= 20, npm and /usr/bin/chromium
# (apt-get install -y chromium); playwright-core never downloads a browser here.
#
#   tests/browser/run.sh [PORT]     server logs in target/browser/, screenshots in target/browser-screenshots/
#
# The same tests run twice: over http:// and ws:// on PORT, then over https:// and wss:// on
# PORT+1 with a certificate made here by openssl (Chromium is told to accept it). Both servers
# run with --compression shared, so every page connection is compressed (permessage-deflate),
# and --metrics, so the page shows its Server view. restart.test.mjs and auth.test.mjs start
# servers of their own (auth.test.mjs: one checking tokens);
# restart.test.mjs kills its servers and starts them again.
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

servers=()
trap 'kill "${servers[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT

# start NAME PORT [FLAGS...]: a release server whose stdout and stderr land in target/browser/.
start() {
  local name=$1 at=$2
  shift 2
  ./target/release/wsloop --bind "127.0.0.1:$at" --log-level warn --compression shared --metrics "$@" \
    >"$out/$name.stdout.log" 2>"$out/$name.log" &
  servers+=($!)
  for _ in $(seq 100); do
    grep -q "^listening on " "$out/$name.stdout.log" && return 0
    kill -0 "${servers[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "browser tests: wsloop ($name) did not start" >&2
  cat "$out/$name.log" >&2
  exit 1
}

start plain "$port"
WSLOOP_PORT="$port" node --test --test-reporter=spec tests/browser/browser.test.mjs tests/browser/restart.test.mjs \
  tests/browser/auth.test.mjs

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
  -keyout "$out/key.pem" -out "$out/cert.pem" 2>/dev/null
start tls "$((port + 1))" --tls-cert "$out/cert.pem" --tls-key "$out/key.pem"
WSLOOP_TLS=1 WSLOOP_PORT="$((port + 1))" node --test --test-reporter=spec tests/browser/browser.test.mjs \
  tests/browser/restart.test.mjs tests/browser/auth.test.mjs
