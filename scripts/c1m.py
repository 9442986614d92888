#!/usr/bin/env python3
"""A million WebSocket connections on one machine (scripts/c1m.sh runs this).

One process may hold at most `ulimit -n` descriptors (20,000 on the machines this was written
on, a hard limit), so the connections are spread over N wsloop instances joined with --cluster
through one redis-server, each held by its own `wsloop bench --idle` process:

  1. raises what it may: the open-files soft limit up to the hard one, and as root the sysctls
     below (each printed, and restored at the end); as root it also runs in a network namespace
     of its own, whose hash table of TCP connections is sized for the run (--no-netns: not);
  2. starts redis-server and N release instances (`--cluster`, `--ping-interval`);
  3. connects every client at once (one bench process per instance, on /broadcast) and reports
     each instance's upgrade rate, handshake p50/p99, RSS growth and CPU per upgrade;
  4. with --non-readers PCT, that share of the clients stop reading once upgraded; a paced
     flood of FLOOD_MESSAGES x FLOOD_SIZE then reaches every other client, while each instance
     (with --max-buffered and --send-buffer small) closes the non-readers, holding its memory;
  5. holds them for --hold with keepalive pings on, and fails on any close;
  6. publishes one 64 B message on instance 0's /broadcast and times it until the last client
     of all has it (Redis carries it to the other instances);
  7. sends SIGINT to every instance and times it until the last client has its 1001;
  8. stops everything it started.

Figures go to stdout as they come, then a summary; --report FILE also writes them as JSON.
"""

import argparse
import base64
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WSLOOP = os.path.join(ROOT, "target", "release", "wsloop")

# sysctl -> the value a run of this size wants (only raised, never lowered). These belong to
# the network namespace the run is in.
SYSCTLS = {
    # Every client takes a local port; the wider the range, the cheaper each connect's search.
    "net/ipv4/ip_local_port_range": "1024 65535",
    # Listen and SYN backlogs for 55 instances connected to all at once.
    "net/core/somaxconn": "4096",
    "net/ipv4/tcp_max_syn_backlog": "8192",
}
# These are the machine's, set from the first namespace.
MACHINE_SYSCTLS = {
    # Loopback packets wait in a per-CPU queue of this many; past it they are dropped (and
    # retransmitted 0.2 to 3 s later): 55 instances each writing to 18,000 sockets at once
    # overflow the default 1000.
    "net/core/netdev_max_backlog": "65536",
}


# With --non-readers: what each instance lets a client leave unread, the kernel send buffer it
# gives each one, and the flood that must cut the non-readers off. A non-reader (a 4 KiB
# receive buffer) holds about 12 KiB in the kernel and then --max-buffered: it is closed at
# about the eighth message. The flood is paced, each message sent once every reader has the
# one before, so a reader has at most that one message unread when the next arrives (its
# acknowledgement may still be on its way in a busy kernel, holding the send buffer): however
# late its process gets to read, the server never takes it for a slow one.
SLOW_LIMITS = ["--max-buffered", "16KiB", "--send-buffer", "4KiB"]
# At a million, the flood keeps both ends' kernels so busy here (two cores for 110 processes)
# that a message takes up to 24 s to reach every reader, and a pong can come back more than
# 40 s after its ping: with the default --idle-timeout (60 s, pings at 20 s) 0.4% of the
# readers were closed 1001 "idle timeout". A flood run gives the readers that time.
FLOOD_KEEPALIVE = ["--idle-timeout", "180s", "--metrics"]
FLOOD_MESSAGES = 12
FLOOD_SIZE = 4 * 1024
# One message of the flood to 900,000 readers is 3.7 GB in flight at once. The kernel caps what
# all TCP sockets may hold (net.ipv4.tcp_mem, in pages: about a ninth of memory by default,
# 2.2 GiB here); past it, it drops and retransmits, everything crawls, and pongs come too late
# for the idle timeout. A flood raises the cap (3.8, 5.7, 7.6 GiB), which is the machine's.
FLOOD_SYSCTLS = {"net/ipv4/tcp_mem": "1000000 1500000 2000000"}


def log(line):
    print(line, flush=True)


