//! Where each server setting comes from. In order of precedence: a flag on the command line,
//! a `WSLOOP_*` environment variable (`WSLOOP_MAX_CONNECTIONS` for `--max-connections`), the
//! `--config` file, the flag's default.
//!
//! The values from variables and the file are checked by the flags' own parsers (so a size
//! or a duration means the same everywhere) and an error names the variable, or the file
//! and line; then they are handed to clap as if given on the command line, after the real
//! flags, which keep precedence because only what the command line left unset is added.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

use super::config_file::{self, Setting};

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env(String),
    /// The config file, at this line.
    File(usize),
    Default,
    /// Nowhere: the setting is off.
    Unset,
}

/// One setting: its key, its value, where that came from, and what it overrode.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub key: String,
    /// The value as text (several for a list), as clap holds it.
    pub values: Vec<String>,
    /// A switch (`metrics`): `values` is `["true"]` or `["false"]`.
    pub switch: bool,
    pub source: Source,
    /// Lower-precedence sources that set it too, each with its value.
    pub overridden: Vec<(Source, Vec<String>)>,
}

/// The server's settings, every layer applied.
#[derive(Debug)]
pub struct Layered {
    /// What clap made of the command line with the variables' and file's values added.
    pub matches: ArgMatches,
    pub settings: Vec<Resolved>,
    /// The config file read, if any.
    pub file: Option<PathBuf>,
}

/// Flags that are not settings.
const NOT_SETTINGS: [&str; 3] = ["help", "version", "config"];

/// The variable for flag `--long`.
pub fn env_name(long: &str) -> String {
    format!("WSLOOP_{}", long.to_ascii_uppercase().replace('-', "_"))
}

/// The settings the server's flags define, as (long name, the arg).
pub fn setting_args(command: &Command) -> impl Iterator<Item = (&str, &Arg)> {
    (command.get_arguments())
        .filter(|arg| !NOT_SETTINGS.contains(&arg.get_id().as_str()))
        .filter_map(|arg| arg.get_long().map(|long| (long, arg)))
}

