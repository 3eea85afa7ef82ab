//! The same scripted session under every executor, and the blocking API called from inside
//! running tasks (it must neither panic nor deadlock).

mod support;

use rlm::{Orchestrator, RunResult};
use support::{LlmServer, Reply, turns};

fn server() -> LlmServer {
    LlmServer::start(|req, _| match turns(req) {
        0 => Reply::Text("```python\nimport math\nv = math.factorial(6)\nprint(v)\n```".into()),
        _ => Reply::Text("```python\nFINAL_VAR('v')\n```".into()),
    })
}

fn orch(s: &LlmServer) -> Orchestrator {
    Orchestrator::builder()
        .base_url(s.base_url())
        .model("test")
        .build()
        .unwrap()
}

fn check(r: RunResult, how: &str) {
    assert_eq!(
        r.final_answer.as_deref(),
        Some("720"),
        "{how}: {:?}",
        r.error
    );
    assert_eq!(r.iterations, 2, "{how}");
}

#[test]
fn plain_run() {
    let s = server();
    check(orch(&s).run("6!"), "run()");
}

#[test]
fn futures_lite_block_on() {
    let s = server();
    let o = orch(&s);
    check(
        futures_lite::future::block_on(o.arun("6!")),
        "futures_lite::block_on",
    );
}

#[test]
fn smol_executor() {
    let s = server();
    let o = orch(&s);
    check(smol::block_on(o.arun("6!")), "smol::block_on");
    let o2 = o.clone();
    check(
        smol::block_on(smol::spawn(async move { o2.arun("6!").await })),
        "smol::spawn",
    );
    check(
        smol::block_on(smol::spawn(async move { o.run("6!") })),
        "run() inside a smol task",
    );
}

#[test]
fn async_std_executor() {
    let s = server();
    let o = orch(&s);
    check(
        async_std::task::block_on(o.arun("6!")),
        "async_std::block_on",
    );
    let o2 = o.clone();
    check(
        async_std::task::block_on(async_std::task::spawn(async move { o2.arun("6!").await })),
        "async_std::spawn",
    );
    check(
        async_std::task::block_on(async_std::task::spawn(async move { o.run("6!") })),
        "run() inside async-std",
    );
}

#[test]
fn tokio_multi_thread() {
    let s = server();
    let o = orch(&s);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    check(rt.block_on(o.arun("6!")), "tokio multi-thread block_on");
    let o2 = o.clone();
    check(
        rt.block_on(rt.spawn(o2.arun("6!"))).unwrap(),
        "tokio::spawn",
    );
    check(
        rt.block_on(rt.spawn(async move { o.run("6!") })).unwrap(),
        "run() inside a tokio task",
    );
}

#[test]
fn tokio_current_thread() {
    let s = server();
    let o = orch(&s);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    check(rt.block_on(o.arun("6!")), "tokio current-thread block_on");
    let o2 = o.clone();
    check(
        rt.block_on(rt.spawn(o2.arun("6!"))).unwrap(),
        "tokio::spawn current-thread",
    );
    // The Jupyter case: the blocking API called while the only runtime thread is inside a task.
    check(
        rt.block_on(async move { o.run("6!") }),
        "run() inside a current-thread tokio task",
    );
}

#[test]
fn concurrent_runs_under_tokio() {
    let s = server();
    let o = orch(&s);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = rt.block_on(async {
        let hs: Vec<_> = (0..10).map(|_| tokio::spawn(o.arun("6!"))).collect();
        let mut out = Vec::new();
        for h in hs {
            out.push(h.await.unwrap());
        }
        out
    });
    for r in results {
        check(r, "10 concurrent runs on one tokio thread");
    }
}
