//! 20 batched sub-calls against a loopback OpenAI-format server with 200 ms latency, versus a
//! single sub-call: the batch should take well under 2x the single call.
//!
//! `cargo bench --bench subcalls`

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use rlm::{Orchestrator, StepKind};
use support::{LlmServer, Reply, first_user, turns};

fn block_time(o: &Orchestrator, query: &str) -> Duration {
    let r = o.run(query);
    assert!(r.success, "{:?}", r.error);
    r.steps
        .iter()
        .find(|s| s.kind == StepKind::CodeExecution)
        .expect("a code step")
        .duration
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let server = LlmServer::start(|req, _| {
        let q = first_user(req);
        if q.starts_with("Question: ONE") {
            match turns(req) {
                0 => Reply::Text("```python\na = llm_query('x')\n```".into()),
                _ => Reply::Text("```python\nFINAL(a)\n```".into()),
            }
        } else if q.starts_with("Question: TWENTY") {
            match turns(req) {
                0 => Reply::Text(
                    "```python\na = llm_query_batched([f'x{i}' for i in range(20)])\n```".into(),
                ),
                _ => Reply::Text("```python\nFINAL(len(a))\n```".into()),
            }
        } else {
            Reply::Delay(Duration::from_millis(200), "sub answer".into())
        }
    });
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .model("gpt-4o-mini")
        .build()
        .unwrap();
    block_time(&o, "ONE warm-up");
    let one = median((0..7).map(|_| block_time(&o, "ONE")).collect());
    let twenty = median((0..7).map(|_| block_time(&o, "TWENTY")).collect());
    println!(
        "code block with 1 sub-call (200 ms latency):   {:>7.1} ms",
        one.as_secs_f64() * 1e3
    );
    println!(
        "code block with 20 batched sub-calls:          {:>7.1} ms",
        twenty.as_secs_f64() * 1e3
    );
    println!(
        "ratio: {:.2}x (goal: well under 2x)",
        twenty.as_secs_f64() / one.as_secs_f64()
    );
}
