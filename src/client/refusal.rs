//! A refused upgrade: the reason the server gave in its response body, read within bounds and
//! made safe to print on one line.

use std::io::Read;
use std::time::Duration;

use super::stream::Stream;

/// The most body bytes read for a reason.
const MAX_BODY: usize = 1024;
/// The most characters of a reason kept.
const MAX_REASON_CHARS: usize = 200;
/// How long the rest of a body is waited for: a server that sent its head has its body ready.
const BODY_WAIT: Duration = Duration::from_secs(1);

/// The reason in the body of a refusal whose bytes so far are `response` (the head and what
/// followed it in the same reads): the body's first line, from a plain-text body only (an
/// HTML page is not one line), at most [`MAX_REASON_CHARS`] characters without control
/// characters. Empty when there is none or it cannot be read in time.
pub(super) fn body_reason(stream: &mut Stream, response: &[u8]) -> String {
    let Some(head_len) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return String::new();
    };
    let head_len = head_len + 4;
    let (plain_text, length) = describe(&response[..head_len]);
    if !plain_text {
        return String::new();
    }
    let wanted = length.unwrap_or(MAX_BODY).min(MAX_BODY);
    let mut body = response[head_len..].to_vec();
    body.truncate(wanted);
    if body.len() < wanted && stream.set_read_timeout(Some(BODY_WAIT)).is_ok() {
        let mut chunk = [0u8; MAX_BODY];
        while body.len() < wanted {
            match stream.read(&mut chunk[..wanted - body.len()]) {
                Ok(n @ 1..) => body.extend_from_slice(&chunk[..n]),
                // The end, a timeout or a failure: what arrived is all there is.
                _ => break,
            }
        }
    }
    one_line(&String::from_utf8_lossy(&body))
}

/// Whether a response head announces plain text (or nothing), and its `Content-Length`.
fn describe(head: &[u8]) -> (bool, Option<usize>) {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    if response.parse(head).is_err() {
        return (false, None);
    }
    let value = |name: &str| {
        (response.headers.iter())
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    let plain_text = value("Content-Type").is_none_or(|t| {
        t.get(..10)
            .is_some_and(|t| t.eq_ignore_ascii_case("text/plain"))
    });
    let length = value("Content-Length").and_then(|v| v.parse().ok());
    (plain_text, length)
}

/// The first line of `text` with something in it, without control characters, trimmed and cut
/// to [`MAX_REASON_CHARS`] characters (an ellipsis says it was cut).
pub(super) fn one_line(text: &str) -> String {
    let Some(line) = text.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return String::new();
    };
    let clean: String = line.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.trim();
    match clean.char_indices().nth(MAX_REASON_CHARS) {
        Some((cut, _)) => format!("{}…", &clean[..cut]),
        None => clean.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_one_clean_bounded_line() {
        assert_eq!(one_line("origin not allowed\n"), "origin not allowed");
        assert_eq!(one_line("\r\n  \n first \r\nsecond"), "first");
        assert_eq!(one_line("\x1b[31mred\x07 alert\u{9b}"), "[31mred alert");
        assert_eq!(one_line(""), "");
        let long = "é".repeat(300);
        let cut = one_line(&long);
        assert_eq!(cut.chars().count(), MAX_REASON_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn only_plain_text_bodies_are_read() {
        let head = |extra: &str| format!("HTTP/1.1 403 Forbidden\r\n{extra}\r\n").into_bytes();
        assert_eq!(describe(&head("")), (true, None));
        let text = head("Content-Type: text/plain; charset=utf-8\r\nContent-Length: 19\r\n");
        assert_eq!(describe(&text), (true, Some(19)));
        assert_eq!(
            describe(&head("Content-Type: text/html\r\n")),
            (false, None)
        );
    }
}
