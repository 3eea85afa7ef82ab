//! History compaction with real parts: a loopback OpenAI-format server whose scripted turns
//! overflow a small context window, the agent loop, and the real bubblewrap sandbox.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rlm::{Orchestrator, StepKind};
use serde_json::Value;
use support::{LlmServer, Reply};

const WINDOW: usize = 6000;

fn code(c: &str) -> String {
    format!("Next step.\n```python\n{c}\n```\n")
}

fn is_summary_call(req: &Value) -> bool {
    req["messages"][0]["content"]
        .as_str()
        .is_some_and(|s| s.starts_with("You summarise the earlier turns"))
}

/// The request's size in estimated tokens (3 characters each, as the crate estimates).
fn tokens(req: &Value) -> usize {
    req["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().map_or(0, str::len))
        .sum::<usize>()
        / 3
}

/// The model's turns print about 3,000 characters each, so a window of 6,000 tokens
/// overflows after a few: older turns are summarised by one call, later requests stay
/// within the window, REPL variables survive, and `history` holds the older turns.
fn run(compact_at: &str) -> (rlm::RunResult, LlmServer) {
    let turn = Arc::new(AtomicUsize::new(0));
    let server = LlmServer::start(move |req, _| {
        if is_summary_call(req) {
            return Reply::Text("The agent set keep = 'K-77' and printed long filler.".into());
        }
        let t = turn.fetch_add(1, Ordering::SeqCst);
        Reply::Text(match t {
            0 => code("keep = 'K-77'\nprint(('turn zero filler ' * 170)[:3000])"),
            1..=5 => code(&format!("print(('turn {t} more filler ' * 170)[:3000])")),
            _ => code(
                "h = history\nold = [m for m in h if 'turn zero filler' in m['content']]\nFINAL(keep + ' ' + str(len(old) > 0) + ' ' + str(len(h)))",
            ),
        })
    });
    let r = Orchestrator::builder()
        .base_url(server.base_url())
        .model("gpt-4o-mini")
        .execution_timeout(Duration::from_secs(20))
        .setting("RLM_CONTEXT_WINDOW", WINDOW.to_string())
        .setting("RLM_COMPACT_AT", compact_at)
        .max_iterations(8)
        .build()
        .unwrap()
        .run("Keep working until told.");
    (r, server)
}

#[test]
fn older_turns_are_summarised_and_stay_readable_in_the_repl() {
    let (r, server) = run("0.8");
    assert!(r.success, "{:?}", r.error);
    let answer = r.final_answer.unwrap();
    // The REPL variable of turn 1 survived; `history` holds turn 1's output.
    assert!(answer.starts_with("K-77 True "), "{answer}");
    let n: usize = answer.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 8, "history holds the older turns: {n}");

    let reqs = server.requests.lock().unwrap().clone();
    let summaries: Vec<&Value> = reqs.iter().filter(|r| is_summary_call(r)).collect();
    assert!(!summaries.is_empty(), "a summary call happened");
    assert!(
        summaries[0]["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("turn zero filler"),
        "the summary call reads the older turns"
    );
    assert!(
        r.steps
            .iter()
            .any(|s| s.kind == StepKind::Compaction && s.success),
        "a compaction step"
    );
    let turns: Vec<&Value> = reqs.iter().filter(|r| !is_summary_call(r)).collect();
    for (i, t) in turns.iter().enumerate() {
        assert!(tokens(t) < WINDOW, "request {i}: {} tokens", tokens(t));
    }
    let last = serde_json::to_string(turns.last().unwrap()).unwrap();
    assert!(
        last.contains("History compaction:") && last.contains("keep = 'K-77' and printed"),
        "the summary replaced the older turns"
    );
    assert!(
        !last.contains("turn zero filler"),
        "turn 1's output is no longer sent"
    );
}

#[test]
fn with_compaction_off_older_turns_are_only_shortened() {
    let (r, server) = run("off");
    let reqs = server.requests.lock().unwrap().clone();
    assert!(!reqs.iter().any(is_summary_call));
    assert!(!r.steps.iter().any(|s| s.kind == StepKind::Compaction));
    // No compaction: `history` was never defined, and the old turns were shortened.
    assert!(!r.success);
    let last = serde_json::to_string(reqs.last().unwrap()).unwrap();
    assert!(last.contains("NameError"), "{last}");
    assert!(last.contains("left out to fit the context window"));
}

#[test]
fn a_restarted_repl_gets_the_whole_history_at_the_next_compaction() {
    let turn = Arc::new(AtomicUsize::new(0));
    let server = LlmServer::start(move |req, _| {
        if is_summary_call(req) {
            return Reply::Text("The agent printed long filler.".into());
        }
        let t = turn.fetch_add(1, Ordering::SeqCst);
        Reply::Text(match t {
            0 => code("print(('turn zero filler ' * 170)[:3000])"),
            // The REPL dies after the first compaction: what it held is gone.
            4 => code("import os\nos._exit(3)"),
            1..=10 => code(&format!("print(('turn {t} more filler ' * 170)[:3000])")),
            _ => code(
                "old = [m for m in history if 'turn zero filler' in m['content']]\nFINAL(str(len(old) > 0) + ' ' + str(len(history)))",
            ),
        })
    });
    let r = Orchestrator::builder()
        .base_url(server.base_url())
        .model("gpt-4o-mini")
        .execution_timeout(Duration::from_secs(20))
        .setting("RLM_CONTEXT_WINDOW", WINDOW.to_string())
        .setting("RLM_COMPACT_AT", "0.8")
        .max_iterations(14)
        .build()
        .unwrap()
        .run("Keep working until told.");
    let summaries = server
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| is_summary_call(r))
        .count();
    assert!(
        summaries >= 2,
        "compacted before and after the restart: {summaries}"
    );
    let answer = r.final_answer.clone().unwrap_or_default();
    assert!(answer.starts_with("True "), "{answer} {:?}", r.error);
}
