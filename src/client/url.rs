//! `ws://host[:port][/path][?query]` URLs (RFC 6455 §3).

use std::fmt;

/// The parts of a `ws://` URL a client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port; 80 when absent.
    pub port: u16,
    /// Path and query, at least `/`.
    pub resource: String,
}

impl WsUrl {
    /// Parses a `ws://` URL. `wss://` is refused: TLS is not built in yet.
    pub fn parse(url: &str) -> Result<WsUrl, String> {
        let rest = if let Some(rest) = url.strip_prefix("ws://") {
            rest
        } else if url.starts_with("wss://") {
            return Err("wss:// (TLS) is not supported yet; use ws://".into());
        } else {
            return Err(format!("'{url}' is not a ws:// URL"));
        };
        let (authority, resource) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        let resource = resource.split('#').next().unwrap_or("/").to_string();
        let (host, port) = split_host_port(authority)?;
        if host.is_empty() {
            return Err(format!("'{url}' has no host"));
        }
        Ok(WsUrl {
            host: host.to_string(),
            port,
            resource,
        })
    }

    /// The path without the query string.
    pub fn path(&self) -> &str {
        self.resource.split('?').next().unwrap_or("/")
    }

    /// The `Host` header value (§4.1 item 4): the port only when it is not 80.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for WsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ws://{}{}", self.host_header(), self.resource)
    }
}

fn split_host_port(authority: &str) -> Result<(&str, u16), String> {
    let bad_port = |p: &str| format!("'{p}' is not a port number");
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("unclosed '[' in the host")?;
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, port.parse().map_err(|_| bad_port(port))?)),
            None if after.is_empty() => Ok((host, 80)),
            None => Err(format!("unexpected '{after}' after the host")),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Ok((host, port.parse().map_err(|_| bad_port(port))?)),
        None => Ok((authority, 80)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let url = WsUrl::parse("ws://127.0.0.1:9001/chat?x=1").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.resource.as_str()),
            ("127.0.0.1", 9001, "/chat?x=1")
        );
        assert_eq!(url.path(), "/chat");
        let url = WsUrl::parse("ws://example.com").unwrap();
        assert_eq!(
            (url.port, url.resource.as_str(), url.host_header()),
            (80, "/", "example.com".into())
        );
        let url = WsUrl::parse("ws://[::1]:9001/").unwrap();
        assert_eq!(
            (url.host.as_str(), url.host_header()),
            ("::1", "[::1]:9001".into())
        );
        assert_eq!(WsUrl::parse("ws://h?q").unwrap().resource, "/?q");
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        assert!(WsUrl::parse("http://x/").is_err());
        assert!(WsUrl::parse("wss://x/").unwrap_err().contains("TLS"));
        assert!(WsUrl::parse("ws://x:port/").is_err());
        assert!(WsUrl::parse("ws://:9001/").is_err());
        assert!(WsUrl::parse("ws://x:70000/").is_err());
    }
}
