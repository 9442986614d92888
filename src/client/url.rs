//! `ws://` and `wss://` URLs: `ws[s]://host[:port][/path][?query]` (RFC 6455 §3).

use std::fmt;

/// The parts of a WebSocket URL a client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// `wss://`: the connection runs over TLS.
    pub secure: bool,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port; 80 when absent (443 for `wss://`).
    pub port: u16,
    /// Path and query, at least `/`.
    pub resource: String,
}

impl WsUrl {
    /// Parses a `ws://` or `wss://` URL; one without a scheme is taken as `ws://`, and
    /// `http://` or `https://` is refused with the scheme to use instead.
    pub fn parse(url: &str) -> Result<WsUrl, String> {
        let (secure, rest) = match url.split_once("://") {
            Some(("ws", rest)) => (false, rest),
            Some(("wss", rest)) => (true, rest),
            Some(("http", rest)) => return Err(format!("'{url}' is HTTP: use ws://{rest}")),
            Some(("https", rest)) => return Err(format!("'{url}' is HTTPS: use wss://{rest}")),
            Some((scheme, _)) => {
                return Err(format!("'{url}' has scheme {scheme}: use ws:// or wss://"))
            }
            None => (false, url),
        };
        let (authority, resource) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        let resource = resource.split('#').next().unwrap_or("/").to_string();
        let default_port = if secure { 443 } else { 80 };
        let (host, port) = split_host_port(authority, default_port)?;
        if host.is_empty() {
            return Err(format!("'{url}' has no host"));
        }
        Ok(WsUrl {
            secure,
            host: host.to_string(),
            port,
            resource,
        })
    }

    /// The path without the query string.
    pub fn path(&self) -> &str {
        self.resource.split('?').next().unwrap_or("/")
    }

    /// The `Host` header value (§4.1 item 4): the port only when it is not the scheme's.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.secure { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for WsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "wss" } else { "ws" };
        write!(f, "{scheme}://{}{}", self.host_header(), self.resource)
    }
}

fn split_host_port(authority: &str, default_port: u16) -> Result<(&str, u16), String> {
    let bad_port = |p: &str| format!("'{p}' is not a port number");
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("unclosed '[' in the host")?;
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, port.parse().map_err(|_| bad_port(port))?)),
            None if after.is_empty() => Ok((host, default_port)),
            None => Err(format!("unexpected '{after}' after the host")),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Ok((host, port.parse().map_err(|_| bad_port(port))?)),
        None => Ok((authority, default_port)),
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
        let url = WsUrl::parse("wss://example.com/chat").unwrap();
        assert!(url.secure);
        assert_eq!((url.port, url.host_header()), (443, "example.com".into()));
        assert_eq!(url.to_string(), "wss://example.com/chat");
        let url = WsUrl::parse("127.0.0.1:9001/echo").unwrap();
        assert_eq!((url.secure, url.port), (false, 9001));
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        assert!(WsUrl::parse("http://x/")
            .unwrap_err()
            .contains("use ws://x/"));
        assert!(WsUrl::parse("https://x/")
            .unwrap_err()
            .contains("use wss://x/"));
        assert!(WsUrl::parse("ftp://x/").is_err());
        assert!(WsUrl::parse("ws://x:port/").is_err());
        assert!(WsUrl::parse("ws://:9001/").is_err());
        assert!(WsUrl::parse("ws://x:70000/").is_err());
    }
}
