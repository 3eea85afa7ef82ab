//! Test support: a loopback HTTP server speaking OpenAI's chat-completions wire format
//! (std only, no async runtime), scripted per request, with fault injection.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

/// What the server answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with this assistant text.
    Text(String),
    /// 200 with this text and no `usage` field.
    TextNoUsage(String),
    /// An error status with an OpenAI error body and optional `Retry-After`.
    Status(u16, String, Option<String>),
    /// Wait this long, then answer with the text.
    Delay(Duration, String),
    /// Send a 200 with a body that is not JSON.
    Malformed,
    /// Close the connection without answering.
    Reset,
    /// 200 with this text and usage: (prompt, completion, cache read, cache write), each
    /// provider's prompt count meaning what it means there (Anthropic's `input_tokens`
    /// excludes the cached ones).
    Usage(String, [u64; 4]),
    /// Gemini's 429 with a `RetryInfo.retryDelay` in the body (no `Retry-After` header).
    GeminiRetry(String),
}

type Script = dyn Fn(&Value, usize) -> Reply + Send + Sync;

/// What the server saw of a request besides its body.
#[derive(Debug, Clone)]
pub struct Meta {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub at: std::time::Instant,
}

impl Meta {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Wire {
    OpenAi,
    Anthropic,
    Gemini,
}

/// A running server; stops when dropped.
pub struct LlmServer {
    pub addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    pub requests: Arc<Mutex<Vec<Value>>>,
    /// Path and headers (lower-cased names) of each request, in arrival order, with the
    /// arrival time.
    pub meta: Arc<Mutex<Vec<Meta>>>,
    pub in_flight_peak: Arc<AtomicUsize>,
    handle: Option<thread::JoinHandle<()>>,
}

impl LlmServer {
    /// Starts a server whose replies come from `script(request_body, request_index)`.
    pub fn start(script: impl Fn(&Value, usize) -> Reply + Send + Sync + 'static) -> LlmServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let meta = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let script: Arc<Script> = Arc::new(script);
        let (s2, r2, p2, m2) = (stop.clone(), requests.clone(), peak.clone(), meta.clone());
        let handle = thread::spawn(move || {
            for conn in listener.incoming() {
                if s2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (script, reqs, inf, peak, metas) = (
                    script.clone(),
                    r2.clone(),
                    in_flight.clone(),
                    p2.clone(),
                    m2.clone(),
                );
                let _ = thread::Builder::new()
                    .name("llm-server-conn".into())
                    .spawn(move || serve(conn, &*script, &reqs, &metas, &inf, &peak));
            }
        });
        LlmServer {
            addr,
            stop,
            requests,
            meta,
            in_flight_peak: peak,
            handle: Some(handle),
        }
    }

    /// `http://127.0.0.1:PORT/v1`
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request body received so far, as one text (to search for what must not be
    /// there).
    pub fn all_requests(&self) -> String {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|q| q.to_string())
            .collect()
    }

