//! OpenAI chat-completions wire format (pure): request and response bodies, error bodies.

use serde::{Deserialize, Serialize};

use super::{Completion, CompletionRequest, Message};

/// `POST {base}/chat/completions` body.
#[derive(Debug, Serialize)]
pub(crate) struct ChatRequest<'a> {
    pub(crate) model: &'a str,
    pub(crate) messages: &'a [Message],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub(crate) stop: &'a [String],
    pub(crate) stream: bool,
}

impl<'a> ChatRequest<'a> {
    pub(crate) fn from_request(
        req: &'a CompletionRequest,
        model: &'a str,
        temperature: f32,
        max_tokens: u32,
    ) -> Self {
        ChatRequest {
            model: req.model.as_deref().unwrap_or(model),
            messages: &req.messages,
            temperature: Some(req.temperature.unwrap_or(temperature)),
            max_tokens: Some(req.max_tokens.unwrap_or(max_tokens)),
            stop: &req.stop,
            stream: false,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ChatResponse {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<ChoiceMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Debug, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ErrorDetail {
    Object { message: String },
    Text(String),
}

/// Parses a 2xx body. `fallback_model` is used when the server omits `model`.
pub(crate) fn parse_response(body: &str, fallback_model: &str) -> Result<Completion, String> {
    let r: ChatResponse =
        serde_json::from_str(body).map_err(|e| format!("malformed response body: {e}"))?;
    let choice = r
        .choices
        .into_iter()
        .next()
        .ok_or("response has no choices")?;
    let text = choice.message.and_then(|m| m.content).unwrap_or_default();
    Ok(super::wire_completion(
        text,
        r.model,
        fallback_model,
        r.usage.map(|u| {
            let cached = u.prompt_tokens_details.and_then(|d| d.cached_tokens);
            super::TokenUsage::new(
                u.prompt_tokens.unwrap_or(0),
                u.completion_tokens.unwrap_or(0),
            )
            .with_cache(cached.unwrap_or(0), 0)
        }),
        choice.finish_reason,
    ))
}

/// The provider's message from an error body, or a trimmed excerpt of the body.
pub(crate) fn error_message(body: &str) -> String {
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(ErrorBody {
            error: ErrorDetail::Object { message },
        }) => message,
        Ok(ErrorBody {
            error: ErrorDetail::Text(t),
        }) => t,
        Err(_) => {
            let t = body.trim();
            let end = t.char_indices().nth(300).map(|(i, _)| i).unwrap_or(t.len());
            if t.is_empty() {
                "(empty body)".into()
            } else {
                t[..end].to_string()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Role;
    use crate::llm::TokenUsage;

    #[test]
    fn request_shape() {
        let req = CompletionRequest::new(vec![Message::system("s"), Message::user("u")]);
        let body =
            serde_json::to_value(ChatRequest::from_request(&req, "gpt-4o-mini", 0.0, 512)).unwrap();
        assert_eq!(body["model"], "gpt-4o-mini");
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["max_tokens"], 512);
        assert!(body.get("stop").is_none());
        assert_eq!(
            Role::Assistant,
            serde_json::from_str("\"assistant\"").unwrap()
        );
    }

    #[test]
    fn documented_response_shapes() {
        let ok = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini-2024-07-18",
            "choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"logprobs":null,"finish_reason":"stop"}],
            "usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}}"#;
        let c = parse_response(ok, "x").unwrap();
        assert_eq!(c.text, "hi");
        assert_eq!(c.model, "gpt-4o-mini-2024-07-18");
        assert_eq!(c.usage, TokenUsage::new(9, 12));
        // Missing usage, null content, missing model.
        let c =
            parse_response(r#"{"choices":[{"message":{"content":null}}]}"#, "fallback").unwrap();
        assert_eq!(
            (c.text.as_str(), c.model.as_str(), c.usage),
            ("", "fallback", TokenUsage::default())
        );
        let c = parse_response(
            r#"{"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":2006,"completion_tokens":300,
                "prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0}}}"#,
            "m",
        )
        .unwrap();
        assert_eq!(c.usage, TokenUsage::new(2006, 300).with_cache(1920, 0));
        let c = parse_response(
            r#"{"choices":[{"message":{"content":"x"}}],"usage":{}}"#,
            "m",
        )
        .unwrap();
        assert_eq!(c.usage, TokenUsage::default());
        assert!(
            parse_response("{not json", "m")
                .unwrap_err()
                .contains("malformed")
        );
        assert!(
            parse_response(r#"{"choices":[]}"#, "m")
                .unwrap_err()
                .contains("no choices")
        );
    }

    #[test]
    fn error_bodies() {
        let e = r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        assert_eq!(error_message(e), "Rate limit reached");
        assert_eq!(
            error_message(r#"{"error":"model not loaded"}"#),
            "model not loaded"
        );
        assert_eq!(
            error_message("<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
        assert_eq!(error_message(""), "(empty body)");
    }
}
