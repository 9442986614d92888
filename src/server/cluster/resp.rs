//! The little of RESP2 (the Redis serialization protocol) the cluster bridge speaks: commands
//! out as arrays of bulk strings, and replies and pub/sub pushes in.
//! <https://redis.io/docs/latest/develop/reference/protocol-spec/>

use std::fmt;

/// A bulk string longer than this is refused (Redis itself allows 512 MB; the bridge only
/// carries WebSocket messages, which the server's limits keep far smaller).
const MAX_BULK: usize = 256 << 20;
/// Array elements at most (a pub/sub push has three or four).
const MAX_ARRAY: usize = 1024;

/// A value Redis sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Simple(String),
    Error(String),
    Integer(i64),
    /// `None`: the null bulk string.
    Bulk(Option<Vec<u8>>),
    /// `None`: the null array.
    Array(Option<Vec<Value>>),
}

/// Bytes that are not RESP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RespError(String);

impl std::error::Error for RespError {}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad reply from Redis: {}", self.0)
    }
}

/// Appends the command `args` (an array of bulk strings) to `out`.
pub(crate) fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Arrays inside arrays at most: nothing the bridge reads nests deeper (a stream read: the
/// reply, its entries, an entry, its fields), and a bound keeps a bad peer from exhausting the
/// stack.
const MAX_DEPTH: usize = 4;

/// The first value in `input` and the bytes it took, or `None` if it is not complete yet.
pub(crate) fn parse(input: &[u8]) -> Result<Option<(Value, usize)>, RespError> {
    parse_nested(input, 0)
}

fn parse_nested(input: &[u8], depth: usize) -> Result<Option<(Value, usize)>, RespError> {
    let Some(line_end) = input.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let Some((&kind, line)) = input[..line_end].split_first() else {
        return Err(RespError("an empty line".into()));
    };
    let text =
        std::str::from_utf8(line).map_err(|_| RespError("a line that is not UTF-8".into()))?;
    let after = line_end + 2;
    let number = || -> Result<i64, RespError> {
        text.parse()
            .map_err(|_| RespError(format!("{text:?} is not a number")))
    };
    match kind {
        b'+' => Ok(Some((Value::Simple(text.into()), after))),
        b'-' => Ok(Some((Value::Error(text.into()), after))),
        b':' => Ok(Some((Value::Integer(number()?), after))),
        b'$' => {
            let len = number()?;
            if len < 0 {
                return Ok(Some((Value::Bulk(None), after)));
            }
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > MAX_BULK {
                return Err(RespError(format!("a bulk string of {len} bytes")));
            }
            if input.len() < after + len + 2 {
                return Ok(None);
            }
            if &input[after + len..after + len + 2] != b"\r\n" {
                return Err(RespError("a bulk string without its CRLF".into()));
            }
            let bytes = input[after..after + len].to_vec();
            Ok(Some((Value::Bulk(Some(bytes)), after + len + 2)))
        }
        b'*' => {
            let count = number()?;
            if count < 0 {
                return Ok(Some((Value::Array(None), after)));
            }
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            if count > MAX_ARRAY {
                return Err(RespError(format!("an array of {count} values")));
            }
            if depth == MAX_DEPTH {
                return Err(RespError("arrays nested too deep".into()));
            }
            let mut values = Vec::with_capacity(count);
            let mut used = after;
            for _ in 0..count {
                match parse_nested(&input[used..], depth + 1)? {
                    Some((value, n)) => {
                        values.push(value);
                        used += n;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Value::Array(Some(values)), used)))
        }
        other => Err(RespError(format!("unknown type byte {other:#04x}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b"PUBLISH", b"ch", b"a\r\nb"]);
        assert_eq!(out, b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$4\r\na\r\nb\r\n");
    }

    #[test]
    fn a_push_parses_whole_and_not_before() {
        let push = b"*4\r\n$8\r\npmessage\r\n$3\r\nws*\r\n$4\r\nws:t\r\n$5\r\nhello\r\n:1\r\n";
        let bulk = |s: &[u8]| Value::Bulk(Some(s.to_vec()));
        let expected = Value::Array(Some(vec![
            bulk(b"pmessage"),
            bulk(b"ws*"),
            bulk(b"ws:t"),
            bulk(b"hello"),
        ]));
        let whole = push.len() - 4;
        for cut in 0..whole {
            assert_eq!(parse(&push[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(parse(push), Ok(Some((expected, whole))));
        assert_eq!(parse(&push[whole..]), Ok(Some((Value::Integer(1), 4))));
    }

    #[test]
    fn simple_errors_nulls_and_garbage() {
        assert_eq!(parse(b"+OK\r\n"), Ok(Some((Value::Simple("OK".into()), 5))));
        assert_eq!(
            parse(b"-ERR no\r\n"),
            Ok(Some((Value::Error("ERR no".into()), 9)))
        );
        assert_eq!(parse(b"$-1\r\n"), Ok(Some((Value::Bulk(None), 5))));
        assert_eq!(parse(b"*-1\r\n"), Ok(Some((Value::Array(None), 5))));
        assert!(parse(b"?x\r\n").is_err());
        assert!(parse(b":x\r\n").is_err());
        assert!(parse(b"$3\r\nabcXY").is_err());
        assert!(parse(b"$999999999999\r\n").is_err());
        let stream_read = b"*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n";
        assert!(
            parse(stream_read).is_ok_and(|v| v.is_some()),
            "a stream read"
        );
        assert!(
            parse(&[&b"*1\r\n"[..], stream_read].concat()).is_err(),
            "too deep"
        );
        assert!(
            parse(&b"*1\r\n".repeat(100_000)).is_err(),
            "no stack overflow"
        );
    }
}
