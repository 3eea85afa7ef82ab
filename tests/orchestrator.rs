//! The full path: loopback OpenAI-format server → agent loop → real bubblewrap sandbox →
//! egress filter.

mod support;

use std::time::Duration;

use rlm::llm::ScriptedLlm;
use rlm::{Context, Error, Orchestrator, RunEvent, StepKind};
use support::{LlmServer, Reply, first_user, last_message, turns};

fn orch(server: &LlmServer) -> rlm::OrchestratorBuilder {
    Orchestrator::builder()
        .base_url(server.base_url())
        .model("gpt-4o-mini")
        .execution_timeout(Duration::from_secs(20))
}

fn code(c: &str) -> String {
    format!("Let me compute.\n```python\n{c}\n```\n")
}

#[test]
fn persistent_repl_and_final_var_over_http() {
    let server = LlmServer::start(|req, _| match turns(req) {
        0 => Reply::Text(code("x = 21 * 2\nprint(x)")),
        1 => {
            assert!(
                last_message(req).contains("42"),
                "observation carries stdout"
            );
            Reply::Text(code("FINAL_VAR('x')"))
        }
        _ => Reply::Text("unexpected".into()),
    });
    let r = orch(&server).build().unwrap().run("What is 21*2?");
    assert!(r.success, "{:?}", r.error);
    assert_eq!(r.final_answer.as_deref(), Some("42"));
    assert_eq!(r.iterations, 2);
    let kinds: Vec<StepKind> = r.steps.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            StepKind::LlmCall,
            StepKind::CodeExecution,
            StepKind::LlmCall,
            StepKind::CodeExecution,
            StepKind::FinalAnswer
        ]
    );
    assert_eq!(r.usage.calls, 2);
    assert_eq!(r.usage.prompt_tokens, 200);
    // gpt-4o-mini: 0.15 $/M in, 0.60 $/M out.
    let cost = r.usage.cost_usd.unwrap();
    assert!(
        (cost - (200.0 * 0.15 + 40.0 * 0.60) / 1e6).abs() < 1e-12,
        "{cost}"
    );
    let j = serde_json::to_value(&r).unwrap();
    assert_eq!(j["final_answer"], "42");
    assert!(j["steps"].as_array().unwrap().len() == 5);
}

#[test]
fn final_in_prose_next_to_code_is_not_trusted() {
    // The model puts an invented FINAL next to its code: the code must run first, and its
    // FINAL wins.
    let llm = ScriptedLlm::replies([
        "```python\nanswer = sum(range(10))\nFINAL(answer)\n```\nFINAL(999)",
    ]);
    let r = Orchestrator::builder()
        .llm(llm)
        .build()
        .unwrap()
        .run("sum 0..9");
    assert_eq!(r.final_answer.as_deref(), Some("45"), "{:?}", r.error);
}

