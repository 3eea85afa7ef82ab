//! Side-by-side comparison with RLM-Python 2.1.0 and ripgrep, on the same generated inputs.
//! Run through `benches/compare.sh`, which creates the throwaway venv and installs
//! `rlm-python==2.1.0`; this binary generates the inputs, times `rlm`, the Python filter and
//! context search, and `rg`, and prints the ratios.
//!
//! `cargo bench --bench compare -- --python VENV/bin/python [--search-mb 1024]`

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rlm::{Context, ContextHandle, EgressFilter};

#[path = "egress.rs"]
#[allow(dead_code)]
mod inputs;

const PY: &str = r#"
import sys, time, json, logging
logging.disable(logging.CRITICAL)
from rlm.security import EgressFilter
from rlm import ContextHandle
out_path, ctx_path, big_path, pattern = sys.argv[1:5]
out = open(out_path, encoding="utf-8").read()
ctx = open(ctx_path, encoding="utf-8").read()
def median(f, n):
    ts = []
    for _ in range(n):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    ts.sort(); return ts[len(ts) // 2]
def run_filter(flt):
    try:
        flt.filter(out)
    except Exception:
        pass
res = {
    "filter_no_context": median(lambda: run_filter(EgressFilter()), 5),
    "filter_with_context": median(lambda: run_filter(EgressFilter(context=ctx)), 5),
}
h = ContextHandle(big_path)
hits = h.search(pattern, max_results=10, ignore_case=True)
res["search_hits"] = len(hits)
res["search"] = median(lambda: h.search(pattern, max_results=10, ignore_case=True), 3)
print(json.dumps(res))
"#;

fn median(mut f: impl FnMut(), n: usize) -> Duration {
    let mut ts: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    ts.sort();
    ts[n / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let python = arg("--python").unwrap_or_else(|| "python3".into());
    let search_mb: usize = arg("--search-mb")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = std::env::temp_dir().join(format!("rlm-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // Inputs.
    let ctx = inputs::context_doc(5_000);
    let out = inputs::output_with_echo(1 << 20, &ctx);
    let (ctx_path, out_path, big_path) = (
        dir.join("context.txt"),
        dir.join("output.txt"),
        dir.join("big.txt"),
    );
    std::fs::write(&ctx_path, &ctx).unwrap();
    std::fs::write(&out_path, &out).unwrap();
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big_path).unwrap());
        let block = inputs::mixed_output(8 << 20);
        for _ in 0..search_mb / 8 {
            f.write_all(block.as_bytes()).unwrap();
        }
        f.write_all(b"\nthe NEEDLE-4242 is here\n").unwrap();
    }
    let pattern = r"needle-\d+";
    eprintln!("inputs in {} (search file {search_mb} MiB)", dir.display());

    // rlm.
    let plain = EgressFilter::new(rlm::Orchestrator::builder().resolve().unwrap().egress);
    let with_ctx = EgressFilter::for_context(
        rlm::Orchestrator::builder().resolve().unwrap().egress,
        &Context::file(&ctx_path),
    )
    .unwrap();
    let ours_plain = median(|| drop(plain.filter(out.as_bytes(), "stdout").unwrap()), 21);
    let ours_ctx = median(
        || drop(with_ctx.filter(out.as_bytes(), "stdout").unwrap()),
        21,
    );
    let h = ContextHandle::open(&big_path).unwrap();
    let hits = h.search(pattern, 10, true).unwrap();
    assert_eq!(hits.len(), 1, "the needle is found once");
    let ours_search = median(|| drop(h.search(pattern, 10, true).unwrap()), 5);

    // ripgrep (same file, same pattern, case-insensitive, line numbers, first 10 matches).
    let rg = median(
        || {
            let o = Command::new("rg")
                .args(["-n", "-i", "-m", "10", pattern])
                .arg(&big_path)
                .output()
                .expect("rg runs");
            assert!(o.status.success());
        },
        5,
    );

    // RLM-Python 2.1.0.
    let py = Command::new(&python)
        .arg("-c")
        .arg(PY)
        .args([&out_path, &ctx_path, &big_path])
        .arg(pattern)
        .output()
        .expect("python runs");
    if !py.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&py.stderr));
        panic!("RLM-Python benchmark failed");
    }
    let v: serde_json::Value = serde_json::from_slice(
        py.stdout
            .rsplit(|&b| b == b'\n')
            .find(|l| !l.is_empty())
            .unwrap(),
    )
    .unwrap();
    let secs = |k: &str| Duration::from_secs_f64(v[k].as_f64().unwrap());

    println!("same inputs, one run, medians (ms)");
    println!(
        "{:<34} {:>10} {:>12} {:>10} {:>8}",
        "task", "rlm", "RLM-Python", "ripgrep", "ratio"
    );
    for (name, ours, theirs) in [
        (
            "filter 1 MiB, no context",
            ours_plain,
            secs("filter_no_context"),
        ),
        (
            "filter 1 MiB, 5 KB context",
            ours_ctx,
            secs("filter_with_context"),
        ),
    ] {
        println!(
            "{name:<34} {:>10.3} {:>12.1} {:>10} {:>7.0}x",
            ms(ours),
            ms(theirs),
            "-",
            theirs.as_secs_f64() / ours.as_secs_f64()
        );
    }
    let py_search = secs("search");
    println!(
        "{:<34} {:>10.1} {:>12.1} {:>10.1} {:>7.0}x vs Python, {:.2}x of rg time",
        format!("search {search_mb} MiB, ignore case"),
        ms(ours_search),
        ms(py_search),
        ms(rg),
        py_search.as_secs_f64() / ours_search.as_secs_f64(),
        ours_search.as_secs_f64() / rg.as_secs_f64()
    );
    println!(
        "(RLM-Python found {} hit(s); rlm found {})",
        v["search_hits"],
        hits.len()
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let _ = Path::new(".");
}
