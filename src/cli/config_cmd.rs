//! `wsloop config check FILE` (the effective configuration, where each value came from, and
//! whether the server would start with it) and `wsloop config default` (a commented file
//! with every key and its default).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Subcommand};

use super::layers::{self, Layered, Source};
use super::Cli;

/// `wsloop config`'s subcommands.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check a configuration file: print the effective configuration (file, WSLOOP_*
    /// variables and defaults together) with where each value came from; exit 0 if the server
    /// would start with it, 2 with the reason if not.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
    /// Print a configuration file with every key, its help and its default (commented out).
    Default,
}

/// Runs `wsloop config`.
pub fn run(args: &ConfigArgs) -> ExitCode {
    match &args.command {
        ConfigCommand::Check { file } => check(file),
        ConfigCommand::Default => {
            print!("{}", default_file());
            ExitCode::SUCCESS
        }
    }
}

fn check(file: &std::path::Path) -> ExitCode {
    let argv: Vec<OsString> = vec!["wsloop".into(), "--config".into(), file.into()];
    let env = |name: &str| std::env::var(name).ok();
    let layered = match layered(&argv, &env) {
        Ok(layered) => layered,
        Err(e) => {
            eprintln!("wsloop: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", describe(&layered));
    let cli = match Cli::from_arg_matches(&layered.matches) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("wsloop: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.serve.check() {
        Ok(()) => {
            eprintln!("{}: the server would start with this", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wsloop: {}", layered.with_sources(&e));
            ExitCode::from(2)
        }
    }
}

/// The layers applied to `argv`, for the server (no subcommand).
pub fn layered(argv: &[OsString], env: &dyn Fn(&str) -> Option<String>) -> Result<Layered, String> {
    let command = Cli::command();
    let first = (command.clone().ignore_errors(true))
        .try_get_matches_from(argv)
        .map_err(|e| e.to_string())?;
    layers::resolve(&command, argv, &first, env)
}

/// The effective configuration as TOML, each line with where its value came from.
pub fn describe(layered: &Layered) -> String {
    let file = layered.file.as_deref();
    let mut out = String::from(
        "# The effective configuration: WSLOOP_* variables, then the file, then the defaults\n\
         # (a flag given when the server starts overrides all three).\n",
    );
    for setting in &layered.settings {
        // Defaults stay commented, so the output read back as a file sets what was set.
        let value = toml_value(&setting.values, setting.switch);
        let mut line = match setting.source {
            Source::Unset => format!("# {}", setting.key),
            Source::Default => format!("# {} = {value}", setting.key),
            _ => format!("{} = {value}", setting.key),
        };
        let width = line.chars().count();
        line += &" ".repeat(44usize.saturating_sub(width));
        line += &format!("  # {}", setting.source.describe(file));
        for (source, values) in &setting.overridden {
            line += &format!(
                "; overrides {} {}",
                source.describe(file),
                toml_value(values, setting.switch)
            );
        }
        out += &line;
        out.push('\n');
    }
    out
}

/// `values` as a TOML value: a boolean for a switch, an integer when it is one, a string,
/// or a list of them.
fn toml_value(values: &[String], switch: bool) -> String {
    let one = |value: &String| {
        if switch || (value.parse::<i64>().is_ok() && !value.starts_with('+')) {
            value.clone()
        } else {
            toml_edit::Value::from(value.as_str())
                .to_string()
                .trim()
                .to_string()
        }
    };
    match values {
        [value] => one(value),
        values => format!(
            "[{}]",
            values.iter().map(one).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// A configuration file with every key commented out at its default, under its help.
pub fn default_file() -> String {
    let command = Cli::command();
    let mut out = String::from(
        "# wsloop configuration (TOML). Start the server with `wsloop --config FILE`.\n\
         #\n\
         # Every key is a flag of `wsloop --help` without its dashes; a table groups keys by\n\
         # their prefix ([tls] cert = ... is tls-cert). Sizes take B, KiB, MiB, GiB; durations\n\
         # ms, s, m, h. A WSLOOP_* variable (WSLOOP_MAX_CONNECTIONS) overrides the file, and a\n\
         # flag overrides both. `wsloop config check FILE` shows what is in effect.\n",
    );
    let mut heading = None;
    for (long, arg) in layers::setting_args(&command) {
        if arg.get_help_heading() != heading {
            heading = arg.get_help_heading();
            out += &format!("\n# ---- {} ----\n", heading.unwrap_or("Server"));
        }
        out.push('\n');
        let help = (arg.get_long_help().or(arg.get_help()))
            .map(|h| h.to_string())
            .unwrap_or_default();
        for line in wrap(&help, 88) {
            out += &format!("# {line}\n").replace("# \n", "#\n");
        }
        out += &format!("# {long} = {}\n", default_value(arg));
    }
    out
}

/// How a key's default shows in the default file.
fn default_value(arg: &clap::Arg) -> String {
    let defaults: Vec<String> = (arg.get_default_values().iter())
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    let switch = matches!(arg.get_action(), clap::ArgAction::SetTrue);
    if switch {
        return "false".into();
    }
    if !defaults.is_empty() {
        return toml_value(&defaults, switch);
    }
    // Options whose default is decided later (by the library) say it in their help.
    let help = (arg.get_long_help().or(arg.get_help())).map(|h| h.to_string());
    let stated = help.as_deref().and_then(|help| {
        let start = help.find("[default: ")? + "[default: ".len();
        let end = start + help[start..].find(']')?;
        Some(help[start..end].to_string())
    });
    if let Some(default) = stated.filter(|d| !d.contains(' ')) {
        return toml_value(&[default], false);
    }
    let name = (arg.get_value_names())
        .and_then(|names| names.first())
        .map_or("VALUE".to_string(), |n| n.to_string());
    if matches!(arg.get_action(), clap::ArgAction::Append) {
        format!("[\"{name}\", ...]")
    } else {
        format!("\"{name}\"")
    }
}

/// `text`'s paragraphs wrapped at `width` columns.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.split("\n\n") {
        if !lines.is_empty() {
            lines.push(String::new());
        }
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line += word;
        }
        if !line.is_empty() {
            lines.push(line);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<OsString> {
        std::iter::once("wsloop")
            .chain(words.iter().copied())
            .map(OsString::from)
            .collect()
    }

    fn scratch(name: &str, text: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("wsloop-config-{name}-{}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn setting<'a>(layered: &'a Layered, key: &str) -> &'a layers::Resolved {
        layered.settings.iter().find(|s| s.key == key).unwrap()
    }

    #[test]
    fn flags_beat_variables_beat_the_file_beats_defaults() {
        let file = scratch(
            "precedence",
            "max-connections = 1000\nmax-buffered = \"1MiB\"\nidle_timeout = \"2m\"\nmetrics = true\n\
             [tls]\n",
        );
        let env = |name: &str| match name {
            "WSLOOP_MAX_CONNECTIONS" => Some("2000".to_string()),
            "WSLOOP_MAX_BUFFERED" => Some("2MiB".to_string()),
            _ => None,
        };
        let path = file.to_str().unwrap();
        let resolved = layered(&argv(&["--config", path, "--max-buffered", "3MiB"]), &env).unwrap();
        let cli = Cli::from_arg_matches(&resolved.matches).unwrap();
        let (flag, variable, in_file, default) = (
            setting(&resolved, "max-buffered"),
            setting(&resolved, "max-connections"),
            setting(&resolved, "idle-timeout"),
            setting(&resolved, "ping-interval"),
        );
        assert_eq!(
            (flag.source.clone(), flag.values.clone()),
            (Source::Flag, vec!["3MiB".to_string()])
        );
        assert_eq!(flag.overridden.len(), 2, "{flag:?}");
        assert_eq!(
            variable.source,
            Source::Env("WSLOOP_MAX_CONNECTIONS".into())
        );
        assert_eq!(
            variable.overridden,
            vec![(Source::File(1), vec!["1000".to_string()])]
        );
        assert_eq!(in_file.source, Source::File(3));
        assert_eq!(default.source, Source::Default);
        assert_eq!(setting(&resolved, "metrics").values, ["true"]);
        assert_eq!(setting(&resolved, "tls-cert").source, Source::Unset);
        let text = describe(&resolved);
        assert!(text.contains("max-connections = 2000"), "{text}");
        assert!(
            text.contains("overrides") && text.contains(":1 1000"),
            "{text}"
        );
        let serve = format!("{:?}", cli.serve);
        assert!(
            serve.contains("max_connections: 2000") && serve.contains("max_buffered: 3145728"),
            "{serve}"
        );
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn every_bad_value_names_its_source() {
        let cases = [
            (
                "max-conections = 5\n",
                "unknown key \"max-conections\"; did you mean \"max-connections\"?",
            ),
            (
                "max-connections = \"many\"\n",
                ":1: max-connections: \"many\": expected a whole number",
            ),
            (
                "\n\nmetrics = \"yes\"\n",
                ":3: metrics: takes true or false",
            ),
            ("bind = [\"a\", \"b\"]\n", ":1: bind: takes one value"),
            ("threads = 0\n", ":1: threads: 0 is not in 1..=256"),
            ("bind = \n", ":1:8: "),
            (
                "max_buffered = \"1MiB\"\nmax-buffered = \"2MiB\"\n",
                ":2: max-buffered is set twice (first at line 1)",
            ),
        ];
        let env = |_: &str| None;
        for (i, (text, says)) in cases.into_iter().enumerate() {
            let file = scratch(&format!("bad{i}"), text);
            let error = layered(&argv(&["--config", file.to_str().unwrap()]), &env).unwrap_err();
            assert!(
                error.contains(says) && error.contains(file.to_str().unwrap()),
                "{text:?}: {error}"
            );
            let _ = std::fs::remove_file(file);
        }
        let env = |name: &str| (name == "WSLOOP_IDLE_TIMEOUT").then(|| "soon".to_string());
        let error = layered(&argv(&[]), &env).unwrap_err();
        assert!(
            error.starts_with("WSLOOP_IDLE_TIMEOUT: ") && error.matches("soon").count() == 1,
            "{error}"
        );
        let error =
            layered(&argv(&["--config", "/nonexistent/wsloop.toml"]), &|_| None).unwrap_err();
        assert!(
            error.contains("/nonexistent/wsloop.toml: cannot read it"),
            "{error}"
        );
    }

    #[test]
    fn an_error_about_several_settings_says_where_each_came_from() {
        let file = scratch("sources", "\nidle-timeout = \"30s\"\n");
        let env = |name: &str| (name == "WSLOOP_PING_INTERVAL").then(|| "45s".to_string());
        let resolved = layered(&argv(&["--config", file.to_str().unwrap()]), &env).unwrap();
        let cli = Cli::from_arg_matches(&resolved.matches).unwrap();
        let error = cli.serve.config().validate().unwrap_err().to_string();
        let said = resolved.with_sources(&error);
        let want = format!(
            "(ping-interval: environment WSLOOP_PING_INTERVAL, idle-timeout: {}:2)",
            file.display()
        );
        assert!(said.starts_with(&error) && said.ends_with(&want), "{said}");
        // From flags and defaults alone, the message is left as it is.
        let resolved = layered(&argv(&["--ping-interval", "2m"]), &|_| None).unwrap();
        assert_eq!(
            resolved.with_sources("ping-interval (120s) ..."),
            "ping-interval (120s) ..."
        );
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn the_default_file_sets_nothing_and_each_of_its_keys_works_uncommented() {
        let text = default_file();
        let file = scratch("default", &text);
        let env = |_: &str| None;
        let resolved = layered(&argv(&["--config", file.to_str().unwrap()]), &env).unwrap();
        assert!(resolved
            .settings
            .iter()
            .all(|s| !matches!(s.source, Source::File(_))));
        // Every key with a default, uncommented, is a valid setting of that default.
        let uncommented: String = (text.lines())
            .filter(|l| l.starts_with("# ") && l.contains(" = ") && !l.contains("\"VALUE\""))
            .filter(|l| !l[2..].starts_with(' '))
            .filter_map(|l| {
                let (key, value) = l[2..].split_once(" = ")?;
                let placeholder = value.starts_with("\"")
                    && value[1..]
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_uppercase());
                let placeholder = placeholder || value.starts_with("[\"");
                // cluster-ttl needs a cluster and api-max-body an API key, as their flags do.
                let alone = !["cluster-ttl", "api-max-body"].contains(&key);
                (!placeholder && alone && !key.contains(' ')).then(|| format!("{key} = {value}\n"))
            })
            .collect();
        std::fs::write(&file, &uncommented).unwrap();
        let resolved = layered(&argv(&["--config", file.to_str().unwrap()]), &env)
            .unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        assert!(
            resolved
                .settings
                .iter()
                .filter(|s| matches!(s.source, Source::File(_)))
                .count()
                > 20
        );
        let _ = std::fs::remove_file(file);
    }
}
