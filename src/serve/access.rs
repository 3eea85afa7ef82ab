//! Access-log lines: one JSON object per response. Pure. What is logged is chosen field by
//! field: never a header (so never a bearer token), a body (queries, contexts) or a query
//! string.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

/// What one log line says.
#[derive(Debug, Clone)]
pub(crate) struct Entry<'a> {
    pub(crate) method: &'a str,
    /// The path without its query string.
    pub(crate) path: &'a str,
    pub(crate) status: u16,
    pub(crate) duration: Duration,
    pub(crate) remote: Option<std::net::SocketAddr>,
    /// `sync`, `stream` or `async` for `POST /v1/runs`.
    pub(crate) mode: Option<&'static str>,
    /// The run's id (as in its trajectory) once it finished, or the async id.
    pub(crate) run_id: Option<&'a str>,
    /// The run's outcome (`success`, `failed`, `timeout`, `cancelled`).
    pub(crate) outcome: Option<&'static str>,
    /// Why the request was refused (the error code, never its message).
    pub(crate) error: Option<&'static str>,
}

/// The first 8 characters of an async run's id and an ellipsis: enough to match log lines,
/// far from enough to use the id.
pub(crate) fn short_id(id: &str) -> String {
    let mut s: String = id.chars().take(8).collect();
    if id.chars().count() > 8 {
        s.push('…');
    }
    s
}

/// The JSON line (without newline).
pub(crate) fn line(e: &Entry<'_>, now: SystemTime) -> String {
    let ts = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let path = e.path.split('?').next().unwrap_or("");
    // An async run's id is what lets a client read or cancel it: logs keep only its start.
    let redacted;
    let path = match path.strip_prefix("/v1/runs/") {
        Some(id) if !id.is_empty() => {
            redacted = format!("/v1/runs/{}", short_id(id));
            redacted.as_str()
        }
        _ => path,
    };
    let mut v = json!({
        "ts": (ts * 1000.0).round() / 1000.0,
        "msg": "access",
        "method": e.method,
        "path": path,
        "status": e.status,
        "duration_ms": (e.duration.as_secs_f64() * 1e6).round() / 1000.0,
    });
    if let Some(r) = e.remote {
        v["remote"] = json!(r.to_string());
    }
    if let Some(m) = e.mode {
        v["mode"] = json!(m);
    }
    if let Some(id) = e.run_id {
        v["run_id"] = json!(id);
    }
    if let Some(o) = e.outcome {
        v["outcome"] = json!(o);
    }
    if let Some(c) = e.error {
        v["error"] = json!(c);
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_json_object_without_the_query_string() {
        let l = line(
            &Entry {
                method: "GET",
                path: "/v1/runs/abc?token=sk-secret",
                status: 404,
                duration: Duration::from_micros(1500),
                remote: Some("127.0.0.1:5000".parse().unwrap()),
                mode: None,
                run_id: None,
                outcome: None,
                error: Some("not_found"),
            },
            UNIX_EPOCH + Duration::from_secs(10),
        );
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["path"], "/v1/runs/abc");
        assert_eq!(v["status"], 404);
        assert_eq!(v["duration_ms"], 1.5);
        assert_eq!(v["ts"], 10.0);
        assert!(!l.contains("secret"));
    }
}
