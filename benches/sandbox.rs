//! Sandbox latency: a trivial block's round trip through the library, and a session's cold
//! start (bubblewrap + Python + the REPL driver ready). Goals: round trip <= 150 us median,
//! cold start <= 30 ms median.
//!
//! `cargo bench --bench sandbox`

use rlm::sandbox::{NoHostCalls, SessionSpec, from_config};

fn main() {
    divan::main();
}

#[divan::bench(sample_count = 40, sample_size = 1)]
fn cold_start(bencher: divan::Bencher<'_, '_>) {
    let sb = from_config(&rlm::Orchestrator::builder().resolve().unwrap().sandbox).expect("bwrap");
    bencher.bench(|| {
        futures_lite::future::block_on(sb.start(SessionSpec::empty())).expect("sandbox starts")
    });
}

#[divan::bench(sample_count = 200, sample_size = 10)]
fn trivial_block_round_trip(bencher: divan::Bencher<'_, '_>) {
    let sb = from_config(&rlm::Orchestrator::builder().resolve().unwrap().sandbox).expect("bwrap");
    let mut s = futures_lite::future::block_on(sb.start(SessionSpec::empty())).unwrap();
    let mut i = 0u64;
    bencher.bench_local(|| {
        i += 1;
        let r = futures_lite::future::block_on(s.execute("x = 1", &NoHostCalls)).unwrap();
        assert!(r.success());
    });
}
