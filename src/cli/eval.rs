//! `rlm eval`: run a suite of questions with known answers and score them, or generate one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rlm::Orchestrator;
use rlm::eval::{self, EvalOptions, Suite};

use super::{Args, local_model, signals, term, usage_error};

pub(crate) const SUMMARY: &str =
    "score the model on a suite of questions with known answers, or generate such a suite";

/// Flags of `rlm eval` that are not settings.
const OWN_VALUES: &[&str] = &[
    "--concurrency",
    "--repeat",
    "--out",
    "--min-accuracy",
    "--generate",
    "--seed",
    "--sizes",
    "-o",
    "--output",
];
const SWITCHES: &[&str] = &["--json", "--quiet", "-q"];

pub(crate) fn help() -> String {
    let mut s = format!(
        "rlm eval SUITE.jsonl [OPTIONS]\n\
         rlm eval --generate FAMILY[,FAMILY...] --seed N [--sizes 10KB,300KB,3MB] -o SUITE.jsonl\n\n\
         Runs every task of SUITE (one JSON object per line: id, question, context, answer,\n\
         score, family, tags; see the README) with the configured model, scores each answer,\n\
         and prints a table per family (right/total, turns, tokens, cost, time). Each task's\n\
         trajectory and a machine-readable report.json go to --out (default SUITE.runs/).\n\n\
         Options:\n\
         \x20 --concurrency N       tasks at once (default 1; a local model serves one at a time)\n\
         \x20 --repeat N            run every task N times\n\
         \x20 --out DIR             where trajectories and report.json go\n\
         \x20 --min-accuracy X      exit 1 when fewer than X (0..1) of the runs are right\n\
         \x20 --json                print the report as JSON instead of the table\n\
         \x20 --quiet, -q           no per-task lines on stderr\n\n\
         Generating: --generate takes families ({}, or all) and writes the suite and its data\n\
         (under SUITE.data/) from --seed; the same seed gives the same suite. One task per family\n\
         and size; --sizes takes sizes such as 10KB, 3MB, 50MB.\n\n\
         Model settings as for `rlm run`:\n",
        eval::FAMILIES.join(", ")
    );
    for st in rlm::known_settings() {
        if let Some(flag) = st.flag {
            s.push_str(&format!(
                "  {:<21} {} ({})\n",
                format!("{flag} V"),
                st.help,
                st.name
            ));
        }
    }
    s.push_str(
        "\nExit codes: 0 suite run (or generated), 1 below --min-accuracy, 2 usage or configuration\n\
         error.\n",
    );
    s
}

pub(crate) fn main(args: &[String]) -> ExitCode {
    signals::install();
    let err = |m: String| usage_error("eval", m);
    let mut with_value: Vec<&str> = OWN_VALUES.to_vec();
    with_value.extend(rlm::known_settings().iter().filter_map(|s| s.flag));
    let a = match Args::parse(args, &with_value, SWITCHES) {
        Ok(a) => a,
        Err(e) => return err(e),
    };
    if a.value("--generate").is_some() {
        return generate(&a);
    }
    let [suite_path] = a.positional.as_slice() else {
        return err("usage: rlm eval SUITE.jsonl [OPTIONS] (or --generate ...)".into());
    };
    let suite_path = PathBuf::from(suite_path);
    let suite = match Suite::load(&suite_path) {
        Ok(s) => s,
        Err(e) => return err(e.to_string()),
    };
    if let Err(e) = eval::check_contexts(&suite) {
        return err(e.to_string());
    }
    let number = |flag: &str, default: u64| -> Result<u64, String> {
        match a.value(flag) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("{flag} expects a positive integer, got {v:?}")),
        }
    };
    let (concurrency, repeat) = match (number("--concurrency", 1), number("--repeat", 1)) {
        (Ok(c), Ok(r)) => (c as usize, r as u32),
        (Err(e), _) | (_, Err(e)) => return err(e),
    };
    let min_accuracy = match a.value("--min-accuracy").map(str::parse::<f64>) {
        None => None,
        Some(Ok(x)) if (0.0..=1.0).contains(&x) => Some(x),
        Some(_) => return err("--min-accuracy expects a number between 0 and 1".into()),
    };
    let out = a
        .value("--out")
        .map(PathBuf::from)
        .unwrap_or_else(|| suite_path.with_extension("runs"));
    let (json, quiet) = (a.has("--json"), a.has("--quiet") || a.has("-q"));
    let mut builder = Orchestrator::builder().env();
    for (flag, v) in &a.values {
        if !OWN_VALUES.contains(&flag.as_str()) {
            builder = builder.setting(flag, v.clone());
        }
    }
    let (orch, _local) = match local_model::build(builder, quiet) {
        Ok(x) => x,
        Err(e) => return err(e),
    };
    let opts = EvalOptions::default()
        .concurrency(concurrency)
        .repeat(repeat)
        .trajectories(out.join("trajectories"));
    let total = suite.tasks.len() * repeat as usize;
    let done = std::sync::atomic::AtomicUsize::new(0);
    if !quiet {
        eprintln!(
            "rlm eval: {total} run(s) of {} task(s) with {}; trajectories in {}",
            suite.tasks.len(),
            orch.config().llm.model,
            out.join("trajectories").display()
        );
    }
    // Outcomes as they come, so that a stopped evaluation still reports what finished.
    let finished: std::sync::Mutex<Vec<eval::TaskOutcome>> = std::sync::Mutex::new(Vec::new());
    let started = std::time::Instant::now();
    let suite_run = eval::run_suite(&orch, &suite, &opts, |o| {
        finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(o.clone());
        let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if !quiet {
            let what = match (&o.answer, o.right) {
                (Some(a), true) => format!("right: {}", short(a)),
                (Some(a), false) => {
                    format!("WRONG: {} (expected {})", short(a), short(&o.expected))
                }
                (None, _) => format!(
                    "NO ANSWER: {} (expected {})",
                    short(o.error.as_deref().unwrap_or("?")),
                    short(&o.expected)
                ),
            };
            eprintln!(
                "[{n}/{total}] {} {} ({} turns, {:.1}s)",
                o.id,
                term::safe(&what),
                o.iterations,
                o.duration_ms as f64 / 1000.0
            );
        }
    });
    // A signal drops the evaluation: the runs in flight are cancelled (their sandboxes
    // killed) and what finished is reported.
    let (tx, rx) = async_channel::bounded::<()>(1);
    let watcher = std::thread::spawn(move || {
        while !tx.is_closed() {
            if signals::received().is_some() {
                let _ = tx.send_blocking(());
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    });
    let stop = async {
        let _ = rx.recv().await;
    };
    let report = futures_lite::future::block_on(futures_lite::future::or(
        async { Some(suite_run.await) },
        async {
            stop.await;
            None
        },
    ));
    rx.close();
    let _ = watcher.join();
    let report = match report {
        Some(Ok(r)) => r,
        Some(Err(e)) => return err(e.to_string()),
        None => {
            eprintln!("rlm eval: stopped by a signal; reporting the runs that finished");
            let outs = finished.into_inner().unwrap_or_else(|e| e.into_inner());
            eval::EvalReport::new(orch.config().llm.model.clone(), outs, started.elapsed())
        }
    };
    let report_path = out.join("report.json");
    if let Err(e) =
        super::output::write_file(&report_path, |w| w.write_all(report.to_json().as_bytes()))
    {
        eprintln!("rlm eval: cannot write {}: {e}", report_path.display());
    }
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.table());
        println!("report: {}", report_path.display());
    }
    if let Some(sig) = signals::received() {
        return ExitCode::from((128 + sig) as u8);
    }
    match min_accuracy {
        Some(min) if report.total.accuracy() < min => {
            eprintln!(
                "rlm eval: accuracy {:.0}% is below --min-accuracy {:.0}%",
                report.total.accuracy() * 100.0,
                min * 100.0
            );
            ExitCode::from(1)
        }
        _ => ExitCode::SUCCESS,
    }
}

