//! Host tools through the whole path: a loopback OpenAI-format server, the agent loop, the
//! real bubblewrap sandbox calling the tools over its protocol pipe, the host checking names
//! and arguments.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rlm::{Orchestrator, RunEvent, StepKind, Tool};
use support::{LlmServer, Reply, first_user, last_message, turns};

fn code(c: &str) -> Reply {
    Reply::Text(format!("```python\n{c}\n```"))
}

fn system(req: &serde_json::Value) -> String {
    req["messages"][0]["content"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

const ADD: &str = r#"{"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"], "additionalProperties": false}"#;

fn add(calls: Arc<AtomicUsize>) -> Tool {
    Tool::new("add", "Adds two integers.", ADD, move |args| {
        calls.fetch_add(1, Ordering::SeqCst);
        let v: serde_json::Value = serde_json::from_str(args).map_err(|e| e.to_string())?;
        Ok((v["a"].as_i64().unwrap() + v["b"].as_i64().unwrap()).to_string())
    })
    .unwrap()
}

#[test]
fn tools_are_called_checked_and_fail_as_error_strings() {
    let server = LlmServer::start(|req, _| match turns(req) {
        0 => code(
            "r = [add(2, 3), add(a=4, b=5), add('2', 3), add(1, 2, c=3), add(1)]\n\
             r.append(lookup(key='alpha'))\n\
             r.append(fails())\n\
             r.append(slow())\n\
             r.append(leaky())\n\
             r.append(__import__('sys').modules['__main__']._host_call('tool', {'name': 'not_registered', 'args': {}}))\n\
             for x in r: print(repr(x))",
        ),
        1 => {
            let out = last_message(req);
            for needle in [
                "'5'",
                "'9'",
                "Error: add: arguments.a: expected integer, got string",
                "Error: add: arguments: unexpected property \"c\"",
                "Error: add: arguments: missing required property \"b\"",
                "'value of alpha'",
                "Error: fails: no such record",
                "Error: slow: timed out",
                "Error: there is no tool named \"not_registered\"; tools: add, lookup, fails, slow, leaky",
            ] {
                assert!(out.contains(needle), "{needle:?} not in {out}");
            }
            assert!(!out.contains("AKIAIOSFODNN7EXAMPLE"), "{out}");
            code("FINAL(add(20, 22))")
        }
        _ => Reply::Text("unexpected".into()),
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .model("gpt-4o-mini")
        .tool(add(calls.clone()))
        .tool(
            Tool::new_async(
                "lookup",
                "Looks a key up.",
                r#"{"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}"#,
                |args: String| async move {
                    let v: serde_json::Value = serde_json::from_str(&args).unwrap();
                    Ok(format!("value of {}", v["key"].as_str().unwrap()))
                },
            )
            .unwrap(),
        )
        .tool(
            Tool::new("fails", "Always fails.", r#"{"type": "object"}"#, |_| {
                Err("no such record".into())
            })
            .unwrap(),
        )
        .tool(
            Tool::new("slow", "Too slow.", r#"{"type": "object"}"#, |_| {
                std::thread::sleep(Duration::from_secs(3));
                Ok("late".into())
            })
            .unwrap()
            .timeout(Duration::from_millis(200)),
        )
        .tool(
            Tool::new("leaky", "Returns a secret.", r#"{"type": "object"}"#, |_| {
                Ok("key AKIAIOSFODNN7EXAMPLE".into())
            })
            .unwrap(),
        )
        .build()
        .unwrap();
    let observed = o.arun_observed("Add things", None);
    let r = futures_lite::future::block_on(observed.result);
    assert_eq!(r.final_answer.as_deref(), Some("42"), "{:?}", r.error);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "bad arguments never reach the function"
    );
    // The prompt lists the tools with their parameters and schemas.
    let reqs = server.requests.lock().unwrap().clone();
    let sys = system(&reqs[0]);
    assert!(
        sys.contains("- `add(a, b)`: Adds two integers.")
            && sys.contains("\"additionalProperties\":false"),
        "{sys}"
    );
    assert!(sys.contains("- `lookup(key)`: Looks a key up."));
    // Each call that ran is a step and a pair of events.
    let tool_steps: Vec<_> = r
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::ToolCall)
        .collect();
    assert_eq!(tool_steps.len(), 7, "{tool_steps:#?}");
    assert!(
        tool_steps
            .iter()
            .any(|s| !s.success && s.error.as_deref().unwrap().contains("timed out"))
    );
    let leaky = tool_steps
        .iter()
        .find(|s| s.input.starts_with("leaky"))
        .unwrap();
    assert!(!leaky.output.contains("AKIA") && !leaky.findings.is_empty());
    let mut started = 0;
    while let Some(e) = observed.events.try_recv() {
        if let RunEvent::SubCallStarted { function, .. } = e {
            assert!(["add", "lookup", "fails", "slow", "leaky"].contains(&function.as_str()));
            started += 1;
        }
    }
    assert_eq!(started, 7);
}