/// The refusals of final answers, through a real run in the real sandbox: a number where
/// names were asked, nothing after a search that matched nothing. Each is sent back once
/// with the reason, and the model's next answer is taken.
#[test]
fn answers_of_the_wrong_kind_are_sent_back_once_in_a_real_run() {
    let log = "2025-07-01 ERROR [billing] timeout\n2025-07-01 ERROR [auth] denied\n\
               2025-07-01 ERROR [billing] refused\n2025-07-01 INFO [auth] ok\n";
    let csv = "id,customer,status,amount\nI-1,Juniper Health,paid,10\nI-2,Juniper Health,open,5\nI-3,Acme,paid,7\n";
    let rank = "import collections\nc = collections.Counter(l.split('[')[1].split(']')[0] for l in ctx.iter_lines() if 'ERROR' in l)";
    for (question, data, first, reason, second, want) in [
        (
            "Which service logged the most ERROR lines?",
            log,
            "FINAL(ctx.count('ERROR'))".to_string(),
            "asks which ones",
            format!("{rank}\nFINAL(c.most_common(1)[0][0])"),
            "billing",
        ),
        (
            "How many paid invoices does Juniper Health have?",
            csv,
            "FINAL(len(ctx.search('Juniper Health and paid')))".to_string(),
            "found no match",
            "FINAL(len([r for r in ctx.records() if r['customer'] == 'Juniper Health' and r['status'] == 'paid']))".to_string(),
            "1",
        ),
    ] {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let log_of = seen.clone();
        let llm = ScriptedLlm::new(move |req| {
            let last = req.messages.last().unwrap().content.clone();
            let mut seen = log_of.lock().unwrap();
            seen.push(last);
            Ok(format!(
                "```python\n{}\n```",
                if seen.len() == 1 { &first } else { &second }
            ))
        });
        let r = Orchestrator::builder()
            .llm(llm)
            .build()
            .unwrap()
            .run_with_context(question, Context::text(data));
        assert_eq!(r.final_answer.as_deref(), Some(want), "{question}: {:?}", r.error);
        assert_eq!(r.iterations, 2, "{question}: {:?}", seen.lock().unwrap());
        let seen = seen.lock().unwrap();
        assert!(
            seen[1].contains("was not accepted yet") && seen[1].contains(reason),
            "{question}: {}",
            seen[1]
        );
    }
}

/// Answers read as a person would write them: a computed float without float noise, a
/// whole float without '.0', several values given to FINAL as one list.
#[test]
fn final_values_are_written_plainly() {
    for (code, want) in [
        ("FINAL(sum([0.1, 0.2, 25602.31]))", "25602.61"),
        ("FINAL(27 / 1)", "27"),
        (
            "FINAL('profile', 'search', 'gateway')",
            "['profile', 'search', 'gateway']",
        ),
        ("FINAL(1e20)", "1e+20"),
    ] {
        let r = Orchestrator::builder()
            .llm(ScriptedLlm::replies([format!("```python\n{code}\n```")]))
            .build()
            .unwrap()
            .run("compute");
        assert_eq!(
            r.final_answer.as_deref(),
            Some(want),
            "{code}: {:?}",
            r.error
        );
    }
}

#[test]
fn text_final_without_code_and_stdout_convention() {
    let r = Orchestrator::builder()
        .llm(ScriptedLlm::replies([
            "The answer is simple.\nFINAL: Paris",
        ]))
        .build()
        .unwrap()
        .run("capital?");
    assert_eq!(r.final_answer.as_deref(), Some("Paris"));
    let r = Orchestrator::builder()
        .llm(ScriptedLlm::replies([
            "```python\nprint(f'FINAL({2**10})')\n```",
        ]))
        .build()
        .unwrap()
        .run("2^10");
    assert_eq!(r.final_answer.as_deref(), Some("1024"));
}

#[test]
fn prose_only_replies_are_nudged_then_fail() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let llm = ScriptedLlm::new(move |req| {
        s2.lock()
            .unwrap()
            .push(req.messages.last().unwrap().content.clone());
        Ok("I think the answer might be around 7.".into())
    });
    let r = Orchestrator::builder().llm(llm).build().unwrap().run("q");
    assert!(!r.success);
    assert!(
        r.error.as_deref().unwrap().contains("without code"),
        "{:?}",
        r.error
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(
        seen[1].contains("no ```python block"),
        "the model is told what went wrong"
    );
}

#[test]
fn iteration_limit_keeps_steps() {
    let llm = ScriptedLlm::new(|_| Ok("```python\nprint('working')\n```".into()));
    let r = Orchestrator::builder()
        .llm(llm)
        .max_iterations(3)
        .build()
        .unwrap()
        .run("never ends");
    assert!(!r.success);
    assert_eq!(r.iterations, 3);
    // Three turns of a reply and a block, then the best-effort call and its partial answer.
    assert_eq!(r.steps.len(), 8);
    assert_eq!(r.steps[7].kind, rlm::StepKind::PartialAnswer);
    assert!(r.partial_answer.is_some() && r.final_answer.is_none());
    assert!(matches!(r.failure, Some(Error::BudgetExceeded { .. })));
    assert!(r.error.unwrap().contains("max iterations (3)"));
}

