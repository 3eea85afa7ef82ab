//! The JSON of `POST /v1/runs` and of error answers: parsing, validation against the
//! server's maxima, and the error shape. Pure: no I/O.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::config::Limits;

/// What a run reads, as the client named it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ContextSpec {
    /// No context.
    None,
    /// Files named relative to the context root (one: a single document).
    Files(Vec<String>),
    /// Inline text.
    Text(String),
    /// Inline documents.
    Documents(Vec<String>),
}

/// How the answer is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The result as the response.
    Sync,
    /// Server-Sent Events of the run's events, then the result.
    Stream,
    /// An id at once; the result later from `GET /v1/runs/{id}`.
    Async,
}

impl Mode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Sync => "sync",
            Mode::Stream => "stream",
            Mode::Async => "async",
        }
    }
}

/// Limits a request asked for; `None`: the server's maximum.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RequestLimits {
    pub(crate) max_iterations: Option<u32>,
    pub(crate) max_depth: Option<u32>,
    pub(crate) max_tokens: Option<u64>,
    pub(crate) max_llm_calls: Option<u32>,
    pub(crate) max_cost_usd: Option<f64>,
    pub(crate) timeout_secs: Option<f64>,
}

/// A validated `POST /v1/runs` body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunRequest {
    pub(crate) query: String,
    pub(crate) context: ContextSpec,
    pub(crate) limits: RequestLimits,
    pub(crate) mode: Mode,
}

/// An error answer: status, a stable code, the offending field (dotted path) and a message.
/// Messages never quote the request's values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) code: &'static str,
    pub(crate) field: Option<String>,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            field: None,
            message: message.into(),
        }
    }

    /// 400 about `field`.
    pub(crate) fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            code: "invalid_request",
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// `{"error": {"code": ..., "field": ..., "message": ...}}`
    pub(crate) fn to_json(&self) -> String {
        let mut e = json!({"code": self.code, "message": self.message});
        if let Some(f) = &self.field {
            e["field"] = json!(f);
        }
        json!({ "error": e }).to_string()
    }
}

const FIELDS: &[&str] = &["query", "context", "limits", "stream", "async"];
const LIMIT_FIELDS: &[&str] = &[
    "max_iterations",
    "max_depth",
    "max_tokens",
    "max_llm_calls",
    "max_cost_usd",
    "timeout_secs",
];

/// Parses and validates a request body. Every error names the field it is about (a JSON
/// syntax error names the line and column instead).
pub(crate) fn parse_run_request(body: &[u8]) -> Result<RunRequest, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            400,
            "malformed_json",
            format!(
                "the body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    let Value::Object(obj) = v else {
        return Err(ApiError::new(
            400,
            "invalid_request",
            "the body must be a JSON object",
        ));
    };
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::field(
            k.clone(),
            format!("unknown field; known fields are {}", FIELDS.join(", ")),
        ));
    }
    let query = match obj.get("query") {
        Some(Value::String(q)) if !q.trim().is_empty() => q.clone(),
        Some(Value::String(_)) => return Err(ApiError::field("query", "must not be empty")),
        Some(_) => return Err(ApiError::field("query", "must be a string")),
        None => return Err(ApiError::field("query", "is required")),
    };
    let flag = |name: &str| -> Result<bool, ApiError> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(ApiError::field(name, "must be true or false")),
        }
    };
    let mode = match (flag("stream")?, flag("async")?) {
        (true, true) => {
            return Err(ApiError::field(
                "async",
                "cannot be combined with \"stream\": true",
            ));
        }
        (true, false) => Mode::Stream,
        (false, true) => Mode::Async,
        (false, false) => Mode::Sync,
    };
    let context = parse_context(obj.get("context"))?;
    let limits = parse_limits(obj.get("limits"))?;
    Ok(RunRequest {
        query,
        context,
        limits,
        mode,
    })
}

/// Most files or documents one request may give (a run's sandbox takes at most this many).
pub(crate) const MAX_DOCUMENTS: usize = 1000;

