#!/usr/bin/env bash
# Runs the Autobahn TestSuite server cases (all but compression, as run.sh) against wsloop over
# TLS. The kosoku runner takes host:port only (no wss://), so socat carries each of its
# connections into TLS: kosoku -> socat (plain, PORT) -> wsloop (TLS, PORT+1), with a
# certificate made here by openssl. Exits non-zero when any case FAILED or was UNIMPLEMENTED.
#
#   tests/autobahn/run-tls.sh [PORT]        reports land in target/autobahn-tls/
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/autobahn/wait-for.sh
port="${1:-9321}"
tls_port=$((port + 1))
out=target/autobahn-tls
command -v kosoku >/dev/null || python3 -m pip install --quiet --disable-pip-version-check kosoku
command -v socat >/dev/null || { echo "autobahn over TLS: socat is missing (apt-get install -y socat)" >&2; exit 1; }
cargo build --release --quiet
rm -rf "$out" && mkdir -p "$out"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1" \
  -keyout "$out/key.pem" -out "$out/cert.pem" 2>/dev/null

./target/release/wsloop --bind "127.0.0.1:$tls_port" --log-level warn \
  --tls-cert "$out/cert.pem" --tls-key "$out/key.pem" > "$out/server.log" 2>&1 &
server=$!
socat "TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" \
  "OPENSSL:127.0.0.1:$tls_port,verify=0" 2> "$out/socat.log" &
relay=$!
trap 'kill "$server" "$relay" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
wait_for "$out/server.log" "listening on" "$server"

kosoku "127.0.0.1:$port" -x '12.*' -x '13.*' -o "$out" > "$out/kosoku.log" 2>&1 || true
tail -n 2 "$out/kosoku.log"
python3 tests/autobahn/summary.py "$out/index.json"
