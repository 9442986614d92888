//! What limits a run of many connections, and what it costs the server: this process's
//! open-files limit, the local port range, one connect error in plain words, the connect
//! rate and handshake times while connecting, and a server process's RSS and CPU time
//! (Linux: read from /proc; elsewhere the figures are left out).

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Descriptors the bench keeps for itself besides its connections (the poll, stdio, and the
/// files the TLS setup reads).
pub const RESERVED_FDS: u64 = 16;

/// This process's open-files limit: (soft, hard), from /proc/self/limits.
pub fn open_files_limit() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut values = line["Max open files".len()..].split_whitespace();
    let soft = values.next()?.parse().ok()?;
    let hard = values.next()?.parse().ok()?;
    Some((soft, hard))
}

/// Why `wanted` connections cannot be held by this process, if they cannot: each needs a
/// descriptor, and the soft limit is the one that stops it.
pub fn descriptors_short(wanted: usize, limit: Option<(u64, u64)>) -> Option<String> {
    let (soft, hard) = limit?;
    let needed = wanted as u64 + RESERVED_FDS;
    if needed <= soft {
        return None;
    }
    let raise = if soft < hard {
        format!(
            "raise it with `ulimit -n {}` (the hard limit), or ",
            hard.min(needed)
        )
    } else {
        String::new()
    };
    Some(format!(
        "{wanted} connections need {needed} file descriptors, but this process may open {soft} \
         (ulimit -n): {raise}split them over several bench processes of at most {} each",
        soft.saturating_sub(RESERVED_FDS)
    ))
}

/// The local port range new connections take their ports from.
fn port_range() -> Option<String> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    Some(range.split_whitespace().collect::<Vec<_>>().join("-"))
}

/// A failed connect (the socket call or the connect itself) in one line that names the limit
/// it ran into, after `open` connections.
pub fn connect_error(e: &io::Error, open: usize, addr: SocketAddr) -> String {
    // Linux's errno values: the standard library gives these no kind of their own.
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    if e.kind() == io::ErrorKind::AddrNotAvailable {
        let range = port_range().unwrap_or_else(|| "unknown".into());
        return format!(
            "connect: out of local ports after {open} connections to {addr} \
             (net.ipv4.ip_local_port_range is {range}): widen the range, or spread the \
             connections over more server ports or addresses"
        );
    }
    match e.raw_os_error() {
        Some(EMFILE) => {
            let limit = open_files_limit().map_or("unknown".into(), |(soft, _)| soft.to_string());
            format!(
                "connect: out of file descriptors after {open} connections: this process may \
                 open {limit} (ulimit -n)"
            )
        }
        Some(ENFILE) => format!(
            "connect: the system is out of file descriptors after {open} connections \
             (fs.file-max)"
        ),
        _ => format!("connect: {e}"),
    }
}

/// The connecting phase: when each connection started, how long each handshake took, and a
/// progress line each second.
#[derive(Debug)]
pub struct Connecting {
    started: Instant,
    /// Per connection, when its connect began.
    began: Vec<Instant>,
    /// Handshake times (connect to 101) in microseconds.
    handshakes: Vec<u32>,
    next_report: Instant,
    /// Opened by the last report.
    reported_open: usize,
    /// When the last connection opened: progress is measured from it.
    pub last_progress: Instant,
}

impl Connecting {
    pub fn new(now: Instant, capacity: usize) -> Connecting {
        Connecting {
            started: now,
            began: Vec::with_capacity(capacity),
            handshakes: Vec::with_capacity(capacity),
            next_report: now + Duration::from_secs(1),
            reported_open: 0,
            last_progress: now,
        }
    }

    /// Connection `key` began connecting.
    pub fn began(&mut self, key: usize, now: Instant) {
        debug_assert_eq!(key, self.began.len());
        self.began.push(now);
    }

    /// Connection `key` finished its handshake.
    pub fn opened(&mut self, key: usize, now: Instant) {
        if let Some(began) = self.began.get(key) {
            let micros = (now - *began).as_micros().min(u32::MAX as u128) as u32;
            self.handshakes.push(micros);
        }
        self.last_progress = now;
    }

    /// A progress line, once a second while connecting.
    pub fn progress(&mut self, now: Instant, open: usize) -> Option<String> {
        if now < self.next_report {
            return None;
        }
        self.next_report += Duration::from_secs(1);
        let rate = open - self.reported_open.min(open);
        self.reported_open = open;
        let second = (now - self.started).as_secs();
        Some(format!("[{second:>3}s] connecting: {open} up, {rate}/s"))
    }

    /// Everything is up: the figures of the connecting phase.
    pub fn finish(&mut self, now: Instant, open: usize) -> ConnectFigures {
        let elapsed = now - self.started;
        self.handshakes.sort_unstable();
        let percentile = |p: f64| match self.handshakes.len() {
            0 => Duration::ZERO,
            n => Duration::from_micros(u64::from(self.handshakes[((n - 1) as f64 * p) as usize])),
        };
        let figures = ConnectFigures {
            elapsed,
            rate: open as f64 / elapsed.as_secs_f64().max(1e-6),
            handshake_p50: percentile(0.50),
            handshake_p99: percentile(0.99),
        };
        // Nothing more to time: give the memory back before the hold.
        self.began = Vec::new();
        self.handshakes = Vec::new();
        figures
    }
}

/// How the connecting went.
#[derive(Debug, Clone, Copy)]
pub struct ConnectFigures {
    pub elapsed: Duration,
    /// Connections opened per second, over the whole phase.
    pub rate: f64,
    pub handshake_p50: Duration,
    pub handshake_p99: Duration,
}

