//! Parsing of sizes ("16MiB") and durations ("10s") given on the command line.

use std::time::Duration;

/// Parses a byte size: a number (whole or decimal) with an optional unit B, K/KiB, M/MiB,
/// G/GiB (powers of 1024, case-insensitive); a fraction of a byte is dropped.
pub fn parse_size(text: &str) -> Result<usize, String> {
    const FORM: &str = "a number and a unit, like 512KiB, 1.5MiB or 16MiB (B, KiB, MiB, GiB)";
    let (number, unit) = split_unit(text);
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("'{text}' is not a size: use {FORM}")),
    };
    let not_a_size = || format!("'{text}' is not a size: use {FORM}");
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    let well_formed = digits(whole)
        && digits(fraction)
        && !(whole.is_empty() && fraction.is_empty())
        && !number.ends_with('.')
        && fraction.len() <= 9;
    if !well_formed {
        return Err(not_a_size());
    }
    let too_large = || format!("'{text}' is too large");
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let part = match fraction {
        "" => 0,
        fraction => {
            let digits: u64 = fraction.parse().map_err(|_| not_a_size())?;
            let part = u128::from(digits) * u128::from(scale) / 10u128.pow(fraction.len() as u32);
            u64::try_from(part).map_err(|_| too_large())?
        }
    };
    whole
        .checked_mul(scale)
        .and_then(|bytes| bytes.checked_add(part))
        .and_then(|bytes| usize::try_from(bytes).ok())
        .ok_or_else(too_large)
}

/// Checks an address to listen on: HOST:PORT, such as 127.0.0.1:9001, [::1]:9001 or
/// localhost:9001.
pub fn parse_bind(text: &str) -> Result<String, String> {
    let port = text
        .rsplit_once(':')
        .map(|(host, port)| (host, port.parse::<u16>()));
    match port {
        Some((host, Ok(_))) if !host.is_empty() && !host.ends_with(':') => Ok(text.to_string()),
        _ => Err(format!(
            "'{text}' is not HOST:PORT: use an address and a port, like 127.0.0.1:9001 \
             (port 0 picks a free one)"
        )),
    }
}

/// Parses a duration: a number with an optional unit ms, s or m (seconds when absent).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split_unit(text);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 10s"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "" | "s" => Ok(Duration::from_secs(value)),
        "m" | "min" => Ok(Duration::from_secs(value.saturating_mul(60))),
        "h" => Ok(Duration::from_secs(value.saturating_mul(3600))),
        _ => Err(format!(
            "unknown duration unit '{unit}' (use ms, s, m or h)"
        )),
    }
}

fn split_unit(text: &str) -> (&str, &str) {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    (&text[..digits], text[digits..].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("8KiB"), Ok(8192));
        assert_eq!(parse_size("8k"), Ok(8192));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("1.5MiB"), Ok(3 << 19));
        assert_eq!(parse_size("0.5k"), Ok(512));
        assert_eq!(parse_size(".25KiB"), Ok(256));
        assert!(parse_size("lots")
            .unwrap_err()
            .contains("like 512KiB, 1.5MiB"));
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("1.2.3MiB").is_err());
        assert!(parse_size("1.MiB").is_err());
        assert!(parse_size("99999999999GiB")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn bind_addresses_need_a_port() {
        assert!(parse_bind("127.0.0.1:9001").is_ok());
        assert!(parse_bind("[::1]:0").is_ok());
        assert!(parse_bind("localhost:80").is_ok());
        assert!(parse_bind("127.0.0.1").unwrap_err().contains("HOST:PORT"));
        assert!(parse_bind(":9001").is_err());
        assert!(parse_bind("::1").is_err());
        assert!(parse_bind("host:http").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("1d").is_err());
    }
}
