"""Side-by-side benchmarks: wsloop against peer servers, each measured in the same invocation.

Each server runs pinned to CPU 0 and the load generator (`wsloop bench`) to CPU 1. Servers
alternate (A B A B ...) so drift on a noisy machine hits all of them alike; each measurement
starts a fresh server process. The table gives each server's median rate over the rounds, the
median over the rounds of wsloop's rate divided by each peer's (servers measured back to back
see the same drift), each server's share of its core, and its CPU time per message: when the
load generator is the limit (bench cpu near 100%), that last figure still shows how much each
server pays per message.

One of the peers is the floor (examples/floor.rs): an echo server on wsloop's loop shape that
makes the same syscalls per readable event and does nothing else (no validation, no state
beyond the handshake). For every echo scenario the table divides each server's CPU per
message by the floor's (the median over the rounds of the ratio within a round): how much a
server pays over the unavoidable work. The floor has no /broadcast, and it is left out of the
idle-memory row (it is a floor for CPU, not memory). The table also gives the generator's own
CPU time per message against each server: what the server's figure compares with, and a sign
of how its replies arrive (fewer, larger reads cost the generator less too).

The history table (`--only history`) gives what topic history costs: the broadcast row against
examples/history-broadcast-server.rs, whose topic keeps memory history (on) or none (off), the
same handler otherwise, with the median over the rounds of on's CPU per delivery divided by
off's in the same round; and recovery: examples/history-recovery.rs timing a client that comes
back for 10,000 missed messages on /pubsub, in memory and, when redis-server is on the PATH,
across two instances sharing history in Redis Streams (a redis-server started for it, on a free
port). The auth table (`--only auth`) gives what a token check at the upgrade costs: the
server's CPU per connection under examples/connect-rate.rs without auth, with an HS256 secret
and with an ES256 key, and the within-round difference from no auth. The API table (`--only
api`) gives what publishing through the HTTP API costs against publishing through a /pubsub
WebSocket, alternating in each round (examples/api-publish.rs: 10 kept-alive connections, 16
requests in flight each, a 64-byte message, to a channel with 0 and with 1,000 subscribers),
and how fast a `Publisher` publishes from another thread (examples/publisher-rate.rs). Run
through scripts/bench.sh, which builds everything first.
"""

import argparse
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time

WSLOOP = "./target/release/wsloop"
SERVERS = {
    "wsloop": [WSLOOP, "--log-level", "warn", "--bind"],
    "floor": ["./target/release/examples/floor", "--bind"],
    "tokio-tungstenite": ["./target/release/examples/peer-tokio-tungstenite", "--bind"],
    "fastwebsockets": ["./target/release/examples/peer-fastwebsockets", "--bind"],
}
# Servers without a /broadcast endpoint.
ECHO_ONLY = {"fastwebsockets", "floor"}
# The server every other one's CPU per message is divided by.
FLOOR = "floor"
# uWebSockets, when `--uws` gives a build: wsloop's CPU per message is also divided by its.
UWS = "uWebSockets"

# (name, path, bench arguments, unit)
SCENARIOS = [
    ("echo 100 x 20 B", "/", ["--connections", "100", "--size", "20"], "msgs/s"),
    ("echo 100 x 16 KiB", "/", ["--connections", "100", "--size", "16KiB"], "msgs/s"),
    ("echo 1000 x 20 B", "/", ["--connections", "1000", "--size", "20"], "msgs/s"),
    ("echo 10 x 1 MiB", "/", ["--connections", "10", "--size", "1MiB"], "msgs/s"),
    ("echo 100 x 20 B pipelined 16", "/", ["--connections", "100", "--size", "20", "--pipeline", "16"],
     "msgs/s"),
    # The other load shape: 16 frames in one write, all 16 back before the next 16, so every
    # server read holds many frames and the per-frame cost shows.
    ("echo 100 x 20 B, 16 per write", "/",
     ["--connections", "100", "--size", "20", "--pipeline", "16", "--burst"], "msgs/s"),
    ("broadcast 1 -> 1000 x 64 B", "/broadcast",
     ["--mode", "broadcast", "--connections", "1000", "--size", "64", "--pipeline", "32"], "deliveries/s"),
    ("broadcast 1 -> 10000 x 64 B", "/broadcast",
     ["--mode", "broadcast", "--connections", "10000", "--size", "64", "--pipeline", "32"], "deliveries/s"),
]
IDLE_CONNECTIONS = 10_000

