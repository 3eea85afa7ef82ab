//! Egress filter and context search throughput (divan).
//!
//! `cargo bench --bench egress`

use std::sync::OnceLock;

use rlm::{Context, ContextHandle, EgressFilter};

fn main() {
    divan::main();
}

/// Deterministic "mixed" sandbox output: log lines, prose, numbers, JSON, code, a few
/// secrets and base64 blobs — the same generator the comparison script uses.
pub fn mixed_output(bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 256);
    let mut x: u64 = 0x9E3779B97F4A7C15;
    let mut i = 0u64;
    while s.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        i += 1;
        match x % 10 {
            0 => s.push_str(&format!("2026-11-25T09:{:02}:{:02}Z INFO request id={} status=200 took={}ms\n", i % 60, x % 60, x % 100000, x % 900)),
            1 => s.push_str("The quarterly report shows revenue growth across all regions, with the strongest gains in Europe.\n"),
            2 => s.push_str(&format!("{{\"user\": \"u{}\", \"items\": [{}, {}, {}], \"total\": {}.{:02}}}\n", i, x % 97, x % 89, x % 83, x % 1000, x % 100)),
            3 => s.push_str(&format!("def handler_{i}(event):\n    return process(event['body'], retries={})\n", x % 5)),
            4 => s.push_str(&format!("row {i}: {:>10} {:>10} {:>10}\n", x % 1000, (x >> 10) % 1000, (x >> 20) % 1000)),
            5 if i.is_multiple_of(50) => s.push_str("aws key AKIAIOSFODNN7EXAMPLE and token ghp_abcdefghijklmnopqrstuvwxyz0123456789\n"),
            6 if i.is_multiple_of(40) => {
                let blob: String = (0..64).map(|k| b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[((x >> (k % 58)) as usize + k * 7) % 64] as char).collect();
                s.push_str(&format!("payload={blob}\n"));
            }
            _ => s.push_str("Traceback (most recent call last): File \"<cell 3>\", line 2, in <module> KeyError: 'name'\n"),
        }
    }
    s.truncate(bytes);
    s
}

/// A 5 KB context document unrelated to the output's vocabulary.
pub fn context_doc(bytes: usize) -> String {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < bytes {
        i += 1;
        s.push_str(&format!(
            "## Section {i}\nThe migration plan for cluster {i} moves {} volumes to the new storage tier; owners sign off by week {}.\n",
            i * 37 % 101,
            i % 52
        ));
    }
    s.truncate(bytes);
    s
}

/// Mixed output of `bytes` bytes with two verbatim 1000-byte slices of `context` inside.
pub fn output_with_echo(bytes: usize, context: &str) -> String {
    let mut s = mixed_output(bytes);
    for (at, from) in [(bytes / 3, 1000), (2 * bytes / 3, 3000)] {
        let at = (0..=at).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        s.insert_str(at, &context[from..from + 1000]);
    }
    s.truncate(bytes);
    s
}

fn context_text() -> &'static str {
    static C: OnceLock<String> = OnceLock::new();
    C.get_or_init(|| context_doc(5_000))
}

#[divan::bench(args = [4 << 10, 64 << 10, 1 << 20])]
fn filter_no_context(bencher: divan::Bencher<'_, '_>, bytes: usize) {
    let f = EgressFilter::new(rlm::Orchestrator::builder().resolve().unwrap().egress);
    let input = mixed_output(bytes);
    bencher
        .counter(divan::counter::BytesCount::new(bytes))
        .bench(|| {
            f.filter(divan::black_box(input.as_bytes()), "stdout")
                .unwrap()
        });
}

#[divan::bench(args = [4 << 10, 64 << 10, 1 << 20])]
fn filter_with_context(bencher: divan::Bencher<'_, '_>, bytes: usize) {
    let f = EgressFilter::for_context(
        rlm::Orchestrator::builder().resolve().unwrap().egress,
        &Context::text(context_text()),
    )
    .unwrap();
    let input = output_with_echo(bytes, context_text());
    bencher
        .counter(divan::counter::BytesCount::new(bytes))
        .bench(|| {
            f.filter(divan::black_box(input.as_bytes()), "stdout")
                .unwrap()
        });
}

#[divan::bench(sample_count = 10)]
fn search_64mb(bencher: divan::Bencher<'_, '_>) {
    let dir = std::env::temp_dir().join(format!("rlm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("ctx.txt");
    let mut text = mixed_output(64 << 20);
    text.push_str("\nNEEDLE-7731 found here\n");
    std::fs::write(&p, &text).unwrap();
    let h = ContextHandle::open(&p).unwrap();
    bencher
        .counter(divan::counter::BytesCount::new(text.len()))
        .bench(|| h.search("needle-\\d+", 10, true).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}
