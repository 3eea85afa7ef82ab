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
def run_filter(flt, text=None):
    try:
        flt.filter(out if text is None else text)
    except Exception:
        pass
out8 = open(sys.argv[5], encoding="utf-8").read()
res = {
    "filter_no_context": median(lambda: run_filter(EgressFilter()), 5),
    "filter_with_context": median(lambda: run_filter(EgressFilter(context=ctx)), 5),
    "filter_8mb": median(lambda: run_filter(EgressFilter(), out8), 3),
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

/// The literals that trigger the secret rules, read from their source (the prefixes and
/// keywords `rg` searches for beside the masking pass).
fn trigger_literals() -> Vec<String> {
    let src = include_str!("../src/secrets.rs");
    let mut out = Vec::new();
    for (open, close) in [("Prefix(&[", "])"), ("KeywordSuffix(&[", "])")] {
        let mut rest = src;
        while let Some(i) = rest.find(open) {
            rest = &rest[i + open.len()..];
            let Some(j) = rest.find(close) else { break };
            for lit in rest[..j].split('"').skip(1).step_by(2) {
                out.push(lit.to_string());
            }
            rest = &rest[j..];
        }
    }
    for lit in [
        "-----BEGIN",
        "://",
        "bearer",
        "authorization",
        "aws",
        "~",
        ":AA",
        "$",
    ] {
        out.push(lit.to_string());
    }
    out.sort();
    out.dedup();
    out
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
    // Removed however the benchmark ends (the inputs are over a GiB).
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(dir.clone());

    // Inputs.
    let ctx = inputs::context_doc(5_000);
    let out = inputs::output_with_echo(1 << 20, &ctx);
    let out8 = inputs::mixed_output(8 << 20);
    let (ctx_path, out_path, big_path, out8_path) = (
        dir.join("context.txt"),
        dir.join("output.txt"),
        dir.join("big.txt"),
        dir.join("output8.txt"),
    );
    std::fs::write(&ctx_path, &ctx).unwrap();
    std::fs::write(&out_path, &out).unwrap();
    std::fs::write(&out8_path, &out8).unwrap();
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

    // `rlm egress scan` on 8 MB, as a whole process (start, read stdin, filter, write).
    let bin = env!("CARGO_BIN_EXE_rlm");
    let scan8 = median(
        || {
            let o = Command::new(bin)
                .args(["egress", "scan"])
                .stdin(std::fs::File::open(&out8_path).unwrap())
                .output()
                .expect("rlm runs");
            // The filtered text is capped like an observation (as RLM-Python's is).
            assert!(o.status.success() && !o.stdout.is_empty());
        },
        11,
    );

    // Masking the 1 GiB file (every secret replaced by a placeholder), as a whole process:
    // the scan alone (output to /dev/null) and with the masked copy written to a file, as a
    // run does. Beside it, ripgrep counting the rules' trigger literals in the same file.
    let mask = |out: &Path| {
        let o = Command::new(bin)
            .args(["egress", "mask"])
            .arg(&big_path)
            .arg("-o")
            .arg(out)
            .output()
            .expect("rlm runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let masked_report = mask(Path::new("/dev/null"));
    let mask_scan = median(|| drop(mask(Path::new("/dev/null"))), 3);
    let copy = dir.join("masked.txt");
    // Each copy goes to a fresh file (the previous one removed and the disk synced, untimed):
    // freeing a 1 GiB file is the file system's cost, not the masking's.
    let mut copies: Vec<Duration> = (0..3)
        .map(|_| {
            let _ = std::fs::remove_file(&copy);
            let _ = Command::new("sync").status();
            let t = Instant::now();
            drop(mask(&copy));
            t.elapsed()
        })
        .collect();
    copies.sort();
    let mask_copy = copies[1];
    let _ = std::fs::remove_file(&copy);
    let literals = trigger_literals();
    let rg_literals = median(
        || {
            let mut c = Command::new("rg");
            c.args(["-c", "-F"]);
            for l in &literals {
                c.arg("-e").arg(l);
            }
            let o = c.arg(&big_path).output().expect("rg runs");
            assert!(o.status.success());
        },
        3,
    );

    // RLM-Python 2.1.0.
    let py = Command::new(&python)
        .arg("-c")
        .arg(PY)
        .args([&out_path, &ctx_path, &big_path])
        .arg(pattern)
        .arg(&out8_path)
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
    let py8 = secs("filter_8mb");
    println!(
        "{:<34} {:>10.1} {:>12.1} {:>10} {:>7.0}x (rlm as a whole process, RLM-Python in-process)",
        "egress scan 8 MiB",
        ms(scan8),
        ms(py8),
        "-",
        py8.as_secs_f64() / scan8.as_secs_f64()
    );
    println!(
        "{:<34} {:>10.1} {:>12} {:>10.1} {:>8} ({} trigger literals for rg; {})",
        format!("mask {search_mb} MiB (scan only)"),
        ms(mask_scan),
        "-",
        ms(rg_literals),
        "",
        literals.len(),
        masked_report.trim()
    );
    println!(
        "{:<34} {:>10.1} {:>12} {:>10} {:>8}",
        format!("mask {search_mb} MiB, copy written"),
        ms(mask_copy),
        "-",
        "-",
        ""
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let _ = Path::new(".");
}
