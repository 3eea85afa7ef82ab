//! `rlm serve` end to end: the real binary on loopback, real HTTP (ureq), the real sandbox,
//! a loopback LLM server. Tests run one at a time (a lock), so "nothing left behind" means
//! no descendant process of this test binary.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{LlmServer, Reply, first_user, turns, wait_no_descendants};

const TOKEN: &str = "test-token-0123456789abcdef";
/// Another client's token, in the same token file.
const OTHER: &str = "other-token-9876543210fedcba";

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Scripted model: "SLEEP" queries run code that sleeps 30 s; "SLOW" ones get a reply after
/// 2 s; every other query computes 6*7 in the REPL and answers it.
fn llm() -> LlmServer {
    LlmServer::start(|req, _| {
        let q = first_user(req);
        match turns(req) {
            0 if q.contains("SLEEP") => {
                Reply::Text("```python\nimport time\ntime.sleep(30)\n```".into())
            }
            0 if q.contains("SLOW") => Reply::Delay(
                Duration::from_secs(2),
                "```python\nx = 6 * 7\nprint(x)\n```".into(),
            ),
            0 => Reply::Text("```python\nx = 6 * 7\nprint(x)\n```".into()),
            _ => Reply::Text("```python\nFINAL(str(x))\n```".into()),
        }
    })
}

struct Serve {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
}

