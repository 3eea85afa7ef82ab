//! The settings of an [`Orchestrator`](crate::Orchestrator) as plain, readable values.
//!
//! They are made in one place only: [`crate::settings`] resolves every named setting (builder
//! call, command-line flag, environment variable, default, in that order), validates each
//! value once, and derives the provider-dependent ones. Read them with
//! [`Orchestrator::config`](crate::Orchestrator::config).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// Which LLM provider wire format to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Provider {
    /// OpenAI chat completions, or any compatible server (vLLM, Ollama, llama.cpp, LM Studio).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini `generateContent`.
    Gemini,
}

impl Provider {
    /// The provider's name as used in `RLM_LLM_PROVIDER`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
        }
    }

    /// Parses `openai`, `anthropic` or `gemini` (also `google`).
    pub fn parse(s: &str) -> Option<Provider> {
        match s.to_ascii_lowercase().as_str() {
            "openai" | "openai-compatible" | "openai_compatible" => Some(Provider::OpenAi),
            "anthropic" | "claude" => Some(Provider::Anthropic),
            "gemini" | "google" => Some(Provider::Gemini),
            _ => None,
        }
    }

    /// The environment variable holding this provider's API key.
    pub fn key_var(self) -> &'static str {
        match self {
            Provider::OpenAi => "OPENAI_API_KEY",
            Provider::Anthropic => "ANTHROPIC_API_KEY",
            Provider::Gemini => "GEMINI_API_KEY",
        }
    }

    /// The provider's public API base URL.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Provider::OpenAi => "https://api.openai.com/v1",
            Provider::Anthropic => "https://api.anthropic.com/v1",
            Provider::Gemini => "https://generativelanguage.googleapis.com/v1beta",
        }
    }

    /// The model used when none is configured.
    pub fn default_model(self) -> &'static str {
        match self {
            Provider::OpenAi => "gpt-4o-mini",
            Provider::Anthropic => "claude-3-5-haiku-latest",
            Provider::Gemini => "gemini-2.0-flash",
        }
    }
}

/// Which sandbox runs the model's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SandboxKind {
    /// bubblewrap: namespaces, seccomp, rlimits (the default).
    Bwrap,
    /// A plain subprocess with rlimits only. Requires `allow_unsafe_runtime`; every result is
    /// marked unsafe.
    Unsafe,
    /// A container through the `docker` CLI (feature `docker`); gVisor required unless
    /// `allow_unsafe_runtime`.
    Docker,
    /// A sandbox supplied by the caller (`OrchestratorBuilder::sandbox`).
    Custom,
}

impl SandboxKind {
    /// The name used in `RLM_SANDBOX`.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxKind::Bwrap => "bwrap",
            SandboxKind::Unsafe => "unsafe",
            SandboxKind::Docker => "docker",
            SandboxKind::Custom => "custom",
        }
    }
}

impl fmt::Display for SandboxKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether sandboxes get a cgroup of their own (one memory limit for all their processes,
/// a process limit and a CPU quota).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CgroupPolicy {
    /// Where the host allows it (root, or a delegated cgroup); per-process rlimits only
    /// elsewhere, and results say so.
    #[default]
    Auto,
    /// Never (per-process rlimits only).
    Off,
    /// Always: a sandbox that cannot get one does not start.
    Required,
}

/// How the system prompt is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PromptMode {
    /// Chosen by provider and model: [`Compact`](Self::Compact) for small models (a local
    /// server, or a model name with a small parameter count), [`Frontier`](Self::Frontier)
    /// otherwise.
    #[default]
    Auto,
    /// For small local models: short, concrete steps and worked examples of the exact way
    /// (count with code, parse records, search then read).
    Compact,
    /// For frontier models, after the RLM paper's orchestrator prompt: decompose, delegate
    /// reading to batched sub-calls with large prompts, never pull the whole context into
    /// the root conversation.
    Frontier,
}

impl PromptMode {
    /// The mode for `model` at `base_url` ([`Auto`](Self::Auto) resolved).
    pub fn resolve(self, model: &str, base_url: &str) -> PromptMode {
        match self {
            PromptMode::Auto if is_small_model(model) || is_local_url(base_url) => {
                PromptMode::Compact
            }
            PromptMode::Auto => PromptMode::Frontier,
            m => m,
        }
    }
}

/// The context window (tokens) assumed for `model` at `base_url` when none is configured:
/// 16384 for a local server or a small model, 128000 otherwise.
pub(crate) fn default_context_window(model: &str, base_url: &str) -> u64 {
    if !is_local_url(base_url)
        && let Some(tokens) = known_context_window(model)
    {
        return tokens;
    }
    if is_small_model(model) || is_local_url(base_url) {
        16_384
    } else {
        128_000
    }
}

