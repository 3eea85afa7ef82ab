//! What a run returns: the answer, every step taken, and what it cost.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// What kind of action a [`Step`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StepKind {
    /// A call to the root LLM.
    LlmCall,
    /// One code block executed in the sandbox.
    CodeExecution,
    /// A sub-LLM call requested by code in the REPL.
    SubQuery,
    /// The run's final answer.
    FinalAnswer,
    /// The best answer the model could give when a limit ended the run (not final).
    PartialAnswer,
    /// A host tool called by code in the REPL (input: the arguments as JSON; output: what
    /// the code got back).
    ToolCall,
    /// History compaction: one LLM call that summarised older turns of the root
    /// conversation (input: how many messages; output: the summary).
    Compaction,
}

/// A redaction made by the egress filter: which rule fired and where (byte offsets into the
/// unfiltered text). The secret itself is never recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Finding {
    /// Rule name, e.g. `aws_access_key_id`, `high_entropy`, `context_echo`.
    pub rule: String,
    /// Start byte offset in the unfiltered text.
    pub start: usize,
    /// End byte offset (exclusive).
    pub end: usize,
}

impl Finding {
    pub(crate) fn new(rule: impl Into<String>, start: usize, end: usize) -> Finding {
        Finding {
            rule: rule.into(),
            start,
            end,
        }
    }
}

/// One action of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Step {
    /// 1-based LLM turn this step belongs to.
    pub iteration: u32,
    /// What happened.
    pub kind: StepKind,
    /// The input: the prompt's last message, the code, or the sub-query.
    pub input: String,
    /// The output: the reply, or the filtered observation.
    pub output: String,
    /// Whether the action succeeded (code: ran without exception, timeout or limit).
    pub success: bool,
    /// Error text when it did not.
    pub error: Option<String>,
    /// When it started, relative to the start of the run.
    #[serde(with = "duration_ms")]
    pub started: Duration,
    /// How long it took.
    #[serde(with = "duration_ms")]
    pub duration: Duration,
    /// Egress findings in this step's output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// For LLM calls: the model that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// For LLM calls: prompt tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u64>,
    /// For LLM calls: completion tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<u64>,
    /// For LLM calls: cost in USD, when the model's price is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// For `rlm_query` sub-queries: the id of the child run (see the trajectory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_run_id: Option<String>,
}

impl Step {
    pub(crate) fn new(
        iteration: u32,
        kind: StepKind,
        input: String,
        output: String,
        started: Duration,
        duration: Duration,
    ) -> Step {
        Step {
            iteration,
            kind,
            input,
            output,
            success: true,
            error: None,
            started,
            duration,
            findings: Vec::new(),
            model: None,
            prompt_tokens: None,
            completion_tokens: None,
            cost_usd: None,
            child_run_id: None,
        }
    }
}

/// Token and cost accounting of one model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelUsage {
    /// Calls made.
    pub calls: u64,
    /// Prompt tokens reported by the provider.
    pub prompt_tokens: u64,
    /// Completion tokens reported by the provider.
    pub completion_tokens: u64,
    /// Of the prompt tokens, those read from the provider's prompt cache.
    #[serde(default)]
    pub cached_prompt_tokens: u64,
    /// Of the prompt tokens, those written to the prompt cache.
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// Cost in USD; `None` when the model's price is unknown.
    pub cost_usd: Option<f64>,
}

/// Accounting of a whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Usage {
    /// LLM calls made.
    pub calls: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Of the prompt tokens, those read from the providers' prompt caches (priced at the
    /// cache-read rate).
    #[serde(default)]
    pub cached_prompt_tokens: u64,
    /// Of the prompt tokens, those written to a prompt cache (priced at the cache-write
    /// rate).
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// Total cost in USD; `None` when any model's price is unknown.
    pub cost_usd: Option<f64>,
    /// The same, per model name.
    pub per_model: BTreeMap<String, ModelUsage>,
}

impl Usage {
    /// Prompt plus completion tokens.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }

    pub(crate) fn record(&mut self, model: &str, t: crate::llm::TokenUsage, cost: Option<f64>) {
        let (prompt, completion) = (t.prompt_tokens, t.completion_tokens);
        let first_call = self.calls == 0;
        self.calls += 1;
        self.prompt_tokens += prompt;
        self.completion_tokens += completion;
        self.cached_prompt_tokens += t.cached_prompt_tokens;
        self.cache_write_tokens += t.cache_write_tokens;
        self.cost_usd = match (first_call, self.cost_usd, cost) {
            (true, _, c) => c,
            (false, Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        let m = self.per_model.entry(model.to_string()).or_default();
        let first = m.calls == 0;
        m.calls += 1;
        m.prompt_tokens += prompt;
        m.completion_tokens += completion;
        m.cached_prompt_tokens += t.cached_prompt_tokens;
        m.cache_write_tokens += t.cache_write_tokens;
        m.cost_usd = match (first, m.cost_usd, cost) {
            (true, _, c) => c,
            (false, Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
    }
}

/// How a run's code was isolated (from its first code block).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SandboxReport {
    /// The backend.
    pub kind: crate::config::SandboxKind,
    /// What the sandbox's own cgroup enforced (memory for all its processes together,
    /// processes, CPU); `None`: per-process rlimits only.
    pub cgroup: Option<String>,
    /// The code ran without the isolation the backend promises (explicitly allowed).
    pub unsafe_runtime: bool,
}

/// The outcome of a run. Serializes to JSON; every duration in this crate's JSON (here,
/// in [`Step`], in trajectories and in [`ExecutionResult`](crate::sandbox::ExecutionResult))
/// is in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunResult {
    /// The answer, when the run produced one.
    pub final_answer: Option<String>,
    /// True when a final answer was produced.
    pub success: bool,
    /// LLM turns taken.
    pub iterations: u32,
    /// Every action, in order (kept when the run fails).
    pub steps: Vec<Step>,
    /// Tokens and cost.
    pub usage: Usage,
    /// Why the run ended without an answer.
    pub error: Option<String>,
    /// This run's id (as in the trajectory).
    #[serde(default)]
    pub run_id: String,
    /// The typed error behind `error`, for matching (`None` on success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Error>,
    /// Wall-clock time of the run.
    #[serde(with = "duration_ms")]
    pub duration: Duration,
    /// How the code was isolated (`None` when no code ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxReport>,
    /// With an answer schema: the final answer as the JSON value it was validated as
    /// (compact JSON text; read it with [`answer_as`](Self::answer_as)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_json: Option<String>,
    /// When a limit (turns, time, budget) ended the run without a final answer: the model's
    /// best answer from what it had seen, asked for in one last call. Not a final answer
    /// (`final_answer` stays `None`, `success` false); it may be incomplete or wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_answer: Option<String>,
}

impl RunResult {
    /// The validated answer (see [`answer_json`](Self::answer_json)) as a `T`; `None`
    /// without one.
    /// The error says why the value does not fit `T`.
    pub fn answer_as<T: serde::de::DeserializeOwned>(&self) -> Option<Result<T, String>> {
        self.answer_json
            .as_deref()
            .map(|j| serde_json::from_str(j).map_err(|e| e.to_string()))
    }

    /// A run that ended before it started, with `error`.
    pub(crate) fn failed(error: Error) -> RunResult {
        RunResult {
            final_answer: None,
            success: false,
            iterations: 0,
            steps: Vec::new(),
            usage: Usage::default(),
            error: Some(error.to_string()),
            run_id: String::new(),
            failure: Some(error),
            duration: Duration::ZERO,
            sandbox: None,
            answer_json: None,
            partial_answer: None,
        }
    }

    /// The final answer, or the typed error that ended the run.
    pub fn into_answer(self) -> Result<String, Error> {
        match (self.final_answer, self.failure) {
            (Some(a), _) => Ok(a),
            (None, Some(e)) => Err(e),
            (None, None) => Err(Error::BudgetExceeded {
                message: "the run ended without an answer".into(),
            }),
        }
    }
}

pub(crate) mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Duration::try_from_secs_f64(ms.max(0.0) / 1000.0)
            .map_err(|_| serde::de::Error::custom(format!("{ms} ms is not a duration")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_unknown_cost_stays_unknown() {
        let mut u = Usage::default();
        let t = crate::llm::TokenUsage::new;
        u.record("a", t(10, 5), Some(0.5));
        u.record("a", t(10, 5).with_cache(4, 1), Some(0.25));
        assert_eq!(u.cost_usd, Some(0.75));
        assert_eq!(
            (u.cached_prompt_tokens, u.per_model["a"].cache_write_tokens),
            (4, 1)
        );
        u.record("b", t(1, 1), None);
        assert_eq!(u.cost_usd, None);
        assert_eq!(u.per_model["a"].cost_usd, Some(0.75));
        assert_eq!(u.total_tokens(), 32);
    }

    #[test]
    fn result_round_trips_through_json() {
        let r = RunResult {
            run_id: "run-1".into(),
            final_answer: Some("4".into()),
            success: true,
            iterations: 1,
            steps: vec![],
            usage: Usage::default(),
            error: None,
            failure: None,
            duration: Duration::from_millis(1500),
            sandbox: None,
            answer_json: Some("{\"a\":1}".into()),
            partial_answer: None,
        };
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["duration"], 1500.0);
        let back: RunResult = serde_json::from_value(j).unwrap();
        assert_eq!(back, r);
    }
}
