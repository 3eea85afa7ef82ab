//! `rlm egress scan`: filter stdin as if it were sandbox output.

use std::io::{Read, Write};
use std::process::ExitCode;

use rlm::{Context, EgressFilter, Orchestrator};

use super::{Args, usage_error};

pub(crate) const SUMMARY: &str = "filter stdin as if it were sandbox output and print the result";

pub(crate) fn help() -> String {
    "rlm egress scan [--context FILE] [--json]\n\n\
     Reads stdin, runs the egress filter over it exactly as over a code block's output\n\
     (secrets, high-entropy tokens, verbatim runs of the context given with --context, binary)\n\
     and prints the filtered text; with --json, one object with `output` and `findings` (rule,\n\
     start, end: byte offsets into the input; never the secret). Settings such as\n\
     RLM_ENTROPY_THRESHOLD apply.\n"
        .into()
}

pub(crate) fn main(args: &[String]) -> ExitCode {
    let err = |m: String| usage_error("egress", m);
    if args.first().map(String::as_str) != Some("scan") {
        return err("usage: rlm egress scan [--context FILE] [--json]".into());
    }
    let a = match Args::parse(&args[1..], &["--context"], &["--json"]) {
        Ok(a) if a.positional.is_empty() => a,
        Ok(a) => return err(format!("unexpected argument {:?}", a.positional[0])),
        Err(e) => return err(e),
    };
    let cfg = match Orchestrator::builder().env().resolve() {
        Ok(c) => c.egress,
        Err(e) => return err(e.to_string()),
    };
    let filter = match a.value("--context") {
        Some(p) => match EgressFilter::for_context(cfg, &Context::file(p)) {
            Ok(f) => f,
            Err(e) => return err(e.to_string()),
        },
        None => EgressFilter::new(cfg),
    };
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        return err(format!("cannot read stdin: {e}"));
    }
    let out = match filter.filter(&input, "stdin") {
        Ok(o) => o,
        Err(e) => return err(e.to_string()),
    };
    let mut stdout = std::io::stdout();
    let _ = if a.has("--json") {
        let v = serde_json::json!({ "output": out.text, "findings": out.findings });
        writeln!(stdout, "{v}")
    } else {
        write!(stdout, "{}", out.text)
    };
    ExitCode::SUCCESS
}