/// Applies the layers to `argv` (whose first word is the program), with variables from
/// `env`. `first` is what clap made of `argv` alone.
pub fn resolve(
    command: &Command,
    argv: &[OsString],
    first: &ArgMatches,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Layered, String> {
    let file = (first.get_one::<PathBuf>("config").cloned()).or_else(|| {
        env("WSLOOP_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let from_file = match &file {
        Some(path) => read_file(command, path)?,
        None => Vec::new(),
    };
    let mut extra: Vec<OsString> = Vec::new();
    let mut settings = Vec::new();
    for (long, arg) in setting_args(command) {
        let id = arg.get_id().as_str();
        let on_command_line = first.value_source(id) == Some(ValueSource::CommandLine);
        let variable = env_name(long);
        let mut layers: Vec<(Source, Vec<String>)> = Vec::new();
        if let Some(text) = env(&variable).filter(|v| !v.is_empty()) {
            let values = env_values(arg, &text);
            let checked =
                check(command, arg, &values).map_err(|why| format!("{variable}: {why}"))?;
            layers.push((Source::Env(variable), checked));
        }
        if let Some(setting) = from_file.iter().find(|s| s.key == long) {
            let path = file.as_deref().unwrap_or(Path::new("-"));
            let checked = file_values(arg, setting)
                .and_then(|values| check(command, arg, &values))
                .map_err(|why| format!("{}:{}: {long}: {why}", path.display(), setting.line))?;
            layers.push((Source::File(setting.line), checked));
        }
        if !on_command_line {
            if let Some((_, values)) = layers.first() {
                for value in values {
                    if is_switch(arg) {
                        if value == "true" {
                            extra.push(format!("--{long}").into());
                        }
                    } else {
                        extra.push(format!("--{long}={value}").into());
                    }
                }
            }
        }
        let source = if on_command_line {
            Source::Flag
        } else {
            layers
                .first()
                .map(|(source, _)| source.clone())
                .unwrap_or(Source::Default)
        };
        let overridden = if on_command_line {
            layers
        } else {
            layers.into_iter().skip(1).collect()
        };
        settings.push(Resolved {
            key: long.to_string(),
            values: Vec::new(),
            switch: is_switch(arg),
            source,
            overridden,
        });
    }
    let all: Vec<OsString> = argv.iter().cloned().chain(extra).collect();
    let layered = all.len() > argv.len();
    let matches = command.clone().try_get_matches_from(&all).map_err(|e| {
        let from = " (from flags, WSLOOP_* variables and the config file together)";
        format!("{}{}", clap_message(&e), if layered { from } else { "" })
    })?;
    for (setting, (_, arg)) in settings.iter_mut().zip(setting_args(command)) {
        let id = arg.get_id().as_str();
        setting.values = (matches.get_raw(id).into_iter().flatten())
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        if setting.source == Source::Default && matches.value_source(id).is_none() {
            setting.source = Source::Unset;
        }
    }
    Ok(Layered {
        matches,
        settings,
        file,
    })
}

/// The file's settings, each a known key, none twice.
fn read_file(command: &Command, path: &Path) -> Result<Vec<Setting>, String> {
    let settings = config_file::read(path).map_err(|e| e.to_string())?;
    let known: Vec<&str> = setting_args(command).map(|(long, _)| long).collect();
    for (i, setting) in settings.iter().enumerate() {
        let at = format!("{}:{}", path.display(), setting.line);
        if !known.contains(&setting.key.as_str()) {
            let hint = match config_file::closest(&setting.key, known.iter().copied()) {
                Some(close) => format!("; did you mean {close:?}?"),
                None => "; `wsloop config default` lists every key".to_string(),
            };
            return Err(format!("{at}: unknown key {:?}{hint}", setting.key));
        }
        if let Some(first) = settings[..i].iter().find(|s| s.key == setting.key) {
            return Err(format!(
                "{at}: {} is set twice (first at line {})",
                setting.key, first.line
            ));
        }
    }
    Ok(settings)
}

fn is_switch(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::SetTrue)
}

fn is_list(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append)
}

/// A variable's text as the flag's values: a list is comma-separated.
fn env_values(arg: &Arg, text: &str) -> Vec<String> {
    if is_list(arg) {
        text.split(',').map(|v| v.trim().to_string()).collect()
    } else {
        vec![text.to_string()]
    }
}

/// A file setting's values, if the flag takes that many and that type.
fn file_values(arg: &Arg, setting: &Setting) -> Result<Vec<String>, String> {
    if is_switch(arg) {
        return match setting.boolean {
            Some(on) => Ok(vec![on.to_string()]),
            None => Err("takes true or false".into()),
        };
    }
    if setting.boolean.is_some() {
        return Err("takes a value, not true or false".into());
    }
    if setting.values.len() != 1 && !is_list(arg) {
        return Err("takes one value, not a list".into());
    }
    Ok(setting.values.clone())
}

/// `values` if the flag's parser takes each of them (a switch: a word for true or false).
fn check(command: &Command, arg: &Arg, values: &[String]) -> Result<Vec<String>, String> {
    if is_switch(arg) {
        let word = values
            .first()
            .map(|v| v.to_ascii_lowercase())
            .unwrap_or_default();
        return match word.as_str() {
            "true" | "1" | "yes" | "on" => Ok(vec!["true".into()]),
            "false" | "0" | "no" | "off" => Ok(vec!["false".into()]),
            _ => Err("expected true or false (1/0, yes/no, on/off)".into()),
        };
    }
    let long = arg.get_long().unwrap_or_default();
    for value in values {
        // The flag alone on a command line: its parser's verdict (its `requires` are not
        // this value's business).
        let alone = ["wsloop".to_string(), format!("--{long}={value}")];
        let Err(e) = command.clone().try_get_matches_from(alone) else {
            continue;
        };
        use clap::error::ErrorKind;
        if matches!(
            e.kind(),
            ErrorKind::MissingRequiredArgument | ErrorKind::ArgumentConflict
        ) {
            continue;
        }
        let why = match std::error::Error::source(&e) {
            Some(cause) if cause.is::<std::num::ParseIntError>() => {
                "expected a whole number".to_string()
            }
            Some(cause) => cause.to_string(),
            None => clap_message(&e),
        };
        // Said once: most parsers' messages quote the value already.
        return Err(if why.contains(value.as_str()) {
            why
        } else {
            format!("{value:?}: {why}")
        });
    }
    Ok(values.to_vec())
}

impl Source {
    /// How `config check` names it.
    pub fn describe(&self, file: Option<&Path>) -> String {
        match self {
            Source::Flag => "flag".into(),
            Source::Env(name) => format!("environment {name}"),
            Source::File(line) => {
                let path = file.map_or_else(|| "-".into(), |p| p.display().to_string());
                format!("{path}:{line}")
            }
            Source::Default => "default".into(),
            Source::Unset => "not set".into(),
        }
    }
}

/// A clap error in one line: its message and the arguments it lists, without the usage.
fn clap_message(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let lines: Vec<&str> = (rendered.lines())
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more"))
        .filter(|line| !line.is_empty() && !line.starts_with("tip:"))
        .collect();
    lines.join(" ").trim_start_matches("error: ").to_string()
}

/// Warnings for `WSLOOP_*` variables among `names` that are no setting but close to one
/// (a typo would otherwise pass unseen).
pub fn misspelt_variables(command: &Command, names: impl Iterator<Item = String>) -> Vec<String> {
    let known: Vec<String> = (setting_args(command))
        .map(|(long, _)| env_name(long))
        .chain(["WSLOOP_CONFIG".to_string()])
        .collect();
    names
        .filter(|name| name.starts_with("WSLOOP_") && !known.contains(name))
        .filter_map(|name| {
            let close = config_file::closest(&name, known.iter().map(String::as_str))?;
            Some(format!("{name} is not a setting; did you mean {close}?"))
        })
        .collect()
}

impl Layered {
    /// `message` (an error about some settings, naming them) with where each setting it
    /// names came from, when any came from a variable or the file:
    /// `ping-interval (5m) must be shorter than idle-timeout (60s) (ping-interval:
    /// wsloop.toml:3, idle-timeout: default)`.
    pub fn with_sources(&self, message: &str) -> String {
        let named = |key: &str| {
            message.match_indices(key).any(|(at, _)| {
                // A whole name, alone or as a flag (`--auth-leeway`).
                let before = message[..at].strip_suffix("--").unwrap_or(&message[..at]);
                let after = message[at + key.len()..].chars().next();
                let part = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '-');
                !part(before.chars().next_back()) && !part(after)
            })
        };
        let sources: Vec<String> = (self.settings.iter())
            .filter(|setting| named(&setting.key))
            .map(|setting| {
                format!(
                    "{}: {}",
                    setting.key,
                    setting.source.describe(self.file.as_deref())
                )
            })
            .collect();
        let layered = (self.settings.iter())
            .filter(|setting| named(&setting.key))
            .any(|setting| matches!(setting.source, Source::Env(_) | Source::File(_)));
        if !layered {
            message.to_string()
        } else {
            format!("{message} ({})", sources.join(", "))
        }
    }
}