    /// Number of requests received.
    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

impl Drop for LlmServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn serve(
    mut conn: TcpStream,
    script: &Script,
    reqs: &Mutex<Vec<Value>>,
    metas: &Mutex<Vec<Meta>>,
    inf: &AtomicUsize,
    peak: &AtomicUsize,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let wire = if path.ends_with("/messages") {
            Wire::Anthropic
        } else if path.contains(":generateContent") {
            Wire::Gemini
        } else {
            Wire::OpenAi
        };
        let mut len = 0usize;
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                if k == "content-length" {
                    len = v.trim().parse().unwrap_or(0);
                }
                headers.push((k, v.trim().to_string()));
            }
        }
        metas.lock().unwrap().push(Meta {
            path: path.clone(),
            headers,
            at: std::time::Instant::now(),
        });
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let idx = {
            let mut r = reqs.lock().unwrap();
            r.push(v.clone());
            r.len() - 1
        };
        let now = inf.fetch_add(1, Ordering::SeqCst) + 1;
        peak.fetch_max(now, Ordering::SeqCst);
        let reply = script(&v, idx);
        let model = match wire {
            Wire::Gemini => {
                path.split("/models/")
                    .nth(1)
                    .and_then(|m| m.split(':').next())
                    .unwrap_or("gemini")
                    .to_string()
                    + "-001"
            }
            _ => v["model"].as_str().unwrap_or("test-model").to_string(),
        };
        let resp = match reply {
            Reply::Text(t) => ok(wire, &model, &t, true),
            Reply::TextNoUsage(t) => ok(wire, &model, &t, false),
            Reply::Delay(d, t) => {
                thread::sleep(d);
                ok(wire, &model, &t, true)
            }
            Reply::Status(code, msg, retry) => {
                let body = match wire {
                    Wire::OpenAi => json!({"error": {"message": msg, "type": "test", "code": null}}),
                    Wire::Anthropic => json!({"type": "error", "error": {"type": "test_error", "message": msg}}),
                    Wire::Gemini => json!({"error": {"code": code, "message": msg, "status": "TEST"}}),
                }
                .to_string();
                let extra = retry.map(|r| format!("Retry-After: {r}\r\n")).unwrap_or_default();
                format!(
                    "HTTP/1.1 {code} Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n{body}",
                    body.len()
                )
            }
            Reply::Usage(t, [p, c, r, w]) => {
                let mut s = ok(wire, &model, &t, false);
                let (head, body) = s.split_once("\r\n\r\n").unwrap();
                let _ = head;
                let mut b: Value = serde_json::from_str(body).unwrap();
                match wire {
                    Wire::OpenAi => b["usage"] = json!({"prompt_tokens": p, "completion_tokens": c,
                        "total_tokens": p + c, "prompt_tokens_details": {"cached_tokens": r}}),
                    Wire::Anthropic => b["usage"] = json!({"input_tokens": p - r - w, "output_tokens": c,
                        "cache_read_input_tokens": r, "cache_creation_input_tokens": w}),
                    Wire::Gemini => b["usageMetadata"] = json!({"promptTokenCount": p,
                        "candidatesTokenCount": c, "cachedContentTokenCount": r, "totalTokenCount": p + c}),
                }
                let body = b.to_string();
                s = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                s
            }
            Reply::GeminiRetry(delay) => {
                let body = json!({"error": {"code": 429, "message": "Resource has been exhausted",
                    "status": "RESOURCE_EXHAUSTED", "details": [
                        {"@type": "type.googleapis.com/google.rpc.QuotaFailure"},
                        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]}})
                .to_string();
                format!(
                    "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            }
            Reply::Malformed => {
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{not json".into()
            }
            Reply::Reset => {
                inf.fetch_sub(1, Ordering::SeqCst);
                let _ = conn.shutdown(Shutdown::Both);
                return;
            }
        };
        inf.fetch_sub(1, Ordering::SeqCst);
        if conn.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

fn ok(wire: Wire, model: &str, text: &str, usage: bool) -> String {
    let body = match wire {
        Wire::OpenAi => ok_openai(model, text, usage),
        Wire::Anthropic => {
            let mut b = json!({"id": "msg_test", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": null});
            if usage {
                b["usage"] = json!({"input_tokens": 100, "output_tokens": 20});
            }
            b.to_string()
        }
        Wire::Gemini => {
            let mut b = json!({"candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": "STOP", "index": 0}], "modelVersion": model});
            if usage {
                b["usageMetadata"] = json!({"promptTokenCount": 100, "candidatesTokenCount": 20, "totalTokenCount": 120});
            }
            b.to_string()
        }
    };
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn ok_openai(model: &str, text: &str, usage: bool) -> String {
    let mut body = json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    });
    if usage {
        body["usage"] = json!({"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120});
    }
    body.to_string()
}

/// The content of the last message of a chat request.
pub fn last_message(req: &Value) -> String {
    req["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string()
}

/// The content of the first user message.
pub fn first_user(req: &Value) -> String {
    req["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string()
}

/// Number of assistant messages so far (= the turn number minus one).
pub fn turns(req: &Value) -> usize {
    req["messages"]
        .as_array()
        .map(|m| m.iter().filter(|m| m["role"] == "assistant").count())
        .unwrap_or(0)
}

/// Every process descended from this test process: sandbox launchers, the REPLs and whatever
/// they started, including daemonised grandchildren (inside a sandbox, orphans are adopted by
/// the sandbox's init, itself a descendant). Processes of other programs (another `rlm` on the
/// machine) are not counted. Only exact where the tests of a binary are serialized.
pub fn descendants() -> Vec<u32> {
    let me = std::process::id();
    let mut parent = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        if let Some(pp) = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .and_then(|v| v.trim().parse::<u32>().ok())
        {
            parent.insert(pid, pp);
        }
    }
    let mut out: Vec<u32> = parent
        .keys()
        .copied()
        .filter(|&pid| {
            let mut p = pid;
            for _ in 0..64 {
                match parent.get(&p) {
                    Some(&pp) if pp == me => return true,
                    Some(&pp) if pp > 1 => p = pp,
                    _ => return false,
                }
            }
            false
        })
        .collect();
    out.sort_unstable();
    out
}

/// Waits up to `secs` for this test process to have no descendant left; returns how many
/// remain.
pub fn wait_no_descendants(secs: u64) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let n = descendants().len();
        if n == 0 || std::time::Instant::now() > deadline {
            return n;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Python that tries to fork 300 sleeping children and prints `forked N refused M` (then
/// kills what it forked). The same hostile code for every backend.
pub const FORK_BOMB: &str = r#"import os, time
kids, refused = [], 0
for i in range(300):
    try:
        pid = os.fork()
    except OSError:
        refused += 1
        continue
    if pid == 0:
        time.sleep(30); os._exit(0)
    kids.append(pid)
print('forked', len(kids), 'refused', refused)
for k in kids:
    os.kill(k, 9); os.waitpid(k, 0)
"#;

/// How many children [`FORK_BOMB`] got, from its output.
pub fn forked(stdout: &str) -> Option<usize> {
    let line = stdout.lines().find(|l| l.starts_with("forked"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What this test process made in `dirs` (temporary directories, cgroups): the entries named
/// `rlm-<our pid>-…`.
pub fn ours_in(dirs: &[&std::path::Path]) -> Vec<std::path::PathBuf> {
    let prefix = format!("rlm-{}-", std::process::id());
    dirs.iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

/// Runs `queries` concurrently on one orchestrator (one task each, on a private executor) and
/// returns the results in query order.
pub fn run_all(
    o: &rlm::Orchestrator,
    queries: impl IntoIterator<Item = String>,
) -> Vec<rlm::RunResult> {
    futures_lite::future::block_on(async {
        let ex = async_executor::Executor::new();
        ex.run(async {
            let tasks: Vec<_> = queries.into_iter().map(|q| ex.spawn(o.arun(q))).collect();
            let mut out = Vec::with_capacity(tasks.len());
            for t in tasks {
                out.push(t.await);
            }
            out
        })
        .await
    })
}
