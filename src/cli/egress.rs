//! `rlm egress scan`: filter stdin as if it were sandbox output.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use rlm::{Context, EgressFilter, Orchestrator};

use super::{Args, usage_error};

pub(crate) const SUMMARY: &str = "filter stdin as if it were sandbox output (scan), or mask the secrets of a context file (mask)";

pub(crate) fn help() -> String {
    "rlm egress scan [--context FILE] [--json]\n\
     rlm egress mask FILE [-o OUT] [--json]\n\n\
     Reads stdin, runs the egress filter over it exactly as over a code block's output\n\
     (secrets, high-entropy tokens, verbatim runs of the context given with --context, binary)\n\
     and prints the filtered text; with --json, one object with `output` and `findings` (rule,\n\
     start, end: byte offsets into the input; never the secret). Settings such as\n\
     RLM_ENTROPY_THRESHOLD apply.\n\n\
     mask: writes FILE as a run's sandbox, prompt and sub-calls would see it: every secret the\n\
     rules find (named token formats, private keys, credentials in URLs, password/secret/token\n\
     assignments) replaced by a placeholder such as [SECRET:aws_access_key_id#1]; to OUT, or\n\
     stdout. Prints how many secrets of each kind were masked on stderr (with --json: one\n\
     object on stderr with the findings: rule, start, end; never the values).\n"
        .into()
}

pub(crate) fn main(args: &[String]) -> ExitCode {
    let err = |m: String| usage_error("egress", m);
    match args.first().map(String::as_str) {
        Some("scan") => {}
        Some("mask") => return mask(&args[1..]),
        _ => return err("usage: rlm egress scan|mask [OPTIONS]".into()),
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

fn mask(args: &[String]) -> ExitCode {
    let err = |m: String| usage_error("egress", m);
    let a = match Args::parse(args, &["-o", "--output"], &["--json"]) {
        Ok(a) => a,
        Err(e) => return err(e),
    };
    let [file] = a.positional.as_slice() else {
        return err("usage: rlm egress mask FILE [-o OUT] [--json]".into());
    };
    let handle = match rlm::ContextHandle::open(file) {
        Ok(h) => h,
        Err(e) => return err(e.to_string()),
    };
    let output = a.value("-o").or(a.value("--output"));
    let result = match output {
        Some(path) => super::output::write_file(Path::new(path), |mut w| {
            rlm::mask_secrets(handle.as_bytes(), &mut w)
        }),
        None => {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            rlm::mask_secrets(handle.as_bytes(), &mut w).and_then(|f| w.flush().map(|()| f))
        }
    };
    if let Some(sig) = super::signals::received() {
        eprintln!("rlm: stopped by signal {sig}");
        return ExitCode::from(128 + sig as u8);
    }
    let found = match result {
        Ok(f) => f,
        Err(e) => return err(format!("cannot write the masked text: {e}")),
    };
    if a.has("--json") {
        eprintln!("{}", serde_json::json!({ "findings": found }));
    } else {
        let mut per: std::collections::BTreeMap<&str, usize> = Default::default();
        for f in &found {
            *per.entry(f.rule.as_str()).or_default() += 1;
        }
        let list: Vec<String> = per.iter().map(|(k, n)| format!("{n} {k}")).collect();
        eprintln!(
            "masked {} secret(s){}{}",
            found.len(),
            if list.is_empty() { "" } else { ": " },
            list.join(", ")
        );
    }
    ExitCode::SUCCESS
}
