//! `rlm demo`: a real RLM task on a multi-megabyte document that does not fit the local
//! model's context window: two facts buried in a fleet maintenance log must be found and
//! combined.

use std::fmt::Write;

/// The question the demo asks.
pub const QUESTION: &str = "One van FAILED its inspection on 2025-06-14. Which van was it, and what was the total cost in EUR \
     of its REPAIR COMPLETED record? Find the failed inspection first, then search for that van's repair. Give both \
     in the final answer, formatted like: VAN-1234, 567 EUR";

/// Parts of a correct answer.
pub const EXPECTED: [&str; 2] = ["2731", "1840"];

/// The document (deterministic, about 4.2 MB, 52,000 lines).
pub fn document() -> String {
    let mut s = String::with_capacity(3_600_000);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let depots = [
        "Hamburg", "Leipzig", "Bremen", "Kassel", "Dresden", "Rostock", "Erfurt", "Kiel",
    ];
    let parts = [
        "brake pads",
        "wiper blades",
        "tyres",
        "battery",
        "headlight",
        "mirror",
        "clutch",
        "filters",
    ];
    let _ = writeln!(
        s,
        "FLEET MAINTENANCE LOG 2025 - Nordwind Logistics - 400 vans, 8 depots"
    );
    for line in 1..52_000u64 {
        let r = next();
        let day = 1 + (line * 365 / 52_000);
        let (m, d) = month_day(day);
        let van = match 1000 + r % 3000 {
            2731 => 2732, // the van of the buried facts appears nowhere else
            v => v,
        };
        let depot = depots[(r >> 12) as usize % depots.len()];
        if line == 17_351 {
            let _ = writeln!(
                s,
                "2025-06-14 {depot}: inspection of VAN-2731 FAILED (brake assembly worn beyond limit); van taken off the road."
            );
            continue;
        }
        if line == 38_902 {
            let _ = writeln!(
                s,
                "2025-10-23 Kassel: REPAIR COMPLETED for VAN-2731: brake assembly replaced, total cost 1840 EUR, back in service."
            );
            continue;
        }
        match r % 9 {
            0..=2 => {
                let _ = writeln!(
                    s,
                    "2025-{m:02}-{d:02} {depot}: inspection of VAN-{van} passed; odometer {} km.",
                    10_000 + (r >> 20) % 190_000
                );
            }
            3 | 4 => {
                let part = parts[(r >> 30) as usize % parts.len()];
                let _ = writeln!(
                    s,
                    "2025-{m:02}-{d:02} {depot}: REPAIR COMPLETED for VAN-{van}: {part} replaced, total cost {} EUR, back in service.",
                    40 + (r >> 24) % 900
                );
            }
            5 => {
                let _ = writeln!(
                    s,
                    "2025-{m:02}-{d:02} {depot}: fuel delivery {} litres; driver shift change at {:02}:00.",
                    200 + (r >> 18) % 800,
                    (r >> 40) % 24
                );
            }
            6 => {
                let _ = writeln!(
                    s,
                    "2025-{m:02}-{d:02} {depot}: route planning meeting; {} parcels scheduled for tomorrow.",
                    1000 + (r >> 22) % 9000
                );
            }
            _ => {
                let _ = writeln!(
                    s,
                    "2025-{m:02}-{d:02} {depot}: VAN-{van} cleaned and refuelled; tyre pressure checked."
                );
            }
        }
    }
    s
}

fn month_day(day: u64) -> (u64, u64) {
    let lens = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut d = day.clamp(1, 365);
    for (i, l) in lens.iter().enumerate() {
        if d <= *l {
            return (i as u64 + 1, d);
        }
        d -= l;
    }
    (12, 31)
}

/// True when `answer` names the van and the cost.
pub fn is_correct(answer: &str) -> bool {
    EXPECTED.iter().all(|e| answer.contains(e))
}

pub(crate) const SUMMARY: &str =
    "set up if needed, then run a real task on a 4.2 MB log with the local model";