#[test]
fn child_runs_get_their_own_tools() {
    let server = LlmServer::start(|req, _| {
        let first = first_user(req);
        if first.starts_with("Question: ROOT") {
            match turns(req) {
                0 => code("a = rlm_query('CHILD: add')\nprint(a)"),
                _ => code("FINAL(add(1, 1) + ' / ' + a)"),
            }
        } else {
            assert!(
                !system(req).contains("Host tools"),
                "the child has no tools"
            );
            match turns(req) {
                0 => code("print(repr(add(1, 2)))\nprint(repr(twice(x=4)))"),
                _ => {
                    let out = last_message(req);
                    assert!(out.contains("NameError"), "{out}");
                    code("FINAL('child saw no add')")
                }
            }
        }
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .model("gpt-4o-mini")
        .max_depth(2)
        .tool(add(calls.clone()))
        .child_tools([])
        .build()
        .unwrap();
    let r = o.run("ROOT: go");
    assert_eq!(
        r.final_answer.as_deref(),
        Some("2 / child saw no add"),
        "{:?}",
        r.error
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // A forged call from the child's REPL still finds no tool: the host decides per run.
    let server = LlmServer::start(|req, _| {
        let first = first_user(req);
        if first.starts_with("Question: ROOT") {
            match turns(req) {
                0 => code("a = rlm_query('CHILD: add')"),
                _ => code("FINAL(a)"),
            }
        } else {
            match turns(req) {
                0 => code(
                    "r = __import__('sys').modules['__main__']._host_call('tool', {'name': 'add', 'args': {'a': 1, 'b': 2}})\nprint(r)",
                ),
                _ => code("FINAL(r)"),
            }
        }
    });
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .model("gpt-4o-mini")
        .max_depth(2)
        .tool(add(calls.clone()))
        .child_tools([])
        .build()
        .unwrap();
    let r = o.run("ROOT: go");
    assert_eq!(
        r.final_answer.as_deref(),
        Some("Error: there is no tool named \"add\"; this run has no host tools"),
        "{:?}",
        r.error
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "never called from the child"
    );
}

#[test]
fn bad_tool_registrations_fail_the_build() {
    let t = || Tool::new("dup", "d", r#"{"type": "object"}"#, |_| Ok(String::new())).unwrap();
    let e = Orchestrator::builder()
        .base_url("http://127.0.0.1:9/v1")
        .tool(t())
        .tool(t())
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("two tools have this name"), "{e}");
    assert!(
        Tool::new("llm_query", "d", r#"{"type": "object"}"#, |_| Ok(
            String::new()
        ))
        .is_err()
    );
}

#[test]
fn a_tool_result_never_carries_the_api_key_into_the_repl() {
    const KEY: &str = "correcthorsebatterystaple";
    let o = Orchestrator::builder()
        .llm(rlm::llm::ScriptedLlm::replies([
            "```python\nt = whoami()\nprint(t)\n```",
            "```python\nFINAL(t)\n```",
        ]))
        .api_key(KEY)
        .setting("require_evidence", "0")
        .tool(
            Tool::new(
                "whoami",
                "The caller's token.",
                r#"{"type": "object"}"#,
                |_| Ok(format!("hello {KEY}")),
            )
            .unwrap(),
        )
        .build()
        .unwrap();
    let r = o.run("Who am I?");
    let answer = r.final_answer.clone().unwrap_or_default();
    assert!(answer.starts_with("hello "), "{answer} {:?}", r.error);
    assert!(!answer.contains(KEY), "{answer}");
    for s in &r.steps {
        assert!(!s.output.contains(KEY), "{s:?}");
    }
}