#[test]
fn exceptions_are_observations_and_the_session_survives() {
    let server = LlmServer::start(|req, _| match turns(req) {
        0 => Reply::Text(code("data = [1, 2, 3]\n1/0")),
        1 => {
            assert!(last_message(req).contains("ZeroDivisionError"));
            Reply::Text(code("FINAL(sum(data))"))
        }
        _ => Reply::Text("?".into()),
    });
    let r = orch(&server).build().unwrap().run("q");
    assert_eq!(r.final_answer.as_deref(), Some("6"), "{:?}", r.error);
    assert!(!r.steps[1].success);
    assert!(
        r.steps[1]
            .error
            .as_deref()
            .unwrap()
            .contains("ZeroDivisionError")
    );
}

#[test]
fn secrets_never_reach_the_provider() {
    let key = "AKIAIOSFODNN7EXAMPLE";
    let server = LlmServer::start(move |req, _| match turns(req) {
        0 => Reply::Text(code(
            "import sys\nprint('key=AKIA' + 'IOSFODNN7EXAMPLE')\nprint('ghp_' + 'a'*36, file=sys.stderr)",
        )),
        _ => Reply::Text(code("FINAL('done')")),
    });
    let r = orch(&server).build().unwrap().run("leak it");
    assert!(r.success);
    let all = serde_json::to_string(&*server.requests.lock().unwrap()).unwrap();
    assert!(!all.contains(key), "secret reached the provider");
    assert!(!all.contains(&format!("ghp_{}", "a".repeat(36))));
    assert!(all.contains("[REDACTED:aws_access_key_id]"));
    let step = &r.steps[1];
    assert_eq!(step.findings.len(), 2, "{:?}", step.findings);
    assert!(
        !serde_json::to_string(&r).unwrap().contains(key),
        "the result records rules, not secrets"
    );
}

#[test]
fn raise_on_leak_ends_the_run_with_a_typed_error() {
    let llm = ScriptedLlm::replies(["```python\nprint('AKIA' + 'IOSFODNN7EXAMPLE')\n```"]);
    let r = Orchestrator::builder()
        .llm(llm)
        .raise_on_leak(true)
        .build()
        .unwrap()
        .run("q");
    assert!(!r.success);
    assert_eq!(
        r.failure,
        Some(Error::DataLeak {
            rule: "aws_access_key_id".into(),
            source_name: "stdout".into()
        })
    );
    assert_eq!(r.steps.len(), 1, "the LLM call is kept");
}

#[test]
fn context_file_search_and_documents() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.txt");
    let mut text = String::new();
    for i in 0..20000 {
        text.push_str(&format!("line {i}: status ok\n"));
    }
    text.push_str("line 20000: the secret code is 7731\n");
    std::fs::write(&path, &text).unwrap();
    let llm = ScriptedLlm::new(|req| {
        let sys = &req.messages[0].content;
        assert!(
            sys.contains("log.txt") && sys.contains("bytes"),
            "system prompt describes the context"
        );
        Ok(match req.messages.len() {
            2 => "```python\nhits = ctx.search(r'secret code is (\\d+)')\nprint(hits)\ncode = hits[0]['match'].split()[-1]\n```".into(),
            _ => "```python\nFINAL(code + ' at line ' + str(ctx.search('secret')[0]['line']))\n```".into(),
        })
    });
    let r = Orchestrator::builder()
        .llm(llm)
        .build()
        .unwrap()
        .run_with_context("find the code", Context::file(&path));
    assert_eq!(
        r.final_answer.as_deref(),
        Some("7731 at line 20001"),
        "{:?} {:?}",
        r.error,
        r.steps
    );

    let llm = ScriptedLlm::replies([
        "```python\nFINAL(f'{len(context)} {context[1]} {ctx[1].size}')\n```",
    ]);
    let r = Orchestrator::builder()
        .llm(llm)
        .build()
        .unwrap()
        .run_with_context("q", Context::documents(["alpha", "beta"]));
    assert_eq!(r.final_answer.as_deref(), Some("2 beta 4"), "{:?}", r.error);

    let r = Orchestrator::builder()
        .llm(ScriptedLlm::replies(["x"]))
        .build()
        .unwrap()
        .run_with_context("q", Context::file(dir.path().join("missing.txt")));
    assert!(
        matches!(r.failure, Some(Error::Context { .. })),
        "{:?}",
        r.failure
    );
    assert!(r.error.unwrap().contains("missing.txt"));
}

