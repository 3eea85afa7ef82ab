//! Gemini `generateContent` wire format (pure). Roles map to `user`/`model`; system messages
//! become `systemInstruction`; the key travels in a header, never in the URL.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Completion, CompletionRequest, Role};

pub(crate) fn path(model: &str) -> String {
    format!("/models/{model}:generateContent")
}

pub(crate) fn request_body(req: &CompletionRequest, temperature: f32, max_tokens: u32) -> Value {
    let (system, contents) = super::system_and_turns(&req.messages);
    let contents: Vec<Value> = contents
        .into_iter()
        .map(|(r, c)| json!({"role": if r == Role::User { "user" } else { "model" }, "parts": [{"text": c}]}))
        .collect();
    let mut generation = json!({
        "temperature": req.temperature.unwrap_or(temperature),
        "maxOutputTokens": req.max_tokens.unwrap_or(max_tokens),
    });
    if !req.stop.is_empty() {
        generation["stopSequences"] = json!(req.stop);
    }
    let mut body = json!({"contents": contents, "generationConfig": generation});
    if let Some(system) = system {
        body["systemInstruction"] = json!({"parts": [{"text": system}]});
    }
    body
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    usage_metadata: Option<Usage>,
    #[serde(default)]
    model_version: Option<String>,
    #[serde(default)]
    prompt_feedback: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Content {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Usage {
    #[serde(default)]
    prompt_token_count: Option<u64>,
    #[serde(default)]
    candidates_token_count: Option<u64>,
    #[serde(default)]
    cached_content_token_count: Option<u64>,
}

pub(crate) fn parse_response(body: &str, fallback_model: &str) -> Result<Completion, String> {
    let r: Response =
        serde_json::from_str(body).map_err(|e| format!("malformed response body: {e}"))?;
    let Some(c) = r.candidates.into_iter().next() else {
        let why = r
            .prompt_feedback
            .map(|f| f.to_string())
            .unwrap_or_else(|| "no reason given".into());
        return Err(format!("response has no candidates ({why})"));
    };
    let text: String = c
        .content
        .map(|c| c.parts.into_iter().filter_map(|p| p.text).collect())
        .unwrap_or_default();
    Ok(super::wire_completion(
        text,
        r.model_version,
        fallback_model,
        r.usage_metadata.map(|u| {
            super::TokenUsage::new(
                u.prompt_token_count.unwrap_or(0),
                u.candidates_token_count.unwrap_or(0),
            )
            .with_cache(u.cached_content_token_count.unwrap_or(0), 0)
        }),
        c.finish_reason,
    ))
}

/// How long a 429 body asks the client to wait: the `retryDelay` of its
/// `google.rpc.RetryInfo` detail (`"2s"`, `"0.5s"`), at most a day.
pub(crate) fn retry_delay(body: &str) -> Option<std::time::Duration> {
    let v: Value = serde_json::from_str(body).ok()?;
    let d = v["error"]["details"]
        .as_array()?
        .iter()
        .find_map(|d| d["retryDelay"].as_str())?;
    let secs: f64 = d.trim().strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0)
        .then(|| std::time::Duration::from_secs_f64(secs.min(86_400.0)))
}

pub(crate) fn error_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct E {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        message: String,
        #[serde(default)]
        status: Option<String>,
    }
    match serde_json::from_str::<E>(body) {
        Ok(E {
            error: Inner {
                message,
                status: Some(s),
            },
        }) => format!("{s}: {message}"),
        Ok(E {
            error: Inner {
                message,
                status: None,
            },
        }) => message,
        Err(_) => super::openai::error_message(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Message;
    use crate::llm::TokenUsage;

    #[test]
    fn roles_and_system_instruction() {
        let req = CompletionRequest::new(vec![
            Message::system("sys"),
            Message::user("u"),
            Message::assistant("a"),
        ]);
        let b = request_body(&req, 0.2, 256);
        assert_eq!(b["systemInstruction"]["parts"][0]["text"], "sys");
        assert_eq!(b["contents"][1]["role"], "model");
        assert_eq!(
            b["contents"][2]["role"], "user",
            "history ends with a user turn"
        );
        assert_eq!(b["generationConfig"]["maxOutputTokens"], 256);
        assert_eq!(
            path("gemini-2.0-flash"),
            "/models/gemini-2.0-flash:generateContent"
        );
    }

    #[test]
    fn documented_response_and_errors() {
        let ok = r#"{"candidates":[{"content":{"parts":[{"text":"Hi "},{"text":"there"}],"role":"model"},"finishReason":"STOP","index":0}],
            "usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":3,"totalTokenCount":8},"modelVersion":"gemini-2.0-flash-001"}"#;
        let c = parse_response(ok, "m").unwrap();
        assert_eq!(c.text, "Hi there");
        assert_eq!(c.model, "gemini-2.0-flash-001");
        assert_eq!(c.usage, TokenUsage::new(5, 3));
        let c = parse_response(r#"{"candidates":[{"content":{"parts":[]}}]}"#, "m").unwrap();
        assert_eq!(c.usage, TokenUsage::default());
        assert!(
            parse_response(r#"{"promptFeedback":{"blockReason":"SAFETY"}}"#, "m")
                .unwrap_err()
                .contains("SAFETY")
        );
        let e = r#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(
            error_message(e),
            "RESOURCE_EXHAUSTED: Resource has been exhausted"
        );
    }
}
