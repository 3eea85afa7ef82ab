//! The `rlm` command line.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rlm::{Context, Orchestrator, RunEvent, StepKind};

const HELP: &str = "\
rlm: run a Recursive Language Model task with sandboxed Python

Usage:
  rlm run [OPTIONS] QUERY      answer QUERY, optionally over context files
  rlm egress scan [--context FILE] [--json]
                               filter stdin as if it were sandbox output; print the result
                               (with --json: one object with output and findings: rule, start, end)
  rlm help                     this text

Options of `rlm run`:
  --context FILE           context file (repeat for a list of documents)
  --provider P             openai|anthropic|gemini  (RLM_LLM_PROVIDER)
  --model M                model name               (RLM_LLM_MODEL)
  --base-url URL           OpenAI-compatible server (RLM_LLM_BASE_URL)
  --max-iterations N       LLM turns                (RLM_MAX_ITERATIONS)
  --max-depth N            recursion depth          (RLM_MAX_DEPTH)
  --budget-usd X           spending limit           (RLM_COST_LIMIT_USD)
  --timeout SECS           wall-clock limit         (RLM_RUN_TIMEOUT)
  --log FILE               write the trajectory (JSON Lines) to FILE as the run happens
  --json                   print the whole run result as JSON
  --quiet                  no progress on stderr

Other settings come from the environment (see the README). Exit codes: 0 answer found,
1 run ended without an answer, 2 usage or configuration error.
";

struct RunArgs {
    contexts: Vec<PathBuf>,
    json: bool,
    quiet: bool,
    query: String,
}

fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("rlm: {msg}\nTry `rlm help`.");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => cmd_run(&args[1..]),
        Some("egress") => cmd_egress(&args[1..]),
        Some("help") | Some("--help") | Some("-h") | None => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        Some("--version") | Some("-V") => {
            println!("rlm {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(other) => usage_error(format!("unknown command {other:?}")),
    }
}

fn cmd_run(args: &[String]) -> ExitCode {
    let mut ra = RunArgs {
        contexts: Vec::new(),
        json: false,
        quiet: false,
        query: String::new(),
    };
    let mut opts: Vec<(String, String)> = Vec::new();
    let mut query = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--help" | "-h" => {
                print!("{HELP}");
                return ExitCode::SUCCESS;
            }
            "--json" => ra.json = true,
            "--quiet" | "-q" => ra.quiet = true,
            "--context" | "--model" | "--base-url" | "--max-iterations" | "--max-depth"
            | "--budget-usd" | "--timeout" | "--log" | "--provider" => {
                let Some(v) = it.next() else {
                    return usage_error(format!("{a} needs a value"));
                };
                if a == "--context" {
                    ra.contexts.push(v.into());
                } else {
                    opts.push((a.clone(), v.clone()));
                }
            }
            s if s.starts_with("--") => return usage_error(format!("unknown option {s}")),
            s => query.push(s.to_string()),
        }
    }
    let builder = match Orchestrator::builder()
        .env()
        .map_err(|e| e.to_string())
        .and_then(|b| apply_options(b, &opts))
    {
        Ok(b) => b,
        Err(e) => return usage_error(e),
    };
    ra.query = query.join(" ");
    if ra.query.trim().is_empty() {
        return usage_error("rlm run needs a QUERY");
    }
    let orch = match builder.build() {
        Ok(o) => o,
        Err(e) => return usage_error(e),
    };
    let context = match ra.contexts.len() {
        0 => None,
        1 => Some(Context::file(ra.contexts[0].clone())),
        _ => Some(Context::Files(ra.contexts.clone())),
    };
    let run = orch.arun_observed(ra.query.clone(), context);
    let quiet = ra.quiet;
    let events = run.events;
    let progress = std::thread::spawn(move || show_progress(events, quiet));
    let result = futures_lite::future::block_on(run.result);
    let _ = progress.join();
    if ra.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&result).expect("results serialize")
        );
    } else if let Some(a) = &result.final_answer {
        println!("{a}");
    }
    if result.success {
        ExitCode::SUCCESS
    } else {
        if !ra.json {
            eprintln!(
                "rlm: no answer: {}",
                result.error.as_deref().unwrap_or("unknown")
            );
        }
        match result.failure {
            Some(rlm::Error::Config { .. }) | Some(rlm::Error::Context { .. }) => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    }
}