fn strings(v: &Value, field: &str) -> Result<Vec<String>, ApiError> {
    let Value::Array(items) = v else {
        return Err(ApiError::field(field, "must be an array of strings"));
    };
    if items.is_empty() {
        return Err(ApiError::field(field, "must not be empty"));
    }
    if items.len() > MAX_DOCUMENTS {
        return Err(ApiError::field(
            field,
            format!(
                "has {} entries; at most {MAX_DOCUMENTS}: join them into fewer",
                items.len()
            ),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, s)| match s {
            Value::String(s) => Ok(s.clone()),
            _ => Err(ApiError::field(format!("{field}[{i}]"), "must be a string")),
        })
        .collect()
}

fn parse_context(v: Option<&Value>) -> Result<ContextSpec, ApiError> {
    let obj: &Map<String, Value> = match v {
        None | Some(Value::Null) => return Ok(ContextSpec::None),
        Some(Value::Object(o)) => o,
        Some(_) => {
            return Err(ApiError::field(
                "context",
                "must be an object with one of \"file\", \"files\", \"text\", \"documents\"",
            ));
        }
    };
    if obj.len() != 1 {
        return Err(ApiError::field(
            "context",
            "must have exactly one of \"file\", \"files\", \"text\", \"documents\"",
        ));
    }
    let (k, v) = obj.iter().next().expect("one entry");
    match (k.as_str(), v) {
        ("file", Value::String(s)) => Ok(ContextSpec::Files(vec![s.clone()])),
        ("file", _) => Err(ApiError::field("context.file", "must be a string")),
        ("files", v) => Ok(ContextSpec::Files(strings(v, "context.files")?)),
        ("text", Value::String(s)) => Ok(ContextSpec::Text(s.clone())),
        ("text", _) => Err(ApiError::field("context.text", "must be a string")),
        ("documents", v) => Ok(ContextSpec::Documents(strings(v, "context.documents")?)),
        (k, _) => Err(ApiError::field(
            format!("context.{k}"),
            "unknown kind of context; use \"file\", \"files\", \"text\" or \"documents\"",
        )),
    }
}

fn parse_limits(v: Option<&Value>) -> Result<RequestLimits, ApiError> {
    let obj = match v {
        None | Some(Value::Null) => return Ok(RequestLimits::default()),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(ApiError::field("limits", "must be an object")),
    };
    if let Some(k) = obj.keys().find(|k| !LIMIT_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::field(
            format!("limits.{k}"),
            format!(
                "unknown limit; known limits are {}",
                LIMIT_FIELDS.join(", ")
            ),
        ));
    }
    let int = |k: &str| -> Result<Option<u64>, ApiError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 => Ok(Some(n)),
                _ => Err(ApiError::field(
                    format!("limits.{k}"),
                    "must be a positive integer",
                )),
            },
        }
    };
    let small = |k: &str| -> Result<Option<u32>, ApiError> {
        int(k)?
            .map(|n| {
                u32::try_from(n).map_err(|_| ApiError::field(format!("limits.{k}"), "is too large"))
            })
            .transpose()
    };
    let num = |k: &str| -> Result<Option<f64>, ApiError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_f64() {
                Some(n) if n > 0.0 && n.is_finite() => Ok(Some(n)),
                _ => Err(ApiError::field(
                    format!("limits.{k}"),
                    "must be a positive number",
                )),
            },
        }
    };
    Ok(RequestLimits {
        max_iterations: small("max_iterations")?,
        max_depth: small("max_depth")?,
        max_tokens: int("max_tokens")?,
        max_llm_calls: small("max_llm_calls")?,
        max_cost_usd: num("max_cost_usd")?,
        timeout_secs: num("timeout_secs")?,
    })
}

