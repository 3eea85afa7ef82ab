//! Routes and responses: one handler per request on a trillium-http connection.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Instant, SystemTime};

use futures_lite::{AsyncRead, Stream};
use serde_json::json;
use trillium_http::{Body, Conn, KnownHeaderName as Header, Method};

use super::State;
use super::access::{self, Entry};
use super::api::{self, ApiError, ContextSpec, Mode};
use super::jobs::JobState;
use super::metrics::outcome;
use super::paths;
use super::runs;
use crate::context::Context;
use crate::events::RunEvent;
use crate::runtime;

pub(crate) type Transport = async_net::TcpStream;
type C = Conn<Transport>;

/// What the access log says about a request besides method, path and status.
#[derive(Debug, Default)]
struct Note {
    mode: Option<&'static str>,
    run_id: Option<String>,
    outcome: Option<&'static str>,
    error: Option<&'static str>,
}

/// Answers one request and logs it.
pub(crate) async fn handle(state: Arc<State>, remote: Option<SocketAddr>, conn: C) -> C {
    let start = Instant::now();
    let method = conn.method();
    let path = conn.path().to_string();
    let mut note = Note::default();
    let mut conn = route(&state, conn, method, &path, &mut note).await;
    let status = conn.status().map(|s| s as u16).unwrap_or(404);
    if conn.status().is_none() {
        conn.set_status(404);
    }
    state.metrics.response(status, start.elapsed());
    let line = access::line(
        &Entry {
            method: method.as_ref(),
            path: &path,
            status,
            duration: start.elapsed(),
            remote,
            mode: note.mode,
            run_id: note.run_id.as_deref(),
            outcome: note.outcome,
            error: note.error,
        },
        SystemTime::now(),
    );
    (state.log)(&line);
    conn
}

fn json_response(mut conn: C, status: u16, body: String) -> C {
    conn.response_headers_mut()
        .insert(Header::ContentType, "application/json");
    conn.set_status(status);
    conn.set_response_body(body);
    conn
}

fn error(mut conn: C, e: &ApiError, note: &mut Note) -> C {
    note.error = Some(e.code);
    if e.status == 401 {
        conn.response_headers_mut()
            .insert(Header::WwwAuthenticate, "Bearer");
    }
    json_response(conn, e.status, e.to_json())
}

/// Who the request is: `Some(Some(i))` with the server's token number `i`, `Some(None)` on a
/// server without tokens, `None` without a valid token. Every token is compared, each in
/// constant time.
fn authorized(state: &State, conn: &C) -> Option<Option<usize>> {
    if state.cfg.tokens.is_empty() {
        return Some(None);
    }
    let given = conn
        .request_headers()
        .get_str(Header::Authorization)
        .and_then(|v| v.strip_prefix("Bearer "))?;
    let given = given.trim().as_bytes();
    state
        .cfg
        .tokens
        .iter()
        .enumerate()
        .fold(None, |found, (i, t)| {
            let t = t.as_bytes();
            let same_len = t.len() == given.len();
            let diff = t
                .iter()
                .zip(given.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if same_len && diff == 0 {
                Some(i)
            } else {
                found
            }
        })
        .map(Some)
}

/// Refuses what a web page could send: a request with an `Origin` header (browsers add it to
/// cross-site requests; this API is for programs, and answers no CORS), and, on a server
/// without tokens, a `Host` that is not a loopback name (a page whose DNS name was rebound
/// to 127.0.0.1 still sends its own name).
fn not_from_a_program(state: &State, conn: &C) -> Option<ApiError> {
    let headers = conn.request_headers();
    if headers.get_str(Header::Origin).is_some() {
        return Some(ApiError::new(
            403,
            "browser_request",
            "requests from web pages (with an Origin header) are refused; call the API from a program",
        ));
    }
    if state.cfg.tokens.is_empty() {
        let host = headers.get_str(Header::Host).unwrap_or("");
        if !loopback_host(host) {
            return Some(ApiError::new(
                403,
                "host_not_allowed",
                "without --token-file the server answers only requests addressed to a loopback name (127.0.0.1, localhost, [::1])",
            ));
        }
    }
    None
}

/// `127.0.0.1[:port]`, `localhost[:port]` or `[::1][:port]`.
fn loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    matches!(
        name.to_ascii_lowercase().as_str(),
        "127.0.0.1" | "localhost" | "::1"
    )
}