pub(crate) fn help() -> String {
    "rlm demo [--runs N]\n\n\
     Runs `rlm setup` (idempotent: a prepared machine only checks it), then asks the local\n\
     model to find and combine two facts buried in a generated 4.2 MB, 52,000-line fleet\n\
     maintenance log, far beyond its 16k-token window. Prints progress and the answer of each\n\
     run; with --runs N, how many of N runs were right. Exit 0 when at least one run was right.\n"
        .into()
}

pub(crate) fn main(args: &[String]) -> std::process::ExitCode {
    use std::process::ExitCode;
    use std::time::Instant;

    use rlm::{Context, Orchestrator};

    use super::{Args, local_model, progress, signals, term, usage_error};

    signals::install();

    let err = |m: String| usage_error("demo", m);
    let a = match Args::parse(args, &["--runs"], &[]) {
        Ok(a) if a.positional.is_empty() => a,
        Ok(a) => return err(format!("unexpected argument {:?}", a.positional[0])),
        Err(e) => return err(e),
    };
    let runs: usize = match a.value("--runs").map(str::parse) {
        None => 1,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => return err("--runs expects a positive integer".into()),
    };
    // Set-up is idempotent (finished steps are skipped), so the demo always runs it: a fresh
    // machine gets bubblewrap, the server and the model; a prepared one only checks them.
    eprintln!("rlm demo: checking the set-up (rlm setup)");
    match local_model::setup() {
        Ok(s) if s.success() => {}
        _ => return ExitCode::from(2),
    }
    let Some((server, model)) = local_model::installed() else {
        return err("the local model is still missing after set-up".into());
    };
    let path = local_model::cache_dir().join("demo/fleet-log-2025.txt");
    let doc = document();
    if std::fs::read(&path)
        .map(|b| b != doc.as_bytes())
        .unwrap_or(true)
    {
        let _ = std::fs::create_dir_all(path.parent().expect("has a parent"));
        if let Err(e) = super::output::write_file(&path, |w| w.write_all(doc.as_bytes())) {
            return err(format!("cannot write {}: {e}", path.display()));
        }
    }
    let local = match local_model::LocalServer::start(&server, &model, true) {
        Ok(l) => l,
        Err(e) => return err(e),
    };
    let orch = match Orchestrator::builder()
        .env()
        .setting_from("RLM_LLM_PROVIDER", "openai", "local model")
        .setting_from("RLM_LLM_BASE_URL", local.base_url.clone(), "local model")
        .setting_from("RLM_LLM_MODEL", local_model::MODEL_NAME, "local model")
        .build()
    {
        Ok(o) => o,
        Err(e) => return err(e.to_string()),
    };
    eprintln!(
        "context: {} ({:.1} MB, {} lines; the model's window is 16k tokens)\nquestion: {}",
        path.display(),
        doc.len() as f64 / 1e6,
        doc.lines().count(),
        QUESTION
    );
    let mut correct = 0;
    let started = Instant::now();
    for i in 1..=runs {
        if signals::received().is_some() {
            break;
        }
        let run = orch.arun_observed(QUESTION, Some(Context::file(&path)));
        signals::watch(run.cancel.clone());
        let events = run.events;
        let shown = std::thread::spawn(move || progress::show(events, false));
        let r = futures_lite::future::block_on(run.result);
        let _ = shown.join();
        let ok = r.final_answer.as_deref().is_some_and(is_correct);
        correct += usize::from(ok);
        println!(
            "run {i}: {} ({})",
            term::safe(r.final_answer.as_deref().unwrap_or("(no answer)")),
            if ok { "correct" } else { "WRONG" }
        );
    }
    if let Some(sig) = signals::received() {
        eprintln!("rlm: stopped by signal {sig}");
        return ExitCode::from((128 + sig) as u8);
    }
    if runs > 1 {
        println!(
            "{correct}/{runs} correct, {:.0}s per run",
            started.elapsed().as_secs_f64() / runs as f64
        );
    }
    if correct > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