/// The limits of one run: the server's (`max`) with the request's tighter values. A value
/// above the server's maximum is refused (400 naming the limit and the maximum), never
/// silently clipped.
pub(crate) fn apply_limits(max: &Limits, req: &RequestLimits) -> Result<Limits, ApiError> {
    fn tighter<T: PartialOrd + Copy + std::fmt::Display>(
        field: &str,
        server: Option<T>,
        asked: Option<T>,
    ) -> Result<Option<T>, ApiError> {
        match (server, asked) {
            (Some(s), Some(a)) if a > s => Err(ApiError::field(
                format!("limits.{field}"),
                format!("is above the server's maximum of {s}"),
            )),
            (_, Some(a)) => Ok(Some(a)),
            (s, None) => Ok(s),
        }
    }
    let mut l = max.clone();
    if let Some(n) = tighter("max_iterations", Some(l.max_iterations), req.max_iterations)? {
        l.max_iterations = n;
    }
    if let Some(n) = tighter("max_depth", Some(l.max_depth), req.max_depth)? {
        l.max_depth = n;
    }
    l.max_tokens = tighter("max_tokens", l.max_tokens, req.max_tokens)?;
    l.max_llm_calls = tighter("max_llm_calls", l.max_llm_calls, req.max_llm_calls)?;
    l.max_cost_usd = tighter("max_cost_usd", l.max_cost_usd, req.max_cost_usd)?;
    let server_secs = l.run_timeout.map(|d| d.as_secs_f64());
    if let Some(s) = tighter("timeout_secs", server_secs, req.timeout_secs)? {
        l.run_timeout = Some(Duration::try_from_secs_f64(s).map_err(|_| {
            ApiError::field(
                "limits.timeout_secs",
                "must be a number of seconds a clock can hold",
            )
        })?);
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> ApiError {
        parse_run_request(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn a_full_request_parses() {
        let r = parse_run_request(
            br#"{"query":"q","context":{"files":["a.txt","b/c.txt"]},"limits":{"max_iterations":3,"timeout_secs":1.5},"stream":true}"#,
        )
        .unwrap();
        assert_eq!(r.query, "q");
        assert_eq!(
            r.context,
            ContextSpec::Files(vec!["a.txt".into(), "b/c.txt".into()])
        );
        assert_eq!(r.limits.max_iterations, Some(3));
        assert_eq!(r.limits.timeout_secs, Some(1.5));
        assert_eq!(r.mode, Mode::Stream);
        let r = parse_run_request(br#"{"query":"q","async":true,"context":{"text":"t"}}"#).unwrap();
        assert_eq!(r.mode, Mode::Async);
        assert_eq!(r.context, ContextSpec::Text("t".into()));
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(err("{").code, "malformed_json");
        assert_eq!(err("[1]").field, None);
        assert_eq!(err("{}").field.as_deref(), Some("query"));
        assert_eq!(err(r#"{"query":5}"#).field.as_deref(), Some("query"));
        assert_eq!(
            err(r#"{"query":"q","asynch":true}"#).field.as_deref(),
            Some("asynch")
        );
        assert_eq!(
            err(r#"{"query":"q","stream":"yes"}"#).field.as_deref(),
            Some("stream")
        );
        assert_eq!(
            err(r#"{"query":"q","context":{"files":["a",3]}}"#)
                .field
                .as_deref(),
            Some("context.files[1]")
        );
        assert_eq!(
            err(r#"{"query":"q","limits":{"max_iterations":-1}}"#)
                .field
                .as_deref(),
            Some("limits.max_iterations")
        );
        assert_eq!(
            err(r#"{"query":"q","limits":{"max_cost":1}}"#)
                .field
                .as_deref(),
            Some("limits.max_cost")
        );
        assert_eq!(
            err(r#"{"query":"q","stream":true,"async":true}"#)
                .field
                .as_deref(),
            Some("async")
        );
    }

    #[test]
    fn errors_do_not_quote_values() {
        let e = err(r#"{"query":"q","context":{"file":{"x":"sk-secret-value"}}}"#);
        assert!(!e.to_json().contains("sk-secret"), "{}", e.to_json());
        let j: Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(j["error"]["field"], "context.file");
    }

    #[test]
    fn limits_are_tightened_or_refused() {
        let max = Limits::defaults();
        let l = apply_limits(
            &max,
            &RequestLimits {
                max_iterations: Some(5),
                timeout_secs: Some(10.0),
                max_tokens: Some(1000),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(l.max_iterations, 5);
        assert_eq!(l.run_timeout, Some(Duration::from_secs(10)));
        assert_eq!(l.max_tokens, Some(1000), "no server maximum: the request's");
        let e = apply_limits(
            &max,
            &RequestLimits {
                max_iterations: Some(max.max_iterations + 1),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limits.max_iterations"));
        let e = apply_limits(
            &max,
            &RequestLimits {
                timeout_secs: Some(1e9),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limits.timeout_secs"));
        assert_eq!(apply_limits(&max, &RequestLimits::default()).unwrap(), max);
        // No server timeout: a request's absurd one is refused, not a panic.
        let unbounded = Limits {
            run_timeout: None,
            ..Limits::defaults()
        };
        let e = apply_limits(
            &unbounded,
            &RequestLimits {
                timeout_secs: Some(1e300),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limits.timeout_secs"));
    }

    #[test]
    fn too_many_documents_are_refused_before_anything_is_written() {
        let docs = vec!["x"; MAX_DOCUMENTS + 1];
        let body = serde_json::json!({"query": "q", "context": {"documents": docs}}).to_string();
        let e = err(&body);
        assert_eq!(e.field.as_deref(), Some("context.documents"));
        let docs = vec!["x"; MAX_DOCUMENTS];
        let body = serde_json::json!({"query": "q", "context": {"documents": docs}}).to_string();
        assert!(parse_run_request(body.as_bytes()).is_ok());
    }
}
