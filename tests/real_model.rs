//! The real-model tier: the library against the local llama.cpp server and the small coding
//! model installed by `rlm setup`. Without them these tests print why they are skipped (and
//! fail instead when RLM_REQUIRE_LOCAL_MODEL=1, as in CI). Assertions are about structure and
//! executed results, never exact wording.

#[allow(dead_code)]
#[path = "../src/cli/local_model.rs"]
mod local_model;

use std::sync::{Mutex, OnceLock};

use rlm::{Context, Orchestrator, RunEvent, StepKind};

static SERVER: OnceLock<Option<Mutex<local_model::LocalServer>>> = OnceLock::new();
static SERIAL: Mutex<()> = Mutex::new(());

/// The shared local server, or `None` (with a message) when the model is not installed.
fn server() -> Option<String> {
    let s = SERVER.get_or_init(|| match local_model::installed() {
        Some((bin, model)) => Some(Mutex::new(local_model::LocalServer::start(&bin, &model, false).expect("local server starts"))),
        None => {
            if std::env::var("RLM_REQUIRE_LOCAL_MODEL").is_ok_and(|v| v == "1") {
                panic!("RLM_REQUIRE_LOCAL_MODEL=1 but the local model is not installed: run `rlm setup`");
            }
            eprintln!("SKIPPED: the local model is not installed in {} (run `rlm setup`)", local_model::cache_dir().display());
            None
        }
    });
    s.as_ref()
        .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()).base_url.clone())
}

fn orch(url: &str) -> rlm::OrchestratorBuilder {
    Orchestrator::builder()
        .base_url(url)
        .model(local_model::MODEL_NAME)
        .max_iterations(8)
}

#[test]
fn answers_from_a_context_file_by_value() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(url) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let mut text = String::new();
    for i in 0..400 {
        text.push_str(&format!(
            "Entry {i}: routine status update, nothing to report today.\n"
        ));
        if i == 271 {
            text.push_str("Entry 271b: the vault access code is 58213.\n");
        }
    }
    std::fs::write(&path, &text).unwrap();
    let r = orch(&url).build().unwrap().run_with_context(
        "What is the vault access code? Answer with the number.",
        Context::file(&path),
    );
    assert!(r.success, "{:?} {:#?}", r.error, r.steps);
    assert!(
        r.final_answer.as_deref().unwrap().contains("58213"),
        "{:?}",
        r.final_answer
    );
    assert!(
        r.steps.iter().any(|s| s.kind == StepKind::CodeExecution),
        "the model worked through code"
    );
}

#[test]
fn code_calls_llm_query_through_the_host() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(url) = server() else { return };
    let r = orch(&url)
        .custom_instructions("For this task you must call llm_query once in your first code block and print its result.")
        .build()
        .unwrap()
        .run("Use llm_query to ask for the capital of France, print the reply, then give the city as your final answer.");
    let subs: Vec<_> = r
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::SubQuery)
        .collect();
    assert!(!subs.is_empty(), "no sub-query was made: {:#?}", r.steps);
    assert!(
        subs.iter()
            .all(|s| s.success && !s.output.is_empty() && s.prompt_tokens.unwrap_or(0) > 0)
    );
    assert!(r.success, "{:?}", r.error);
}

#[test]
fn events_stream_while_running_and_usage_is_real() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(url) = server() else { return };
    let o = orch(&url).build().unwrap();
    let run = o.arun_observed(
        "Compute 17 * 23 with Python and give the result as your final answer.",
        None,
    );
    let events = run.events;
    let collector = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while let Some(e) = events.recv_blocking() {
            seen.push((std::time::Instant::now(), e));
        }
        seen
    });
    let r = futures_lite::future::block_on(run.result);
    let finished_at = std::time::Instant::now();
    let seen = collector.join().unwrap();
    assert!(r.success, "{:?}", r.error);
    assert!(
        r.final_answer.as_deref().unwrap().contains("391"),
        "{:?}",
        r.final_answer
    );
    let first_step = seen
        .iter()
        .find(|(_, e)| matches!(e, RunEvent::Step { .. }))
        .expect("step events");
    assert!(
        finished_at.duration_since(first_step.0).as_millis() > 0,
        "events arrive before the run ends"
    );
    assert!(
        r.usage.prompt_tokens > 100 && r.usage.completion_tokens > 0,
        "{:?}",
        r.usage
    );
    assert_eq!(r.usage.cost_usd, None, "a local model has no known price");
    let llm = r
        .steps
        .iter()
        .find(|s| s.kind == StepKind::LlmCall)
        .unwrap();
    assert_eq!(llm.model.as_deref().map(|m| m.is_empty()), Some(false));
}

/// The README's main-job command: `rlm demo` runs the (idempotent) set-up and the real task on
/// the 4.2 MB document, and reports a correct answer.
#[test]
fn demo_command_answers_correctly() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if server().is_none() {
        return;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rlm"))
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("(correct)") && stdout.contains("2731") && stdout.contains("1840"),
        "{stdout}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("turn 1: asking the model") && err.contains("done in"),
        "progress is shown: {err}"
    );
}
