//! `--log-format json`: one JSON object per log line on stderr, for log pipelines.
//!
//! Every line has `ts` (RFC 3339, UTC, milliseconds), `level`, `target` and `msg`; the server's
//! connection events add the key-values they were logged with: `peer`, `path`, `id` (the
//! connection id), `status` (an HTTP refusal), `code` and `reason` (a close).

use std::fmt::Write as _;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use log::kv::{Error, Key, Value, VisitSource};
use log::{LevelFilter, Log, Metadata, Record};
use serde_json::Value as Json;

/// The JSON-lines logger.
pub struct JsonLogger {
    level: LevelFilter,
    /// For records of rustls ([`super::serve::rustls_log_level`]).
    rustls: LevelFilter,
}

impl JsonLogger {
    /// Installs the logger for records at `level` and above.
    pub fn init(level: LevelFilter) -> Result<(), log::SetLoggerError> {
        let rustls = super::serve::rustls_log_level(level);
        log::set_boxed_logger(Box::new(JsonLogger { level, rustls }))?;
        log::set_max_level(level);
        Ok(())
    }
}

impl Log for JsonLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        let rustls = metadata.target().starts_with("rustls");
        metadata.level() <= if rustls { self.rustls } else { self.level }
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = to_json(record, SystemTime::now());
        line.push('\n');
        // One write per line, so lines from different threads never interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// The record as one JSON object: `ts`, `level`, `target` and `msg` first, then its
/// key-values.
fn to_json(record: &Record<'_>, now: SystemTime) -> String {
    let mut line = String::with_capacity(256);
    let _ = write!(
        line,
        "{{\"ts\":\"{}\",\"level\":\"{}\",\"target\":{},\"msg\":{}",
        rfc3339(now),
        record.level(),
        Json::from(record.target()),
        Json::from(record.args().to_string()),
    );
    let _ = record.key_values().visit(&mut Fields(&mut line));
    line.push('}');
    line
}

/// Appends a record's key-values: integers stay numbers, anything else is its display form.
struct Fields<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), Error> {
        let value = match value.to_u64() {
            Some(number) => Json::from(number),
            None => Json::String(value.to_string()),
        };
        let _ = write!(self.0, ",{}:{value}", Json::from(key.as_str()));
        Ok(())
    }
}

/// `2026-12-01T05:40:00.123Z`.
fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since.subsec_millis()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at = |secs: u64, ms: u64| {
            rfc3339(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_795_990_861, 250), "2026-11-29T22:21:01.250Z");
    }

    #[test]
    fn a_record_with_key_values_is_one_object() {
        let peer = "127.0.0.1:5000";
        let kvs: [(&str, Value<'_>); 3] = [
            ("peer", Value::from(peer)),
            ("code", Value::from(1009u16)),
            ("reason", Value::from("message \"too\" big")),
        ];
        let args = format_args!("closed");
        let record = Record::builder()
            .level(log::Level::Info)
            .target("wsloop")
            .args(args)
            .key_values(&kvs)
            .build();
        let line = to_json(&record, UNIX_EPOCH);
        let parsed: Json = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["level"], "INFO");
        assert_eq!(parsed["msg"], "closed");
        assert_eq!(parsed["peer"], peer);
        assert_eq!(parsed["code"], 1009);
        assert_eq!(parsed["reason"], "message \"too\" big");
        assert_eq!(parsed["ts"], "1970-01-01T00:00:00.000Z");
        assert!(!line.contains('\n'));
        assert!(line.starts_with("{\"ts\":"), "{line}");
    }
}
