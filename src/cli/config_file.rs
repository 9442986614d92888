//! The configuration file (`--config FILE`, TOML): each key is a flag's long name, its value
//! what the flag takes, written as TOML. A table names a group of flags by their common
//! prefix: `[tls] cert = "..."` is `tls-cert`, `[cluster] ttl = "15s"` is `cluster-ttl`.
//! Underscores may stand for dashes (`max_connections`).
//!
//! This module only reads the file: which keys it sets, to which text values, on which line.
//! Whether a key exists and whether its value parses is the flags' business (`layers`).

use std::fmt;
use std::path::{Path, PathBuf};

use toml_edit::{Item, Value};

/// One key the file sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The flag's long name, dashes between words (`max-connections`).
    pub key: String,
    /// Its value as the flag would get it on the command line; several for a list
    /// (`allow-origin = ["https://a", "https://b"]`).
    pub values: Vec<String>,
    /// A TOML boolean (for a switch such as `metrics`).
    pub boolean: Option<bool>,
    /// Where: 1-based line.
    pub line: usize,
}

/// A file that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub path: PathBuf,
    /// 1-based line and column, when the problem has a place.
    pub at: Option<(usize, usize)>,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((line, column)) => write!(
                f,
                "{}:{line}:{column}: {}",
                self.path.display(),
                self.message
            ),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// The settings of the file at `path`, in the order written.
pub fn read(path: &Path) -> Result<Vec<Setting>, FileError> {
    let text = std::fs::read_to_string(path).map_err(|e| FileError {
        path: path.to_path_buf(),
        at: None,
        message: format!("cannot read it: {e}"),
    })?;
    parse(&text).map_err(|(at, message)| FileError {
        path: path.to_path_buf(),
        at: at.map(|offset| line_column(&text, offset)),
        message,
    })
}

/// The settings in `text`; on error, the byte offset of the problem and what it is.
pub fn parse(text: &str) -> Result<Vec<Setting>, (Option<usize>, String)> {
    let document = toml_edit::Document::parse(text).map_err(|e| {
        let at = e.span().map(|span| span.start);
        (at, e.message().trim().to_string())
    })?;
    let line = |span: Option<std::ops::Range<usize>>| {
        span.map_or(0, |span| line_column(text, span.start).0)
    };
    let mut settings = Vec::new();
    for (name, item) in document.as_table().iter() {
        let key_span = document.as_table().key(name).and_then(|k| k.span());
        match item {
            Item::Table(table) => {
                // `[auth.jwt]` and such: a table in a table, which get_values() passes over.
                let nested =
                    (table.iter()).find(|(_, item)| item.is_table() || item.is_array_of_tables());
                if let Some((inner, _)) = nested {
                    let at = table
                        .key(inner)
                        .and_then(|k| k.span())
                        .map(|span| span.start);
                    let message =
                        format!("[{name}.{inner}]: tables one level deep only ([tls] cert = ...)");
                    return Err((at.or(key_span.map(|span| span.start)), message));
                }
                for (keys, value) in table.get_values() {
                    let span = keys.last().and_then(|k| k.span());
                    let names: Vec<&str> = keys.iter().map(|k| k.get()).collect();
                    let key = format!("{name}.{}", names.join("."));
                    settings.push(setting(&key, value, line(span))?);
                }
            }
            Item::Value(Value::InlineTable(table)) => {
                for (keys, value) in table.get_values() {
                    let names: Vec<&str> = keys.iter().map(|k| k.get()).collect();
                    let key = format!("{name}.{}", names.join("."));
                    settings.push(setting(&key, value, line(key_span.clone()))?);
                }
            }
            Item::Value(value) => settings.push(setting(name, value, line(key_span))?),
            Item::ArrayOfTables(_) => {
                let at = key_span.map(|span| span.start);
                return Err((at, format!("[[{name}]]: no key takes a list of tables")));
            }
            Item::None => {}
        }
    }
    Ok(settings)
}