# wss://: wsloop over TLS against itself over plain TCP, in the same run. The certificate is
# made by scripts/bench.sh (openssl) and not verified by the generator (--insecure).
TLS_DIR = "target/bench-tls"
SERVERS_TLS = {
    "wsloop-tls": [WSLOOP, "--log-level", "warn", "--tls-cert", f"{TLS_DIR}/cert.pem",
                   "--tls-key", f"{TLS_DIR}/key.pem", "--bind"],
}
# permessage-deflate: the same wsloop binary with compression off, shared and dedicated, the
# generator offering it and sending chat-like JSON text (compressed when agreed).
SERVERS_DEFLATE = {
    "wsloop-shared": [WSLOOP, "--log-level", "warn", "--compression", "shared", "--bind"],
    "wsloop-dedicated": [WSLOOP, "--log-level", "warn", "--compression", "dedicated", "--bind"],
}
JSON = ["--payload", "json", "--compression"]
DEFLATE_SCENARIOS = [
    ("deflate echo 100 x 300 B json", "/", ["--connections", "100", "--size", "300"] + JSON, "msgs/s"),
    ("deflate echo 100 x 16 KiB json", "/", ["--connections", "100", "--size", "16KiB"] + JSON, "msgs/s"),
    ("deflate broadcast 1 -> 1000 x 300 B json", "/broadcast",
     ["--mode", "broadcast", "--connections", "1000", "--size", "300", "--pipeline", "32"] + JSON,
     "deliveries/s"),
]
# History: the broadcast row against one server with its topic keeping memory history and
# without (examples/history-broadcast-server.rs, which takes a port, not an address); and the
# recovery of missed messages (examples/history-recovery.rs), with the goals.
HISTORY_SERVER = "./target/release/examples/history-broadcast-server"
SERVERS_HISTORY = {
    "history-off": [HISTORY_SERVER, "--history", "off", "--port"],
    "history-on": [HISTORY_SERVER, "--history", "on", "--port"],
}
HISTORY_SCENARIOS = [
    ("history broadcast 1 -> 1000 x 64 B", "/broadcast",
     ["--mode", "broadcast", "--connections", "1000", "--size", "64", "--pipeline", "32"], "deliveries/s"),
]
HISTORY_CPU_GOAL = 1.3  # CPU per delivery with history over without, at most
RECOVERY = "./target/release/examples/history-recovery"
RECOVERY_GOAL_MS = {"memory": 100, "redis": 300, "redis-cold": 300}  # milliseconds, median
# Auth: what checking a token at the upgrade costs the server per connection, as the same
# binary without auth, with an HS256 secret and with an ES256 public key, under
# examples/connect-rate.rs (upgrade, close handshake, again) with a token in the URL.
AUTH_DIR = "target/bench-auth"
SERVERS_AUTH = {
    "no auth": [WSLOOP, "--log-level", "warn", "--bind"],
    "HS256": [WSLOOP, "--log-level", "warn", "--auth-jwt-secret-file", f"{AUTH_DIR}/secret", "--bind"],
    "ES256": [WSLOOP, "--log-level", "warn", "--auth-jwt-key", "tests/keys/ec-public.pem", "--bind"],
}
TOKEN_SIGNERS = {"HS256": ["--secret-file", f"{AUTH_DIR}/secret"],
                 "ES256": ["--key-file", "tests/keys/ec-private.pem"]}