def parse_duration(text):
    units = {"ms": 0.001, "s": 1, "m": 60}
    for unit in ("ms", "s", "m"):
        if text.endswith(unit):
            try:
                value = float(text[: -len(unit)])
            except ValueError:
                break
            if value >= 0:
                return value * units[unit]
    raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 60s or 1.5s")


def at_least_one(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


class Interrupts:
    """Ctrl+C: the first SIGINT interrupts (KeyboardInterrupt), later ones are ignored, so the
    cleanup it starts runs to the end (a terminal's Ctrl+C reaches every process of the run,
    and the namespace's parent passes its own on too)."""

    def __init__(self):
        self.count = 0
        signal.signal(signal.SIGINT, self.handle)

    def handle(self, *_):
        self.count += 1
        if self.count == 1:
            raise KeyboardInterrupt


class Sysctls:
    """Raises the sysctls a run needs where it may, and puts them back."""

    def __init__(self, sysctls):
        self.sysctls = sysctls
        self.changed = {}

    def raise_all(self):
        for name, wanted in self.sysctls.items():
            path = f"/proc/sys/{name}"
            try:
                with open(path) as f:
                    old = " ".join(f.read().split())
            except OSError:
                continue
            if not self.wider(old, wanted):
                log(f"sysctl {name.replace('/', '.')} = {old} (kept)")
                continue
            try:
                with open(path, "w") as f:
                    f.write(wanted)
            except OSError as e:
                log(f"sysctl {name.replace('/', '.')} = {old} (cannot raise to {wanted}: {e.strerror})")
                continue
            self.changed[path] = old
            log(f"sysctl {name.replace('/', '.')} = {wanted} (was {old}; restored at the end)")

    @staticmethod
    def wider(old, wanted):
        old_values, wanted_values = [int(v) for v in old.split()], [int(v) for v in wanted.split()]
        if len(old_values) == 2:  # a range: wider when it starts lower or ends higher
            return wanted_values[0] < old_values[0] or wanted_values[1] > old_values[1]
        return wanted_values[0] > old_values[0]

    def restore(self):
        for path, old in self.changed.items():
            try:
                with open(path, "w") as f:
                    f.write(old)
            except OSError:
                pass
        self.changed.clear()


def in_own_netns(options):
    """Runs this script again in a network namespace of its own whose TCP hash table of
    established connections has room for every socket of the run (Linux sizes the host's at
    boot, from memory: 262,144 buckets on a 24 GB machine, so two million sockets make chains
    of eight that every packet walks). Needs root, `unshare` and `ip`; returns the exit code,
    or None when it cannot (then the run goes on here, in the host's namespace)."""
    path = "/proc/sys/net/ipv4/tcp_child_ehash_entries"
    if os.environ.get("C1M_NETNS") or options.no_netns or os.geteuid() != 0:
        return None
    if not os.path.exists(path) or not all(shutil.which(t) for t in ("unshare", "ip")):
        log("no network namespace of its own (needs tcp_child_ehash_entries, unshare and ip)")
        return None
    trial = subprocess.run(["unshare", "--net", "--", "ip", "link", "set", "lo", "up"],
                           capture_output=True, text=True)
    if trial.returncode != 0:
        log(f"no network namespace of its own: {trial.stderr.strip() or 'unshare failed'}")
        return None
    buckets = 1 << max(16, (2 * options.connections - 1).bit_length())
    old = read_first(path)
    with open(path, "w") as f:
        f.write(str(min(buckets, 1 << 24)))
    log(f"sysctl net.ipv4.tcp_child_ehash_entries = {min(buckets, 1 << 24)} (was {old}; "
        "restored once the namespace exists), and the run in a network namespace of its own")
    command = ["unshare", "--net", "--", "sh", "-c",
               'ip link set lo up && exec "$@"', "sh", sys.executable, *sys.argv]
    child = None
    try:
        child = subprocess.Popen(command, env={**os.environ, "C1M_NETNS": "1"})
        # The size counts when the namespace is made: wait for that, then put it back.
        ours = os.readlink("/proc/self/ns/net")
        for _ in range(500):
            try:
                if os.readlink(f"/proc/{child.pid}/ns/net") != ours:
                    break
            except OSError:
                break  # it ended already
            time.sleep(0.01)
    except KeyboardInterrupt:
        if child is not None:
            child.send_signal(signal.SIGINT)
    finally:
        with open(path, "w") as f:
            f.write(str(old))
    while True:
        try:
            return child.wait() if child is not None else 130
        except KeyboardInterrupt:
            # Passed on once; the run stops everything it started and says so.
            child.send_signal(signal.SIGINT)


def raise_open_files(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        log(f"ulimit -n {hard} (was {soft})")
    else:
        log(f"ulimit -n {hard} (the hard limit)")
    if needed > hard:
        sys.exit(f"c1m: {needed} connections per process need more than ulimit -n {hard}: "
                 "use more --instances")
    return hard


def read_first(path, default=0):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def meminfo():
    values = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            values[key] = int(value.split()[0]) * 1024
    return values


def sockstat():
    """TCP sockets in use, allocated, and their buffer memory in bytes."""
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                fields = line.split()[1:]
                values = dict(zip(fields[::2], (int(v) for v in fields[1::2])))
                return {"inuse": values.get("inuse", 0), "alloc": values.get("alloc", 0),
                        "mem_bytes": values.get("mem", 0) * os.sysconf("SC_PAGE_SIZE")}
    return {}


def metric(ws_url, name):
    """One counter from an instance's GET /metrics (summed over its labels)."""
    import urllib.request
    url = "http://" + ws_url[len("ws://"):] + "/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return sum(int(float(line.split()[-1])) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def softnet_dropped():
    """Packets dropped so far because a CPU's receive backlog was full (all CPUs)."""
    try:
        with open("/proc/net/softnet_stat") as f:
            return sum(int(line.split()[1], 16) for line in f)
    except (OSError, IndexError, ValueError):
        return 0


def rss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round((len(values) - 1) * p)))] if values else 0


