//! Each provider against a loopback server speaking its wire format, with injected faults.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rlm::llm::{CompletionRequest, HttpClient, LanguageModel, Message};
use rlm::{Error, LlmConfig, Orchestrator, Provider};
use support::{LlmServer, Reply};

const KEY: &str = "test-key-0123456789-do-not-leak";
const PROVIDERS: [Provider; 3] = [Provider::OpenAi, Provider::Anthropic, Provider::Gemini];

fn client(p: Provider, server: &LlmServer, tweak: impl FnOnce(&mut LlmConfig)) -> HttpClient {
    let mut c = rlm::Orchestrator::builder().resolve().unwrap().llm;
    c.provider = p;
    c.model = match p {
        Provider::OpenAi => "gpt-4o-mini",
        Provider::Anthropic => "claude-3-5-haiku-latest",
        _ => "gemini-2.0-flash",
    }
    .into();
    c.base_url = server.base_url();
    c.api_key = Some(KEY.into());
    c.max_attempts = 3;
    tweak(&mut c);
    HttpClient::new(&c)
}

fn ask(c: &HttpClient) -> Result<rlm::llm::Completion, Error> {
    futures_lite::future::block_on(c.complete(CompletionRequest::new(vec![
        Message::system("sys"),
        Message::user("hi"),
    ])))
}

fn assert_no_key(e: &Error) {
    assert!(
        !e.to_string().contains(KEY) && !format!("{e:?}").contains(KEY),
        "key leaked: {e:?}"
    );
}

#[test]
fn wire_shapes_and_auth_headers() {
    for p in PROVIDERS {
        let server = LlmServer::start(|_, _| Reply::Text("hello".into()));
        let c = client(p, &server, |_| {});
        let r = ask(&c).unwrap();
        assert_eq!(r.text, "hello", "{p:?}");
        assert_eq!(
            (r.usage.prompt_tokens, r.usage.completion_tokens),
            (100, 20),
            "{p:?}"
        );
        assert!(!format!("{c:?}").contains(KEY));
        let meta = server.meta.lock().unwrap()[0].clone();
        let body = server.requests.lock().unwrap()[0].clone();
        assert!(!meta.path.contains(KEY), "key must not travel in the URL");
        match p {
            Provider::OpenAi => {
                assert_eq!(meta.path, "/v1/chat/completions");
                assert_eq!(
                    meta.header("authorization"),
                    Some(format!("Bearer {KEY}").as_str())
                );
                assert_eq!(body["messages"][0]["role"], "system");
                assert!(body["max_tokens"].as_u64().unwrap() > 0);
            }
            Provider::Anthropic => {
                assert_eq!(meta.path, "/v1/messages");
                assert_eq!(meta.header("x-api-key"), Some(KEY));
                assert_eq!(meta.header("anthropic-version"), Some("2023-06-01"));
                assert_eq!(body["system"][0]["text"], "sys");
                assert_eq!(body["system"][0]["cache_control"]["type"], "ephemeral");
                assert_eq!(body["messages"][0]["role"], "user");
                assert!(body["max_tokens"].as_u64().unwrap() > 0);
            }
            _ => {
                assert_eq!(meta.path, "/v1/models/gemini-2.0-flash:generateContent");
                assert_eq!(meta.header("x-goog-api-key"), Some(KEY));
                assert_eq!(body["systemInstruction"]["parts"][0]["text"], "sys");
                assert_eq!(body["contents"][0]["role"], "user");
            }
        }
    }
}

#[test]
fn server_errors_are_retried() {
    for p in PROVIDERS {
        let server = LlmServer::start(|_, i| {
            if i < 2 {
                Reply::Status(500, "internal".into(), None)
            } else {
                Reply::Text("ok".into())
            }
        });
        let r = ask(&client(p, &server, |_| {})).unwrap();
        assert_eq!(r.text, "ok");
        assert_eq!(server.count(), 3, "{p:?}");
        let server = LlmServer::start(|_, _| Reply::Status(503, "overloaded".into(), None));
        let e = ask(&client(p, &server, |c| c.max_attempts = 2)).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Llm {
                    status: Some(503),
                    retryable: true,
                    ..
                }
            ),
            "{p:?}: {e:?}"
        );
        assert!(
            e.to_string().contains("overloaded") && e.to_string().contains("2 attempts"),
            "{e}"
        );
        assert_no_key(&e);
    }
}