AUTH_GOAL_US = {"HS256": 5, "ES256": 100}  # server CPU per connection over no auth, at most
CONNECT_RATE = "./target/release/examples/connect-rate"
# The HTTP API: its key file, the generator, and the goals (publishes per second).
API_KEY = "target/bench-api/key"
API_PUBLISH = "./target/release/examples/api-publish"
PUBLISHER_RATE = "./target/release/examples/publisher-rate"
API_SUBSCRIBERS = [0, 1000]
API_GOAL = 20_000  # HTTP publishes/s to a channel of 1,000 subscribers
PUBLISHER_GOAL = 1_000_000  # Publisher publishes/s to a topic with one subscriber
SERVERS_API = {"api": [WSLOOP, "--log-level", "warn", "--api-key-file", API_KEY, "--bind"]}
TLS_SCENARIOS = [
    ("wss echo 100 x 20 B", "/", ["--connections", "100", "--size", "20"], "msgs/s"),
    ("wss echo 100 x 16 KiB", "/", ["--connections", "100", "--size", "16KiB"], "msgs/s"),
]


class Server:
    """A server process pinned to CPU 0, started fresh for one measurement."""

    def __init__(self, name, port):
        tls = name in SERVERS_TLS
        servers = {**SERVERS, **SERVERS_TLS, **SERVERS_DEFLATE, **SERVERS_HISTORY, **SERVERS_AUTH,
                   **SERVERS_API}
        address = str(port) if name in SERVERS_HISTORY else f"127.0.0.1:{port}"
        command = ["taskset", "-c", "0"] + servers[name] + [address]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline()
        if "listening on" not in line:
            self.stop()
            sys.exit(f"bench: {name} did not start: {line!r}")
        self.url = f"{'wss' if tls else 'ws'}://127.0.0.1:{port}"

    def rss_kib(self):
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self):
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.process.kill()
        self.process.wait()


def bench(args):
    """Runs `wsloop bench` pinned to CPU 1; returns its JSON summary, plus "bench_cpu_seconds":
    the generator's whole CPU time (connection setup and closing included, as for the servers'
    figures; its own bench_cpu_percent covers only the measured window)."""
    command = ["taskset", "-c", "1", WSLOOP, "bench"] + args + ["--json"]
    if args[0].startswith("wss://"):
        command.append("--insecure")
    # taskset execs the generator, so it is the one child reaped meanwhile (servers are reaped
    # only when stopped, after this returns).
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    for line in reversed(result.stdout.splitlines()):
        if line.startswith("{"):
            summary = json.loads(line)
            summary["bench_cpu_seconds"] = ((after.ru_utime - before.ru_utime)
                                            + (after.ru_stime - before.ru_stime))
            return summary
    sys.exit(f"bench: no summary from {' '.join(command)}:\n{result.stdout}\n{result.stderr}")