class Bench:
    """One `wsloop bench --idle` process and the events it printed."""

    def __init__(self, index, url, connections, server_pid, hold_seconds, logs, non_readers):
        self.index = index
        self.connections = connections
        self.events = {}
        self.lines = []
        self.done = threading.Event()
        self.changed = threading.Condition()
        self.stderr = open(os.path.join(logs, f"bench-{index}.err"), "w")
        self.process = subprocess.Popen(
            [WSLOOP, "bench", url, "--mode", "broadcast", "--idle", "--json",
             "--connections", str(connections), "--duration", f"{hold_seconds}s",
             "--server-pid", str(server_pid), "--non-readers", str(non_readers)],
            stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self):
        for line in self.process.stdout:
            line = line.strip()
            if line.startswith("{"):
                event = json.loads(line)
                name = event["event"]
                if name == "reached":
                    name = f"reached {event['message']}"
                with self.changed:
                    self.events[name] = event
                    self.changed.notify_all()
            else:
                self.lines.append(line)
        with self.changed:
            self.done.set()
            self.changed.notify_all()

    def wait_for(self, event, deadline):
        with self.changed:
            while event not in self.events and not self.done.is_set():
                left = deadline - time.time()
                if left <= 0:
                    break
                self.changed.wait(left)
            return self.events.get(event)

    def why_not(self):
        self.stderr.flush()
        with open(self.stderr.name) as f:
            err = f.read().strip()
        return err or (self.lines[-1] if self.lines else "no output")