/// A server that echoes the key in its error ("invalid api key sk-..."), as some gateways
/// do: the key is cut out of the error, retried or not.
#[test]
fn a_key_echoed_in_an_error_body_is_redacted() {
    for p in PROVIDERS {
        for status in [401, 503] {
            let server = LlmServer::start(move |_, _| {
                Reply::Status(
                    status,
                    format!("invalid api key {KEY} for this project"),
                    None,
                )
            });
            let e = ask(&client(p, &server, |c| c.max_attempts = 1)).unwrap_err();
            assert!(e.to_string().contains("[REDACTED]"), "{p:?}: {e}");
            assert_no_key(&e);
        }
    }
}

#[test]
fn rate_limits_honour_retry_after() {
    for p in PROVIDERS {
        let server = LlmServer::start(|_, i| {
            if i == 0 {
                Reply::Status(429, "slow down".into(), Some("1".into()))
            } else {
                Reply::Text("ok".into())
            }
        });
        let t = Instant::now();
        assert_eq!(ask(&client(p, &server, |_| {})).unwrap().text, "ok");
        assert!(
            t.elapsed() >= Duration::from_millis(950),
            "{p:?}: {:?}",
            t.elapsed()
        );
    }
    // An HTTP-date in the past means "retry now".
    let server = LlmServer::start(|_, i| {
        if i == 0 {
            Reply::Status(
                529,
                "overloaded".into(),
                Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
            )
        } else {
            Reply::Text("ok".into())
        }
    });
    let t = Instant::now();
    assert_eq!(
        ask(&client(Provider::Anthropic, &server, |_| {}))
            .unwrap()
            .text,
        "ok"
    );
    assert!(t.elapsed() < Duration::from_millis(900));
}

#[test]
fn client_errors_are_not_retried() {
    for p in PROVIDERS {
        let server = LlmServer::start(|_, _| {
            Reply::Status(400, "bad request: context too long".into(), None)
        });
        let e = ask(&client(p, &server, |_| {})).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Llm {
                    status: Some(400),
                    retryable: false,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("context too long"));
        assert_eq!(server.count(), 1);
    }
}

#[test]
fn hang_past_the_timeout_is_a_retryable_error() {
    for p in PROVIDERS {
        let server = LlmServer::start(|_, _| Reply::Delay(Duration::from_secs(5), "late".into()));
        let c = client(p, &server, |c| {
            c.request_timeout = Duration::from_millis(400);
            c.max_attempts = 2;
        });
        let t = Instant::now();
        let e = ask(&c).unwrap_err();
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "{p:?}: {:?}",
            t.elapsed()
        );
        assert!(e.is_retryable(), "{e:?}");
        assert!(
            e.to_string().to_lowercase().contains("timeout") || e.to_string().contains("timed out"),
            "{e}"
        );
        assert_no_key(&e);
    }
}

#[test]
fn malformed_json_reset_connection_and_empty_usage() {
    for p in PROVIDERS {
        let server = LlmServer::start(|_, _| Reply::Malformed);
        let e = ask(&client(p, &server, |_| {})).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Llm {
                    retryable: false,
                    ..
                }
            ) && e.to_string().contains("malformed"),
            "{e:?}"
        );

        let server = LlmServer::start(|_, i| {
            if i == 0 {
                Reply::Reset
            } else {
                Reply::Text("after reset".into())
            }
        });
        assert_eq!(
            ask(&client(p, &server, |_| {})).unwrap().text,
            "after reset",
            "{p:?}"
        );
        let server = LlmServer::start(|_, _| Reply::Reset);
        let e = ask(&client(p, &server, |c| c.max_attempts = 2)).unwrap_err();
        assert!(e.is_retryable() && e.status().is_none(), "{e:?}");

        let server = LlmServer::start(|_, _| Reply::TextNoUsage("no usage".into()));
        let r = ask(&client(p, &server, |_| {})).unwrap();
        assert_eq!(
            (
                r.text.as_str(),
                r.usage.prompt_tokens,
                r.usage.completion_tokens
            ),
            ("no usage", 0, 0)
        );
    }
}

