//! Sessions through the whole path: a loopback OpenAI-format server, one real bubblewrap REPL
//! kept across calls. Serialized: one test counts sandbox processes.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use rlm::{Context, Error, Orchestrator};
use support::{LlmServer, Reply, descendants, last_message, wait_no_descendants};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn code(c: &str) -> Reply {
    Reply::Text(format!("```python\n{c}\n```"))
}

/// All message contents of a request, joined.
fn all_text(req: &serde_json::Value) -> String {
    req["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

#[test]
fn a_session_keeps_variables_contexts_and_conversation() {
    let _g = serial();
    let server = LlmServer::start(|req, _| {
        let text = all_text(req);
        let last = last_message(req);
        if last.contains("Question: Q1") {
            code("a = int(ctx.search(r'alpha (\\d+)')[0]['match'].split()[1])\nFINAL(a)")
        } else if last.contains("Question: Q2") {
            assert!(
                text.contains("Question: Q1"),
                "the conversation goes on: {text}"
            );
            assert!(last.contains("ctx_0, ctx_1"), "{last}");
            code(
                "b = int(ctx_1.search(r'beta (\\d+)')[0]['match'].split()[1])\nprint(a + b, context_0.strip(), ctx is ctx_1)",
            )
        } else if last.contains("Question: Q3") {
            assert!(text.contains("Question: Q2") && text.contains("FINAL answer given: 10"));
            code("FINAL(a * b)")
        } else if last.contains("12 alpha 10 True") {
            code("FINAL(a + b)")
        } else {
            panic!("unexpected turn: {last}")
        }
    });
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .model("gpt-4o-mini")
        .build()
        .unwrap();
    let s = o.session();
    let r1 = s.run_with_context("Q1", Context::text("alpha 10"));
    assert_eq!(r1.final_answer.as_deref(), Some("10"), "{:?}", r1.error);
    let r2 = s.run_with_context("Q2", Context::text("beta 2"));
    assert_eq!(r2.final_answer.as_deref(), Some("12"), "{:?}", r2.error);
    let r3 = s.run("Q3");
    assert_eq!(r3.final_answer.as_deref(), Some("20"), "{:?}", r3.error);
    assert!(
        r1.run_id != r2.run_id && r2.run_id != r3.run_id,
        "each call is a run"
    );
    assert_eq!(r3.iterations, 1, "each call has its own result");
}

#[test]
fn concurrent_calls_are_rejected_and_dropping_the_session_kills_its_sandbox() {
    let _g = serial();
    let server = LlmServer::start(|req, _| {
        let last = last_message(req);
        if last.contains("Question: SLOW") {
            Reply::Delay(
                Duration::from_millis(800),
                "```python\nx = 7\nFINAL(x)\n```".into(),
            )
        } else {
            code("FINAL(x * 6)")
        }
    });
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .model("gpt-4o-mini")
        .build()
        .unwrap();
    let s = o.session();
    let slow = std::thread::scope(|scope| {
        let first = scope.spawn(|| s.run("SLOW"));
        std::thread::sleep(Duration::from_millis(200));
        let second = s.run("meanwhile");
        assert!(
            matches!(second.failure, Some(Error::SessionBusy { .. })),
            "{:?}",
            second.error
        );
        first.join().unwrap()
    });
    assert_eq!(slow.final_answer.as_deref(), Some("7"), "{:?}", slow.error);
    let r = s.run("times six");
    assert_eq!(
        r.final_answer.as_deref(),
        Some("42"),
        "free again: {:?}",
        r.error
    );
    assert!(
        !descendants().is_empty(),
        "the session's sandbox lives between calls"
    );
    drop(s);
    assert_eq!(wait_no_descendants(10), 0, "dropping the session kills it");
}

/// `Session::arun_observed`: the call's events arrive, and cancelling it loses the REPL (the
/// next call starts a fresh one) while the session stays usable.
#[test]
fn an_observed_call_streams_events_and_cancelling_it_loses_the_repl() {
    let _g = serial();
    let server = LlmServer::start(|req, _| {
        let last = last_message(req);
        if last.contains("Question: SLOW") {
            code("x = 7\nimport time\ntime.sleep(60)")
        } else if last.contains("Question: SET") {
            code("x = 5\nFINAL(x)")
        } else {
            code("FINAL('x' in globals())")
        }
    });
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .model("gpt-4o-mini")
        .build()
        .unwrap();
    let s = o.session();
    let run = s.arun_observed("SET", None);
    let r = futures_lite::future::block_on(run.result);
    assert_eq!(r.final_answer.as_deref(), Some("5"), "{:?}", r.error);
    let mut seen = Vec::new();
    while let Some(ev) = run.events.try_recv() {
        seen.push(ev);
    }
    assert!(matches!(seen.first(), Some(rlm::RunEvent::Started { .. })));
    assert!(matches!(seen.last(), Some(rlm::RunEvent::Finished { .. })));

    let run = s.arun_observed("SLOW", None);
    let cancel = run.cancel.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        cancel.cancel();
    });
    let started = std::time::Instant::now();
    let r = futures_lite::future::block_on(run.result);
    t.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(matches!(r.failure, Some(Error::Cancelled)), "{:?}", r.error);
    let r = s.run("CHECK");
    assert_eq!(r.final_answer.as_deref(), Some("False"), "{:?}", r.error);
    drop(s);
    assert_eq!(wait_no_descendants(10), 0);
}

#[test]
fn placeholders_mean_one_value_across_a_sessions_calls() {
    let llm = rlm::llm::ScriptedLlm::replies([
        "```python\nFINAL(context.split()[-1])\n```",
        "```python\nFINAL(context_0.split()[-1] + ' ' + context_1.split()[-1])\n```",
    ]);
    let session = Orchestrator::builder()
        .llm(llm)
        .setting("require_evidence", "0")
        .build()
        .unwrap()
        .session();
    let a = session.run_with_context("first", Context::text("key AKIAIOSFODNN7EXAMPLE"));
    let first = a.final_answer.clone().unwrap_or_default();
    assert!(first.starts_with("[SECRET:"), "{first} {:?}", a.error);
    let b = session.run_with_context("second", Context::text("key AKIAI44QH8DHBEXAMPLE"));
    let both = b.final_answer.clone().unwrap_or_default();
    let (p0, p1) = both.split_once(' ').expect("two placeholders");
    assert_eq!(p0, first, "the earlier context keeps its placeholder");
    assert_ne!(p0, p1, "another secret gets another placeholder: {both}");
}