class Publisher:
    """A plain WebSocket client that sends binary messages (the publisher of a broadcast)."""

    def __init__(self, host, port):
        self.socket = socket.create_connection((host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.socket.sendall((f"GET /broadcast HTTP/1.1\r\nHost: {host}:{port}\r\n"
                             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                             f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                             ).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.socket.recv(4096)
            if not chunk:
                break
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            sys.exit(f"c1m: the publisher's upgrade failed: {head[:80]!r}")

    def send(self, payload, opcode=0x2):
        """One frame, masked as a client's must be (RFC 6455 §5.3)."""
        n = len(payload)
        if n < 126:
            head = bytes([0x80 | opcode, 0x80 | n])
        elif n < 65536:
            head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        keys = (mask * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(keys, "big")).to_bytes(n, "big")
        self.socket.sendall(head + mask + masked)

    def close(self):
        """Leaves with a close handshake, as a client should: an instance waits for its
        clients' closes when it shuts down."""
        self.send((1000).to_bytes(2, "big"), opcode=0x8)
        self.socket.settimeout(5)
        try:
            while self.socket.recv(65536):
                pass
        except OSError:
            pass
        self.socket.close()


class Run:
    def __init__(self, options):
        self.options = options
        self.children = []
        self.report = {"connections": options.connections, "instances": options.instances,
                       "non_readers_percent": options.non_readers}
        # Messages published so far: the next one's number, for the benches' "reached N".
        self.published = 0
        self.logs = tempfile.mkdtemp(prefix="wsloop-c1m-")

    def spawn(self, command, **kwargs):
        process = subprocess.Popen(command, **kwargs)
        self.children.append(process)
        return process

    def stop_all(self):
        for process in self.children:
            if process.poll() is None:
                process.kill()
        for process in self.children:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def start_redis(self):
        port = free_port()
        self.redis = self.spawn(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--maxclients", "10000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return f"redis://127.0.0.1:{port}"
            except OSError:
                time.sleep(0.05)
        sys.exit("c1m: redis-server did not start")

    def finish(self, passed):
        """Lets go of the logs of a run that passed; points at those of one that did not."""
        if passed:
            shutil.rmtree(self.logs, ignore_errors=True)
        else:
            log(f"c1m: the logs of every process are in {self.logs}")

    def start_instances(self, redis_url):
        self.instances = []
        for i in range(self.options.instances):
            err = open(os.path.join(self.logs, f"instance-{i}.err"), "w")
            process = self.spawn(
                [WSLOOP, "--bind", "127.0.0.1:0", "--log-level", "warn", "--cluster", redis_url,
                 "--ping-interval", f"{self.options.ping_interval}s",
                 "--threads", str(self.options.threads)]
                + (SLOW_LIMITS + FLOOD_KEEPALIVE if self.options.non_readers else []),
                stdout=subprocess.PIPE, stderr=err, text=True)
            line = process.stdout.readline().strip()
            if not line.startswith("listening on "):
                process.wait(timeout=10)
                with open(err.name) as f:
                    why = f.read().strip().splitlines() or [line or "no output"]
                sys.exit(f"c1m: instance {i} did not start: {why[-1]}")
            self.instances.append((process, line[len("listening on "):]))
        limits = (f" and {' '.join(SLOW_LIMITS + FLOOD_KEEPALIVE)}" if self.options.non_readers
                  else "")
        log(f"{len(self.instances)} instances up with --cluster {redis_url}{limits}, logs in "
            f"{self.logs}")

    def connect(self):
        options = self.options
        per = [options.connections // options.instances] * options.instances
        for i in range(options.connections % options.instances):
            per[i] += 1
        self.rss_before = [rss(p.pid) for p, _ in self.instances]
        self.dropped_before = softnet_dropped()
        self.mem_before = meminfo()
        self.sock_before = sockstat()
        started = time.time()
        # A bench ends its hold itself long after this script is done with it.
        hold = int(options.hold + 600)
        self.benches = [
            Bench(i, f"{url}/broadcast", per[i], process.pid, hold, self.logs,
                  options.non_readers)
            for i, (process, url) in enumerate(self.instances)]
        for bench in self.benches:
            self.children.append(bench.process)
        deadline = started + options.connect_timeout
        ups = []
        for bench in self.benches:
            up = bench.wait_for("up", deadline)
            if up is None:
                sys.exit(f"c1m: bench {bench.index} did not connect all: {bench.why_not()}")
            ups.append(up)
        elapsed = max(b.events["up"]["seconds"] for b in self.benches)
        total = sum(up["connections"] for up in ups)
        rates = [up["rate"] for up in ups]
        per_connection = [(up["server_rss_after"] - up["server_rss_before"]) / up["connections"]
                          for up in ups]
        cpu_per_upgrade = [up["server_cpu_seconds"] / up["connections"] * 1e6 for up in ups]
        self.report["connect"] = {
            "total": total, "seconds": round(time.time() - started, 2),
            "rate_total": round(total / elapsed),
            "rate_per_instance_median": round(percentile(rates, 0.5)),
            "handshake_p50_ms_median": round(percentile([u["handshake_p50_ms"] for u in ups], 0.5), 2),
            "handshake_p99_ms_max": round(max(u["handshake_p99_ms"] for u in ups), 2),
            "server_rss_per_connection_median": round(percentile(per_connection, 0.5)),
            "server_rss_per_connection_max": round(max(per_connection)),
            "server_cpu_us_per_upgrade_median": round(percentile(cpu_per_upgrade, 0.5), 1),
        }
        c = self.report["connect"]
        log(f"{total} connections up in {c['seconds']} s: {c['rate_total']}/s in all, "
            f"{c['rate_per_instance_median']}/s per instance (median); handshake p50 "
            f"{c['handshake_p50_ms_median']} ms (median of instances), p99 up to "
            f"{c['handshake_p99_ms_max']} ms")
        log(f"server RSS growth per connection: median {c['server_rss_per_connection_median']} B, "
            f"max {c['server_rss_per_connection_max']} B; server CPU per upgrade: median "
            f"{c['server_cpu_us_per_upgrade_median']} µs")
        self.memory("after connecting", total)

    def memory(self, when, total):
        mem, sock = meminfo(), sockstat()
        used = self.mem_before["MemAvailable"] - mem["MemAvailable"]
        slab = mem["Slab"] - self.mem_before["Slab"]
        rss_total = sum(rss(p.pid) for p, _ in self.instances) - sum(self.rss_before)
        figures = {
            "tcp_sockets_in_use": sock.get("inuse"),
            "tcp_buffer_bytes": sock.get("mem_bytes"),
            "kernel_slab_per_connection": round(slab / total),
            "mem_available_drop_per_connection": round(used / total),
            "servers_rss_total_mib": round(rss_total / 2**20, 1),
        }
        self.report.setdefault("memory", {})[when] = figures
        log(f"memory {when}: {figures['tcp_sockets_in_use']} TCP sockets, "
            f"{figures['tcp_buffer_bytes'] // 1024} KiB in their buffers; per connection (both "
            f"ends), the kernel's slab grew {figures['kernel_slab_per_connection']} B and "
            f"MemAvailable fell {figures['mem_available_drop_per_connection']} B (clients "
            f"included; the kernel reclaims part of its slab); the servers' RSS grew "
            f"{figures['servers_rss_total_mib']} MiB in all")

    def hold(self):
        log(f"holding them for {self.options.hold:g} s with pings every "
            f"{self.options.ping_interval:g} s")
        cpu_before = [cpu_seconds(p.pid) for p, _ in self.instances]
        end = time.time() + self.options.hold
        while time.time() < end:
            for bench in self.benches:
                if "closed" in bench.events or "held" in bench.events or bench.done.is_set():
                    sys.exit(f"c1m: bench {bench.index} lost connections during the hold: "
                             f"{bench.why_not()}")
            time.sleep(min(1.0, max(0.0, end - time.time())))
        cpu = sum(cpu_seconds(p.pid) for p, _ in self.instances) - sum(cpu_before)
        hold = max(self.options.hold, 0.001)
        self.report["hold"] = {"seconds": self.options.hold, "unexpected_closes": 0,
                               "servers_cpu_percent": round(cpu / hold * 100, 1)}
        pings = ("pings" if self.report["connect"]["seconds"] + self.options.hold
                 >= self.options.ping_interval else "no ping was due yet")
        log(f"held {self.options.hold:g} s: no connection closed; the servers used "
            f"{self.report['hold']['servers_cpu_percent']}% of one core ({pings})")

    def cpu(self):
        """CPU seconds so far of the instances and of the bench processes."""
        servers = sum(cpu_seconds(p.pid) for p, _ in self.instances)
        benches = sum(cpu_seconds(b.process.pid) for b in self.benches)
        return servers, benches

    def publisher(self):
        """A WebSocket client on instance 0's /broadcast."""
        host, port = self.instances[0][1][len("ws://"):].rsplit(":", 1)
        return Publisher(host, int(port))

    def wait_reached(self, message, deadline, what):
        """Each bench's "reached" event for `message` (numbered from 1)."""
        reached = []
        for bench in self.benches:
            event = bench.wait_for(f"reached {message}", deadline)
            if event is None:
                late = bench.events.get("overdue")
                late = (f"; message {late['message']} had reached {late['connections']} of "
                        f"{late['of']}" if late else "")
                lost = bench.events.get("lost")
                lost = f"; a client was lost: {lost['reason']}" if lost else ""
                sys.exit(f"c1m: {what} did not reach every client of bench {bench.index} "
                         f"in time{late}{lost}: {bench.why_not()}")
            reached.append(event)
        return reached

    def flood(self):
        """--non-readers: a flood every reader gets whole, while the instances close the
        non-readers; their RSS before and after says whether memory stayed bounded."""
        options = self.options
        size = FLOOD_MESSAGES * FLOOD_SIZE
        log(f"flood: {FLOOD_MESSAGES} messages of {FLOOD_SIZE // 1024} KiB on instance 0's "
            f"/broadcast, each once every reader has the one before, while "
            f"{options.non_readers}% of the clients do not read")
        rss_before = [rss(p.pid) for p, _ in self.instances]
        sock_before = sockstat()
        publisher = self.publisher()
        servers_cpu, benches_cpu = self.cpu()
        dropped = softnet_dropped()
        sent = time.time()
        slowest = 0
        for i in range(FLOOD_MESSAGES):
            published = time.time()
            publisher.send(bytes([65 + i % 26]) * FLOOD_SIZE)
            self.published += 1
            deadline = published + options.broadcast_timeout
            reached = self.wait_reached(self.published, deadline, f"flood message {i + 1}")
            took = max(e["last_unix"] for e in reached) - published
            slowest = max(slowest, took)
            log(f"  flood message {i + 1}: every reader had it {took:.2f} s after it was sent "
                f"({sockstat().get('mem_bytes', 0) // 2**20} MiB in the sockets' buffers, "
                f"{softnet_dropped() - dropped} packets dropped at a full backlog so far)")
        peak = [rss(p.pid) for p, _ in self.instances]
        sock_peak = sockstat()
        cuts = []
        for bench in self.benches:
            if bench.connections * options.non_readers // 100 == 0:
                continue
            event = bench.wait_for("cut_off", deadline + 10)
            if event is None:
                sys.exit(f"c1m: bench {bench.index}'s non-readers were not all closed by its "
                         f"server within {options.broadcast_timeout + 10:g} s: {bench.why_not()}")
            cuts.append(event)
        servers_after, benches_after = self.cpu()
        rss_after = [rss(p.pid) for p, _ in self.instances]
        publisher.close()
        slow = sum(metric(url, "wsloop_slow_consumers_closed_total") for _, url in self.instances)
        readers = sum(e["connections"] for e in reached)
        cut = sum(e["connections"] for e in cuts)
        expected = sum(b.connections - b.connections * options.non_readers // 100
                       for b in self.benches)
        if readers < expected:
            reasons = sorted({b.events["lost"]["reason"] for b in self.benches
                              if "lost" in b.events})
            sys.exit(f"c1m: {expected - readers} of the {expected} clients that read were closed "
                     f"during the flood: {'; '.join(reasons) or 'no reason given'}")
        grown = [max(a, b) - before for a, b, before in zip(peak, rss_after, rss_before)]
        self.report["flood"] = {
            "messages": FLOOD_MESSAGES, "message_bytes": FLOOD_SIZE,
            "instance_flags": " ".join(SLOW_LIMITS),
            "readers": readers,
            "all_reached_ms": round((max(e["last_unix"] for e in reached) - sent) * 1e3, 1),
            "slowest_message_s": round(slowest, 2),
            "backlog_drops": softnet_dropped() - dropped,
            "non_readers_closed": cut,
            "closed_as_slow_consumers": slow,
            "first_closed_s": round(min(e["first_unix"] for e in cuts) - sent, 2),
            "last_closed_s": round(max(e["last_unix"] for e in cuts) - sent, 2),
            "server_rss_growth_max_mib": round(max(grown) / 2**20, 1),
            "server_rss_growth_per_reader_delivery_bytes":
                round(sum(grown) / max(1, readers * FLOOD_MESSAGES), 1),
            "tcp_buffer_bytes_peak": sock_peak.get("mem_bytes"),
            "tcp_buffer_bytes_before": sock_before.get("mem_bytes"),
            "servers_cpu_s": round(servers_after - servers_cpu, 2),
            "benches_cpu_s": round(benches_after - benches_cpu, 2),
        }
        f = self.report["flood"]
        log(f"the flood ({size // 1024} KiB) reached all {readers} readers within "
            f"{f['all_reached_ms']} ms; the instances closed all {cut} non-readers between "
            f"{f['first_closed_s']} s and {f['last_closed_s']} s after it began, {slow} of them "
            f"as slow consumers (1008; they never answer it, so each is reset at "
            f"--close-timeout)")
        log(f"memory during the flood: an instance's RSS grew at most "
            f"{f['server_rss_growth_max_mib']} MiB; the sockets' buffers held "
            f"{f['tcp_buffer_bytes_peak'] // 2**20} MiB once every reader had it "
            f"({f['tcp_buffer_bytes_before'] // 2**20} MiB before); CPU: the instances "
            f"{f['servers_cpu_s']} s, the clients {f['benches_cpu_s']} s")

    def broadcast(self):
        publisher = self.publisher()
        redis_cpu = cpu_seconds(self.redis.pid)
        servers_cpu, benches_cpu = self.cpu()
        sent = time.time()
        publisher.send(b"x" * 64)
        self.published += 1
        deadline = sent + self.options.broadcast_timeout
        reached = self.wait_reached(self.published, deadline, "the broadcast")
        servers_after, benches_after = self.cpu()
        last = max(e["last_unix"] for e in reached)
        first = min(e["first_unix"] for e in reached)
        self.report["broadcast"] = {
            "receivers": sum(e["connections"] for e in reached),
            "first_ms": round((first - sent) * 1e3, 1),
            "last_ms": round((last - sent) * 1e3, 1),
            "redis_cpu_ms": round((cpu_seconds(self.redis.pid) - redis_cpu) * 1e3),
            "servers_cpu_s": round(servers_after - servers_cpu, 2),
            "benches_cpu_s": round(benches_after - benches_cpu, 2),
        }
        b = self.report["broadcast"]
        log(f"one 64 B broadcast reached all {b['receivers']} in {b['last_ms']} ms (the first "
            f"after {b['first_ms']} ms); CPU: the instances {b['servers_cpu_s']} s "
            f"({b['servers_cpu_s'] / b['receivers'] * 1e6:.1f} µs per delivery), the clients "
            f"{b['benches_cpu_s']} s, Redis "
            f"{str(b['redis_cpu_ms']) + ' ms' if b['redis_cpu_ms'] else 'under 10 ms'}")
        publisher.close()

    def shutdown(self):
        self.memory("before shutdown", self.report["connect"]["total"])
        self.report["redis_cpu_seconds"] = round(cpu_seconds(self.redis.pid), 2)
        servers_cpu, benches_cpu = self.cpu()
        signalled = time.time()
        for process, _ in self.instances:
            process.send_signal(signal.SIGINT)
        deadline = signalled + self.options.shutdown_timeout
        closes = []
        for bench in self.benches:
            event = bench.wait_for("closed", deadline)
            if event is None:
                sys.exit(f"c1m: bench {bench.index} was not closed by its server within "
                         f"{self.options.shutdown_timeout} s: {bench.why_not()}")
            reasons = event["reasons"] or ""
            if not reasons.startswith("the server closed with 1001") or ";" in reasons:
                sys.exit(f"c1m: bench {bench.index}'s connections did not all close with 1001: "
                         f"{reasons}")
            closes.append(event)
        servers_after, benches_after = self.cpu()
        last = max(e["last_close_unix"] for e in closes)
        for process, _ in self.instances:
            process.wait(timeout=self.options.shutdown_timeout)
        exited = time.time()
        self.report["shutdown"] = {
            "closed_with_1001": sum(e["closed"] for e in closes),
            "last_close_s": round(last - signalled, 2),
            "instances_exited_s": round(exited - signalled, 2),
            "servers_cpu_s": round(servers_after - servers_cpu, 2),
            "benches_cpu_s": round(benches_after - benches_cpu, 2),
        }
        s = self.report["shutdown"]
        log(f"SIGINT: all {s['closed_with_1001']} clients had their 1001 within "
            f"{s['last_close_s']} s (CPU until then: the instances {s['servers_cpu_s']} s, the "
            f"clients {s['benches_cpu_s']} s); every instance exited within "
            f"{s['instances_exited_s']} s")
        dropped = softnet_dropped() - self.dropped_before
        self.report["backlog_drops"] = dropped
        log(f"packets dropped at a full receive backlog during the run: {dropped} "
            "(net.core.netdev_max_backlog)")
        warnings = 0
        for i in range(len(self.instances)):
            with open(os.path.join(self.logs, f"instance-{i}.err")) as f:
                warnings += sum(1 for line in f if " WARN " in line or " ERROR " in line)
        self.report["server_warnings"] = warnings
        log(f"the instances logged {warnings} warnings or errors")


def main():
    parser = argparse.ArgumentParser(prog="scripts/c1m.sh", description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=at_least_one, default=1_000_000)
    parser.add_argument("--instances", type=at_least_one,
                        help="default: one per 18,500 connections")
    parser.add_argument("--hold", type=parse_duration, default=60, help="default 60s")
    parser.add_argument("--ping-interval", type=parse_duration, default=20, help="default 20s")
    parser.add_argument("--threads", type=at_least_one, default=1,
                        help="each instance's --threads (1 to 256)")
    parser.add_argument("--connect-timeout", type=parse_duration, default=600)
    parser.add_argument("--broadcast-timeout", type=parse_duration, default=60,
                        help="how long each broadcast (and each message of the flood) may take")
    parser.add_argument("--shutdown-timeout", type=parse_duration, default=60)
    parser.add_argument("--non-readers", type=int, default=0, metavar="PERCENT",
                        help="this share of the clients stop reading once upgraded; a flood "
                             "then checks that the instances close them and stay bounded")
    parser.add_argument("--report", help="also write the figures to this JSON file")
    parser.add_argument("--no-netns", action="store_true",
                        help="run in this network namespace, with the host's TCP hash table")
    options = parser.parse_args()
    if options.instances is None:
        options.instances = max(1, math.ceil(options.connections / 18_500))
    if options.instances > options.connections:
        parser.error(f"--instances {options.instances} is more than --connections "
                     f"{options.connections}: each instance needs a client")
    if not 0 <= options.non_readers <= 50:
        parser.error("--non-readers is a percentage from 0 to 50")
    if options.threads > 256:
        parser.error("--threads is 1 to 256")
    per_instance = math.ceil(options.connections / options.instances)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if per_instance + 64 > hard:
        parser.error(f"{per_instance} connections per instance (and its client process) need "
                     f"{per_instance + 64} descriptors, but a process may open {hard} "
                     f"(ulimit -Hn): use at least {math.ceil(options.connections / (hard - 64))} "
                     "--instances")
    file_max = read_first("/proc/sys/fs/file-max")
    if file_max and file_max < 2 * options.connections + 10_000:
        parser.error(f"fs.file-max is {file_max}, but both ends of {options.connections} "
                     "connections need twice as many descriptors")
    interrupts = Interrupts()
    machine = Sysctls(MACHINE_SYSCTLS | (FLOOD_SYSCTLS if options.non_readers else {}))
    try:
        if not os.environ.get("C1M_NETNS"):
            machine.raise_all()
        code = in_own_netns(options)
        if code is None:
            code = run_here(options, per_instance)
        return code
    except KeyboardInterrupt:
        return 130
    finally:
        interrupts.count += 1  # what comes now is cleanup: no more interruptions
        machine.restore()


def run_here(options, per_instance):
    log(f"c1m: {options.connections} connections over {options.instances} instances "
        f"({per_instance} each)")
    raise_open_files(per_instance + 64)
    sysctls = Sysctls(SYSCTLS)
    run = Run(options)
    code = 0
    try:
        sysctls.raise_all()
        run.start_instances(run.start_redis())
        run.connect()
        if options.non_readers:
            run.flood()
        run.hold()
        run.broadcast()
        run.shutdown()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
        if not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
        log("c1m: interrupted; stopping everything it started")
    finally:
        run.stop_all()
        sysctls.restore()
        run.finish(code == 0)
    if options.report:
        with open(options.report, "w") as f:
            json.dump(run.report, f, indent=2)
    if code == 0:
        log("c1m: every step passed" + (f"; figures in {options.report}" if options.report else ""))
    return code


if __name__ == "__main__":
    sys.exit(main())