#[test]
fn llm_query_batched_over_http_in_order() {
    let server = LlmServer::start(|req, _| {
        let first = first_user(req);
        if first.starts_with("Question:") {
            match turns(req) {
                0 => Reply::Text(code(
                    "prompts = [f'echo {i}' for i in range(8)]\nanswers = llm_query_batched(prompts)\nprint(answers)\none = llm_query('echo single')",
                )),
                _ => Reply::Text(code(
                    "FINAL(','.join(a.split()[-1] for a in answers) + '/' + one)",
                )),
            }
        } else {
            // A sub-call: answer with a small delay so they overlap.
            let n: String = first.split_whitespace().last().unwrap_or("").to_string();
            Reply::Delay(Duration::from_millis(100), format!("answer {n}"))
        }
    });
    let r = orch(&server).build().unwrap().run("fan out");
    assert_eq!(
        r.final_answer.as_deref(),
        Some("0,1,2,3,4,5,6,7/answer single"),
        "{:?}",
        r.error
    );
    assert_eq!(
        r.steps
            .iter()
            .filter(|s| s.kind == StepKind::SubQuery)
            .count(),
        9
    );
    assert_eq!(r.usage.calls, 11);
    assert!(
        server
            .in_flight_peak
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 4,
        "sub-calls run concurrently"
    );
}

#[test]
fn budget_is_checked_before_each_call() {
    let llm = ScriptedLlm::new(|_| Ok("```python\nprint(1)\n```".into()));
    let r = Orchestrator::builder()
        .llm(llm)
        .max_llm_calls(2)
        .build()
        .unwrap()
        .run("q");
    assert!(matches!(r.failure, Some(Error::BudgetExceeded { .. })));
    assert_eq!(r.usage.calls, 2);
    assert_eq!(r.iterations, 3, "the third turn was refused before calling");
}