/// The context windows of known hosted model families, in tokens (history compaction and
/// shortening start from them).
fn known_context_window(model: &str) -> Option<u64> {
    let m = model.to_ascii_lowercase();
    let m = m.rsplit('/').next().unwrap_or(&m);
    const TABLE: &[(&str, u64)] = &[
        ("gpt-4.1", 1_047_576),
        ("gpt-4-32k", 32_768),
        ("gpt-3.5-turbo", 16_385),
        ("claude", 200_000),
        ("gemini-1.5", 1_048_576),
        ("gemini-2", 1_048_576),
    ];
    if m == "gpt-4" || m.starts_with("gpt-4-0") {
        return Some(8_192);
    }
    TABLE
        .iter()
        .find(|(prefix, _)| m.starts_with(prefix))
        .map(|&(_, tokens)| tokens)
}

/// A model name that states a parameter count of at most 14 billion (`qwen2.5-coder-1.5b`,
/// `llama-3.1-8b-instruct`, `phi-3-mini`, ...).
fn is_small_model(model: &str) -> bool {
    let m = model.to_ascii_lowercase();
    if [
        "-mini-",
        "phi-",
        "smollm",
        "tinyllama",
        "gemma-2b",
        "gemma-7b",
    ]
    .iter()
    .any(|k| m.contains(k))
        && !m.contains("gpt-4o-mini")
        && !m.contains("o4-mini")
        && !m.contains("o3-mini")
    {
        return true;
    }
    let b = m.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c != b'b' || i == 0 || b.get(i + 1).is_some_and(u8::is_ascii_alphanumeric) {
            continue;
        }
        // Digits (with a decimal point) right before the `b`, after a separator.
        let mut j = i;
        while j > 0 && (b[j - 1].is_ascii_digit() || b[j - 1] == b'.') {
            j -= 1;
        }
        if j == i || (j > 0 && b[j - 1].is_ascii_alphanumeric()) {
            continue;
        }
        if let Ok(n) = m[j..i].parse::<f64>() {
            return n <= 14.0;
        }
    }
    false
}

/// A base URL on this machine or a private network (a local model server).
fn is_local_url(url: &str) -> bool {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    host == "localhost"
        || host.starts_with("127.")
        || host.starts_with("10.")
        || host.starts_with("192.168.")
        || url.contains("://[::1]")
}

/// Connection settings for the LLM provider.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct LlmConfig {
    /// Wire format.
    pub provider: Provider,
    /// Model name sent to the provider.
    pub model: String,
    /// Base URL, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// API key; never printed (`Debug` masks it).
    pub api_key: Option<String>,
    /// Sampling temperature.
    pub temperature: f32,
    /// Upper bound on generated tokens per call (always sent, so a reply cannot run forever).
    pub max_tokens: u32,
    /// Overall timeout of one HTTP call.
    pub request_timeout: Duration,
    /// Attempts per call for retryable failures (429, 5xx, connection errors).
    pub max_attempts: u32,
    /// Maximum number of LLM requests in flight across all runs of one orchestrator.
    pub max_in_flight: usize,
    /// Models that code in the REPL may ask for with `llm_query(prompt, model=...)` besides
    /// `model` (checked by the host; anything else is refused).
    pub allowed_models: Vec<String>,
    /// Anthropic prompt caching: `cache_control` breakpoints on the system prompt and the
    /// earlier turns (OpenAI and Gemini cache on their own).
    pub prompt_cache: bool,
}

impl fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmConfig")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .field("request_timeout", &self.request_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("max_in_flight", &self.max_in_flight)
            .field("allowed_models", &self.allowed_models)
            .field("prompt_cache", &self.prompt_cache)
            .finish()
    }
}

impl LlmConfig {
    /// The documented defaults (only the settings resolver starts from them).
    pub(crate) fn defaults() -> Self {
        LlmConfig {
            provider: Provider::OpenAi,
            model: "gpt-4o-mini".into(),
            base_url: "https://api.openai.com/v1".into(),
            api_key: None,
            temperature: 0.0,
            max_tokens: 2048,
            request_timeout: Duration::from_secs(300),
            max_attempts: 4,
            max_in_flight: 64,
            allowed_models: Vec::new(),
            prompt_cache: true,
        }
    }
}

