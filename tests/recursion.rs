//! Sub-LLM calls and child runs from inside the REPL, through the real sandbox and a loopback
//! OpenAI-format server scripted per prompt. Serialized: the cancellation test counts
//! sandbox processes.

mod support;

use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rlm::trajectory::{TrajectoryEvent, parse_trajectory};
use rlm::{Context, Error, Orchestrator, StepKind, TrajectoryLog};
use support::{LlmServer, Reply, first_user, last_message, turns, wait_no_descendants};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn code(c: &str) -> Reply {
    Reply::Text(format!("```python\n{c}\n```"))
}

fn is_root(req: &serde_json::Value) -> bool {
    first_user(req).starts_with("Question: ROOT")
}

static ARRIVED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[test]
fn twenty_chunks_batched_concurrently_in_order() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.txt");
    let text: String = (0..20)
        .map(|i| format!("chunk {i:02} {}\n", "x".repeat(990)))
        .collect();
    std::fs::write(&path, &text).unwrap();
    let server = LlmServer::start(|req, _| {
        if is_root(req) {
            match turns(req) {
                0 => code(
                    "chunks = list(ctx.chunks(1000))\nprint(len(chunks))\nanswers = llm_query_batched([f'Which chunk? {c[:8]}' for c in chunks])\nprint(answers[:3])",
                ),
                _ => code("FINAL(','.join(a.split()[-1] for a in answers))"),
            }
        } else {
            // "Which chunk? chunk NN": hold every answer until all 20 requests are in flight
            // (so the peak is exactly 20 however slow the machine is; calls made one after the
            // other would never get there), then answer NN with a delay that makes the later
            // prompts finish first.
            let n = first_user(req)
                .split_whitespace()
                .last()
                .unwrap_or("?")
                .to_string();
            let arrived = ARRIVED.fetch_add(1, Ordering::SeqCst) + 1;
            let t = Instant::now();
            while ARRIVED.load(Ordering::SeqCst) < 20 && t.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(5));
            }
            let k: u64 = n.parse().unwrap_or(0);
            let _ = arrived;
            Reply::Delay(
                Duration::from_millis(25 * (19 - k.min(19))),
                format!("it is {n}"),
            )
        }
    });
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .model("gpt-4o-mini")
        .build()
        .unwrap();
    let r = o.run_with_context("ROOT: label every chunk", Context::file(&path));
    let want: Vec<String> = (0..20).map(|i| format!("{i:02}")).collect();
    assert_eq!(
        r.final_answer.as_deref(),
        Some(want.join(",").as_str()),
        "{:?}",
        r.error
    );
    assert_eq!(
        server.in_flight_peak.load(Ordering::SeqCst),
        20,
        "the server saw 20 concurrent sub-calls"
    );
    let subs: Vec<_> = r
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::SubQuery)
        .collect();
    assert_eq!(subs.len(), 20);
    // Steps are recorded as the calls finish: in reverse prompt order here, while the
    // answers above came back in prompt order.
    assert!(
        subs.first().unwrap().output.ends_with("19") && subs.last().unwrap().output.ends_with("00"),
        "completions arrived in reverse order: {:?}",
        subs.iter().map(|s| &s.output).collect::<Vec<_>>()
    );
    assert_eq!(r.usage.calls, 22, "sub-calls share the run's budget");
}