/// A key's setting: `key` as written (dotted for a table's), its value in text.
fn setting(key: &str, value: &Value, line: usize) -> Result<Setting, (Option<usize>, String)> {
    let at = value.span().map(|span| span.start);
    let flag = key.replace(['.', '_'], "-");
    if key.matches('.').count() > 1 {
        let message = format!("{key}: tables one level deep only ([tls] cert = ...)");
        return Err((at, message));
    }
    let scalar = |value: &Value| -> Result<String, String> {
        match value {
            Value::String(s) => Ok(s.value().clone()),
            Value::Integer(n) => Ok(n.value().to_string()),
            Value::Float(x) => Ok(x.value().to_string()),
            Value::Boolean(b) => Ok(b.value().to_string()),
            Value::Datetime(_) => Err(format!("{key}: a date is not a value any key takes")),
            Value::Array(_) | Value::InlineTable(_) => Err(format!(
                "{key}: a list holds strings or numbers, not lists or tables"
            )),
        }
    };
    let (values, boolean) = match value {
        Value::Array(items) => {
            let values: Result<Vec<String>, String> = items.iter().map(scalar).collect();
            (values.map_err(|e| (at, e))?, None)
        }
        Value::Boolean(b) => (vec![b.value().to_string()], Some(*b.value())),
        other => (vec![scalar(other).map_err(|e| (at, e))?], None),
    };
    Ok(Setting {
        key: flag,
        values,
        boolean,
        line,
    })
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The known key closest to `key` in spelling, if one is close enough to be a typo.
pub fn closest<'a>(key: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (edit_distance(key, k), k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<(String, Vec<String>, usize)> {
        let settings = parse(text).unwrap();
        (settings.into_iter())
            .map(|s| (s.key, s.values, s.line))
            .collect()
    }

    #[test]
    fn keys_are_flag_names_and_tables_their_prefixes() {
        let text = "bind = \"0.0.0.0:80\"\nmax_connections = 5000\nmetrics = true\n\n\
                    allow-origin = [\"https://a\", \"https://b\"]\n[tls]\ncert = \"c.pem\"\n\
                    key = \"k.pem\"\n[cluster]\nttl = \"15s\"\n";
        let got = keys(text);
        let want: Vec<(String, Vec<String>, usize)> = vec![
            ("bind".into(), vec!["0.0.0.0:80".into()], 1),
            ("max-connections".into(), vec!["5000".into()], 2),
            ("metrics".into(), vec!["true".into()], 3),
            (
                "allow-origin".into(),
                vec!["https://a".into(), "https://b".into()],
                5,
            ),
            ("tls-cert".into(), vec!["c.pem".into()], 7),
            ("tls-key".into(), vec!["k.pem".into()], 8),
            ("cluster-ttl".into(), vec!["15s".into()], 10),
        ];
        assert_eq!(got, want);
        assert_eq!(keys("tls = { cert = \"c\" }")[0].0, "tls-cert");
    }

    #[test]
    fn what_is_not_toml_or_not_a_value_says_where() {
        let (at, message) = parse("bind = \"x\"\nmax-connections = = 1\n").unwrap_err();
        assert_eq!(
            line_column("bind = \"x\"\nmax-connections = = 1\n", at.unwrap()),
            (2, 19)
        );
        assert!(!message.is_empty());
        assert!(parse("a.b.c = 1").unwrap_err().1.contains("one level"));
        // A table in a table is refused, not passed over (it could hold auth settings).
        let (_, message) = parse("[auth.jwt]\nsecret-file = \"/x\"\n").unwrap_err();
        assert!(
            message.contains("[auth.jwt]") && message.contains("one level"),
            "{message}"
        );
        assert!(parse("[tls]\ncert = \"c\"\n[tls.x]\ny = 1\n").is_err());
        assert!(parse("[made.up]\nx = 1\n").is_err());
        assert!(parse("[[x]]\na = 1")
            .unwrap_err()
            .1
            .contains("list of tables"));
        assert!(parse("when = 1979-05-27").unwrap_err().1.contains("date"));
        assert!(parse("allow-origin = [[1]]")
            .unwrap_err()
            .1
            .contains("not lists"));
    }

    #[test]
    fn a_typo_finds_the_key_it_meant() {
        let known = ["max-connections", "max-buffered", "bind", "tls-cert"];
        assert_eq!(closest("max-conections", known), Some("max-connections"));
        assert_eq!(closest("bnd", known), Some("bind"));
        assert_eq!(closest("tls-certificate", known), None);
        assert_eq!(closest("colour", known), None);
    }
}