async fn route(state: &Arc<State>, mut conn: C, method: Method, path: &str, note: &mut Note) -> C {
    let allowed: &str = match path {
        "/healthz" => "GET",
        "/metrics" => "GET",
        "/v1/runs" => "POST",
        p if p.starts_with("/v1/runs/") && p.len() > "/v1/runs/".len() => "GET, DELETE",
        _ => {
            let e = ApiError::new(404, "not_found", "no such endpoint");
            return error(conn, &e, note);
        }
    };
    let ok_method = allowed.split(", ").any(|m| m == method.as_ref())
        || (method == Method::Head && allowed.contains("GET"));
    if !ok_method {
        conn.response_headers_mut()
            .insert(Header::Allow, allowed.to_string());
        let e = ApiError::new(405, "method_not_allowed", format!("use {allowed}"));
        return error(conn, &e, note);
    }
    if path == "/healthz" {
        return if state.runs.is_draining() {
            json_response(conn, 503, json!({"status": "shutting_down"}).to_string())
        } else {
            json_response(conn, 200, json!({"status": "ok"}).to_string())
        };
    }
    if let Some(e) = not_from_a_program(state, &conn) {
        return error(conn, &e, note);
    }
    let Some(owner) = authorized(state, &conn) else {
        let e = ApiError::new(401, "unauthorized", "a valid bearer token is required");
        return error(conn, &e, note);
    };
    if path == "/v1/runs"
        && !conn
            .request_headers()
            .get_str(Header::ContentType)
            .is_some_and(|t| {
                t.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            })
    {
        let e = ApiError::new(
            415,
            "unsupported_media_type",
            "send the run as JSON with Content-Type: application/json",
        );
        return error(conn, &e, note);
    }
    match path {
        "/metrics" => {
            conn.response_headers_mut()
                .insert(Header::ContentType, "text/plain; version=0.0.4");
            conn.set_status(200);
            conn.set_response_body(state.metrics.render());
            conn
        }
        "/v1/runs" => post_run(state, conn, owner, note).await,
        p => {
            let id = &p["/v1/runs/".len()..];
            note.run_id = Some(access::short_id(id));
            async_run(state, conn, method, id, owner, note)
        }
    }
}

fn async_run(
    state: &State,
    conn: C,
    method: Method,
    id: &str,
    owner: Option<usize>,
    note: &mut Note,
) -> C {
    // A run started with another token is, for this one, a run that does not exist.
    let found = if !state.jobs.belongs_to(id, owner) {
        None
    } else if method == Method::Delete {
        state.jobs.cancel(id)
    } else {
        state.jobs.get(id)
    };
    match (method, found) {
        (_, None) => {
            let e = ApiError::new(
                404,
                "not_found",
                "no such run on this replica (async ids belong to the replica that accepted them; results expire)",
            );
            error(conn, &e, note)
        }
        (Method::Delete, Some(JobState::Running)) => json_response(
            conn,
            202,
            json!({"id": id, "status": "cancelling"}).to_string(),
        ),
        (Method::Delete, Some(JobState::Done(_))) => json_response(
            conn,
            200,
            json!({"id": id, "status": "deleted"}).to_string(),
        ),
        (_, Some(JobState::Running)) => json_response(
            conn,
            200,
            json!({"id": id, "status": "running"}).to_string(),
        ),
        (_, Some(JobState::Done(result))) => json_response(
            conn,
            200,
            format!(
                r#"{{"id":{},"status":"done","result":{result}}}"#,
                json!(id)
            ),
        ),
    }
}

/// The context a request names, resolved under the context root off the executor.
async fn context(state: &State, spec: ContextSpec) -> Result<Option<Context>, ApiError> {
    Ok(match spec {
        ContextSpec::None => None,
        ContextSpec::Text(t) => Some(Context::Text(t)),
        ContextSpec::Documents(d) => Some(Context::Documents(d)),
        ContextSpec::Files(names) => {
            let field = |i: usize| {
                if names.len() == 1 {
                    "context.file".to_string()
                } else {
                    format!("context.files[{i}]")
                }
            };
            let Some(root) = state.root.clone() else {
                return Err(ApiError::field(
                    field(0),
                    "file contexts need the server's --context-root",
                ));
            };
            let single = names.len() == 1;
            let names2 = names.clone();
            let resolved = runtime::unblock(move || {
                names2
                    .iter()
                    .map(|n| paths::resolve(&root, n))
                    .collect::<Vec<_>>()
            })
            .await;
            let mut out = Vec::with_capacity(resolved.len());
            for (i, r) in resolved.into_iter().enumerate() {
                match r {
                    Ok(p) => out.push(p),
                    Err(e) => return Err(ApiError::field(field(i), e.0)),
                }
            }
            Some(if single {
                Context::File(out.remove(0))
            } else {
                Context::Files(out)
            })
        }
    })
}

