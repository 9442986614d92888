#!/usr/bin/env bash
# Side-by-side benchmarks of wsloop and its peers (see scripts/bench.py for what is measured).
#
#   scripts/bench.sh                      all scenarios, 3 rounds of 5 s each per server
#   scripts/bench.sh --rounds 2 --duration 3s --only "1000 x"
#   scripts/bench.sh --only "1 MiB" --baseline /tmp/wsloop-main   also measure another build
#   scripts/bench.sh --only wss           wss:// against ws:// (and idle memory per TLS connection)
#   scripts/bench.sh --only history       broadcast with topic history on / off, and recovery
#                                         of 10,000 missed messages (memory; Redis if installed)
#   scripts/bench.sh --only auth          what a token check (HS256, ES256) costs per connection
#   scripts/bench.sh --only api           the HTTP API's publish against a WebSocket's, and the
#                                         Publisher from another thread
#
# Prints a Markdown table: scenario, wsloop, each peer (the floor, examples/floor.rs, among
# them), the ratios, each server's CPU time per message divided by the floor's, each server's
# CPU share and CPU time per message, and the load generator's own CPU share (near 100%, it was
# the limit) and CPU time per message. Then the history table (see scripts/bench.py).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v taskset >/dev/null || { echo "bench: taskset is missing (util-linux)" >&2; exit 1; }
cargo build --release --quiet --bin wsloop --example floor \
  --example peer-tokio-tungstenite --example peer-fastwebsockets \
  --example history-broadcast-server --example history-recovery --example connect-rate \
  --example api-publish --example publisher-rate
# The wss:// scenarios' certificate.
mkdir -p target/bench-tls
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1" \
  -keyout target/bench-tls/key.pem -out target/bench-tls/cert.pem 2>/dev/null
# The auth table's HMAC secret (its tokens are made by `wsloop token`).
mkdir -p target/bench-auth
head -c 32 /dev/urandom | base64 > target/bench-auth/secret
# The API table's key.
mkdir -p target/bench-api
head -c 24 /dev/urandom | base64 > target/bench-api/key
ulimit -n "$(ulimit -Hn)"  # 10,000 idle connections need as many descriptors on each side
exec python3 scripts/bench.py "$@"