#[test]
fn one_backoff_state_is_shared_by_concurrent_calls() {
    // The first call gets a 429 with Retry-After: 1. Calls started while that backoff is
    // pending must wait for it instead of hammering the server.
    let server = LlmServer::start(|_, i| {
        if i == 0 {
            Reply::Status(429, "slow".into(), Some("1".into()))
        } else {
            Reply::Text("ok".into())
        }
    });
    let c = client(Provider::OpenAi, &server, |_| {});
    let t0 = Instant::now();
    futures_lite::future::block_on(async {
        let ex = async_executor::Executor::new();
        ex.run(async {
            let first = ex.spawn(c.complete(CompletionRequest::new(vec![Message::user("a")])));
            // Start the others once the 429 has been answered and (generously) processed.
            while server.count() == 0 {
                blocking::unblock(|| std::thread::sleep(Duration::from_millis(10))).await;
            }
            blocking::unblock(|| std::thread::sleep(Duration::from_millis(400))).await;
            let rest: Vec<_> = (0..20)
                .map(|_| ex.spawn(c.complete(CompletionRequest::new(vec![Message::user("b")]))))
                .collect();
            first.await.unwrap();
            for r in rest {
                r.await.unwrap();
            }
        })
        .await
    });
    let meta = server.meta.lock().unwrap();
    assert_eq!(
        meta.len(),
        22,
        "1 rate-limited + 21 successful, no extra retries"
    );
    let limited = meta[0].at;
    for m in meta.iter().skip(1) {
        assert!(
            m.at.duration_since(limited) >= Duration::from_millis(950),
            "a call went out during the shared backoff"
        );
    }
    assert!(t0.elapsed() >= Duration::from_millis(950));
}

#[test]
fn in_flight_requests_are_bounded() {
    let server = LlmServer::start(|_, _| Reply::Delay(Duration::from_millis(150), "ok".into()));
    let c = client(Provider::OpenAi, &server, |c| c.max_in_flight = 4);
    futures_lite::future::block_on(async {
        let ex = async_executor::Executor::new();
        ex.run(async {
            let tasks: Vec<_> = (0..20)
                .map(|_| ex.spawn(c.complete(CompletionRequest::new(vec![Message::user("x")]))))
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        })
        .await
    });
    assert_eq!(server.in_flight_peak.load(Ordering::SeqCst), 4);
}

#[test]
fn full_runs_through_each_provider() {
    for p in PROVIDERS {
        let server = LlmServer::start(|req, _| {
            let n_assistant = req.to_string().matches("\"assistant\"").count()
                + req.to_string().matches("\"model\",\"parts\"").count();
            let done = req.to_string().contains("Output:");
            if done || n_assistant > 0 {
                Reply::Text("```python\nFINAL(total)\n```".into())
            } else {
                Reply::Text(
                    "```python\ntotal = sum(i * i for i in range(10))\nprint(total)\n```".into(),
                )
            }
        });
        let o = Orchestrator::builder()
            .provider(p)
            .base_url(server.base_url())
            .api_key(KEY)
            .build()
            .unwrap();
        let r = o.run("sum of squares below 10");
        assert_eq!(
            r.final_answer.as_deref(),
            Some("285"),
            "{p:?}: {:?}",
            r.error
        );
        assert_eq!(r.usage.calls, 2);
        assert!(
            r.usage.cost_usd.is_some(),
            "{p:?}: known model families are priced"
        );
        assert!(!serde_json::to_string(&r).unwrap().contains(KEY));
    }
}

#[test]
fn two_hundred_concurrent_runs_keep_their_answers() {
    let server = LlmServer::start(|req, _| {
        let q = support::first_user(req);
        let n: u64 = q
            .split(|c: char| !c.is_ascii_digit())
            .find(|s| !s.is_empty())
            .unwrap()
            .parse()
            .unwrap();
        match support::turns(req) {
            0 => Reply::Text(format!("```python\nv = {n} + 1000\nprint(v)\n```")),
            _ => Reply::Text("```python\nFINAL_VAR('v')\n```".into()),
        }
    });
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .model("gpt-4o-mini")
        .build()
        .unwrap();
    let results = support::run_all(&o, (0..200u64).map(|i| format!("add to {i}")));
    for (i, r) in results.iter().enumerate() {
        assert_eq!(
            r.final_answer.as_deref(),
            Some((i as u64 + 1000).to_string().as_str()),
            "run {i}: {:?}",
            r.error
        );
    }
    assert_eq!(server.count(), 400);
}

