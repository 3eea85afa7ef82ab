//! A 2-turn run (one code block, then `FINAL`) against a zero-latency loopback OpenAI-format
//! server: `rlm` with and without a warm sandbox pool, and (given `--python`) the official
//! `rlms` 0.1.3 with its LocalREPL, on the same server in the same run. Also the time from
//! `arun` to the run's first LLM request, and the memory of an idle pooled sandbox.
//!
//! Run through `benches/two_turn.sh`, which makes a throwaway venv with `rlms==0.1.3`:
//! `cargo bench --bench two_turn -- [--python VENV/bin/python] [--runs 30]`

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use rlm::Orchestrator;
use support::{LlmServer, Reply, turns};

const RLMS: &str = r#"
import sys, time, logging, statistics
logging.disable(logging.CRITICAL)
from rlm import RLM
base, n = sys.argv[1], int(sys.argv[2])
def one():
    r = RLM(backend="openai", environment="local", max_iterations=5,
            backend_kwargs={"model_name": "gpt-4o-mini", "base_url": base, "api_key": "test"})
    t = time.perf_counter()
    out = r.completion("Question: two turns")
    dt = time.perf_counter() - t
    assert out.response.strip() == "42", out.response
    return dt
one()
ts = sorted(one() for _ in range(n))
print(ts[len(ts) // 2])
"#;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Proportional set size of `pid` and its descendants, KiB (`smaps_rollup`).
fn pss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .sum()
}

fn main() {
    let runs: usize = arg("--runs").and_then(|v| v.parse().ok()).unwrap_or(30);
    // The same two turns for both; each ends in its own convention (rlms 0.1.3 reads
    // `answer["ready"] = True`, rlm `FINAL(...)`), told apart by the system prompt.
    let server = LlmServer::start(|req, _| {
        let sys = req["messages"][0]["content"].as_str().unwrap_or("");
        Reply::Text(match turns(req) {
            0 => "```repl\nx = 6 * 7\nprint(x)\n```".into(),
            _ if sys.contains("answer[\"ready\"]") => {
                "```repl\nanswer[\"content\"] = str(x)\nanswer[\"ready\"] = True\n```".into()
            }
            _ => "```repl\nFINAL(str(x))\n```".into(),
        })
    });
    let measure = |pool: usize| {
        let o = Orchestrator::builder()
            .base_url(server.base_url())
            .model("gpt-4o-mini")
            .api_key("test")
            .setting("sandbox_pool", pool.to_string())
            .build()
            .expect("build");
        let one = |o: &Orchestrator| {
            let before = server.meta.lock().unwrap().len();
            let t = Instant::now();
            let r = o.run("Question: two turns");
            let dt = t.elapsed();
            assert_eq!(r.final_answer.as_deref(), Some("42"), "{:?}", r.error);
            let first = server.meta.lock().unwrap()[before].at.duration_since(t);
            // The pool refills between runs, as it would between a service's requests.
            std::thread::sleep(Duration::from_millis(if pool > 0 { 60 } else { 0 }));
            (dt, first)
        };
        one(&o);
        std::thread::sleep(Duration::from_millis(300));
        let (total, first): (Vec<_>, Vec<_>) = (0..runs).map(|_| one(&o)).unzip();
        (median(total), median(first))
    };
    let (cold, cold_first) = measure(0);
    let (warm, warm_first) = measure(4);

    // Memory of idle pooled sandboxes.
    let mine = support::descendants();
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .setting("sandbox_pool", "16")
        .build()
        .expect("build");
    std::thread::sleep(Duration::from_secs(3));
    let pooled: Vec<u32> = support::descendants()
        .into_iter()
        .filter(|p| !mine.contains(p))
        .collect();
    let idle_pss = pss_kib(&pooled) as f64 / 16.0 / 1024.0;
    drop(o);

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("2-turn run, zero-latency loopback server, median of {runs}:");
    println!(
        "  rlm, sandbox started per run:   {:>8.2} ms (arun -> first request {:.2} ms)",
        ms(cold),
        ms(cold_first)
    );
    println!(
        "  rlm, warm pool (4):             {:>8.2} ms (arun -> first request {:.2} ms)",
        ms(warm),
        ms(warm_first)
    );
    println!(
        "  idle pooled sandbox:            {idle_pss:>8.1} MiB PSS each ({} processes for 16)",
        pooled.len()
    );
    if let Some(py) = arg("--python") {
        let out = std::process::Command::new(py)
            .args(["-c", RLMS, &server.base_url(), &runs.to_string()])
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let secs: f64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("seconds");
        println!("  rlms 0.1.3 LocalREPL:           {:>8.2} ms", secs * 1e3);
        println!(
            "  ratio: {:.1}x (started per run), {:.1}x (warm pool)",
            secs / cold.as_secs_f64(),
            secs / warm.as_secs_f64()
        );
    }
}
