//! Anthropic Messages wire format (pure).
//!
//! The system prompt goes in the `system` field (system messages anywhere in the history are
//! merged into it, never dropped); consecutive messages of the same role are joined so roles
//! alternate; a history that does not end with a user turn gets one (no accidental
//! prefill); `max_tokens` is always sent; every text block of the reply is kept.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Completion, CompletionRequest, Role};

/// The `anthropic-version` header value.
pub(crate) const API_VERSION: &str = "2023-06-01";

pub(crate) fn request_body(
    req: &CompletionRequest,
    model: &str,
    temperature: f32,
    max_tokens: u32,
    cache: bool,
) -> Value {
    let (system, msgs) = super::system_and_turns(&req.messages);
    // Prompt caching: a breakpoint after the system prompt, and, in a conversation with
    // earlier turns, after the last message, so the next turn reads everything before its
    // new messages from the cache. A single-turn request (a sub-call) caches nothing beyond
    // the system prompt: it would pay the write surcharge for a prefix nobody reads again.
    let multi_turn = cache && msgs.iter().any(|(r, _)| *r == Role::Assistant);
    let last = msgs.len().saturating_sub(1);
    let messages: Vec<Value> = msgs
        .into_iter()
        .enumerate()
        .map(|(i, (r, c))| {
            let role = if r == Role::User { "user" } else { "assistant" };
            if multi_turn && i == last {
                json!({"role": role, "content": [
                    {"type": "text", "text": c, "cache_control": {"type": "ephemeral"}}]})
            } else {
                json!({"role": role, "content": c})
            }
        })
        .collect();
    let mut body = json!({
        "model": req.model.as_deref().unwrap_or(model),
        "max_tokens": req.max_tokens.unwrap_or(max_tokens),
        "temperature": req.temperature.unwrap_or(temperature),
        "messages": messages,
    });
    if let Some(system) = system {
        body["system"] = if cache {
            json!([{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}])
        } else {
            Value::String(system)
        };
    }
    if !req.stop.is_empty() {
        body["stop_sequences"] = json!(req.stop);
    }
    body
}

#[derive(Debug, Deserialize)]
struct Response {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
struct Block {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
struct Usage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

pub(crate) fn parse_response(body: &str, fallback_model: &str) -> Result<Completion, String> {
    let r: Response =
        serde_json::from_str(body).map_err(|e| format!("malformed response body: {e}"))?;
    let text: String = r
        .content
        .iter()
        .filter(|b| b.kind == "text")
        .filter_map(|b| b.text.as_deref())
        .collect();
    Ok(super::wire_completion(
        text,
        r.model,
        fallback_model,
        r.usage.map(|u| {
            // `input_tokens` counts only the tokens after the last cache breakpoint.
            let (read, write) = (
                u.cache_read_input_tokens.unwrap_or(0),
                u.cache_creation_input_tokens.unwrap_or(0),
            );
            super::TokenUsage::new(
                u.input_tokens.unwrap_or(0) + read + write,
                u.output_tokens.unwrap_or(0),
            )
            .with_cache(read, write)
        }),
        r.stop_reason,
    ))
}

pub(crate) fn error_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct E {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(rename = "type", default)]
        kind: String,
        message: String,
    }
    match serde_json::from_str::<E>(body) {
        Ok(e) if e.error.kind.is_empty() => e.error.message,
        Ok(e) => format!("{}: {}", e.error.kind, e.error.message),
        Err(_) => super::openai::error_message(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Message;
    use crate::llm::TokenUsage;

    #[test]
    fn system_merged_roles_alternate_and_last_is_user() {
        let req = CompletionRequest::new(vec![
            Message::system("rules"),
            Message::user("a"),
            Message::user("b"),
            Message::assistant("c"),
            Message::system("more rules"),
        ]);
        let b = request_body(&req, "claude-3-5-haiku-latest", 0.0, 1024, false);
        assert_eq!(b["system"], "rules\n\nmore rules");
        assert_eq!(b["max_tokens"], 1024);
        let m = b["messages"].as_array().unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[0]["content"], "a\n\nb");
        assert_eq!(m[1]["role"], "assistant");
        assert_eq!(m[2]["role"], "user");
    }

    #[test]
    fn documented_response_and_errors() {
        let ok = r#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-3-5-haiku-20241022",
            "content":[{"type":"text","text":"Hello "},{"type":"tool_use","id":"x","name":"t","input":{}},{"type":"text","text":"world"}],
            "stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":6}}"#;
        let c = parse_response(ok, "m").unwrap();
        assert_eq!(c.text, "Hello world", "all text blocks are joined");
        assert_eq!(c.usage, TokenUsage::new(12, 6));
        assert_eq!(c.finish_reason.as_deref(), Some("end_turn"));
        let c = parse_response(r#"{"content":[]}"#, "m").unwrap();
        assert_eq!((c.text.as_str(), c.usage), ("", TokenUsage::default()));
        let e = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(error_message(e), "overloaded_error: Overloaded");
        assert!(parse_response("nope", "m").is_err());
    }
}