/// The sub-model: what `llm_query` and the child runs below the root use (the RLM paper's
/// set-up: a strong root model, a cheaper model for sub-calls). Set with `RLM_SUB_MODEL`
/// (and `RLM_SUB_PROVIDER`, `RLM_SUB_BASE_URL`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SubModels {
    /// Models by depth: `models[d]` answers the `llm_query` calls of a run at depth `d` and
    /// is the model of child runs at depth `d + 1`; the last one serves every deeper level.
    /// Never empty.
    pub models: Vec<String>,
    /// The connection (provider, base URL, key; `model` is `models[0]`). Its key comes only
    /// from the sub-provider's own variable (or `OrchestratorBuilder::sub_api_key`), or is
    /// the root's when the sub-model uses the root's provider and URL.
    pub llm: LlmConfig,
}

/// Isolation and limits of the sandbox.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SandboxConfig {
    /// Backend.
    pub kind: SandboxKind,
    /// Explicit opt-in to run without bubblewrap (plain subprocess with rlimits).
    pub allow_unsafe_runtime: bool,
    /// The interpreter run inside the sandbox. Its prefix must live under `/usr` for the
    /// bubblewrap backend.
    pub python: PathBuf,
    /// The bubblewrap binary (`RLM_BWRAP`).
    pub bwrap: PathBuf,
    /// The docker CLI for the Docker backend.
    pub docker: PathBuf,
    /// The container image for the Docker backend (`RLM_DOCKER_IMAGE`); never pulled
    /// implicitly.
    pub docker_image: String,
    /// Docker backend: send context files to the container over its standard input instead
    /// of bind-mounting host paths (`RLM_DOCKER_SHIP_CONTEXT`). `None` (`auto`): when
    /// `DOCKER_HOST` names an engine on another machine (`tcp://`, `ssh://`, `http(s)://`),
    /// whose file system does not have this machine's files.
    pub docker_ship_context: Option<bool>,
    /// Wall-clock limit of one code block, time spent in host calls (sub-LLM calls, child
    /// runs) excluded; the whole sandbox is killed when it expires.
    pub execution_timeout: Duration,
    /// Wall-clock limit of one code block *including* its host calls, so waiting on
    /// sub-calls cannot keep a block alive without bound.
    pub max_cell_wall: Duration,
    /// Address-space limit of the REPL (bytes).
    pub memory_bytes: u64,
    /// CPU-time limit of the REPL (seconds, whole session).
    pub cpu_time: Duration,
    /// Maximum number of processes.
    pub pids: u64,
    /// Per-sandbox cgroups.
    pub cgroups: CgroupPolicy,
    /// CPU quota of a sandbox's cgroup, in cores.
    pub cpus: f64,
    /// Largest file the code may write (bytes).
    pub file_size_bytes: u64,
    /// Maximum open file descriptors.
    pub open_files: u64,
    /// Size cap of the private `/tmp` (bytes).
    pub tmpfs_bytes: u64,
    /// Share the host network (off by default; the sandbox then has no network at all).
    pub network_enabled: bool,
    /// Cap on stdout and stderr kept per block (bytes, head and tail kept).
    pub max_output_bytes: usize,
    /// Contexts up to this size are also exposed inside the REPL as the string `context`.
    pub inline_context_bytes: u64,
    /// First host uid/gid leased to sandboxes when the host process is root (so process
    /// limits apply per sandbox).
    pub host_uid: u32,
    /// Where uid leases are kept (lock files shared by every `rlm` process on the machine).
    pub uid_lock_dir: PathBuf,
    /// Sandboxes started ahead of time and kept ready (bwrap backend); each run takes one,
    /// and a replacement starts in the background. 0: every run starts its own.
    pub pool: usize,
}

impl SandboxConfig {
    /// The documented defaults (only the settings resolver starts from them).
    pub(crate) fn defaults() -> Self {
        SandboxConfig {
            kind: SandboxKind::Bwrap,
            allow_unsafe_runtime: false,
            python: PathBuf::from("/usr/bin/python3"),
            bwrap: PathBuf::from("bwrap"),
            docker: PathBuf::from("docker"),
            docker_image: "python:3.11-slim".into(),
            docker_ship_context: None,
            execution_timeout: Duration::from_secs(60),
            max_cell_wall: Duration::from_secs(1800),
            memory_bytes: 1 << 30,
            cpu_time: Duration::from_secs(600),
            pids: 64,
            cgroups: CgroupPolicy::Auto,
            cpus: 1.0,
            file_size_bytes: 64 << 20,
            open_files: 256,
            tmpfs_bytes: 64 << 20,
            network_enabled: false,
            max_output_bytes: 20_000,
            inline_context_bytes: 64 << 20,
            host_uid: 61000,
            uid_lock_dir: PathBuf::from("/run/rlm/uids"),
            pool: 0,
        }
    }
}

