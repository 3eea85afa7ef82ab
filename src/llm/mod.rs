//! Language models: the trait the orchestrator talks to, and its implementations.

use std::fmt;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::BoxFuture;
use crate::error::{Error, Result};

mod anthropic;
mod gemini;
mod http;
pub(crate) mod openai;
mod pricing;

pub use http::HttpClient;
pub use pricing::{PRICES_TAKEN, Price, PriceTable};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// The user (and observations fed back by the orchestrator).
    User,
    /// The model.
    Assistant,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Author.
    pub role: Role,
    /// Text.
    pub content: String,
}

impl Message {
    /// A system message.
    pub fn system(c: impl Into<String>) -> Self {
        Message {
            role: Role::System,
            content: c.into(),
        }
    }
    /// A user message.
    pub fn user(c: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: c.into(),
        }
    }
    /// An assistant message.
    pub fn assistant(c: impl Into<String>) -> Self {
        Message {
            role: Role::Assistant,
            content: c.into(),
        }
    }
}

/// For providers with a separate system field and strict turn taking (Anthropic, Gemini):
/// every system message joined (none dropped), consecutive messages of the same role merged,
/// a leading user turn when the history starts with the assistant, and a trailing user turn
/// so a history never ends on the assistant (no accidental prefill).
pub(crate) fn system_and_turns(messages: &[Message]) -> (Option<String>, Vec<(Role, String)>) {
    let system: Vec<&str> = messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content.as_str())
        .collect();
    let mut turns: Vec<(Role, String)> = Vec::new();
    for m in messages.iter().filter(|m| m.role != Role::System) {
        match turns.last_mut() {
            Some((r, c)) if *r == m.role => {
                c.push_str("\n\n");
                c.push_str(&m.content);
            }
            _ => turns.push((m.role, m.content.clone())),
        }
    }
    if turns.first().is_some_and(|(r, _)| *r == Role::Assistant) {
        turns.insert(0, (Role::User, crate::prompt::LEADING_USER_TURN.into()));
    }
    if turns.last().is_none_or(|(r, _)| *r != Role::User) {
        turns.push((Role::User, crate::prompt::TRAILING_USER_TURN.into()));
    }
    ((!system.is_empty()).then(|| system.join("\n\n")), turns)
}

/// A completion from a provider's parsed reply: a missing or empty model name falls back to
/// the requested one; missing usage (or a missing count) is 0.
pub(crate) fn wire_completion(
    text: String,
    model: Option<String>,
    fallback_model: &str,
    usage: Option<TokenUsage>,
    finish_reason: Option<String>,
) -> Completion {
    Completion {
        text,
        model: model
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| fallback_model.to_string()),
        usage: usage.unwrap_or_default(),
        finish_reason,
    }
}

/// A completion request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CompletionRequest {
    /// The conversation, starting with the system message.
    pub messages: Vec<Message>,
    /// Model override (`None` = the client's model).
    pub model: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Upper bound on generated tokens.
    pub max_tokens: Option<u32>,
    /// Stop sequences.
    pub stop: Vec<String>,
}

impl CompletionRequest {
    /// A request with these messages and default settings.
    pub fn new(messages: Vec<Message>) -> Self {
        CompletionRequest {
            messages,
            model: None,
            temperature: None,
            max_tokens: None,
            stop: Vec::new(),
        }
    }
}

/// Token counts reported by the provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TokenUsage {
    /// Prompt tokens, all of them (cached ones included; for Anthropic, whose
    /// `input_tokens` leaves them out, the sum of the three counts).
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Of the prompt tokens, those read from the provider's prompt cache (OpenAI
    /// `prompt_tokens_details.cached_tokens`, Anthropic `cache_read_input_tokens`, Gemini
    /// `cachedContentTokenCount`).
    #[serde(default)]
    pub cached_prompt_tokens: u64,
    /// Of the prompt tokens, those written to the cache (Anthropic
    /// `cache_creation_input_tokens`).
    #[serde(default)]
    pub cache_write_tokens: u64,
}

