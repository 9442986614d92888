# Sourced by the Autobahn runners: wait_for FILE TEXT PID waits (up to 10 s) until FILE holds
# TEXT, and fails with FILE's contents if process PID exits first.
wait_for() {
  for _ in $(seq 100); do
    grep -q "$2" "$1" && return 0
    kill -0 "$3" 2>/dev/null || { cat "$1"; exit 1; }
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1" >&2
  exit 1
}