/// Egress filter knobs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EgressConfig {
    /// Shannon entropy (bits per character) above which a long token is redacted.
    pub entropy_threshold: f64,
    /// Minimum token length for the entropy rule.
    pub min_entropy_len: usize,
    /// Let hex digests (32, 40, 64 or 128 hex digits: MD5, git SHAs, SHA-256, SHA-512) and
    /// UUIDs through the entropy rule; on by default, since code prints them on purpose.
    pub allow_digests: bool,
    /// Minimum length of a verbatim context run that counts as an echo (bytes).
    pub echo_min_bytes: usize,
    /// Turn findings into [`Error::DataLeak`] instead of redacting them.
    pub raise_on_leak: bool,
    /// Cap on one observation (bytes); head and tail are kept.
    pub max_output_bytes: usize,
}

impl EgressConfig {
    /// The documented defaults (only the settings resolver starts from them).
    pub(crate) fn defaults() -> Self {
        EgressConfig {
            entropy_threshold: 4.5,
            min_entropy_len: 32,
            allow_digests: true,
            echo_min_bytes: 4096,
            raise_on_leak: false,
            max_output_bytes: 20_000,
        }
    }
}

/// Limits of one run.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Limits {
    /// Maximum LLM turns of the root run.
    pub max_iterations: u32,
    /// Depth limit of the tree of runs: the root is depth 0, and `rlm_query` starts a child
    /// run at depth + 1 only while that is below `max_depth`; at the limit it degrades to a
    /// plain `llm_query`. 1 (the default) means sub-calls are plain LLM calls.
    pub max_depth: u32,
    /// Maximum spend of one run in USD (`None` = unlimited).
    pub max_cost_usd: Option<f64>,
    /// Maximum tokens (prompt + completion) of one run.
    pub max_tokens: Option<u64>,
    /// Maximum LLM calls of one run.
    pub max_llm_calls: Option<u32>,
    /// Wall-clock limit of one run.
    pub run_timeout: Option<Duration>,
    /// Consecutive replies without code before the run gives up.
    pub max_no_code_replies: u32,
    /// Sub-calls of one tree of runs in flight at once (`llm_query_batched`,
    /// `rlm_query_batched`).
    pub max_concurrent_subcalls: usize,
}

impl Limits {
    /// The documented defaults (only the settings resolver starts from them).
    pub(crate) fn defaults() -> Self {
        Limits {
            max_iterations: 20,
            max_depth: 1,
            max_cost_usd: None,
            max_tokens: None,
            max_llm_calls: None,
            run_timeout: Some(Duration::from_secs(1800)),
            max_no_code_replies: 3,
            max_concurrent_subcalls: 32,
        }
    }
}

/// Everything an orchestrator needs; build it with [`Orchestrator::builder`](crate::Orchestrator::builder)
/// or [`Orchestrator::from_env`](crate::Orchestrator::from_env).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// LLM connection.
    pub llm: LlmConfig,
    /// Sandbox.
    pub sandbox: SandboxConfig,
    /// Egress filter.
    pub egress: EgressConfig,
    /// Run limits.
    pub limits: Limits,
    /// System prompt mode.
    pub prompt_mode: PromptMode,
    /// Over a context, a final answer typed in that no output showed and no code computed is
    /// refused once, asking for the evidence.
    pub require_evidence: bool,
    /// The model's context window in tokens (`None`: 16384 for a local or small model, else
    /// 128000); older turns are shortened to keep the conversation within it.
    pub context_window: Option<u64>,
    /// History compaction: when the root conversation reaches this fraction of the context
    /// window, its older turns are summarised by one LLM call (`None`: off, older turns
    /// are only shortened). Default 0.8.
    pub compact_at: Option<f64>,
    /// Which local model the `rlm` command starts when no provider is configured (`1.5b` or
    /// `0.5b`); the library itself does not use it.
    pub local_model: String,
    /// Extra instructions appended to the system prompt.
    pub custom_instructions: Option<String>,
    /// Put the real values back into the final answer returned to the caller (placeholders
    /// such as `[SECRET:aws_access_key_id#1]` stay in trajectories, logs and events).
    pub reveal_secrets: bool,
    /// A JSON Schema the root run's final answer must match (`RLM_ANSWER_SCHEMA`); an answer
    /// that does not is sent back to the model with the errors.
    pub answer_schema: Option<crate::Schema>,
    /// When turns, time or budget run out, one last call (if the budget allows) asks for the
    /// best answer from what was seen (`RunResult::partial_answer`).
    pub best_effort: bool,
    /// The sub-model for sub-calls and child runs (`None`: the root model serves them all).
    pub sub: Option<SubModels>,
    /// `RLM_SUB_PROVIDER` and `RLM_SUB_BASE_URL` as given (resolved into `sub`).
    pub(crate) sub_given: (Option<Provider>, Option<String>),
    /// Where each setting that was not left at its default came from (setting name →
    /// builder call, flag or environment variable).
    pub(crate) origins: BTreeMap<&'static str, String>,
}