/// A model's reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Completion {
    /// The text.
    pub text: String,
    /// The model that actually answered.
    pub model: String,
    /// Tokens used.
    pub usage: TokenUsage,
    /// Why generation stopped (`stop`, `length`, ...), when reported.
    pub finish_reason: Option<String>,
}

impl TokenUsage {
    /// Prompt and completion token counts.
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        TokenUsage {
            prompt_tokens,
            completion_tokens,
            cached_prompt_tokens: 0,
            cache_write_tokens: 0,
        }
    }

    /// The same with cache reads and writes (both already counted in `prompt_tokens`).
    pub fn with_cache(mut self, cached_prompt_tokens: u64, cache_write_tokens: u64) -> Self {
        self.cached_prompt_tokens = cached_prompt_tokens;
        self.cache_write_tokens = cache_write_tokens;
        self
    }
}

impl Completion {
    /// A completion with this text, model and usage.
    pub fn new(text: impl Into<String>, model: impl Into<String>, usage: TokenUsage) -> Self {
        Completion {
            text: text.into(),
            model: model.into(),
            usage,
            finish_reason: None,
        }
    }
}

/// A chat model. Object-safe: the orchestrator holds an `Arc<dyn LanguageModel>`, so any
/// implementation can be plugged in.
pub trait LanguageModel: Send + Sync + fmt::Debug {
    /// Requests one completion.
    fn complete(&self, request: CompletionRequest) -> BoxFuture<'static, Result<Completion>>;
    /// The default model name.
    fn model(&self) -> &str;
}

type Script = dyn Fn(&CompletionRequest) -> Result<String> + Send + Sync;

/// A language model answered by a function of the request, for tests, examples and
/// offline demos. It still goes through the whole loop: its replies are parsed, their code
/// runs in the real sandbox, and its "usage" is counted (one token per 4 bytes).
///
/// ```
/// use rlm::llm::{LanguageModel, ScriptedLlm, CompletionRequest, Message};
/// let llm = ScriptedLlm::replies(["```python\nFINAL(6 * 7)\n```"]);
/// let c = futures_lite::future::block_on(llm.complete(CompletionRequest::new(vec![Message::user("hi")]))).unwrap();
/// assert!(c.text.contains("FINAL"));
/// ```
#[derive(Clone)]
pub struct ScriptedLlm {
    script: Arc<Script>,
    model: String,
}

impl fmt::Debug for ScriptedLlm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptedLlm")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl ScriptedLlm {
    /// Answers each request with `f(request)`.
    pub fn new(f: impl Fn(&CompletionRequest) -> Result<String> + Send + Sync + 'static) -> Self {
        ScriptedLlm {
            script: Arc::new(f),
            model: "scripted".into(),
        }
    }

    /// Answers with `replies` in order, then with an error.
    pub fn replies<I, S>(replies: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let q: Mutex<std::collections::VecDeque<String>> =
            Mutex::new(replies.into_iter().map(Into::into).collect());
        ScriptedLlm::new(move |_| {
            q.lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front()
                .ok_or_else(|| Error::Llm {
                    provider: "scripted".into(),
                    status: None,
                    retryable: false,
                    message: "script exhausted".into(),
                })
        })
    }

    /// Sets the model name reported in completions.
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }
}

impl LanguageModel for ScriptedLlm {
    fn complete(&self, request: CompletionRequest) -> BoxFuture<'static, Result<Completion>> {
        let r = (self.script)(&request);
        let model = request.model.clone().unwrap_or_else(|| self.model.clone());
        let prompt: usize = request.messages.iter().map(|m| m.content.len()).sum();
        Box::pin(async move {
            let text = r?;
            let usage = TokenUsage::new(prompt.div_ceil(4) as u64, text.len().div_ceil(4) as u64);
            Ok(Completion {
                text,
                model,
                usage,
                finish_reason: Some("stop".into()),
            })
        })
    }
    fn model(&self) -> &str {
        &self.model
    }
}