def idle_bytes_per_connection(name, port):
    """Server RSS growth per connection while IDLE_CONNECTIONS idle connections are held."""
    server = Server(name, port)
    try:
        command = ["taskset", "-c", "1", WSLOOP, "bench", f"{server.url}/", "--idle"]
        if server.url.startswith("wss://"):
            command.append("--insecure")
        # A first hundred come and go, so the server's code for them is paged in: otherwise
        # those pages of the binary (0 to 190 KiB, run to run) count as 0-20 B per connection.
        warm_up = command + ["--connections", "100", "--duration", "1s"]
        subprocess.run(warm_up, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        time.sleep(0.5)  # let the server finish their closes
        before = server.rss_kib()
        command += ["--connections", str(IDLE_CONNECTIONS), "--duration", "600s"]
        holder = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for line in holder.stdout:
                if line.startswith("holding"):
                    break
            else:
                sys.exit(f"bench: idle run failed: {holder.stderr.read()}")
            time.sleep(0.5)  # let the server finish the last handshakes' bookkeeping
            after = server.rss_kib()
        finally:
            holder.kill()
            holder.wait()
        return (after - before) * 1024 / IDLE_CONNECTIONS
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="measurements per server and scenario")
    parser.add_argument("--duration", default="5s", help="length of each measurement")
    parser.add_argument("--only", help="run only scenarios whose name this regular expression matches, say \"^(echo|broadcast) \" for the main table")
    parser.add_argument("--baseline", metavar="BINARY", action="append", default=[],
                        help="also measure this wsloop binary (say, a build of main) as a peer; repeatable")
    parser.add_argument("--uws", metavar="BINARY",
                        help="also measure this uWebSockets server (scripts/peers/build-uws.sh builds one): "
                             "echo and broadcast, with wsloop's CPU per message divided by its")
    parser.add_argument("--without", metavar="SERVER", action="append", default=[],
                        help="leave this peer out (say, tokio-tungstenite) to save time; repeatable")
    options = parser.parse_args()
    for name in options.without:
        if name not in SERVERS or name in ("wsloop", FLOOR):
            parser.error(f"--without {name}: not a peer that may be left out "
                         f"(one of {', '.join(s for s in SERVERS if s not in ('wsloop', FLOOR))})")
        del SERVERS[name]
    for i, binary in enumerate(options.baseline):
        # Named by its file, unless that would replace a server measured already (a build of
        # main is called wsloop too): then "baseline", "baseline-2", ...
        name = os.path.basename(binary)
        if name in SERVERS:
            name = "baseline" if i == 0 else f"baseline-{i + 1}"
        SERVERS[name] = [binary, "--log-level", "warn", "--bind"]
    if options.uws:
        SERVERS[UWS] = [options.uws, "--bind"]

    port = 9501
    # Each table: its scenarios and the servers each scenario is measured against.
    tables = [
        (SCENARIOS, lambda path: [s for s in SERVERS if path != "/broadcast" or s not in ECHO_ONLY]),
        (DEFLATE_SCENARIOS, lambda path: ["wsloop", "wsloop-shared", "wsloop-dedicated"]),
        (TLS_SCENARIOS, lambda path: ["wsloop", "wsloop-tls"]),
    ]
    rows, deflate_rows, tls_rows = [], [], []
    for (scenarios, servers), table_rows in zip(tables, (rows, deflate_rows, tls_rows)):
        for name, path, args, unit in scenarios:
            if not wanted(options, name):
                continue
            port, row = measure(name, path, args, unit, servers(path), options, port)
            table_rows.append(row)
    history_rows = []
    for name, path, args, unit in HISTORY_SCENARIOS:
        if not wanted(options, name):
            continue
        port, row = measure(name, path, args, unit, list(SERVERS_HISTORY), options, port,
                            reference="history-off", cost_base="history-off")
        history_rows.append(row)
    recovery = []
    if wanted_extra(options, "history recovery"):
        recovery = measure_recovery()
    auth_rows = []
    if wanted_extra(options, "auth connect"):
        port, auth_rows = measure_auth(options, port)

    api_rows, publisher_rates = [], []
    if wanted_extra(options, "api publisher"):
        port, api_rows, publisher_rates = measure_api(options, port)

    idle = None
    if wanted_extra(options, "idle"):
        idle = {}
        # The floor is one for CPU, not memory (it keeps a 64 KiB buffer per connection).
        for server_name in (s for s in SERVERS if s != FLOOR):
            port += 1
            idle[server_name] = idle_bytes_per_connection(server_name, port)
    idle_tls = None
    if wanted_extra(options, "wss idle"):
        port += 1
        idle_tls = idle_bytes_per_connection("wsloop-tls", port)

    print_table(rows, idle)
    print_tls_table(tls_rows, idle, idle_tls)
    print_deflate_table(deflate_rows)
    print_history_table(history_rows, recovery)
    print_auth_table(auth_rows, options)
    print_api_table(api_rows, publisher_rates, options)


def wanted(options, name):
    """Whether scenario `name` is to be run: `--only` is a regular expression searched for in it
    (a plain part of a name, like "1000 x", still works)."""
    return not options.only or re.search(options.only, name) is not None


def wanted_extra(options, words):
    """Whether a table without named scenarios (idle memory, recovery, ...) is to be run: always
    without `--only`, else when `--only` is part of its words ("idle" runs the idle table)."""
    return not options.only or options.only in words