impl Config {
    /// The documented defaults (only the settings resolver starts from them).
    pub(crate) fn defaults() -> Self {
        Config {
            llm: LlmConfig::defaults(),
            sandbox: SandboxConfig::defaults(),
            egress: EgressConfig::defaults(),
            limits: Limits::defaults(),
            prompt_mode: PromptMode::default(),
            local_model: "1.5b".into(),
            require_evidence: true,
            context_window: None,
            compact_at: Some(0.8),
            custom_instructions: None,
            reveal_secrets: false,
            answer_schema: None,
            best_effort: true,
            sub: None,
            sub_given: (None, None),
            origins: BTreeMap::new(),
        }
    }

    /// Where the setting `name` (an environment variable name such as `RLM_LLM_MODEL`) got
    /// its value: `None` when it has its default, else the builder call, command-line flag or
    /// environment variable that set it.
    pub fn origin(&self, name: &str) -> Option<&str> {
        self.origins.get(name).map(String::as_str)
    }

    /// Checks cross-field consistency. Errors name the setting to fix.
    pub(crate) fn validate(&self) -> Result<()> {
        let name = |n: &'static str| self.origin(n).unwrap_or(n).to_string();
        if self.sandbox.kind == SandboxKind::Unsafe && !self.sandbox.allow_unsafe_runtime {
            return Err(Error::config(
                "RLM_ALLOW_UNSAFE_RUNTIME",
                format!(
                    "{} selects the unsafe sandbox, which runs model code without isolation; set \
                     RLM_ALLOW_UNSAFE_RUNTIME=1 (or allow_unsafe_runtime(true)) to accept that",
                    name("RLM_SANDBOX")
                ),
            ));
        }
        if self.sandbox.max_output_bytes != self.egress.max_output_bytes {
            return Err(Error::config(
                name("RLM_MAX_STDOUT_BYTES"),
                "the sandbox and the egress filter must use the same output cap",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn known_models_have_their_context_windows() {
        let w = |m| default_context_window(m, "https://api.example.com/v1");
        assert_eq!(w("claude-sonnet-4-5"), 200_000);
        assert_eq!(w("gemini-2.5-flash"), 1_048_576);
        assert_eq!(w("openai/gpt-4.1-mini"), 1_047_576);
        assert_eq!(w("gpt-4"), 8_192);
        assert_eq!(w("gpt-4o-mini"), 128_000);
        assert_eq!(w("qwen2.5-coder-1.5b"), 16_384);
        // A local server: its own (small) default.
        assert_eq!(
            default_context_window("claude-x", "http://127.0.0.1:8080/v1"),
            16_384
        );
    }

    use super::*;

    #[test]
    fn auto_prompt_mode_by_model_and_server() {
        let auto = PromptMode::Auto;
        for (model, url, want) in [
            (
                "qwen2.5-coder-1.5b-instruct",
                "https://api.example.com/v1",
                PromptMode::Compact,
            ),
            (
                "llama-3.1-8b-instruct",
                "https://openrouter.ai/api/v1",
                PromptMode::Compact,
            ),
            (
                "qwen2.5-72b-instruct",
                "https://api.example.com/v1",
                PromptMode::Frontier,
            ),
            (
                "gpt-4o-mini",
                "https://api.openai.com/v1",
                PromptMode::Frontier,
            ),
            (
                "claude-sonnet-4-5",
                "https://api.anthropic.com",
                PromptMode::Frontier,
            ),
            (
                "gemini-2.5-pro",
                "https://generativelanguage.googleapis.com",
                PromptMode::Frontier,
            ),
            ("anything", "http://127.0.0.1:8080/v1", PromptMode::Compact),
            ("anything", "http://localhost:11434/v1", PromptMode::Compact),
            ("phi-3-mini-4k", "https://x.example/v1", PromptMode::Compact),
        ] {
            assert_eq!(auto.resolve(model, url), want, "{model} at {url}");
        }
        assert_eq!(
            PromptMode::Frontier.resolve("qwen2.5-coder-1.5b", "http://127.0.0.1:1/v1"),
            PromptMode::Frontier,
            "an explicit mode stays"
        );
    }
}