#[test]
fn llm_errors_end_the_run_with_status() {
    let server = LlmServer::start(|_, _| {
        Reply::Status(401, "Incorrect API key provided: sk-abc".into(), None)
    });
    let r = orch(&server)
        .api_key("sk-test-secret-key-1234567890")
        .build()
        .unwrap()
        .run("q");
    assert!(!r.success);
    match r.failure {
        Some(Error::Llm {
            status: Some(401),
            retryable: false,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(!r.error.unwrap().contains("sk-test-secret-key"));
    assert_eq!(r.steps.len(), 1);
    assert!(!r.steps[0].success);
}

#[test]
fn events_are_streamed_in_order() {
    // The model takes a while per turn, so a stream that only delivered events at the end
    // would be caught.
    let llm = ScriptedLlm::replies(["```python\nprint('hi')\n```", "```python\nFINAL('ok')\n```"]);
    let o = Orchestrator::builder().llm(llm).build().unwrap();
    let run = o.arun_observed("q", None);
    let done = std::sync::atomic::AtomicBool::new(false);
    let (result, evs) = futures_lite::future::block_on(futures_lite::future::zip(
        async {
            let r = run.result.await;
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            r
        },
        async {
            let mut evs = Vec::new();
            while let Some(e) = run.events.recv().await {
                evs.push((e, done.load(std::sync::atomic::Ordering::SeqCst)));
            }
            evs
        },
    ));
    assert!(result.success);
    let early = evs.iter().take_while(|(_, after)| !after).count();
    assert!(
        early >= 4,
        "events arrive while the run is going, not only at its end ({early} did)"
    );
    let evs: Vec<RunEvent> = evs.into_iter().map(|(e, _)| e).collect();
    assert!(matches!(evs.first(), Some(RunEvent::Started { .. })));
    assert!(matches!(
        evs.last(),
        Some(RunEvent::Finished { success: true, .. })
    ));
    assert!(
        evs.iter()
            .any(|e| matches!(e, RunEvent::Executing { code, .. } if code.contains("print('hi')")))
    );
    let steps = evs
        .iter()
        .filter(|e| matches!(e, RunEvent::Step { .. }))
        .count();
    assert_eq!(steps, result.steps.len());
    // The loop above ended, so the stream was closed when the run ended.
    assert!(run.events.is_finished());
}

#[test]
fn a_cancelled_run_ends_with_cancelled_and_its_sandbox_is_killed() {
    let llm = ScriptedLlm::new(|_| {
        Ok("```python\nimport time\nprint('started', flush=True)\ntime.sleep(60)\n```".into())
    });
    let o = Orchestrator::builder().llm(llm).build().unwrap();
    let run = o.arun_observed("q", None);
    let cancel = run.cancel.clone();
    let events = run.events;
    let watcher = std::thread::spawn(move || {
        // Cancel once the code is running.
        while let Some(e) = events.recv_blocking() {
            if matches!(e, RunEvent::Executing { .. }) {
                std::thread::sleep(std::time::Duration::from_millis(300));
                cancel.cancel();
            }
        }
    });
    let t = std::time::Instant::now();
    let r = futures_lite::future::block_on(run.result);
    watcher.join().unwrap();
    assert!(
        matches!(r.failure, Some(rlm::Error::Cancelled)),
        "{:?}",
        r.failure
    );
    assert!(!r.success && r.error.as_deref() == Some("cancelled"));
    assert!(
        t.elapsed() < std::time::Duration::from_secs(30),
        "the 60 s block was cut short"
    );
}

#[test]
fn hundred_concurrent_runs_on_one_orchestrator() {
    let server = LlmServer::start(|req, _| {
        let q = first_user(req);
        let n: u64 = q
            .split(|c: char| !c.is_ascii_digit())
            .find(|s| !s.is_empty())
            .unwrap()
            .parse()
            .unwrap();
        match turns(req) {
            0 => Reply::Text(code(&format!("x = {n} * 3\nprint(x)"))),
            _ => Reply::Text(code("FINAL_VAR('x')")),
        }
    });
    let o = orch(&server).build().unwrap();
    let results = support::run_all(&o, (0..100u64).map(|i| format!("triple {i}")));
    for (i, r) in results.iter().enumerate() {
        assert_eq!(
            r.final_answer.as_deref(),
            Some((i as u64 * 3).to_string().as_str()),
            "run {i}: {:?}",
            r.error
        );
    }
}

#[test]
fn cost_limit_with_unknown_price_stops_instead_of_guessing() {
    let llm =
        ScriptedLlm::new(|_| Ok("```python\nprint(1)\n```".into())).with_model("my-local-model");
    let r = Orchestrator::builder()
        .llm(llm)
        .max_cost_usd(1.0)
        .build()
        .unwrap()
        .run("q");
    assert_eq!(r.usage.calls, 1);
    assert_eq!(r.usage.cost_usd, None, "unknown, never 0");
    assert!(
        r.error.as_deref().unwrap().contains("my-local-model"),
        "{:?}",
        r.error
    );
    let mut prices = rlm::llm::PriceTable::default();
    prices.set("my-local-model", rlm::llm::Price::new(1000.0, 1000.0));
    let llm =
        ScriptedLlm::new(|_| Ok("```python\nprint(1)\n```".into())).with_model("my-local-model");
    let r = Orchestrator::builder()
        .llm(llm)
        .prices(prices)
        .max_cost_usd(0.05)
        .build()
        .unwrap()
        .run("q");
    assert!(matches!(r.failure, Some(Error::BudgetExceeded { .. })));
    assert!(
        r.usage.cost_usd.unwrap() >= 0.05 && r.usage.calls < 20,
        "{:?}",
        r.usage
    );
}

#[test]
fn repeated_code_is_flagged_dropped_from_history_and_resampled() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let llm = ScriptedLlm::new(move |req| {
        let mut seen = s2.lock().unwrap();
        seen.push(req.clone());
        Ok(match seen.len() {
            1..=3 => "```python\nprint(undefined_name)\n```".into(),
            _ => "```python\nFINAL('changed')\n```".into(),
        })
    });
    let r = Orchestrator::builder().llm(llm).build().unwrap().run("q");
    assert_eq!(r.final_answer.as_deref(), Some("changed"), "{:?}", r.error);
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen[0].temperature, None,
        "the first turn uses the configured temperature"
    );
    assert_eq!(
        seen[1].temperature, None,
        "one identical reply is not a repeat yet"
    );
    let t2 = seen[2]
        .temperature
        .expect("after a repeat the next turn is sampled warmer");
    let t3 = seen[3].temperature.expect("still repeating");
    assert!(t2 > 0.0 && t3 > t2, "{t2} {t3}");
    let last = seen[3].messages.last().unwrap().content.clone();
    assert!(last.contains("exactly the same code"), "{last}");
    let copies = seen[3]
        .messages
        .iter()
        .filter(|m| {
            m.role == rlm::llm::Role::Assistant && m.content.contains("print(undefined_name)")
        })
        .count();
    assert_eq!(
        copies, 1,
        "earlier identical attempts are dropped from the history"
    );
}

#[test]
fn a_typed_answer_passes_the_egress_filter_before_it_is_validated_and_kept() {
    let llm = ScriptedLlm::replies([
        "```python\nkey = 'AKIA' + 'IOSFODNN7EXAMPLE'\nFINAL({'user': 'ann', 'key': key})\n```",
    ]);
    let schema = rlm::Schema::parse(
        r#"{"type":"object","properties":{"user":{"type":"string"},"key":{"type":"string"}},"required":["user","key"]}"#,
    )
    .unwrap();
    let r = Orchestrator::builder()
        .llm(llm)
        .answer_schema(schema)
        .build()
        .unwrap()
        .run("Who is it?");
    let json = r.answer_json.clone().expect("a validated answer");
    assert!(json.contains("\"user\":\"ann\""), "{json}");
    assert!(!json.contains("IOSFODNN7EXAMPLE"), "{json}");
    assert!(
        !r.final_answer
            .unwrap_or_default()
            .contains("IOSFODNN7EXAMPLE")
    );
    for s in r.steps.iter().filter(|s| s.kind == StepKind::FinalAnswer) {
        assert!(!s.output.contains("IOSFODNN7EXAMPLE"), "{s:?}");
    }
}

#[test]
fn a_builders_debug_output_never_shows_the_keys() {
    let b = Orchestrator::builder()
        .api_key("sk-root-secret-0001")
        .sub_api_key("sk-sub-secret-0002")
        .model("m");
    let shown = format!("{b:?}");
    assert!(shown.contains("\"m (") || shown.contains("m ("), "{shown}");
    assert!(!shown.contains("sk-root-secret-0001"), "{shown}");
    assert!(!shown.contains("sk-sub-secret-0002"), "{shown}");
}