#[test]
fn depth_two_run_with_rlm_query_and_trajectory() {
    let _g = serial();
    let server = LlmServer::start(|req, _| {
        let first = first_user(req);
        if is_root(req) {
            match turns(req) {
                0 => code(
                    "a = rlm_query('CHILD: count the words', context='alpha beta gamma delta')\nprint(a)",
                ),
                _ => code("FINAL('child said ' + a)"),
            }
        } else if first.starts_with("Question: CHILD") {
            match turns(req) {
                // The child tries to go deeper: at the depth limit this is a plain LLM call.
                0 => code(
                    "n = len(context.split())\ndeeper = rlm_query('GRANDCHILD: hello')\nprint(n, deeper)",
                ),
                _ => code("FINAL(n)"),
            }
        } else {
            assert!(first.contains("GRANDCHILD"), "unexpected prompt {first}");
            Reply::Text("plain answer".into())
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("trajectory.jsonl");
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .model("gpt-4o-mini")
        .max_depth(2)
        .trajectory(TrajectoryLog::create(&log).unwrap())
        .build()
        .unwrap();
    let r = o.run("ROOT: delegate");
    assert_eq!(
        r.final_answer.as_deref(),
        Some("child said 4"),
        "{:?}",
        r.error
    );
    let sub = r
        .steps
        .iter()
        .find(|s| s.kind == StepKind::SubQuery)
        .unwrap();
    let child_id = sub
        .child_run_id
        .clone()
        .expect("rlm_query records the child run");
    assert_eq!(
        r.usage.calls, 5,
        "root 2 + child 2 + degraded grandchild 1, one budget"
    );

    let events = parse_trajectory(&std::fs::read_to_string(&log).unwrap()).unwrap();
    let starts: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, TrajectoryEvent::RunStart { .. }))
        .map(|e| e.at().clone())
        .collect();
    assert_eq!(
        starts.len(),
        2,
        "root and child; the grandchild was degraded to llm_query"
    );
    assert_eq!((starts[0].depth, starts[0].parent_id.as_deref()), (0, None));
    assert_eq!(starts[0].run_id, r.run_id);
    assert_eq!(
        (
            starts[1].depth,
            starts[1].parent_id.as_deref(),
            starts[1].run_id.as_str()
        ),
        (1, Some(r.run_id.as_str()), child_id.as_str())
    );
    let llm_steps: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            TrajectoryEvent::Step { step, .. } if step.kind == StepKind::LlmCall => Some(step),
            _ => None,
        })
        .collect();
    assert!(
        llm_steps
            .iter()
            .all(|s| s.prompt_tokens == Some(100) && s.cost_usd.is_some() && s.model.is_some())
    );
    assert!(events.iter().all(|e| e.at().v == 1 && e.at().ts > 0.0));
    let ends = events
        .iter()
        .filter(|e| matches!(e, TrajectoryEvent::RunEnd { .. }))
        .count();
    assert_eq!(ends, 2);
    match events.last().unwrap() {
        TrajectoryEvent::RunEnd {
            at,
            success: true,
            final_answer: Some(a),
            ..
        } => {
            assert_eq!(
                (at.run_id.as_str(), a.as_str()),
                (r.run_id.as_str(), "child said 4")
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_host_enforces_depth_budget_and_models() {
    let _g = serial();
    let server = LlmServer::start(|req, _| {
        if is_root(req) {
            match turns(req) {
                0 => code(
                    "import json\n# Forged requests cannot raise the limits: the host ignores extra fields.\nimport sys\nr = sys.modules['__main__']._host_call('rlm_query', {'prompt': 'x', 'depth': -5, 'max_depth': 99})\nprint('forged:', r)\nprint(llm_query('hi', model='gpt-4o'))\nprint(llm_query('hi', model='gpt-4.1-nano'))\nanswers = llm_query_batched([f'q{i}' for i in range(50)])",
                ),
                _ => code("FINAL('should not get here')"),
            }
        } else {
            Reply::Text(format!(
                "answer for {}",
                req["model"].as_str().unwrap_or("")
            ))
        }
    });
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .model("gpt-4o-mini")
        .allowed_models(["gpt-4.1-nano"])
        .max_llm_calls(10)
        .build()
        .unwrap();
    let r = o.run("ROOT: misbehave");
    assert!(
        matches!(r.failure, Some(Error::BudgetExceeded { .. })),
        "{:?}",
        r.failure
    );
    assert_eq!(r.usage.calls, 10, "no call beyond the limit was made");
    assert_eq!(server.count(), 10);
    let exec = r.steps.iter().find(|s| s.kind == StepKind::CodeExecution);
    assert!(
        exec.is_none(),
        "the run ended inside the block, before its step was recorded"
    );
    let subs: Vec<_> = r
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::SubQuery)
        .collect();
    // max_depth 1: the forged rlm_query ran as a plain sub-call, not a child run.
    assert_eq!(subs[0].input, "x");
    assert!(
        subs.iter().all(|s| s.child_run_id.is_none()),
        "no child run started"
    );
    let reqs = server.requests.lock().unwrap();
    assert!(
        !reqs
            .iter()
            .any(|q| first_user(q).starts_with("Question: x")),
        "a child run would have asked its model \"Question: x\""
    );
    assert_eq!(
        reqs.iter().filter(|q| first_user(q) == "x").count(),
        1,
        "the forged call was one plain sub-call"
    );
    drop(reqs);
    assert!(
        subs.iter()
            .any(|s| s.model.as_deref() == Some("gpt-4.1-nano")),
        "an allowed model is used"
    );
    assert!(
        !subs.iter().any(|s| s.model.as_deref() == Some("gpt-4o")),
        "a disallowed model never reaches the server"
    );
}

#[test]
fn disallowed_model_and_failed_items_are_errors_the_model_sees() {
    let _g = serial();
    let server = LlmServer::start(|req, _| {
        if is_root(req) {
            match turns(req) {
                0 => code(
                    "print(llm_query('hi', model='gpt-4o'))\nprint(llm_query_batched(['ok 1', 'fail 2', 'ok 3']))",
                ),
                _ => {
                    let obs = last_message(req);
                    assert!(
                        obs.contains("Error: model \"gpt-4o\" is not allowed"),
                        "{obs}"
                    );
                    assert!(
                        obs.contains("['answer ok 1', 'Error: LLM error from openai (HTTP 400)"),
                        "{obs}"
                    );
                    code("FINAL('seen')")
                }
            }
        } else if first_user(req).contains("fail") {
            Reply::Status(400, "prompt too long".into(), None)
        } else {
            Reply::Text(format!("answer {}", first_user(req)))
        }
    });
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .model("gpt-4o-mini")
        .build()
        .unwrap();
    let r = o.run("ROOT: try things");
    assert_eq!(r.final_answer.as_deref(), Some("seen"), "{:?}", r.error);
}

#[test]
fn cancelling_the_root_kills_every_child_sandbox() {
    let _g = serial();
    let server = LlmServer::start(|req, _| {
        if is_root(req) {
            code("rlm_query_batched(['CHILD a', 'CHILD b', 'CHILD c'])")
        } else {
            code("import time\ntime.sleep(60)")
        }
    });
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .model("gpt-4o-mini")
        .max_depth(2)
        .build()
        .unwrap();
    let run = o.arun("ROOT: fan out");
    let repls = || {
        support::descendants()
            .into_iter()
            .filter(|p| {
                // The REPL itself (bwrap's own two processes name the driver too).
                std::fs::read(format!("/proc/{p}/cmdline"))
                    .map(|c| {
                        let c = String::from_utf8_lossy(&c);
                        c.starts_with("/usr/bin/python3") && c.contains("/opt/rlm/repl.py")
                    })
                    .unwrap_or(false)
            })
            .count()
    };
    let children_asked = || {
        server
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|q| first_user(q).starts_with("Question: CHILD"))
            .count()
    };
    let r = futures_lite::future::block_on(futures_lite::future::or(
        async { Some(run.await) },
        async {
            // Wait until the three children are running their code, then drop the root.
            let t = Instant::now();
            while (repls() < 4 || children_asked() < 3) && t.elapsed() < Duration::from_secs(30) {
                blocking::unblock(|| std::thread::sleep(Duration::from_millis(50))).await;
            }
            blocking::unblock(|| std::thread::sleep(Duration::from_millis(300))).await;
            None
        },
    ));
    assert!(r.is_none());
    assert_eq!(children_asked(), 3, "the three child runs had started");
    assert_eq!(
        wait_no_descendants(5),
        0,
        "sandboxes survived cancelling the root"
    );
}

#[test]
fn sub_call_prompts_lose_their_secrets_and_final_var_checks_names() {
    let _g = serial();
    let server = LlmServer::start(|req, _| {
        if is_root(req) {
            match turns(req) {
                0 => code(
                    "key = 'ghp_' + 'Z' * 36\nprint(llm_query(f'summarise: token {key} in config'))\nFINAL_VAR('nope')",
                ),
                1 => {
                    let obs = last_message(req);
                    assert!(obs.contains("FINAL_VAR: no variable named 'nope'"), "{obs}");
                    code("FINAL_VAR('key')")
                }
                _ => code("FINAL('x')"),
            }
        } else {
            Reply::Text(format!("got: {}", first_user(req)))
        }
    });
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .model("gpt-4o-mini")
        .build()
        .unwrap();
    let r = o.run("ROOT: leak via sub-call");
    let secret = format!("ghp_{}", "Z".repeat(36));
    let sent = serde_json::to_string(&*server.requests.lock().unwrap()).unwrap();
    assert!(
        !sent.contains(&secret),
        "a secret reached the provider through llm_query"
    );
    assert!(sent.contains("[REDACTED:github_token]"));
    // The final answer is filtered for secrets too.
    assert_eq!(
        r.final_answer.as_deref(),
        Some("[REDACTED:github_token]"),
        "{:?}",
        r.error
    );
}

/// `rlm_query_batched` starts at most `max_concurrent_subcalls` child sandboxes at once, and
/// no child starts once the tree's budget is spent.
#[test]
fn child_runs_honour_the_concurrency_limit_and_the_budget() {
    let _g = serial();
    let server = LlmServer::start(|req, _| {
        if is_root(req) {
            code("print(rlm_query_batched([f'CHILD {i}' for i in range(12)]))")
        } else {
            code("import time\ntime.sleep(0.4)\nFINAL('child done')")
        }
    });
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .model("gpt-4o-mini")
        .max_depth(2)
        .max_concurrent_subcalls(3)
        .max_iterations(1)
        .build()
        .unwrap();
    let repls = || {
        support::descendants()
            .into_iter()
            .filter(|p| {
                // The REPL itself (bwrap's own two processes name the driver too).
                std::fs::read(format!("/proc/{p}/cmdline"))
                    .map(|c| {
                        let c = String::from_utf8_lossy(&c);
                        c.starts_with("/usr/bin/python3") && c.contains("/opt/rlm/repl.py")
                    })
                    .unwrap_or(false)
            })
            .count()
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    let peak = std::thread::scope(|sc| {
        let sampler = sc.spawn(|| {
            let mut peak = 0;
            while !done.load(Ordering::SeqCst) {
                peak = peak.max(repls());
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        });
        let r = o.run("ROOT: fan out");
        done.store(true, Ordering::SeqCst);
        assert_eq!(
            r.steps.iter().filter(|s| s.child_run_id.is_some()).count(),
            12,
            "{:?}",
            r.error
        );
        sampler.join().unwrap()
    });
    assert!(peak >= 2, "children ran ({peak} REPLs seen)");
    assert!(
        peak <= 4,
        "{peak} REPLs at once: the root and at most 3 children"
    );

    // One child at a time, three LLM calls in all: the root's and two children's. The third
    // child must not even start.
    let log = tempfile::NamedTempFile::new().unwrap();
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .model("gpt-4o-mini")
        .max_depth(2)
        .max_concurrent_subcalls(1)
        .max_llm_calls(3)
        .trajectory(TrajectoryLog::create(log.path()).unwrap())
        .build()
        .unwrap();
    let before = server.count();
    let r = o.run("ROOT: fan out");
    assert!(
        matches!(r.failure, Some(Error::BudgetExceeded { .. })),
        "{:?}",
        r.failure
    );
    assert_eq!(server.count() - before, 3);
    let events = parse_trajectory(&std::fs::read_to_string(log.path()).unwrap()).unwrap();
    let children = events
        .iter()
        .filter(|e| matches!(e, TrajectoryEvent::RunStart { at, .. } if at.depth == 1))
        .count();
    assert_eq!(children, 2, "no child run starts once the budget is spent");
    assert_eq!(wait_no_descendants(5), 0);
}

/// The observer sees the whole tree live: sub-calls and child runs of any depth, with ids
/// that link them (a UI can draw the tree from the events alone).
#[test]
fn run_events_describe_the_tree_of_runs() {
    use rlm::RunEvent;
    let _g = serial();
    let server = LlmServer::start(|req, _| {
        let first = first_user(req);
        if is_root(req) {
            match turns(req) {
                0 => code("s = llm_query('ROOTSUB one')\na = rlm_query('CHILD: go')\nprint(s, a)"),
                _ => code("FINAL(a)"),
            }
        } else if first.starts_with("Question: CHILD") {
            match turns(req) {
                0 => code("x = llm_query('CHILDSUB two')\nprint(x)"),
                _ => code("FINAL('child ' + x)"),
            }
        } else {
            Reply::Text(format!(
                "answer to {}",
                first.split_whitespace().next().unwrap()
            ))
        }
    });
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .model("gpt-4o-mini")
        .max_depth(2)
        .build()
        .unwrap();
    let observed = o.arun_observed("ROOT: tree", None);
    let r = futures_lite::future::block_on(observed.result);
    assert_eq!(r.final_answer.as_deref(), Some("child answer to CHILDSUB"));
    let mut evs = Vec::new();
    while let Some(e) = observed.events.try_recv() {
        evs.push(e);
    }
    let root = match &evs[0] {
        RunEvent::Started { run_id, .. } => run_id.clone(),
        e => panic!("{e:?}"),
    };
    assert_eq!(root, r.run_id);
    let pos = |f: &dyn Fn(&RunEvent) -> bool| evs.iter().position(f).expect("event present");
    let root_sub = pos(&|e| {
        matches!(e, RunEvent::SubCallStarted { run_id, depth: 0, function, preview, .. }
            if *run_id == root && function == "llm_query" && preview == "ROOTSUB one")
    });
    let RunEvent::SubCallStarted { call_id: c0, .. } = &evs[root_sub] else {
        unreachable!()
    };
    let root_sub_end = pos(
        &|e| matches!(e, RunEvent::SubCallFinished { call_id, success: true, depth: 0, .. } if call_id == c0),
    );
    let child_start = pos(&|e| {
        matches!(e, RunEvent::ChildStarted { parent_id, depth: 1, query, .. }
            if *parent_id == root && query == "CHILD: go")
    });
    let RunEvent::ChildStarted { run_id: child, .. } = evs[child_start].clone() else {
        unreachable!()
    };
    let child_turn = pos(
        &|e| matches!(e, RunEvent::ChildIteration { run_id, depth: 1, iteration: 1, .. } if *run_id == child),
    );
    let child_sub = pos(&|e| {
        matches!(e, RunEvent::SubCallStarted { run_id, depth: 1, preview, .. }
            if *run_id == child && preview == "CHILDSUB two")
    });
    let RunEvent::SubCallStarted { call_id: c1, .. } = &evs[child_sub] else {
        unreachable!()
    };
    assert_ne!(c0, c1, "call ids are unique in the tree");
    let child_sub_end =
        pos(&|e| matches!(e, RunEvent::SubCallFinished { call_id, depth: 1, .. } if call_id == c1));
    let child_end = pos(&|e| {
        matches!(e, RunEvent::ChildFinished { run_id, parent_id, success: true, .. }
            if *run_id == child && *parent_id == root)
    });
    let parent_step = pos(
        &|e| matches!(e, RunEvent::Step { step, .. } if step.child_run_id.as_deref() == Some(child.as_str())),
    );
    assert!(root_sub < root_sub_end && root_sub_end < child_start);
    assert!(child_start < child_turn && child_turn < child_sub && child_sub < child_sub_end);
    assert!(child_sub_end < child_end && child_end < parent_step);
    assert!(matches!(
        evs.last(),
        Some(RunEvent::Finished { success: true, .. })
    ));
    // The child's own turns are not reported as the root's.
    let root_turns = evs
        .iter()
        .filter(|e| matches!(e, RunEvent::Iteration { .. }))
        .count();
    assert_eq!(root_turns, 2);
}
