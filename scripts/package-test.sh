#!/usr/bin/env bash
# CI: builds the Debian package, installs it with dpkg -i on this machine, checks what it put
# in place, starts the installed binary as an unprivileged user with the installed
# configuration, sends one echo through it with the installed `wsloop send`, and removes the
# package again. Needs root (dpkg).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/package.sh >/dev/null
deb=$(ls target/debian/wsloop_*.deb | head -1)
dpkg -i "$deb" >/dev/null
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  dpkg --purge wsloop >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "installed: $(dpkg-query -W -f='${Package} ${Version}' wsloop)"
for file in /usr/bin/wsloop /etc/wsloop/wsloop.toml /usr/lib/systemd/system/wsloop.service \
            /usr/share/man/man1/wsloop.1.gz /usr/share/man/man1/wsloop-config.1.gz \
            /usr/share/man/man1/wsloop-send.1.gz /usr/share/bash-completion/completions/wsloop \
            /usr/share/zsh/vendor-completions/_wsloop /usr/share/fish/vendor_completions.d/wsloop.fish; do
  [ -f "$file" ] || { echo "missing: $file"; exit 1; }
done
grep -qx /etc/wsloop/wsloop.toml /var/lib/dpkg/info/wsloop.conffiles || { echo "not a conffile"; exit 1; }
# The unit file is well formed (where systemd-analyze can check it here).
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify /usr/lib/systemd/system/wsloop.service 2>&1 | grep -v "^$" || true
fi
/usr/bin/wsloop config check /etc/wsloop/wsloop.toml >/dev/null

# The installed binary with the installed configuration, as nobody; a free port through the
# environment (the file's default is 127.0.0.1:9001).
out=$(mktemp)
WSLOOP_BIND=127.0.0.1:0 setpriv --reuid=nobody --regid=nogroup --clear-groups \
  /usr/bin/wsloop --config /etc/wsloop/wsloop.toml >"$out" 2>/dev/null &
server=$!
for _ in $(seq 100); do
  grep -q "listening on" "$out" && break
  sleep 0.05
done
addr=$(sed -n 's#^listening on ws://##p' "$out")
[ -n "$addr" ] || { echo "the installed server printed no address"; exit 1; }
reply=$(/usr/bin/wsloop send --count 1 "ws://$addr/echo" "hello from the package")
[ "$reply" = "hello from the package" ] || { echo "echo through the installed server: got '$reply'"; exit 1; }
echo "echo through the installed server on $addr: ok"
