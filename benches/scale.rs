//! Many concurrent runs on one orchestrator, each with a real sandbox, against a loopback
//! OpenAI-format server that answers after a fixed latency. Each run takes `--turns` turns
//! (code blocks, then `FINAL`); every answer is checked against its run.
//!
//! Prints wall time, CPU time, peak memory (this process, and the machine's used memory
//! while the load ran), the time from `arun` to each run's first LLM request (p50/p99), the
//! threads left after the load and a few seconds later, and the processes left behind.
//!
//! `cargo bench --bench scale -- [--runs 1000] [--latency-ms 100] [--turns 3] [--pool 0]`

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rlm::Orchestrator;
use support::{LlmServer, Reply, first_user, turns};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A field of `/proc/self/status` in KiB.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Memory in use on the machine (MemTotal - MemAvailable), KiB.
fn machine_used_kib() -> u64 {
    let m = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let get = |k: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get("MemTotal:").saturating_sub(get("MemAvailable:"))
}

/// User + system CPU seconds of this process (its threads, not its children).
fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of stat (utime, stime) are at 11 and 12 after the command.
    (ticks(11) + ticks(12)) / 100.0
}

/// Busy CPU seconds of the whole machine (every process: the sandboxes, the server).
fn machine_busy_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: f64 = f
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    busy / 100.0
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// This process's threads by name (digits dropped), most frequent first.
fn thread_names() -> String {
    let mut by: std::collections::BTreeMap<String, usize> = Default::default();
    for e in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        let name: String = name
            .trim()
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .collect();
        *by.entry(name).or_default() += 1;
    }
    let mut v: Vec<_> = by.into_iter().collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1));
    v.iter()
        .map(|(n, c)| format!("{n} {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn pct(v: &[Duration], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1e3
}

fn main() {
    let runs = arg("--runs", 1000) as usize;
    let latency = Duration::from_millis(arg("--latency-ms", 100));
    let nturns = arg("--turns", 3) as usize;
    let pool = arg("--pool", 0);
    let server = LlmServer::start(move |req, _| {
        let q = first_user(req);
        let id: u64 = q
            .split("run ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.trim_end_matches('.').parse().ok())
            .unwrap_or(0);
        let t = turns(req);
        let text = if t == 0 {
            format!("```python\nx = {id} * 3\n```")
        } else if t + 1 < nturns {
            "```python\nprint(x)\n```".to_string()
        } else {
            "```python\nFINAL(x // 3)\n```".to_string()
        };
        Reply::Delay(latency, text)
    });
    let b = Orchestrator::builder()
        .env()
        .base_url(server.base_url())
        .model("gpt-4o-mini")
        .max_iterations(nturns as u32 + 2)
        .max_in_flight(runs.max(1))
        .setting("sandbox_pool", pool.to_string());
    let o = Arc::new(b.build().expect("build the orchestrator"));
    // One warm-up run: the first sandbox start pays for loading the interpreter from disk.
    let r = o.run("Question: run 0.");
    assert!(r.success, "warm-up failed: {:?}", r.error);
    // The pool (if any) fills before the load starts.
    std::thread::sleep(Duration::from_millis(300) + Duration::from_millis(25) * pool as u32);

    let threads_before = threads();
    let used_before = machine_used_kib();
    let peak_used = Arc::new(AtomicU64::new(used_before));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak_used, stop) = (peak_used.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak_used.fetch_max(machine_used_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let first_req = server.meta.lock().unwrap().len();
    let cpu0 = cpu_secs();
    let busy0 = machine_busy_secs();
    let t0 = Instant::now();
    let ex = async_executor::Executor::new();
    let results = futures_lite::future::block_on(ex.run(async {
        let tasks: Vec<_> = (1..=runs)
            .map(|i| {
                let o = o.clone();
                ex.spawn(async move {
                    let start = Instant::now();
                    let r = o.arun(&format!("Question: run {i}.")).await;
                    (i, start, r)
                })
            })
            .collect();
        let mut out = Vec::with_capacity(runs);
        for t in tasks {
            out.push(t.await);
        }
        out
    }));
    let wall = t0.elapsed();
    let cpu = cpu_secs() - cpu0;
    let busy = machine_busy_secs() - busy0;
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let threads_after = threads();

    let right = results
        .iter()
        .filter(|(i, _, r)| r.success && r.final_answer.as_deref() == Some(i.to_string().as_str()))
        .count();
    let errors: Vec<String> = results
        .iter()
        .filter_map(|(_, _, r)| r.error.as_ref().map(|e| e.to_string()))
        .take(3)
        .collect();
    // Time from each run's `arun` to its first request at the server.
    let metas = server.meta.lock().unwrap()[first_req..].to_vec();
    let reqs = server.requests.lock().unwrap()[first_req..].to_vec();
    let mut firsts = Vec::new();
    for (i, start, _) in &results {
        let needle = format!("Question: run {i}.");
        if let Some(m) = reqs
            .iter()
            .zip(&metas)
            .find(|(q, _)| turns(q) == 0 && first_user(q).contains(&needle))
            .map(|(_, m)| m)
        {
            firsts.push(m.at.saturating_duration_since(*start));
        }
    }
    firsts.sort();
    std::thread::sleep(Duration::from_secs(6));
    let threads_later = threads();
    let names_later = thread_names();
    drop(o);
    let left = support::wait_no_descendants(10);

    println!(
        "runs: {runs} concurrent, {nturns} turns each, {latency:?} per LLM reply, pool {pool}"
    );
    println!("right answers:            {right}/{runs}   errors: {errors:?}");
    println!("wall time:                {:.2} s", wall.as_secs_f64());
    println!("CPU time (this process):  {cpu:.2} s; whole machine busy {busy:.2} s");
    println!(
        "arun -> first request:    p50 {:.1} ms, p99 {:.1} ms",
        pct(&firsts, 0.5),
        pct(&firsts, 0.99)
    );
    println!(
        "peak RSS (this process):  {:.0} MiB",
        status_kib("VmHWM:") as f64 / 1024.0
    );
    println!(
        "machine memory in use:    +{:.0} MiB at peak (sandboxes included)",
        (peak_used
            .load(Ordering::Relaxed)
            .saturating_sub(used_before)) as f64
            / 1024.0
    );
    println!(
        "threads: {threads_before} before, {threads_after} right after, {threads_later} 6 s later"
    );
    println!("threads 6 s later by name: {names_later}");
    println!("processes left behind:    {left}");
}