impl Serve {
    /// Starts `rlm serve` with a token file (none when `extra` holds `NO_TOKEN`).
    fn start(llm: &LlmServer, extra: &[&str]) -> Serve {
        let no_token = extra.contains(&"NO_TOKEN");
        let extra: Vec<&str> = extra.iter().copied().filter(|a| *a != "NO_TOKEN").collect();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::write(root.join("data/n.txt"), "the number is 42\n").unwrap();
        std::fs::write(dir.path().join("outside.txt"), "secret outside\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside.txt"), root.join("escape.txt"))
            .unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::write(&tokens, format!("# rotated weekly\n{TOKEN}\n{OTHER}\n")).unwrap();
        let mut c = Command::new(env!("CARGO_BIN_EXE_rlm"));
        c.env_clear();
        for k in ["PATH", "HOME", "TMPDIR"] {
            if let Some(v) = std::env::var_os(k) {
                c.env(k, v);
            }
        }
        c.env("RLM_LLM_BASE_URL", llm.base_url())
            .env("RLM_LLM_MODEL", "test-model")
            .args(["serve", "--listen", "127.0.0.1:0", "--context-root"])
            .arg(&root)
            .args(extra);
        if !no_token {
            c.arg("--token-file").arg(&tokens);
        }
        c.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = c.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let v: Value = serde_json::from_str(&first).unwrap();
        assert_eq!(v["msg"], "listening", "{first}");
        let base = v["addr"].as_str().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let l2 = log.clone();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                l2.lock().unwrap().push(l);
            }
        });
        Serve {
            child,
            base,
            log,
            _dir: dir,
            root,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Status, headers we care about, and the body.
struct Resp {
    status: u16,
    retry_after: Option<String>,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

fn send(method: &str, url: &str, token: Option<&str>, body: Option<&str>) -> Resp {
    let a = agent();
    let auth = token.map(|t| format!("Bearer {t}"));
    let res = match (method, body) {
        ("POST", Some(b)) => {
            let mut r = a.post(url).header("content-type", "application/json");
            if let Some(h) = &auth {
                r = r.header("authorization", h);
            }
            r.send(b.as_bytes())
        }
        ("DELETE", _) => {
            let mut r = a.delete(url);
            if let Some(h) = &auth {
                r = r.header("authorization", h);
            }
            r.call()
        }
        ("PUT", _) => {
            let mut r = a.put(url);
            if let Some(h) = &auth {
                r = r.header("authorization", h);
            }
            r.send(&b""[..])
        }
        _ => {
            let mut r = a.get(url);
            if let Some(h) = &auth {
                r = r.header("authorization", h);
            }
            r.call()
        }
    };
    let mut r = res.unwrap();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    Resp {
        status: r.status().as_u16(),
        retry_after,
        body: r.body_mut().read_to_string().unwrap_or_default(),
    }
}

fn post(s: &Serve, body: &Value) -> Resp {
    send(
        "POST",
        &s.url("/v1/runs"),
        Some(TOKEN),
        Some(&body.to_string()),
    )
}

#[test]
fn sync_and_streamed_runs_metrics_auth_and_access_log() {
    let _g = serial();
    let llm = llm();
    let s = Serve::start(&llm, &[]);
    assert_eq!(send("GET", &s.url("/healthz"), None, None).status, 200);

    let r = post(
        &s,
        &json!({"query": "what is six times seven QSYNC", "context": {"file": "data/n.txt"}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["final_answer"], "42", "{v}");
    assert_eq!(v["success"], true);

    // Streamed: events as `data:` lines, the result last.
    let r = post(
        &s,
        &json!({"query": "six times seven QSTREAM", "stream": true, "limits": {"max_iterations": 5}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let data: Vec<Value> = r
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(data.len() >= 4, "{}", r.body);
    assert_eq!(data[0]["type"], "started");
    assert!(data.iter().any(|e| e["type"] == "executing"), "{}", r.body);
    let last = data.last().unwrap();
    assert_eq!(last["final_answer"], "42", "{last}");
    assert!(r.body.contains("event: result\n"), "{}", r.body);

    // Authentication.
    let unauth = send("POST", &s.url("/v1/runs"), None, Some(r#"{"query":"q"}"#));
    assert_eq!(unauth.status, 401);
    let wrong = send(
        "GET",
        &s.url("/metrics"),
        Some("wrong-token-0123456789abcdef"),
        None,
    );
    assert_eq!(wrong.status, 401);
    // Routes.
    assert_eq!(send("GET", &s.url("/nope"), Some(TOKEN), None).status, 404);
    assert_eq!(
        send("PUT", &s.url("/v1/runs"), Some(TOKEN), None).status,
        405
    );

    let m = send("GET", &s.url("/metrics"), Some(TOKEN), None);
    assert_eq!(m.status, 200);
    for want in [
        "rlm_runs_total{outcome=\"success\"} 2",
        "rlm_runs_in_flight 0",
        "rlm_runs_queued 0",
        "rlm_llm_tokens_total{model=\"test-model\",kind=\"prompt\"} 400",
        "rlm_llm_cost_usd_total{model=\"test-model\"}",
        "rlm_sandbox_starts_total 2",
        "rlm_run_duration_seconds_count 2",
        "rlm_http_responses_total{code=\"401\"} 2",
    ] {
        assert!(m.body.contains(want), "{want} missing:\n{}", m.body);
    }

    std::thread::sleep(Duration::from_millis(200));
    let log = s.log.lock().unwrap().clone();
    assert!(log.len() >= 7, "{log:?}");
    for l in &log {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert_eq!(v["msg"], "access", "{l}");
        assert!(!l.contains(TOKEN) && !l.contains("wrong-token"), "{l}");
        assert!(!l.contains("QSYNC") && !l.contains("QSTREAM"), "{l}");
        assert!(!l.contains("n.txt"), "{l}");
    }
    assert!(
        log.iter()
            .any(|l| l.contains("\"mode\":\"stream\"") && l.contains("\"status\":200"))
    );
}

#[test]
fn bad_requests_are_refused_with_the_field_named() {
    let _g = serial();
    let llm = llm();
    let s = Serve::start(&llm, &["--max-body", "1K", "--max-iterations", "10"]);
    let field = |r: &Resp| r.json()["error"]["field"].as_str().map(String::from);

    let big = json!({"query": "x".repeat(2000)});
    assert_eq!(post(&s, &big).status, 413);

    let r = post(
        &s,
        &json!({"query": "q", "context": {"file": "../outside.txt"}}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(field(&r).as_deref(), Some("context.file"));
    let r = post(
        &s,
        &json!({"query": "q", "context": {"files": ["data/n.txt", "escape.txt"]}}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(field(&r).as_deref(), Some("context.files[1]"));
    assert!(r.body.contains("out of the context root"), "{}", r.body);
    assert!(!r.body.contains(s.root.to_str().unwrap()), "{}", r.body);

    let r = send(
        "POST",
        &s.url("/v1/runs"),
        Some(TOKEN),
        Some("{\"query\": "),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "malformed_json");
    let r = post(
        &s,
        &json!({"query": "q", "limits": {"max_iterations": "many"}}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(field(&r).as_deref(), Some("limits.max_iterations"));
    let r = post(&s, &json!({"query": "q", "limits": {"max_iterations": 11}}));
    assert_eq!(r.status, 400, "above the server's maximum");
    assert_eq!(field(&r).as_deref(), Some("limits.max_iterations"));
    let r = post(&s, &json!({"qeury": "q"}));
    assert_eq!(field(&r).as_deref(), Some("qeury"));
    assert_eq!(llm.count(), 0, "no refused request reached the model");
}

#[test]
fn async_run_get_and_delete_kill_the_sandbox() {
    let _g = serial();
    let llm = llm();
    let s = Serve::start(
        &llm,
        // No pre-started sandboxes: the process count below is the run's alone.
        &[
            "--max-concurrent",
            "1",
            "--queue",
            "0",
            "--sandbox-pool",
            "0",
        ],
    );
    let r = post(&s, &json!({"query": "SLEEP please", "async": true}));
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let run_url = s.url(&format!("/v1/runs/{id}"));
    // Wait until its code runs (the model answered and a sandbox exists).
    let deadline = Instant::now() + Duration::from_secs(20);
    while support::descendants().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(support::descendants().len() >= 2, "a sandbox started");
    assert_eq!(
        send("GET", &run_url, Some(TOKEN), None).json()["status"],
        "running"
    );
    // Another client's token neither sees nor cancels it.
    assert_eq!(send("GET", &run_url, Some(OTHER), None).status, 404);
    assert_eq!(send("DELETE", &run_url, Some(OTHER), None).status, 404);
    assert_eq!(
        send("GET", &run_url, Some(TOKEN), None).json()["status"],
        "running"
    );

    // The only slot is taken and there is no queue: 429 with Retry-After.
    let busy = post(&s, &json!({"query": "another"}));
    assert_eq!(busy.status, 429, "{}", busy.body);
    let ra: u64 = busy.retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&ra));

    let d = send("DELETE", &run_url, Some(TOKEN), None);
    assert_eq!(d.status, 202, "{}", d.body);
    let deadline = Instant::now() + Duration::from_secs(15);
    let done = loop {
        let v = send("GET", &run_url, Some(TOKEN), None).json();
        if v["status"] == "done" || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["result"]["success"], false);
    assert!(
        done["result"]["error"].as_str().unwrap().contains("cancel"),
        "{done}"
    );
    // Only the server itself is left: every sandbox process is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while support::descendants().len() > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(support::descendants(), vec![s.child.id()]);
    let m = send("GET", &s.url("/metrics"), Some(TOKEN), None).body;
    assert!(m.contains("rlm_runs_total{outcome=\"cancelled\"} 1"), "{m}");
    assert_eq!(
        send("GET", &s.url("/v1/runs/0123"), Some(TOKEN), None).status,
        404
    );
}

fn sigterm(s: &Serve) {
    let ok = Command::new("kill")
        .args(["-TERM", &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn wait_exit(s: &mut Serve, secs: u64) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            return Some(st);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_lets_runs_finish_then_exits_cleanly() {
    let _g = serial();
    let llm = llm();
    let mut s = Serve::start(&llm, &["--shutdown-grace", "20"]);
    let url = s.url("/v1/runs");
    let run = std::thread::spawn(move || {
        send("POST", &url, Some(TOKEN), Some(r#"{"query":"SLOW one"}"#))
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while llm.count() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    sigterm(&s);
    std::thread::sleep(Duration::from_millis(300));
    // No new connections once shutdown started.
    let refused = agent().get(&s.url("/healthz")).call();
    assert!(
        refused.is_err() || refused.unwrap().status() == 503,
        "new requests are refused while shutting down"
    );
    let r = run.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["final_answer"], "42", "the run in flight finished");
    let st = wait_exit(&mut s, 20).expect("the server exits");
    assert!(st.success(), "{st:?}");
    assert_eq!(wait_no_descendants(5), 0);
}

#[test]
fn sigterm_cancels_runs_past_the_grace_period() {
    let _g = serial();
    let llm = llm();
    let mut s = Serve::start(&llm, &["--shutdown-grace", "1", "--sandbox-pool", "0"]);
    let url = s.url("/v1/runs");
    let run = std::thread::spawn(move || {
        send("POST", &url, Some(TOKEN), Some(r#"{"query":"SLEEP long"}"#))
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while support::descendants().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = Instant::now();
    sigterm(&s);
    let r = run.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["success"], false);
    let st = wait_exit(&mut s, 15).expect("the server exits");
    assert!(st.success(), "{st:?}");
    assert!(t.elapsed() < Duration::from_secs(12), "{:?}", t.elapsed());
    assert_eq!(wait_no_descendants(5), 0, "every sandbox killed");
}

/// One raw HTTP/1.1 exchange (the request as written), the response as text; empty when the
/// server closed the connection without answering.
fn raw(addr: &str, req: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = c.write_all(req.as_bytes());
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn web_pages_wrong_media_types_and_connection_floods_are_refused() {
    let _g = serial();
    let llm = llm();
    let s = Serve::start(&llm, &["--max-connections", "3"]);
    let addr = s.base.trim_start_matches("http://").to_string();
    // What a web page can send without a CORS preflight: a text/plain POST.
    let body = r#"{"query":"SLEEP"}"#;
    let r = raw(
        &addr,
        &format!(
            "POST /v1/runs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(r.starts_with("HTTP/1.1 415"), "{r}");
    let r = raw(
        &addr,
        &format!(
            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
             Origin: http://page.example\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert_eq!(llm.count(), 0, "no refused request reached the model");
    // Three idle connections fill the server; a fourth is closed unanswered.
    let held: Vec<_> = (0..3)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let r = raw(
        &addr,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r, "", "a connection over the limit is closed");
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(send("GET", &s.url("/healthz"), None, None).status, 200);
    drop(s);

    // Without tokens, only requests addressed to a loopback name are answered (a page whose
    // name was rebound to 127.0.0.1 sends its own name).
    let s = Serve::start(&llm, &["NO_TOKEN"]);
    let addr = s.base.trim_start_matches("http://").to_string();
    let port = addr.rsplit(':').next().unwrap();
    let r = raw(
        &addr,
        &format!(
            "GET /metrics HTTP/1.1\r\nHost: rebound.example:{port}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    let r = raw(
        &addr,
        &format!("GET /metrics HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n"),
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}