/// `rlm eval --generate ...`.
fn generate(a: &Args) -> ExitCode {
    let err = |m: String| usage_error("eval", m);
    let families: Vec<String> = a
        .values
        .iter()
        .filter(|(f, _)| f == "--generate")
        .flat_map(|(_, v)| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .chain(a.positional.iter().cloned())
        .collect();
    let Some(seed) = a.value("--seed") else {
        return err("--generate needs --seed N (the same seed gives the same suite)".into());
    };
    let Ok(seed) = seed.parse::<u64>() else {
        return err(format!(
            "--seed expects a non-negative integer, got {seed:?}"
        ));
    };
    let sizes: Vec<usize> = match a.value("--sizes") {
        None => eval::DEFAULT_SIZES.to_vec(),
        Some(v) => {
            let parsed: Option<Vec<usize>> = v.split(',').map(eval::parse_size).collect();
            match parsed {
                Some(s) if !s.is_empty() => s,
                _ => return err(format!("--sizes expects sizes such as 10KB,3MB; got {v:?}")),
            }
        }
    };
    let Some(out) = a.value("-o").or(a.value("--output")) else {
        return err("--generate needs -o SUITE.jsonl".into());
    };
    let out = PathBuf::from(out);
    let base = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let data_dir = format!(
        "{}.data",
        out.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "suite".into())
    );
    let g = match eval::generate(&families, seed, &sizes, &data_dir) {
        Ok(g) => g,
        Err(e) => return err(e),
    };
    for (rel, content) in &g.files {
        let path = base.join(rel);
        if let Some(dir) = path.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            return err(format!("cannot create {}: {e}", dir.display()));
        }
        if let Err(e) = super::output::write_file(&path, |w| w.write_all(content.as_bytes())) {
            return err(format!("cannot write {}: {e}", path.display()));
        }
    }
    let text = g.suite.to_jsonl(Path::new(""));
    if let Err(e) = super::output::write_file(&out, |w| w.write_all(text.as_bytes())) {
        return err(format!("cannot write {}: {e}", out.display()));
    }
    let bytes: usize = g.files.iter().map(|(_, c)| c.len()).sum();
    eprintln!(
        "rlm eval: wrote {} task(s) to {} and {} data file(s) ({:.1} MB) to {}",
        g.suite.tasks.len(),
        out.display(),
        g.files.len(),
        bytes as f64 / 1e6,
        base.join(&data_dir).display()
    );
    ExitCode::SUCCESS
}

/// The first line of `s`, at most 80 characters.
fn short(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    let mut out: String = line.chars().take(80).collect();
    if line.chars().count() > 80 || s.lines().nth(1).is_some() {
        out.push('…');
    }
    out
}
