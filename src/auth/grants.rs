//! Channel permissions: which channels a connection may subscribe to or publish on.

use std::fmt;

/// One entry of a permission list: a channel name, or a prefix when it ends in `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    Prefix(String),
}

/// A list of channel names and prefixes (`"news"`, `"room:*"`; `"*"` is every channel),
/// as the `subs` and `pubs` claims of a token carry them.
///
/// ```
/// use wsloop::auth::Grants;
///
/// let grants = Grants::parse(["news", "room:*"]);
/// assert!(grants.allows("news") && grants.allows("room:42"));
/// assert!(!grants.allows("newsroom") && !grants.allows("admin"));
/// assert!(Grants::any().allows("anything") && !Grants::none().allows("news"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grants(Vec<Pattern>);

impl Grants {
    /// Every channel (`*`).
    pub fn any() -> Grants {
        Grants(vec![Pattern::Prefix(String::new())])
    }

    /// No channel.
    pub fn none() -> Grants {
        Grants(Vec::new())
    }

    /// The list as written: each entry an exact name, or a prefix when it ends in `*`.
    pub fn parse<S: AsRef<str>>(entries: impl IntoIterator<Item = S>) -> Grants {
        let pattern = |entry: &str| match entry.strip_suffix('*') {
            Some(prefix) => Pattern::Prefix(prefix.to_string()),
            None => Pattern::Exact(entry.to_string()),
        };
        Grants(entries.into_iter().map(|e| pattern(e.as_ref())).collect())
    }

    /// Whether `channel` is granted.
    pub fn allows(&self, channel: &str) -> bool {
        self.0.iter().any(|pattern| match pattern {
            Pattern::Exact(name) => name == channel,
            Pattern::Prefix(prefix) => channel.starts_with(prefix.as_str()),
        })
    }
}

impl fmt::Display for Grants {
    /// The list as a flag takes it: entries separated by commas, `-` for none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("-");
        }
        for (i, pattern) in self.0.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            match pattern {
                Pattern::Exact(name) => write!(f, "{comma}{name}")?,
                Pattern::Prefix(prefix) => write!(f, "{comma}{prefix}*")?,
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for Grants {
    type Err = String;

    /// A comma-separated list (`news,room:*`); `-` or nothing is no channel, and `-` cannot
    /// stand in a list.
    fn from_str(list: &str) -> Result<Grants, Self::Err> {
        if list.trim() == "-" {
            return Ok(Grants::none());
        }
        let entries: Vec<&str> = (list.split(',').map(str::trim))
            .filter(|e| !e.is_empty())
            .collect();
        if entries.contains(&"-") {
            return Err("'-' means no channel, alone; it cannot be one of a list".into());
        }
        Ok(Grants::parse(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_and_prefixes() {
        let grants = Grants::parse(["news", "room:*", "a*"]);
        let cases = [
            ("news", true),
            ("news2", false),
            ("room:", true),
            ("room:lobby", true),
            ("room", false),
            ("abc", true),
            ("b", false),
        ];
        for (channel, allowed) in cases {
            assert_eq!(grants.allows(channel), allowed, "{channel}");
        }
    }

    #[test]
    fn flag_lists_round_trip() {
        for list in ["news,room:*", "*", "-"] {
            let grants: Grants = list.parse().unwrap();
            assert_eq!(grants.to_string(), list);
        }
        assert_eq!("".parse::<Grants>().unwrap(), Grants::none());
        assert_eq!(
            " news , room:* ".parse(),
            Ok(Grants::parse(["news", "room:*"]))
        );
        assert!("-,news".parse::<Grants>().is_err());
        assert!("*".parse::<Grants>().unwrap().allows(""));
    }
}
