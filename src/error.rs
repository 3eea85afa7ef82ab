//! The one error type of the crate.

use serde::{Deserialize, Serialize};

/// Everything that can go wrong in `rlm`.
///
/// Every variant carries only text that is safe to show: API keys and secrets never appear in
/// an error message. Errors the model can recover from (a Python exception, a failed sub-call)
/// never become an `Error`; they are fed back to the model as observations.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Error {
    /// A setting is missing or invalid. `setting` names the builder option or environment
    /// variable to fix.
    #[error("configuration error in {setting}: {message}")]
    Config {
        /// The option or environment variable at fault, e.g. `RLM_MAX_ITERATIONS`.
        setting: String,
        /// What is wrong and what to do about it.
        message: String,
    },
    /// An LLM provider call failed after retries (or with a non-retryable status).
    #[error("LLM error from {provider}{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Llm {
        /// Provider name, e.g. `openai`.
        provider: String,
        /// HTTP status, when the server answered.
        status: Option<u16>,
        /// Whether retrying the same call later could succeed.
        retryable: bool,
        /// The provider's message (never contains the API key).
        message: String,
    },
    /// A [`Session`](crate::Session) was asked to run while one of its calls was still
    /// running (calls on one session are rejected, not queued).
    #[error("session busy: {message}")]
    SessionBusy {
        /// What to do instead.
        message: String,
    },
    /// The sandbox could not be started or broke down.
    #[error("sandbox error: {message}")]
    Sandbox {
        /// What failed and, where possible, how to fix it.
        message: String,
    },
    /// The context could not be loaded.
    #[error("context error: {message}")]
    Context {
        /// What is wrong with the context.
        message: String,
    },
    /// A run limit (cost, tokens, calls, iterations) was reached.
    #[error("budget exceeded: {message}")]
    BudgetExceeded {
        /// Which limit was hit, with the spent and allowed amounts.
        message: String,
    },
    /// The egress filter found a leak and the run was configured to raise on leaks.
    #[error("data leak blocked ({rule}) in {source_name}")]
    DataLeak {
        /// The filter rule that fired (never the leaked text itself).
        rule: String,
        /// Where the leak was found (`stdout`, `stderr`, `final_answer`, ...).
        source_name: String,
    },
    /// The model kept replying without code or a final answer.
    #[error("no code: {message}")]
    NoCode {
        /// How many replies in a row had neither.
        message: String,
    },
    /// A wall-clock limit was reached.
    #[error("timeout: {message}")]
    Timeout {
        /// Which limit expired.
        message: String,
    },
    /// The run was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    pub(crate) fn config(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            setting: setting.into(),
            message: message.into(),
        }
    }
    pub(crate) fn sandbox(message: impl Into<String>) -> Self {
        Error::Sandbox {
            message: message.into(),
        }
    }
    pub(crate) fn context(message: impl Into<String>) -> Self {
        Error::Context {
            message: message.into(),
        }
    }

    /// True when retrying the same operation later may succeed (rate limits, overload,
    /// connection failures, timeouts).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Llm { retryable, .. } => *retryable,
            Error::Timeout { .. } => true,
            _ => false,
        }
    }

    /// True for wall-clock limits.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// The HTTP status of an LLM error, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Llm { status, .. } => *status,
            _ => None,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_setting_and_status() {
        let e = Error::config(
            "RLM_MAX_ITERATIONS",
            "expected a positive integer, got \"x\"",
        );
        assert!(e.to_string().contains("RLM_MAX_ITERATIONS"));
        let e = Error::Llm {
            provider: "openai".into(),
            status: Some(429),
            retryable: true,
            message: "slow down".into(),
        };
        assert_eq!(e.to_string(), "LLM error from openai (HTTP 429): slow down");
        assert!(e.is_retryable());
        assert_eq!(e.status(), Some(429));
    }
}
