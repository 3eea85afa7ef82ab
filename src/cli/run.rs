//! `rlm run`: answer a question, optionally over context files, with progress on stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use rlm::Context;

use super::{Args, progress, signals, term, usage_error};

pub(crate) const SUMMARY: &str =
    "answer QUERY with a model that writes sandboxed Python, optionally over context files";

/// Flags of `rlm run` that are not settings.
const OWN_VALUES: &[&str] = &["--context", "--log"];
const SWITCHES: &[&str] = &["--json", "--quiet", "-q"];

pub(crate) fn help() -> String {
    let mut s = String::from(
        "rlm run [OPTIONS] QUERY\n\n\
         Answers QUERY: the model writes Python that runs in a persistent sandboxed REPL, where the\n\
         context files are read-only (`ctx`, `context`), and calls sub-models from that code. The\n\
         answer goes to stdout, progress to stderr. With no provider configured (no API key for the\n\
         selected provider, no base URL and no explicit --provider/RLM_LLM_PROVIDER) it starts the\n\
         local model installed by `rlm setup` on a free loopback port and stops it afterwards; an\n\
         explicitly chosen provider without its key is an error naming the key's variable.\n\n\
         Options:\n\
         \x20 --context FILE        context file (repeat for a list of documents)\n\
         \x20 --log FILE            write the trajectory (JSON Lines) to FILE as the run happens\n\
         \x20 --json                print the whole run result as JSON\n\
         \x20 --quiet, -q           no progress on stderr\n",
    );
    s.push_str(&super::help::setting_flags());
    s.push_str(
        "\nEvery other setting is an environment variable (`rlm help settings` lists them); a flag\n\
         wins over its variable. Exit codes: 0 answer found, 1 run ended without an answer, 2 usage\n\
         or configuration error.\n",
    );
    s
}

fn setting_flags() -> Vec<&'static str> {
    rlm::known_settings()
        .iter()
        .filter_map(|s| s.flag)
        .collect()
}

pub(crate) fn main(args: &[String]) -> ExitCode {
    signals::install();
    let err = |m: String| usage_error("run", m);
    let mut with_value: Vec<&str> = OWN_VALUES.to_vec();
    with_value.extend(setting_flags());
    let a = match Args::parse(args, &with_value, SWITCHES) {
        Ok(a) => a,
        Err(e) => return err(e),
    };
    let query = a.positional.join(" ");
    if query.trim().is_empty() {
        return err("rlm run needs a QUERY".into());
    }
    let contexts: Vec<PathBuf> = a
        .values
        .iter()
        .filter(|(f, _)| f == "--context")
        .map(|(_, v)| PathBuf::from(v))
        .collect();
    let (json, quiet) = (a.has("--json"), a.has("--quiet") || a.has("-q"));
    // Keeps the local server (if this run started one) alive until the end of the run.
    let (orch, _local) = match super::orchestrator_from_flags(&a, OWN_VALUES, quiet) {
        Ok(x) => x,
        Err(e) => return err(e),
    };
    let context = match contexts.len() {
        0 => None,
        1 => Some(Context::file(contexts[0].clone())),
        _ => Some(Context::Files(contexts)),
    };
    if let Some(sig) = signals::received() {
        return ExitCode::from((128 + sig) as u8);
    }
    let run = orch.arun_observed(query, context);
    signals::watch(run.cancel.clone());
    let events = run.events;
    let shown = std::thread::spawn(move || progress::show(events, quiet));
    let result = futures_lite::future::block_on(run.result);
    let _ = shown.join();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&result).expect("results serialize")
        );
    } else if let Some(answer) = &result.final_answer {
        println!("{}", term::safe(answer));
    }
    if let Some(sig) = signals::received() {
        eprintln!("rlm: stopped by signal {sig}");
        return ExitCode::from((128 + sig) as u8);
    }
    if result.success {
        return ExitCode::SUCCESS;
    }
    if !json {
        eprintln!(
            "rlm: no answer: {}",
            term::safe(result.error.as_deref().unwrap_or("unknown"))
        );
    }
    match result.failure {
        Some(rlm::Error::Config { .. }) | Some(rlm::Error::Context { .. }) => ExitCode::from(2),
        _ => ExitCode::from(1),
    }
}