def measure(name, path, args, unit, servers, options, port, reference="wsloop", cost_base=FLOOR):
    """Rounds of `name` against each of `servers`, alternating; returns the next free port and
    the table row: rates as ratios of `reference`'s, CPU per message as ratios over
    `cost_base`'s (when it is among the servers)."""
    results = {server: [] for server in servers}
    server_cpus = {server: [] for server in servers}
    cost = {server: [] for server in servers}  # server CPU microseconds per message
    bench_cost = {server: [] for server in servers}  # generator CPU microseconds per message
    wire = {server: [] for server in servers}  # bytes received per message
    cpu = []
    for _ in range(options.rounds):
        for server_name in servers:  # alternate: A B A B ...
            port += 1
            server = Server(server_name, port)
            try:
                cpu_before, wall_before = server.cpu_seconds(), time.monotonic()
                summary = bench([server.url + path, "--duration", options.duration] + args)
                # Includes connection setup; a share near 100% means the server was the limit.
                cpu_seconds = server.cpu_seconds() - cpu_before
                server_cpu = 100 * cpu_seconds / (time.monotonic() - wall_before)
            finally:
                server.stop()
            results[server_name].append(summary["median_rate"])
            server_cpus[server_name].append(server_cpu)
            cost[server_name].append(1e6 * cpu_seconds / max(summary["total"], 1))
            bench_cost[server_name].append(1e6 * summary["bench_cpu_seconds"] / max(summary["total"], 1))
            wire[server_name].append(summary.get("wire_bytes_per_message", 0))
            if summary.get("bench_cpu_percent") is not None:
                cpu.append(summary["bench_cpu_percent"])
            print(f"  {name}: {server_name} {summary['median_rate']} {unit} "
                  f"(errors {summary['errors']}, server cpu {server_cpu:.0f}%, "
                  f"bench cpu {summary.get('bench_cpu_percent') or 0:.0f}%)",
                  file=sys.stderr)
    medians = {s: statistics.median(v) for s, v in results.items()}
    # Each round measures the servers back to back, so the ratio within a round is the
    # least touched by the machine's drift: the table gives the median of those.
    ratios = {s: statistics.median(w / p if p else float("inf") for w, p in zip(results[reference], v))
              for s, v in results.items()}
    cpus = {s: statistics.median(v) for s, v in server_cpus.items()}
    costs = {s: statistics.median(v) for s, v in cost.items()}
    wires = {s: statistics.median(v) for s, v in wire.items()}
    # CPU per message over the floor's (or cost_base's), within each round as for the rates;
    # none without it.
    floor_ratios = {}
    if cost_base in cost:
        floor_ratios = {s: statistics.median(c / f if f else float("inf") for c, f in zip(v, cost[cost_base]))
                        for s, v in cost.items()}
    if UWS in cost and reference in cost:
        # wsloop's CPU per message over uWebSockets', within each round.
        floor_ratios["vs " + UWS] = statistics.median(
            w / u if u else float("inf") for w, u in zip(cost[reference], cost[UWS]))
    bench_costs = {s: statistics.median(v) for s, v in bench_cost.items()}
    return port, (name, unit, medians, ratios, cpus, costs, max(cpu or [0]), wires, floor_ratios, bench_costs)


