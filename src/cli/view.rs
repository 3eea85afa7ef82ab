//! `rlm view`: render a trajectory as one self-contained HTML page.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{Args, usage_error};

pub(crate) const SUMMARY: &str = "render a trajectory (JSON Lines) as one self-contained HTML page";

pub(crate) fn help() -> String {
    "rlm view TRAJECTORY.jsonl [-o run.html]\n\n\
     Reads a trajectory written by `rlm run --log` (or the library's TrajectoryLog) and writes\n\
     one HTML file with no scripts and no external assets: each run's steps (LLM replies, code,\n\
     filtered output, sub-queries with the child runs they started, findings) and its answer.\n\
     The output defaults to the input with the extension .html; it is written whole or not at\n\
     all. Prints the output path.\n"
        .into()
}

pub(crate) fn main(args: &[String]) -> ExitCode {
    let err = |m: String| usage_error("view", m);
    let a = match Args::parse(args, &["-o", "--output"], &[]) {
        Ok(a) => a,
        Err(e) => return err(e),
    };
    let [input] = a.positional.as_slice() else {
        return err("usage: rlm view TRAJECTORY.jsonl [-o run.html]".into());
    };
    let input = PathBuf::from(input);
    let text = match std::fs::read_to_string(&input) {
        Ok(t) => t,
        Err(e) => return err(format!("cannot read {}: {e}", input.display())),
    };
    let events = match rlm::trajectory::parse_trajectory(&text) {
        Ok(e) => e,
        Err(e) => return err(format!("{} is not an rlm trajectory: {e}", input.display())),
    };
    let output = a
        .value("-o")
        .or(a.value("--output"))
        .map(PathBuf::from)
        .unwrap_or_else(|| input.with_extension("html"));
    let html = rlm::render_html(&events);
    if let Err(e) = super::output::write_file(&output, |w| w.write_all(html.as_bytes())) {
        return err(format!("cannot write {}: {e}", output.display()));
    }
    println!("{}", output.display());
    ExitCode::SUCCESS
}