/// A server process's resident memory and CPU time, from /proc/PID.
#[derive(Debug, Clone, Copy)]
pub struct ProcessSample {
    pub rss_bytes: u64,
    pub cpu: Duration,
}

impl ProcessSample {
    /// A sample of process `pid` now.
    pub fn of(pid: u32) -> Result<ProcessSample, String> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|e| format!("--server-pid {pid}: cannot read /proc/{pid}/status: {e}"))?;
        let rss_kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| format!("--server-pid {pid}: no VmRSS in /proc/{pid}/status"))?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_err(|e| format!("--server-pid {pid}: {e}"))?;
        let cpu = super::stats::cpu_of_stat(&stat)
            .ok_or_else(|| format!("--server-pid {pid}: cannot read its CPU time"))?;
        Ok(ProcessSample {
            rss_bytes: rss_kib * 1024,
            cpu,
        })
    }
}

/// Checks that process `pid` is a server at `addr`: that it holds a socket listening on
/// `addr`'s port (from /proc/net/tcp{,6} and /proc/PID/fd), so `--server-pid` cannot report
/// another process's memory as the server's. A process whose descriptors this one may not
/// read (another user's) cannot be checked: that is said on stderr, and the run goes on.
pub fn check_serves(pid: u32, addr: SocketAddr) -> Result<(), String> {
    let listeners = listening_inodes(addr.port());
    let fds = match std::fs::read_dir(format!("/proc/{pid}/fd")) {
        Ok(fds) => fds,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            eprintln!("bench: cannot check that process {pid} serves {addr} (its descriptors are not ours to read); taking --server-pid as given");
            return Ok(());
        }
        Err(e) => return Err(format!("--server-pid {pid}: no such process ({e})")),
    };
    let serves = fds.flatten().any(|fd| {
        let target = std::fs::read_link(fd.path()).unwrap_or_default();
        let inode = (target.to_str()).and_then(|t| {
            t.strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse::<u64>()
                .ok()
        });
        inode.is_some_and(|inode| listeners.contains(&inode))
    });
    if serves {
        return Ok(());
    }
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    Err(format!(
        "--server-pid {pid}: process {pid} ({}) does not listen on port {}; give the pid of the server at {addr}",
        name.trim(),
        addr.port()
    ))
}

/// The socket inodes listening on TCP `port`, IPv4 and IPv6.
fn listening_inodes(port: u16) -> Vec<u64> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        inodes.extend(text.lines().skip(1).filter_map(|line| listener(line, port)));
    }
    inodes
}

/// A /proc/net/tcp line's inode when it is a socket listening on `port`: fields are `sl
/// local_address rem_address st ... uid timeout inode`, the address `HEXIP:HEXPORT` and the
/// state 0A for LISTEN.
fn listener(line: &str, port: u16) -> Option<u64> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let local_port = fields.get(1)?.rsplit(':').next()?;
    let listening = *fields.get(3)? == "0A";
    (listening && u16::from_str_radix(local_port, 16).ok()? == port)
        .then(|| fields.get(9)?.parse().ok())
        .flatten()
}

/// Now as seconds since the Unix epoch, for events that other processes compare with theirs.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_files_limit_is_read() {
        let (soft, hard) = open_files_limit().expect("Linux has /proc/self/limits");
        assert!(soft > 0 && soft <= hard);
    }

    #[test]
    fn too_many_connections_for_the_descriptor_limit_are_refused_with_the_way_out() {
        assert_eq!(descriptors_short(19_000, Some((20_000, 20_000))), None);
        let why = descriptors_short(30_000, Some((20_000, 20_000))).unwrap();
        assert!(why.contains("30016 file descriptors"), "{why}");
        assert!(why.contains("at most 19984 each"), "{why}");
        assert!(!why.contains("ulimit -n 20000`"), "{why}");
        let why = descriptors_short(5_000, Some((1_024, 20_000))).unwrap();
        assert!(why.contains("`ulimit -n 5016`"), "{why}");
    }

    #[test]
    fn connect_errors_name_the_limit() {
        let addr: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        let ports = connect_error(
            &io::Error::from(io::ErrorKind::AddrNotAvailable),
            28_000,
            addr,
        );
        assert!(ports.contains("out of local ports after 28000"), "{ports}");
        let fds = connect_error(&io::Error::from_raw_os_error(24), 19_000, addr);
        assert!(fds.contains("out of file descriptors after 19000"), "{fds}");
    }

    #[test]
    fn the_server_pid_must_be_the_process_listening_at_the_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(check_serves(std::process::id(), addr), Ok(()));
        drop(listener);
        let wrong = check_serves(std::process::id(), addr).unwrap_err();
        assert!(wrong.contains("does not listen on port"), "{wrong}");
        let gone = check_serves(u32::MAX, addr).unwrap_err();
        assert!(gone.contains("no such process"), "{gone}");
    }

    #[test]
    fn a_proc_net_tcp_line_gives_its_listeners_inode() {
        let listen = "   0: 0100007F:251D 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0";
        assert_eq!(listener(listen, 0x251D), Some(4242));
        assert_eq!(listener(listen, 9001), None);
        let established = listen.replace(" 0A ", " 01 ");
        assert_eq!(listener(&established, 0x251D), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let sample = ProcessSample::of(std::process::id()).unwrap();
        assert!(sample.rss_bytes > 0);
        assert!(ProcessSample::of(u32::MAX).is_err());
    }
}