def measure_recovery():
    """examples/history-recovery.rs in memory and, with redis-server on the PATH, across two
    instances on a redis-server of its own; returns (label, goal in ms, its JSON summary)."""
    runs = [("memory", ["--store", "memory"])]
    redis = None
    if shutil.which("redis-server"):
        with socket.socket() as probe:  # a free port, for the moment it takes redis to bind it
            probe.bind(("127.0.0.1", 0))
            redis_port = probe.getsockname()[1]
        redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--save", "",
                                  "--appendonly", "no"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", redis_port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or redis.poll() is not None:
                    sys.exit("bench: redis-server did not start")
                time.sleep(0.05)
        runs.append(("redis", ["--cluster", f"redis://127.0.0.1:{redis_port}"]))
        runs.append(("redis-cold", ["--cluster", f"redis://127.0.0.1:{redis_port}", "--cold", "--runs", "9"]))
    else:
        print("  history recovery: redis-server is not on the PATH, Redis Streams skipped", file=sys.stderr)
    results = []
    try:
        for label, args in runs:
            command = [RECOVERY] + args + ["--json"]
            result = subprocess.run(command, capture_output=True, text=True, timeout=600)
            if result.returncode != 0 or not result.stdout.startswith("{"):
                sys.exit(f"bench: {' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
            summary = json.loads(result.stdout.splitlines()[-1])
            print(f"  history recovery: {label} median {summary['median_ms']} ms, max {summary['max_ms']} ms",
                  file=sys.stderr)
            results.append((label, RECOVERY_GOAL_MS[label], summary))
    finally:
        if redis:
            redis.kill()
            redis.wait()
    return results


def measure_auth(options, port):
    """Rounds of connect-rate against the server without auth, with HS256 and with ES256,
    alternating; returns the next free port and, per server: median connections per second,
    median server CPU microseconds per connection, and the median within-round difference
    from no auth (what the check costs)."""
    tokens = {}
    for name, signer in TOKEN_SIGNERS.items():
        made = subprocess.run([WSLOOP, "token", "--sub", "bench", "--ttl", "1h"] + signer,
                              capture_output=True, text=True, check=True)
        tokens[name] = made.stdout.strip()
    rates = {s: [] for s in SERVERS_AUTH}
    cost = {s: [] for s in SERVERS_AUTH}
    seconds = options.duration.rstrip("s")
    for _ in range(options.rounds):
        for server_name in SERVERS_AUTH:
            port += 1
            server = Server(server_name, port)
            url = server.url + "/echo" + (f"?token={tokens[server_name]}" if server_name in tokens else "")
            try:
                cpu_before = server.cpu_seconds()
                result = subprocess.run(["taskset", "-c", "1", CONNECT_RATE, url, "--threads", "4",
                                         "--duration", seconds], capture_output=True, text=True, timeout=600)
                cpu_seconds = server.cpu_seconds() - cpu_before
            finally:
                server.stop()
            summary = json.loads(result.stdout.strip().splitlines()[-1])
            if summary["refused"]:
                sys.exit(f"bench: {server_name} refused {summary['refused']} connections")
            rates[server_name].append(summary["rate"])
            cost[server_name].append(1e6 * cpu_seconds / max(summary["connections"], 1))
            print(f"  auth: {server_name} {summary['rate']:.0f} connections/s, "
                  f"{cost[server_name][-1]:.1f} us server CPU each", file=sys.stderr)
    base = cost["no auth"]
    rows = [(s, statistics.median(rates[s]), statistics.median(cost[s]),
             statistics.median(c - b for c, b in zip(cost[s], base)))
            for s in SERVERS_AUTH]
    return port, rows


def measure_api(options, port):
    """Rounds of examples/api-publish.rs through HTTP and through WebSocket, alternating, for
    each subscriber count, against one fresh server each; returns the next free port, the rows
    (via, subscribers, median publishes/s, median server CPU per publish) and the Publisher's
    rates."""
    seconds = options.duration.rstrip("s")
    runs = {(via, subs): ([], []) for subs in API_SUBSCRIBERS for via in ("http", "ws")}
    for _ in range(options.rounds):
        for (via, subs), (rates, costs) in runs.items():
            port += 1
            server = Server("api", port)
            try:
                cpu_before = server.cpu_seconds()
                result = subprocess.run(["taskset", "-c", "1", API_PUBLISH, f"127.0.0.1:{port}", API_KEY,
                                         "--subscribers", str(subs), "--clients", "10", "--pipeline", "16",
                                         "--duration", seconds, "--via", via],
                                        capture_output=True, text=True, timeout=600)
                cpu_seconds = server.cpu_seconds() - cpu_before
            finally:
                server.stop()
            if result.returncode != 0:
                sys.exit(f"bench: api-publish failed: {result.stderr}")
            summary = json.loads(result.stdout.strip().splitlines()[-1])
            rates.append(summary["rate"])
            costs.append(1e6 * cpu_seconds / max(summary["publishes"], 1))
            print(f"  api: {via} to {subs} subscribers {summary['rate']:.0f} publishes/s, "
                  f"{costs[-1]:.1f} us server CPU each", file=sys.stderr)
    rows = [(via, subs, statistics.median(rates), statistics.median(costs))
            for (via, subs), (rates, costs) in runs.items()]
    publisher = []
    for _ in range(options.rounds):
        result = subprocess.run([PUBLISHER_RATE, "--duration", seconds], capture_output=True,
                                text=True, timeout=600, check=True)
        publisher.append(json.loads(result.stdout.strip().splitlines()[-1])["rate"])
        print(f"  publisher: {publisher[-1]:.0f} publishes/s", file=sys.stderr)
    return port, rows, publisher


def print_api_table(rows, publisher, options):
    if not rows:
        return
    print(f"\nPublishing from a backend (examples/api-publish.rs on CPU 1: 10 connections, 16 "
          f"requests in flight each, 64 B; {options.rounds} rounds of {options.duration}, medians)\n")
    print("| through | subscribers | publishes/s | server CPU per publish | goal |")
    print("|---|---|---|---|---|")
    for via, subs, rate, cost in rows:
        goal = "-"
        if via == "http" and subs == 1000:
            goal = f">= {API_GOAL:,}/s: {'met' if rate >= API_GOAL else 'NOT met'}"
        through = "HTTP `POST /api/publish`" if via == "http" else "/pubsub WebSocket"
        print(f"| {through} | {subs:,} | {rate:,.0f} | {cost:.1f} us | {goal} |")
    rate = statistics.median(publisher)
    goal = f">= {PUBLISHER_GOAL:,}/s: {'met' if rate >= PUBLISHER_GOAL else 'NOT met'}"
    print(f"| `Publisher` from another thread (examples/publisher-rate.rs, not pinned) | 1 | "
          f"{rate:,.0f} | - | {goal} |")


def print_auth_table(rows, options):
    if not rows:
        return
    print(f"\nToken check at the upgrade (examples/connect-rate.rs, 4 threads on CPU 1; "
          f"{options.rounds} rounds of {options.duration}, medians)\n")
    print("| server | connections/s | server CPU per connection | over no auth | goal |")
    print("|---|---|---|---|---|")
    for name, rate, cost, over in rows:
        goal = AUTH_GOAL_US.get(name)
        goal = f"< {goal} us: {'met' if over < goal else 'NOT met'}" if goal else "-"
        over = f"{over:+.1f} us" if name != "no auth" else "-"
        print(f"| {name} | {rate:,.0f} | {cost:.1f} us | {over} | {goal} |")


def print_history_table(rows, recovery):
    """Topic history's costs: the broadcast with history in memory (on) against the same server
    without (off), and the time a client that comes back takes to get what it missed."""
    if not rows and not recovery:
        return
    print()
    print("| history | off | on | on / off | server cpu µs per delivery (off / on) | server cpu (off / on) "
          "| bench cpu (max) | goal |")
    print("|---|---|---|---|---|---|---|---|")
    for name, unit, medians, ratios, cpus, costs, bench_cpu, _wires, cost_ratios, _bench_costs in rows:
        off, on = "history-off", "history-on"
        print(f"| {name} | {medians[off]:,.0f} {unit} | {medians[on]:,.0f} | "
              f"cpu per delivery **{cost_ratios[on]:.2f}x**, rate {1 / ratios[on]:.2f}x | "
              f"{costs[off]:.2f} / {costs[on]:.2f} | {cpus[off]:.0f}% / {cpus[on]:.0f}% | {bench_cpu:.0f}% | "
              f"cpu per delivery <= {HISTORY_CPU_GOAL}x |")
    for label, goal, summary in recovery:
        where = {"memory": "memory",
                 "redis": "Redis Streams, recovered on the other of 2 instances",
                 "redis-cold": "Redis Streams, on an instance started after them: its start counted"}[label]
        print(f"| recover {summary['count']:,} missed x {summary['payload']} B ({where}) | - | "
              f"median **{summary['median_ms']:.1f} ms**, max {summary['max_ms']:.1f} ms "
              f"({len(summary['runs_ms'])} runs) | - | - | - | - | < {goal} ms |")


def print_deflate_table(rows):
    """Compression off / shared / dedicated, wsloop each time: rate, CPU per message (or
    delivery), bytes received per message (the generator's view of the wire)."""
    if not rows:
        return
    modes = ["wsloop", "wsloop-shared", "wsloop-dedicated"]
    print()
    print("| scenario | off | shared | dedicated | server cpu µs per message (off / shared / dedicated) "
          "| bytes per message received (off / shared / dedicated) | bench cpu (max) |")
    print("|---|---|---|---|---|---|---|")
    for name, unit, medians, _ratios, _cpus, costs, bench_cpu, wires, _floor, _bench_costs in rows:
        rates = " | ".join(f"{medians[m]:,.0f}" for m in modes)
        cpu = " / ".join(f"{costs[m]:.2f}" for m in modes)
        wire = " / ".join(f"{wires[m]:.0f}" for m in modes)
        print(f"| {name} ({unit}) | {rates} | {cpu} | {wire} | {bench_cpu:.0f}% |")


def print_tls_table(rows, idle, idle_tls):
    """wss:// against ws://, wsloop both times: the rate ratio is wss / ws."""
    if not rows and idle_tls is None:
        return
    if idle:
        print()
    print("| scenario | ws:// | wss:// | wss / ws | server cpu µs per message (ws / wss) | bench cpu (max) |")
    print("|---|---|---|---|---|---|")
    for name, unit, medians, ratios, _cpus, costs, bench_cpu, _wires, _floor, _bench_costs in rows:
        print(f"| {name} | {medians['wsloop']:,.0f} {unit} | {medians['wsloop-tls']:,.0f} | "
              f"{1 / ratios['wsloop-tls']:.2f}x | {costs['wsloop']:.2f} / {costs['wsloop-tls']:.2f} | "
              f"{bench_cpu:.0f}% |")
    if idle_tls is not None:
        plain = f"{idle['wsloop']:.0f} B" if idle else "-"
        print(f"| idle RSS per connection at {IDLE_CONNECTIONS:,} | {plain} | {idle_tls:.0f} B | - | - | - |")


def print_table(rows, idle):
    """The Markdown table; "-" where a server has no endpoint for a scenario (the floor has
    only echo, so broadcast has no ratio to it)."""
    if not rows and not idle:
        return
    peers = [s for s in SERVERS if s != "wsloop"]
    above_floor = [s for s in SERVERS if s != FLOOR]
    header = (["scenario", "wsloop"] + peers + [f"ratio vs {p}" for p in peers]
              + [f"{s} cpu/msg ÷ floor" for s in above_floor]
              + ([f"wsloop cpu/msg ÷ {UWS}"] if UWS in SERVERS else [])
              + ["server cpu (" + " / ".join(SERVERS) + ")",
                 "server cpu µs per message", "bench cpu (max)", "bench cpu µs per message"])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, unit, medians, ratios, cpus, costs, bench_cpu, _wires, floor_ratios, bench_costs in rows:
        cells = [name, f"{medians['wsloop']:,.0f} {unit}"]
        cells += [f"{medians[p]:,.0f}" if p in medians else "-" for p in peers]
        cells += [f"{ratios[p]:.2f}x" if p in ratios else "-" for p in peers]
        cells += [f"{floor_ratios[s]:.2f}x" if s in floor_ratios else "-" for s in above_floor]
        if UWS in SERVERS:
            vs = floor_ratios.get("vs " + UWS)
            cells += [f"**{vs:.2f}x**" if vs is not None else "-"]
        cells += [" / ".join(f"{cpus[s]:.0f}%" if s in cpus else "-" for s in SERVERS)]
        cells += [" / ".join(f"{costs[s]:.2f}" if s in costs else "-" for s in SERVERS)]
        cells += [f"{bench_cpu:.0f}%"]
        cells += [" / ".join(f"{bench_costs[s]:.2f}" if s in bench_costs else "-" for s in SERVERS)]
        print("| " + " | ".join(cells) + " |")
    if idle:
        cells = [f"idle RSS per connection at {IDLE_CONNECTIONS:,}", f"{idle['wsloop']:.0f} B"]
        cells += [f"{idle[p]:.0f} B" if p in idle else "-" for p in peers]
        cells += [f"{idle[p] / idle['wsloop']:.0f}x less" if p in idle and idle["wsloop"] > 0 else "-"
                  for p in peers]
        cells += ["-"] * (len(header) - len(cells))
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    main()
