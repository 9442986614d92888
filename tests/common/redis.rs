//! A real redis-server for the cluster tests (Debian's package; `.ci/run` installs it).

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wsloop::ClusterUrl;

use super::TIMEOUT;

/// Whether `redis-server` can run here. Where it cannot, a cluster test skips with a message
/// (a newcomer's `cargo test` works without it), unless `WSLOOP_REQUIRE_REDIS` is set, as CI
/// sets it: there a missing redis-server fails the test.
pub fn available() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        assert!(
            std::env::var_os("WSLOOP_REQUIRE_REDIS").is_none(),
            "WSLOOP_REQUIRE_REDIS is set and redis-server is missing"
        );
        eprintln!("skipped: redis-server is not installed (apt-get install redis-server)");
    }
    found
}

/// A redis-server on a free port of 127.0.0.1, killed when dropped.
pub struct Redis {
    child: Child,
    pub port: u16,
}

impl Redis {
    pub fn start_on(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is needed for the cluster tests (apt-get install redis-server)");
        let deadline = Instant::now() + TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { child, port }
    }

    pub fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Redis::start_on(port)
    }

    pub fn url(&self) -> ClusterUrl {
        ClusterUrl::parse(&format!("redis://127.0.0.1:{}", self.port)).unwrap()
    }

    /// Runs one command and returns its reply's first line (a plain socket and RESP).
    pub fn command(&self, args: &[&str]) -> String {
        use std::io::{BufRead, BufReader, Write};
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut command = format!("*{}\r\n", args.len());
        for arg in args {
            command += &format!("${}\r\n{arg}\r\n", arg.len());
        }
        (&stream).write_all(command.as_bytes()).unwrap();
        let mut line = String::new();
        BufReader::new(&stream)
            .read_line(&mut line)
            .expect("a reply from redis");
        line.trim_end().to_string()
    }

    pub fn stop(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
