#!/usr/bin/env bash
# Builds the uWebSockets peer for `scripts/bench.sh --uws target/uws/uws-server`: clones
# uWebSockets and uSockets (their code stays under target/, never in this repository) and
# compiles uws-server.cpp against them the way uWebSockets' own examples are built.
#
#   scripts/peers/build-uws.sh [UWEBSOCKETS_REF]     (default: master)
#
# Needs git, g++ (C++20), make. No TLS, no zlib: the peer serves plain ws:// uncompressed.
set -euo pipefail
cd "$(dirname "$0")/../.."
ref=${1:-master}
dir=target/uws
mkdir -p "$dir"
if [ ! -d "$dir/uWebSockets/.git" ]; then
  git clone --quiet --recurse-submodules https://github.com/uNetworking/uWebSockets "$dir/uWebSockets"
fi
git -C "$dir/uWebSockets" checkout --quiet "$ref"
git -C "$dir/uWebSockets" submodule update --quiet --init uSockets
make -s -C "$dir/uWebSockets/uSockets" WITH_OPENSSL=0 WITH_LIBUV=0 CFLAGS="-march=native"
g++ -std=c++20 -O3 -march=native -flto=auto -DLIBUS_NO_SSL -DUWS_NO_ZLIB \
  -I "$dir/uWebSockets/src" -I "$dir/uWebSockets/uSockets/src" \
  scripts/peers/uws-server.cpp "$dir"/uWebSockets/uSockets/*.o -o "$dir/uws-server"
echo "built $dir/uws-server from uWebSockets $(git -C "$dir/uWebSockets" rev-parse --short HEAD)," \
  "uSockets $(git -C "$dir/uWebSockets/uSockets" rev-parse --short HEAD)"
