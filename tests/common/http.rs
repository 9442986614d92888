//! A tiny HTTP/1.1 client for the API tests: requests written as given (pipelined if wanted),
//! responses read one at a time by their Content-Length, every read bounded in time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::Value;

use super::TIMEOUT;

/// One kept-alive connection.
pub struct Http {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

/// A response: status, headers (names lower-cased) and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        (self.headers.iter())
            .find(|(n, _)| n == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// A request's bytes: `method path`, the headers given (each `Name: value`), and `body` with
/// its length and JSON type when there is one.
pub fn request(method: &str, path: &str, headers: &[&str], body: Option<&str>) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
    for header in headers {
        out += header;
        out += "\r\n";
    }
    if let Some(body) = body {
        out += &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    out += "\r\n";
    if let Some(body) = body {
        out += body;
    }
    out.into_bytes()
}

impl Http {
    pub fn connect(addr: SocketAddr) -> Http {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        Http {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    /// Sends one request and reads its reply.
    pub fn ask(&mut self, method: &str, path: &str, headers: &[&str], body: Option<&str>) -> Reply {
        self.send(&request(method, path, headers, body));
        self.read().expect("a reply")
    }

    /// The next response; `None` when the server closed the connection before one began.
    pub fn read(&mut self) -> Option<Reply> {
        let mut line = String::new();
        if self
            .reader
            .read_line(&mut line)
            .expect("read a status line")
            == 0
        {
            return None;
        }
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a status line: {line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("read a header");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("a header line");
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
        let length: usize = (headers.iter())
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).expect("read the body");
        Some(Reply {
            status,
            headers,
            body,
        })
    }

    /// Whether the server closed the connection (reads end) with nothing more to read.
    pub fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).is_ok() && rest.is_empty()
    }
}
