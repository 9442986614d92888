#!/usr/bin/env bash
# A million WebSocket connections on one machine: redis-server, N wsloop instances joined with
# --cluster, one `wsloop bench --idle` process per instance; held with pings, one broadcast to
# all, then a shutdown that must reach every client with 1001. See scripts/c1m.py for the steps
# and README's "One million connections" for the figures. Needs redis-server and python3.
#
#   scripts/c1m.sh                                   # 1,000,000 over 55 instances
#   scripts/c1m.sh --connections 100000 --instances 6 --hold 10s --non-readers 10   # the short form CI runs
#   (--non-readers PCT: that share stop reading; a paced flood must get them closed, no reader)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { echo "c1m: redis-server is missing (apt-get install redis-server)" >&2; exit 1; }
cargo build --release --quiet --bin wsloop
exec python3 scripts/c1m.py "$@"
