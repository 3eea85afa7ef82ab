//! The `rlm` command line: one module per subcommand, the progress renderer, and the small
//! helpers they share (argument parsing, errors, terminal-safe output).

pub(crate) mod chat;
pub(crate) mod demo;
pub(crate) mod egress;
pub(crate) mod eval;
pub(crate) mod help;
pub(crate) mod local_model;
pub(crate) mod output;
pub(crate) mod progress;
pub(crate) mod run;
pub(crate) mod sandbox;
#[cfg(feature = "serve")]
pub(crate) mod serve;
pub(crate) mod setup;
pub(crate) mod signals;
pub(crate) mod term;
pub(crate) mod view;

use std::process::ExitCode;

/// One subcommand: its name, a one-line summary for `rlm help`, its full help, and its entry
/// point (given the arguments after the subcommand's name).
pub(crate) struct Command {
    pub(crate) name: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) help: fn() -> String,
    pub(crate) main: fn(&[String]) -> ExitCode,
}

/// Prints `rlm: MSG` and a pointer to the help on stderr; exit code 2 (usage or
/// configuration error).
pub(crate) fn usage_error(command: &str, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!(
        "rlm: {}\nTry `rlm {command} --help`.",
        term::safe(&msg.to_string())
    );
    ExitCode::from(2)
}

/// Arguments split into `--flag value` pairs, switches and positional words.
#[derive(Debug, Default)]
pub(crate) struct Args {
    pub(crate) values: Vec<(String, String)>,
    pub(crate) switches: Vec<String>,
    pub(crate) positional: Vec<String>,
}

impl Args {
    /// Parses `args`: flags in `with_value` take a value (`--f v` or `--f=v`), flags in
    /// `switches` take none; anything else starting with `-` is an error.
    pub(crate) fn parse(
        args: &[String],
        with_value: &[&str],
        switches: &[&str],
    ) -> Result<Args, String> {
        let mut out = Args::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let (flag, inline) = match a.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
                _ => (a.as_str(), None),
            };
            if with_value.contains(&flag) {
                let v = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| format!("{flag} needs a value"))?,
                };
                out.values.push((flag.to_string(), v));
            } else if switches.contains(&flag) && inline.is_none() {
                out.switches.push(flag.to_string());
            } else if a.starts_with('-') && a.len() > 1 && a.parse::<f64>().is_err() {
                return Err(format!("unknown option {a}"));
            } else {
                out.positional.push(a.clone());
            }
        }
        Ok(out)
    }

    /// True when the switch was given.
    pub(crate) fn has(&self, switch: &str) -> bool {
        self.switches.iter().any(|s| s == switch)
    }

    /// The last value of `flag`.
    pub(crate) fn value(&self, flag: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(f, _)| f == flag)
            .map(|(_, v)| v.as_str())
    }
}

/// The orchestrator of `rlm run` and `rlm chat`: the environment, then every flag in
/// `a.values` but the command's own ones (`own`) as a setting, `--log FILE` as the
/// trajectory, and the local model when no provider is configured.
pub(crate) fn orchestrator_from_flags(
    a: &Args,
    own: &[&str],
    quiet: bool,
) -> Result<(rlm::Orchestrator, Option<local_model::LocalServer>), String> {
    // Flags are settings given by name: the same parser and checks as the environment.
    let mut builder = rlm::Orchestrator::builder().env();
    for (flag, v) in &a.values {
        if !own.contains(&flag.as_str()) {
            builder = builder.setting(flag, v.clone());
        }
    }
    if let Some(p) = a.value("--log") {
        builder = builder.trajectory(rlm::TrajectoryLog::create(p).map_err(|e| e.to_string())?);
    }
    local_model::build(builder, quiet)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_values_switches_and_words() {
        let p = Args::parse(
            &args(&[
                "--model",
                "m",
                "--json",
                "--log=x.jsonl",
                "what",
                "is",
                "-1",
            ]),
            &["--model", "--log"],
            &["--json"],
        )
        .unwrap();
        assert_eq!(p.value("--model"), Some("m"));
        assert_eq!(p.value("--log"), Some("x.jsonl"));
        assert!(p.has("--json"));
        assert_eq!(p.positional, ["what", "is", "-1"]);
        assert!(Args::parse(&args(&["--bogus"]), &[], &[]).is_err());
        assert!(Args::parse(&args(&["--model"]), &["--model"], &[]).is_err());
    }
}
