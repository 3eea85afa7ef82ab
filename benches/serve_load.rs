//! Load test of `rlm serve`: N concurrent HTTP clients on loopback against the real binary,
//! with a loopback LLM server and the real sandbox. Reports throughput, p50/p99 latency,
//! errors (must be 0), the server's peak RSS, and that nothing is left behind after a
//! graceful shutdown. Not a timed unit test: run it by hand.
//!
//! `cargo bench --bench serve_load` (RUNS=200 CLIENTS=50 MAX_CONCURRENT=16 by default;
//! set them in the environment to change them).

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{LlmServer, Reply, turns};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let runs = env_num("RUNS", 200);
    let clients = env_num("CLIENTS", 50);
    let max_concurrent = env_num("MAX_CONCURRENT", 16);
    let llm = LlmServer::start(|req, _| match turns(req) {
        0 => Reply::Text("```python\nx = sum(range(10))\nprint(x)\n```".into()),
        _ => Reply::Text("```python\nFINAL(str(x))\n```".into()),
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_rlm"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env("RLM_LLM_BASE_URL", llm.base_url())
        .env("RLM_LLM_MODEL", "load-model")
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--max-concurrent",
            &max_concurrent.to_string(),
            "--queue",
            &(runs + clients).to_string(),
            "--threads",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("rlm serve starts");
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let url = format!("{}/v1/runs", first["addr"].as_str().unwrap());
    // Drain the access log so the server never blocks on a full pipe.
    let logged = Arc::new(AtomicUsize::new(0));
    let l2 = logged.clone();
    std::thread::spawn(move || {
        for _ in lines.map_while(Result::ok) {
            l2.fetch_add(1, Ordering::Relaxed);
        }
    });

    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(runs)));
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (next, errors, latencies, url) =
                (next.clone(), errors.clone(), latencies.clone(), url.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(300)))
                    .build()
                    .into();
                while next.fetch_add(1, Ordering::SeqCst) < runs {
                    let t = Instant::now();
                    let ok = agent
                        .post(&url)
                        .header("content-type", "application/json")
                        .send(&br#"{"query":"sum of 0..9"}"#[..])
                        .ok()
                        .filter(|r| r.status() == 200)
                        .and_then(|mut r| r.body_mut().read_to_string().ok())
                        .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
                        .is_some_and(|v| v["final_answer"] == "45");
                    if ok {
                        latencies.lock().unwrap().push(t.elapsed());
                    } else {
                        errors.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let wall = start.elapsed();
    let peak_rss = vm_hwm_kib(pid);
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let exit = child.wait().unwrap();
    let left = support::wait_no_descendants(10);
    let errors = errors.load(Ordering::SeqCst);
    println!(
        "rlm serve load test: {runs} runs, {clients} clients, --max-concurrent {max_concurrent}"
    );
    println!("  wall:            {:>8.2} s", wall.as_secs_f64());
    println!(
        "  throughput:      {:>8.1} runs/s",
        lat.len() as f64 / wall.as_secs_f64()
    );
    println!(
        "  latency p50:     {:>8.1} ms",
        pct(0.50).as_secs_f64() * 1e3
    );
    println!(
        "  latency p99:     {:>8.1} ms",
        pct(0.99).as_secs_f64() * 1e3
    );
    println!("  errors:          {errors:>8}");
    println!("  server peak RSS: {:>8.1} MiB", peak_rss as f64 / 1024.0);
    println!("  LLM requests:    {:>8}", llm.count());
    println!("  access-log lines:{:>8}", logged.load(Ordering::Relaxed));
    println!("  server exit:     {exit}");
    println!("  processes left:  {left:>8}");
    assert_eq!(errors, 0, "every request must succeed");
    assert!(exit.success(), "graceful shutdown exits 0");
    assert_eq!(left, 0, "nothing left behind");
}