#[test]
fn sub_model_on_another_server_in_another_wire_format() {
    const SUB_KEY: &str = "sub-key-abcdef0123456789-do-not-leak";
    // The root speaks OpenAI's format...
    let root = LlmServer::start(|req, _| match support::turns(req) {
        0 => Reply::Text(
            "```python\na = llm_query('A?')\nb = rlm_query('B?')\nprint(a, b)\n```".into(),
        ),
        _ => Reply::Text("```python\nFINAL(a + '|' + b)\n```".into()),
    });
    // ...its sub-calls and child runs Anthropic's.
    let sub = LlmServer::start(|req, _| {
        let model = req["model"].as_str().unwrap_or("?").to_string();
        if req.get("system").is_some() {
            // A child run's conversation: it asks its own sub-model, one level deeper.
            Reply::Text("```python\nx = llm_query('C?')\nFINAL(x)\n```".into())
        } else {
            Reply::Text(format!("from-sub:{model}"))
        }
    });
    let o = Orchestrator::builder()
        .base_url(root.base_url())
        .model("gpt-4o")
        .api_key(KEY)
        .sub_model("claude-3-5-haiku-latest, claude-3-opus")
        .sub_provider(Provider::Anthropic)
        .sub_base_url(sub.base_url())
        .sub_api_key(SUB_KEY)
        .max_depth(2)
        .build()
        .unwrap();
    let r = o.run("route it");
    assert_eq!(
        r.final_answer.as_deref(),
        Some("from-sub:claude-3-5-haiku-latest|from-sub:claude-3-opus"),
        "{:?}",
        r.error
    );
    // Every request went to its own server, in its own format, with its own key only.
    for m in root.meta.lock().unwrap().iter() {
        assert_eq!(m.path, "/v1/chat/completions");
        assert_eq!(
            m.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert!(!format!("{:?}", m.headers).contains(SUB_KEY));
    }
    for m in sub.meta.lock().unwrap().iter() {
        assert_eq!(m.path, "/v1/messages");
        assert_eq!(m.header("x-api-key"), Some(SUB_KEY));
        assert!(m.header("authorization").is_none());
    }
    assert_eq!(root.count(), 2, "the root's two turns");
    assert_eq!(
        sub.count(),
        3,
        "llm_query, the child's turn, the child's llm_query"
    );
    // Usage and prices per model.
    let u = &r.usage.per_model;
    assert_eq!(u["gpt-4o"].calls, 2);
    assert_eq!(u["claude-3-5-haiku-latest"].calls, 2);
    assert_eq!(u["claude-3-opus"].calls, 1);
    let haiku = rlm::llm::PriceTable::default()
        .lookup("claude-3-5-haiku-latest")
        .unwrap();
    let want = 2.0 * haiku.cost(100, 20);
    let got = u["claude-3-5-haiku-latest"].cost_usd.unwrap();
    assert!((got - want).abs() < 1e-12, "{got} != {want}");
    assert!(r.usage.cost_usd.is_some());
    let json = serde_json::to_string(&r).unwrap();
    assert!(!json.contains(KEY) && !json.contains(SUB_KEY));
    assert!(!format!("{o:?} {:?}", o.config()).contains(SUB_KEY));

    // A model the REPL asks for by name: allowed ones are served, others refused host-side.
    let root = LlmServer::start(|req, _| match support::turns(req) {
        0 => Reply::Text(
            "```python\nprint(llm_query('x', model='gpt-4o'), llm_query('y', model='gpt-5'))\n```"
                .into(),
        ),
        _ => Reply::Text("```python\nFINAL('done')\n```".into()),
    });
    let sub = LlmServer::start(|_, _| Reply::Text("sub".into()));
    let o = Orchestrator::builder()
        .base_url(root.base_url())
        .model("gpt-4o")
        .sub_model("gpt-4o-mini")
        .sub_base_url(sub.base_url())
        .build()
        .unwrap();
    let r = o.run("pick");
    assert_eq!(r.final_answer.as_deref(), Some("done"), "{:?}", r.error);
    let obs = &r
        .steps
        .iter()
        .find(|s| s.kind == rlm::StepKind::CodeExecution)
        .unwrap()
        .output;
    assert!(
        obs.contains("not allowed") && obs.contains("gpt-4o, gpt-4o-mini"),
        "{obs}"
    );
    assert_eq!(
        root.count(),
        3,
        "two turns and the sub-call that named the root model"
    );
    assert_eq!(sub.count(), 0);
}

#[test]
fn typed_answers_are_validated_on_the_host_and_sent_back_when_invalid() {
    let server = LlmServer::start(|req, _| {
        let last = support::last_message(req);
        if last.contains("NOT accepted") {
            assert!(last.contains("$.population: expected integer"), "{last}");
            Reply::Text(
                "```python\nimport json\nFINAL(json.dumps({'city': 'Paris', 'population': 2100000}))\n```"
                    .into(),
            )
        } else {
            // A Python dict (not JSON) with a wrong type: still read, then refused.
            Reply::Text("```python\nFINAL({'city': 'Paris', 'population': 'lots'})\n```".into())
        }
    });
    let schema = rlm::Schema::parse(
        r#"{"type":"object","required":["city","population"],"additionalProperties":false,
            "properties":{"city":{"type":"string"},"population":{"type":"integer","minimum":0}}}"#,
    )
    .unwrap();
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .answer_schema(schema.clone())
        .build()
        .unwrap();
    let r = o.run("Largest city of France and its population, as JSON");
    assert!(r.success, "{:?}", r.error);
    assert_eq!(
        r.answer_json.as_deref(),
        Some(r#"{"city":"Paris","population":2100000}"#)
    );
    #[derive(serde::Deserialize)]
    struct City {
        city: String,
        population: u64,
    }
    let c: City = r.answer_as().unwrap().unwrap();
    assert_eq!((c.city.as_str(), c.population), ("Paris", 2_100_000));
    let refused: Vec<_> = r
        .steps
        .iter()
        .filter(|s| s.kind == rlm::StepKind::FinalAnswer && !s.success)
        .collect();
    assert_eq!(refused.len(), 1);
    assert!(refused[0].error.as_deref().unwrap().contains("population"));
    assert_eq!(server.count(), 2);
    // The model was told the schema.
    let first = server.requests.lock().unwrap()[0].clone();
    assert!(
        first["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("\"population\"")
    );

    // Without a schema (per request), the same reply is the answer as it is.
    let server = LlmServer::start(|_, _| {
        Reply::Text("```python\nFINAL({'city': 'Paris', 'population': 'lots'})\n```".into())
    });
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .answer_schema(schema)
        .build()
        .unwrap()
        .with_answer_schema(None);
    let r = o.run("q");
    assert_eq!(
        r.final_answer.as_deref(),
        Some("{'city': 'Paris', 'population': 'lots'}")
    );
    assert_eq!(r.answer_json, None);
}

#[test]
fn limits_end_with_a_best_effort_partial_answer() {
    let script = |req: &serde_json::Value, _| {
        if support::last_message(req).contains("reached a limit") {
            Reply::Text("Probably 42, from the counts printed so far.".into())
        } else {
            Reply::Text("```python\nimport time\nprint('counting...')\ntime.sleep(0.2)\n```".into())
        }
    };
    // Turns.
    let server = LlmServer::start(script);
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .max_iterations(2)
        .build()
        .unwrap();
    let r = o.run("count");
    assert!(!r.success && r.final_answer.is_none());
    assert!(
        r.error.as_deref().unwrap().contains("max iterations"),
        "{:?}",
        r.error
    );
    assert_eq!(
        r.partial_answer.as_deref(),
        Some("Probably 42, from the counts printed so far.")
    );
    assert_eq!(server.count(), 3);
    let last = support::last_message(&server.requests.lock().unwrap()[2]);
    assert!(last.contains("max iterations (2)"), "{last}");
    let all = server.requests.lock().unwrap()[2].to_string();
    assert!(
        all.contains("counting..."),
        "the last observation is in the last call"
    );
    assert_eq!(r.steps.last().unwrap().kind, rlm::StepKind::PartialAnswer);
    assert!(
        r.into_answer().is_err(),
        "a partial answer is not an answer"
    );

    // Time.
    let server = LlmServer::start(|req, _| {
        if support::last_message(req).contains("reached a limit") {
            Reply::Text("partial: still sleeping".into())
        } else {
            Reply::Text("```python\nimport time\ntime.sleep(30)\n```".into())
        }
    });
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .run_timeout(Some(Duration::from_millis(1500)))
        .build()
        .unwrap();
    let t = Instant::now();
    let r = o.run("sleep");
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(
        matches!(r.failure, Some(Error::Timeout { .. })),
        "{:?}",
        r.failure
    );
    assert_eq!(r.partial_answer.as_deref(), Some("partial: still sleeping"));

    // Budget: the last call is made only if the budget allows it.
    let server = LlmServer::start(script);
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .max_llm_calls(2)
        .build()
        .unwrap();
    let r = o.run("count");
    assert!(matches!(r.failure, Some(Error::BudgetExceeded { .. })));
    assert_eq!(r.partial_answer, None);
    assert_eq!(server.count(), 2, "no call beyond the budget");

    // Off.
    let server = LlmServer::start(script);
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .max_iterations(1)
        .setting("best_effort", "0")
        .build()
        .unwrap();
    let r = o.run("count");
    assert_eq!((r.partial_answer, server.count()), (None, 1));
}

#[test]
fn cached_tokens_are_read_from_each_provider_and_priced() {
    for p in PROVIDERS {
        // Ten turns; from the second on, most of the prompt comes from the cache (and
        // Anthropic reports writes).
        let server = LlmServer::start(|req, _| {
            let turn = support::turns(req) as u64
                + req["contents"]
                    .as_array()
                    .map(|c| c.iter().filter(|m| m["role"] == "model").count() as u64)
                    .unwrap_or(0);
            let text = if turn < 9 {
                format!("```python\nprint({turn})\n```")
            } else {
                "```python\nFINAL('done')\n```".into()
            };
            let prompt = 2000 + 500 * turn;
            let cached = if turn == 0 {
                0
            } else {
                2000 + 500 * (turn - 1)
            };
            Reply::Usage(text, [prompt, 50, cached, 400])
        });
        let o = Orchestrator::builder()
            .provider(p)
            .base_url(server.base_url())
            .api_key(KEY)
            .max_iterations(10)
            .build()
            .unwrap();
        let r = o.run("ten turns");
        assert_eq!(
            r.final_answer.as_deref(),
            Some("done"),
            "{p:?}: {:?}",
            r.error
        );
        assert_eq!(r.usage.calls, 10);
        let model = o.config().llm.model.clone();
        let price = rlm::llm::PriceTable::default().lookup(&model).unwrap();
        let (mut want, mut plain_cost, mut cached_sum) = (0.0, 0.0, 0);
        for turn in 0..10u64 {
            let prompt = 2000 + 500 * turn;
            let cached = if turn == 0 {
                0
            } else {
                2000 + 500 * (turn - 1)
            };
            // Only Anthropic reports cache writes.
            let write = if p == Provider::Anthropic { 400 } else { 0 };
            want += price.cost_cached(prompt, cached, write, 50);
            plain_cost += price.cost(prompt, 50);
            cached_sum += cached;
        }
        let got = r.usage.cost_usd.unwrap();
        assert!((got - want).abs() < 1e-12, "{p:?}: {got} != {want}");
        assert!(
            got < plain_cost * 0.6,
            "{p:?}: caching must show in the cost"
        );
        assert_eq!(r.usage.cached_prompt_tokens, cached_sum, "{p:?}");
        assert_eq!(
            r.usage.prompt_tokens,
            (0..10).map(|t| 2000 + 500 * t).sum::<u64>()
        );
        if p == Provider::Anthropic {
            assert_eq!(r.usage.cache_write_tokens, 4000);
            let reqs = server.requests.lock().unwrap();
            assert_eq!(reqs[0]["system"][0]["cache_control"]["type"], "ephemeral");
            let first: Vec<_> = reqs[0]["messages"].as_array().unwrap().clone();
            assert!(
                first.iter().all(|m| m["content"].is_string()),
                "turn 1: no turns to cache"
            );
            let later = reqs[5]["messages"].as_array().unwrap();
            let last = later.last().unwrap();
            assert_eq!(last["content"][0]["cache_control"]["type"], "ephemeral");
            assert_eq!(
                later.iter().filter(|m| m["content"].is_array()).count(),
                1,
                "one breakpoint on the turns"
            );
        }
    }
}

#[test]
fn gemini_rate_limits_honour_retry_delay_in_the_body() {
    let server = LlmServer::start(|_, i| {
        if i == 0 {
            Reply::GeminiRetry("1.5s".into())
        } else {
            Reply::Text("ok".into())
        }
    });
    let t = Instant::now();
    assert_eq!(
        ask(&client(Provider::Gemini, &server, |_| {}))
            .unwrap()
            .text,
        "ok"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(1450),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(server.count(), 2);
}