fn cmd_egress(args: &[String]) -> ExitCode {
    if args.first().map(String::as_str) != Some("scan") {
        return usage_error("usage: rlm egress scan [--context FILE] [--json]");
    }
    let (mut json, mut context) = (false, None);
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json = true,
            "--context" => match it.next() {
                Some(p) => context = Some(Context::file(p)),
                None => return usage_error("--context needs a value"),
            },
            "--help" | "-h" => {
                print!("{HELP}");
                return ExitCode::SUCCESS;
            }
            other => return usage_error(format!("unknown argument {other:?}")),
        }
    }
    let cfg = match rlm::Config::from_lookup(|k| std::env::var(k).ok()) {
        Ok(c) => c.egress,
        Err(e) => return usage_error(e),
    };
    let filter = match context {
        Some(c) => match rlm::EgressFilter::for_context(cfg, &c) {
            Ok(f) => f,
            Err(e) => return usage_error(e),
        },
        None => rlm::EgressFilter::new(cfg),
    };
    let mut input = Vec::new();
    if let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin(), &mut input) {
        eprintln!("rlm: cannot read stdin: {e}");
        return ExitCode::from(2);
    }
    let out = match filter.filter(&input, "stdin") {
        Ok(o) => o,
        Err(e) => return usage_error(e),
    };
    let mut stdout = std::io::stdout();
    let _ = if json {
        let v = serde_json::json!({ "output": out.text, "findings": out.findings });
        writeln!(stdout, "{v}")
    } else {
        write!(stdout, "{}", out.text)
    };
    ExitCode::SUCCESS
}

fn apply_options(
    mut b: rlm::OrchestratorBuilder,
    opts: &[(String, String)],
) -> Result<rlm::OrchestratorBuilder, String> {
    fn num<T: std::str::FromStr>(name: &str, v: &str, what: &str) -> Result<T, String> {
        v.parse()
            .map_err(|_| format!("{name} expects {what}, got {v:?}"))
    }
    for (k, v) in opts {
        b = match k.as_str() {
            "--model" => b.model(v.clone()),
            "--base-url" => b.base_url(v.clone()),
            "--provider" => b.provider(rlm::Provider::parse(v).ok_or_else(|| {
                format!("--provider expects openai, anthropic or gemini, got {v:?}")
            })?),
            "--log" => b.trajectory(rlm::TrajectoryLog::create(v).map_err(|e| e.to_string())?),
            "--max-iterations" => b.max_iterations(num(k, v, "a positive integer")?),
            "--max-depth" => b.max_depth(num(k, v, "an integer")?),
            "--budget-usd" => {
                let x: f64 = num(k, v, "a non-negative number")?;
                if x.is_nan() || x < 0.0 {
                    return Err(format!("{k} expects a non-negative number, got {v:?}"));
                }
                b.max_cost_usd(x)
            }
            "--timeout" => {
                let x: f64 = num(k, v, "seconds")?;
                if x.is_nan() || x <= 0.0 || x.is_infinite() {
                    return Err(format!(
                        "{k} expects a positive number of seconds, got {v:?}"
                    ));
                }
                b.run_timeout(Some(Duration::from_secs_f64(x)))
            }
            _ => b,
        };
    }
    Ok(b)
}

fn show_progress(events: async_channel::Receiver<RunEvent>, quiet: bool) {
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let (mut tokens, mut cost) = (0u64, None::<f64>);
    let mut err = std::io::stderr();
    while let Ok(ev) = events.recv_blocking() {
        if quiet {
            continue;
        }
        let line = match ev {
            RunEvent::Iteration { iteration } => format!("turn {iteration}: asking the model"),
            RunEvent::Executing { iteration, code } => {
                let first = code
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim();
                let first: String = first.chars().take(60).collect();
                format!("turn {iteration}: running code: {first}")
            }
            RunEvent::Step { step, usage } => {
                tokens = usage.total_tokens();
                cost = usage.cost_usd;
                match step.kind {
                    StepKind::SubQuery => format!("turn {}: sub-query done", step.iteration),
                    StepKind::CodeExecution if !step.success => {
                        format!(
                            "turn {}: code failed: {}",
                            step.iteration,
                            step.error.unwrap_or_default()
                        )
                    }
                    _ => continue,
                }
            }
            RunEvent::Finished { success, .. } => {
                if tty {
                    let _ = write!(err, "\r\x1b[K");
                }
                let _ = writeln!(
                    err,
                    "{} in {:.1}s, {tokens} tokens{}",
                    if success { "done" } else { "stopped" },
                    start.elapsed().as_secs_f64(),
                    cost.map(|c| format!(", ${c:.4}")).unwrap_or_default()
                );
                continue;
            }
            _ => continue,
        };
        let stats = format!(
            " [{tokens} tokens{}, {:.1}s]",
            cost.map(|c| format!(", ${c:.4}")).unwrap_or_default(),
            start.elapsed().as_secs_f64()
        );
        if tty {
            let _ = write!(err, "\r\x1b[K{line}{stats}");
            let _ = err.flush();
        } else {
            let _ = writeln!(err, "{line}{stats}");
        }
    }
}