async fn post_run(state: &Arc<State>, mut conn: C, owner: Option<usize>, note: &mut Note) -> C {
    let body = match conn.request_body().await.read_bytes().await {
        Ok(b) => b,
        Err(trillium_http::Error::ReceivedBodyTooLong(max)) => {
            let e = ApiError::new(
                413,
                "body_too_large",
                format!("the request body is larger than {max} bytes"),
            );
            return error(conn, &e, note);
        }
        Err(_) => {
            let e = ApiError::new(400, "bad_body", "the request body could not be read");
            return error(conn, &e, note);
        }
    };
    let req = match api::parse_run_request(&body) {
        Ok(r) => r,
        Err(e) => return error(conn, &e, note),
    };
    drop(body);
    note.mode = Some(req.mode.as_str());
    let limits = match api::apply_limits(&state.orch.config().limits, &req.limits) {
        Ok(l) => l,
        Err(e) => return error(conn, &e, note),
    };
    let ctx = match context(state, req.context).await {
        Ok(c) => c,
        Err(e) => return error(conn, &e, note),
    };
    let admission = match runs::admit(state) {
        Ok(a) => a,
        Err(e) => {
            if e.status == 429 {
                conn.response_headers_mut()
                    .insert(Header::RetryAfter, runs::retry_after(state).to_string());
            }
            return error(conn, &e, note);
        }
    };
    let orch = if limits == state.orch.config().limits {
        state.orch.clone()
    } else {
        state.orch.with_limits(limits)
    };
    let prepared = runs::prepare(state, &orch, req.query, ctx);
    match req.mode {
        Mode::Sync => {
            let run = runs::execute(state, admission, prepared, |_| true);
            match conn.cancel_on_disconnect(run).await {
                Some(result) => {
                    note.run_id = Some(result.run_id.clone());
                    note.outcome = Some(outcome(&result));
                    let body = serde_json::to_string(&result).unwrap_or_default();
                    json_response(conn, 200, body)
                }
                None => {
                    // The client left: the run was dropped, its sandbox killed. 499 in the
                    // log (nginx's "client closed request"); nobody reads the response.
                    note.outcome = Some("cancelled");
                    conn.set_status(499);
                    conn
                }
            }
        }
        Mode::Stream => {
            // Bounded: a client that stops reading fills it, and the run is then cancelled
            // (an event that cannot be queued ends it) instead of piling up in memory.
            let (tx, rx) = async_channel::bounded::<Vec<u8>>(SSE_BUFFER);
            let st = state.clone();
            state
                .ex
                .spawn(async move {
                    let ev_tx = tx.clone();
                    let result = runs::execute(&st, admission, prepared, move |e| {
                        ev_tx.try_send(sse_event(&e)).is_ok()
                    })
                    .await;
                    let json = serde_json::to_string(&result).unwrap_or_default();
                    // The result waits for room (or for the client to be gone).
                    let _ = tx
                        .send(format!("event: result\ndata: {json}\n\n").into_bytes())
                        .await;
                })
                .detach();
            conn.response_headers_mut()
                .insert(Header::ContentType, "text/event-stream");
            conn.response_headers_mut()
                .insert(Header::CacheControl, "no-cache");
            conn.set_status(200);
            conn.set_response_body(Body::new_streaming(
                ChannelReader {
                    rx: Box::pin(rx),
                    buf: Vec::new(),
                    pos: 0,
                },
                None,
            ));
            conn
        }
        Mode::Async => {
            let id = state.jobs.add_for(prepared.cancel.clone(), owner);
            note.run_id = Some(access::short_id(&id));
            let st = state.clone();
            let id2 = id.clone();
            state
                .ex
                .spawn(async move {
                    let result = runs::execute(&st, admission, prepared, |_| true).await;
                    let json = serde_json::to_string(&result).unwrap_or_default();
                    st.jobs.finish(&id2, json);
                })
                .detach();
            json_response(
                conn,
                202,
                json!({"id": id, "status": "running", "url": format!("/v1/runs/{id}")}).to_string(),
            )
        }
    }
}

/// Events a streamed run may have queued for a slow client.
const SSE_BUFFER: usize = 1024;

/// One Server-Sent Event: `event: TYPE` and the event as JSON on one `data:` line.
fn sse_event(e: &RunEvent) -> Vec<u8> {
    let v = serde_json::to_value(e).unwrap_or_default();
    let kind = v["type"].as_str().unwrap_or("event").to_string();
    format!("event: {kind}\ndata: {v}\n\n").into_bytes()
}

/// A streamed response body fed by a channel of chunks; ends when every sender is gone.
struct ChannelReader {
    rx: Pin<Box<async_channel::Receiver<Vec<u8>>>>,
    buf: Vec<u8>,
    pos: usize,
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        while this.pos >= this.buf.len() {
            match this.rx.as_mut().poll_next(cx) {
                Poll::Ready(Some(chunk)) => {
                    this.buf = chunk;
                    this.pos = 0;
                }
                Poll::Ready(None) => return Poll::Ready(Ok(0)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = out.len().min(this.buf.len() - this.pos);
        out[..n].copy_from_slice(&this.buf[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(n))
    }
}
