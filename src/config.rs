//! Settings of an [`Orchestrator`](crate::Orchestrator): plain values, a validating builder,
//! and opt-in loading from environment variables.

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
}

/// How the system prompt is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PromptMode {
    /// Full instructions with strategy and examples.
    #[default]
    Full,
    /// A short prompt for strong models.
    Simple,
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
            .finish()
    }
}

impl Default for LlmConfig {
    fn default() -> Self {
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
        }
    }
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
    /// Wall-clock limit of one code block; the whole sandbox is killed when it expires.
    pub execution_timeout: Duration,
    /// Address-space limit of the REPL (bytes).
    pub memory_bytes: u64,
    /// CPU-time limit of the REPL (seconds, whole session).
    pub cpu_seconds: u64,
    /// Maximum number of processes.
    pub pids: u64,
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
    /// Host uid/gid the sandbox runs as when the host process is root (so process limits
    /// apply).
    pub host_uid: u32,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            kind: SandboxKind::Bwrap,
            allow_unsafe_runtime: false,
            python: PathBuf::from("/usr/bin/python3"),
            bwrap: PathBuf::from("bwrap"),
            docker: PathBuf::from("docker"),
            docker_image: "python:3.11-slim".into(),
            execution_timeout: Duration::from_secs(60),
            memory_bytes: 1 << 30,
            cpu_seconds: 600,
            pids: 64,
            file_size_bytes: 64 << 20,
            open_files: 256,
            tmpfs_bytes: 64 << 20,
            network_enabled: false,
            max_output_bytes: 20_000,
            inline_context_bytes: 64 << 20,
            host_uid: 61000,
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

impl Default for EgressConfig {
    fn default() -> Self {
        EgressConfig {
            entropy_threshold: 4.5,
            min_entropy_len: 32,
            allow_digests: true,
            echo_min_bytes: 256,
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

impl Default for Limits {
    fn default() -> Self {
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
#[derive(Debug, Clone, PartialEq, Default)]
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
    /// Extra instructions appended to the system prompt.
    pub custom_instructions: Option<String>,
}

impl Config {
    /// Reads the documented environment variables through `get` (pass
    /// `|k| std::env::var(k).ok()` for the process environment). Unset variables keep their
    /// defaults; an invalid value is an [`Error::Config`] naming the variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let mut c = Config::default();
        let var = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if let Some(p) = var("RLM_LLM_PROVIDER") {
            c.llm.provider = Provider::parse(&p).ok_or_else(|| {
                Error::config(
                    "RLM_LLM_PROVIDER",
                    format!("unknown provider {p:?}; use \"openai\" (also any OpenAI-compatible server), \"anthropic\" or \"gemini\""),
                )
            })?;
            c.llm.model = c.llm.provider.default_model().into();
            c.llm.base_url = c.llm.provider.default_base_url().into();
        }
        if let Some(m) = var("RLM_LLM_MODEL") {
            c.llm.model = m;
        }
        if let Some(u) = var("RLM_LLM_BASE_URL") {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(Error::config(
                    "RLM_LLM_BASE_URL",
                    format!("expected an http:// or https:// URL, got {u:?}"),
                ));
            }
            c.llm.base_url = u.trim_end_matches('/').to_string();
        }
        c.llm.api_key = var(c.llm.provider.key_var());
        if let Some(v) = var("RLM_LLM_TEMPERATURE") {
            let t = parse_f64("RLM_LLM_TEMPERATURE", &v)?;
            if !(0.0..=2.0).contains(&t) {
                return Err(Error::config(
                    "RLM_LLM_TEMPERATURE",
                    format!("must be within 0..=2, got {v:?}"),
                ));
            }
            c.llm.temperature = t as f32;
        }
        if let Some(v) = var("RLM_LLM_TIMEOUT") {
            c.llm.request_timeout = parse_duration("RLM_LLM_TIMEOUT", &v)?;
        }
        if let Some(v) = var("RLM_LLM_MAX_IN_FLIGHT") {
            c.llm.max_in_flight = parse_positive("RLM_LLM_MAX_IN_FLIGHT", &v)? as usize;
        }
        if let Some(v) = var("RLM_MAX_ITERATIONS") {
            c.limits.max_iterations = parse_positive("RLM_MAX_ITERATIONS", &v)? as u32;
        }
        if let Some(v) = var("RLM_MAX_DEPTH") {
            c.limits.max_depth = parse_u64("RLM_MAX_DEPTH", &v)? as u32;
        }
        if let Some(v) = var("RLM_COST_LIMIT_USD") {
            let x = parse_f64("RLM_COST_LIMIT_USD", &v)?;
            if x < 0.0 {
                return Err(Error::config(
                    "RLM_COST_LIMIT_USD",
                    format!("must be >= 0, got {v:?}"),
                ));
            }
            c.limits.max_cost_usd = Some(x);
        }
        if let Some(v) = var("RLM_RUN_TIMEOUT") {
            c.limits.run_timeout = Some(parse_duration("RLM_RUN_TIMEOUT", &v)?);
        }
        if let Some(v) = var("RLM_SANDBOX") {
            c.sandbox.kind = match v.to_ascii_lowercase().as_str() {
                "bwrap" | "bubblewrap" => SandboxKind::Bwrap,
                "unsafe" | "process" | "subprocess" => SandboxKind::Unsafe,
                "docker" | "container" => SandboxKind::Docker,
                other => {
                    return Err(Error::config(
                        "RLM_SANDBOX",
                        format!(
                            "unknown sandbox {other:?}; use \"bwrap\", \"docker\" or \"unsafe\" (the latter also needs RLM_ALLOW_UNSAFE_RUNTIME=1)"
                        ),
                    ));
                }
            };
        }
        if let Some(v) = var("RLM_BWRAP") {
            c.sandbox.bwrap = PathBuf::from(v);
        }
        if let Some(v) = var("RLM_DOCKER_IMAGE") {
            c.sandbox.docker_image = v;
        }
        if let Some(v) = var("RLM_PYTHON") {
            c.sandbox.python = PathBuf::from(v);
        }
        if let Some(v) = var("RLM_EXECUTION_TIMEOUT") {
            c.sandbox.execution_timeout = parse_duration("RLM_EXECUTION_TIMEOUT", &v)?;
        }
        if let Some(v) = var("RLM_MEMORY_LIMIT") {
            c.sandbox.memory_bytes = parse_size("RLM_MEMORY_LIMIT", &v)?;
        }
        if let Some(v) = var("RLM_PIDS_LIMIT") {
            c.sandbox.pids = parse_positive("RLM_PIDS_LIMIT", &v)?;
        }
        if let Some(v) = var("RLM_NETWORK_ENABLED") {
            c.sandbox.network_enabled = parse_bool("RLM_NETWORK_ENABLED", &v)?;
        }
        if let Some(v) = var("RLM_ALLOW_UNSAFE_RUNTIME") {
            c.sandbox.allow_unsafe_runtime = parse_bool("RLM_ALLOW_UNSAFE_RUNTIME", &v)?;
        }
        if let Some(v) = var("RLM_ENTROPY_THRESHOLD") {
            let x = parse_f64("RLM_ENTROPY_THRESHOLD", &v)?;
            if !(0.0..=8.0).contains(&x) {
                return Err(Error::config(
                    "RLM_ENTROPY_THRESHOLD",
                    format!("bits per character must be within 0..=8, got {v:?}"),
                ));
            }
            c.egress.entropy_threshold = x;
        }
        if let Some(v) = var("RLM_MAX_STDOUT_BYTES") {
            let n = parse_size("RLM_MAX_STDOUT_BYTES", &v)?;
            if n < 256 {
                return Err(Error::config(
                    "RLM_MAX_STDOUT_BYTES",
                    format!("must be at least 256 bytes, got {v:?}"),
                ));
            }
            c.sandbox.max_output_bytes = n as usize;
            c.egress.max_output_bytes = n as usize;
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks cross-field consistency.
    pub fn validate(&self) -> Result<()> {
        if self.limits.max_iterations == 0 {
            return Err(Error::config("max_iterations", "must be at least 1"));
        }
        if self.sandbox.kind == SandboxKind::Unsafe && !self.sandbox.allow_unsafe_runtime {
            return Err(Error::config(
                "RLM_ALLOW_UNSAFE_RUNTIME",
                "the unsafe sandbox runs model code without isolation; set RLM_ALLOW_UNSAFE_RUNTIME=1 (or allow_unsafe_runtime(true)) to accept that",
            ));
        }
        if self.sandbox.execution_timeout.is_zero() {
            return Err(Error::config(
                "execution_timeout",
                "must be greater than zero",
            ));
        }
        if self.sandbox.max_output_bytes < 256 || self.egress.max_output_bytes < 256 {
            return Err(Error::config(
                "max_output_bytes",
                "must be at least 256 bytes",
            ));
        }
        if self.llm.max_in_flight == 0 {
            return Err(Error::config("max_in_flight", "must be at least 1"));
        }
        Ok(())
    }
}

fn parse_u64(name: &str, v: &str) -> Result<u64> {
    v.parse::<u64>()
        .map_err(|_| Error::config(name, format!("expected a non-negative integer, got {v:?}")))
}

fn parse_positive(name: &str, v: &str) -> Result<u64> {
    match parse_u64(name, v)? {
        0 => Err(Error::config(
            name,
            format!("expected a positive integer, got {v:?}"),
        )),
        n => Ok(n),
    }
}

fn parse_f64(name: &str, v: &str) -> Result<f64> {
    v.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| Error::config(name, format!("expected a number, got {v:?}")))
}

fn parse_bool(name: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::config(
            name,
            format!("expected 1/0, true/false, yes/no or on/off, got {v:?}"),
        )),
    }
}

/// Seconds (`30`, `2.5`) or with a unit (`500ms`, `30s`, `5m`, `1h`).
pub(crate) fn parse_duration(name: &str, v: &str) -> Result<Duration> {
    let v = v.trim();
    let (num, mult) = if let Some(n) = v.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = v.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (v, 1.0)
    };
    let x: f64 = num.trim().parse().map_err(|_| {
        Error::config(
            name,
            format!("expected seconds (e.g. 30, 2.5, 500ms, 5m), got {v:?}"),
        )
    })?;
    if !x.is_finite() || x <= 0.0 {
        return Err(Error::config(
            name,
            format!("must be a positive duration, got {v:?}"),
        ));
    }
    Ok(Duration::from_secs_f64(x * mult))
}

/// Parses a size setting (`1048576`, `512k`, `512m`, `512MB`, `1.5g`, `2GiB`); errors name
/// `setting`.
pub fn parse_size_setting(setting: &str, value: &str) -> Result<u64> {
    parse_size(setting, value)
}

/// Bytes, with optional unit: `1048576`, `512k`, `512m`, `512MB`, `1.5g`, `2GiB`.
pub(crate) fn parse_size(name: &str, v: &str) -> Result<u64> {
    let lower = v.trim().to_ascii_lowercase();
    let s = lower.trim_end_matches('b').trim_end_matches('i');
    let (num, mult) = match s.chars().last() {
        Some('k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('m') => (&s[..s.len() - 1], 1 << 20),
        Some('g') => (&s[..s.len() - 1], 1 << 30),
        Some('t') => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let x: f64 = num.trim().parse().map_err(|_| {
        Error::config(
            name,
            format!("expected a size such as 536870912, 512m, 512MB or 1.5g, got {v:?}"),
        )
    })?;
    if !x.is_finite() || x <= 0.0 {
        return Err(Error::config(
            name,
            format!("must be a positive size, got {v:?}"),
        ));
    }
    Ok((x * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<Config> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_and_overrides() {
        let c = env(&[]).unwrap();
        assert_eq!(c, Config::default());
        let c = env(&[
            ("RLM_LLM_MODEL", "qwen"),
            ("RLM_LLM_BASE_URL", "http://127.0.0.1:8080/v1/"),
            ("OPENAI_API_KEY", "sk-test"),
            ("RLM_MAX_ITERATIONS", "7"),
            ("RLM_COST_LIMIT_USD", "0"),
            ("RLM_RUN_TIMEOUT", "90s"),
            ("RLM_EXECUTION_TIMEOUT", "2.5"),
            ("RLM_MEMORY_LIMIT", "1.5g"),
            ("RLM_PIDS_LIMIT", "32"),
            ("RLM_NETWORK_ENABLED", "no"),
            ("RLM_ENTROPY_THRESHOLD", "0"),
            ("RLM_MAX_STDOUT_BYTES", "4000"),
        ])
        .unwrap();
        assert_eq!(c.llm.model, "qwen");
        assert_eq!(c.llm.base_url, "http://127.0.0.1:8080/v1");
        assert_eq!(c.limits.max_iterations, 7);
        assert_eq!(c.limits.max_cost_usd, Some(0.0));
        assert_eq!(c.limits.run_timeout, Some(Duration::from_secs(90)));
        assert_eq!(c.sandbox.execution_timeout, Duration::from_millis(2500));
        assert_eq!(c.sandbox.memory_bytes, 1610612736);
        assert_eq!(
            c.egress.entropy_threshold, 0.0,
            "an explicit 0 is kept, not replaced by the default"
        );
        assert_eq!(c.egress.max_output_bytes, 4000);
        assert!(
            !format!("{:?}", c.llm).contains("sk-test"),
            "Debug must mask the key"
        );
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (k, v) in [
            ("RLM_MAX_ITERATIONS", "zero"),
            ("RLM_MAX_ITERATIONS", "0"),
            ("RLM_LLM_PROVIDER", "cohere"),
            ("RLM_LLM_TIMEOUT", "0"),
            ("RLM_LLM_MAX_IN_FLIGHT", "0"),
            ("RLM_COST_LIMIT_USD", "-1"),
            ("RLM_RUN_TIMEOUT", "soon"),
            ("RLM_MEMORY_LIMIT", "lots"),
            ("RLM_NETWORK_ENABLED", "maybe"),
            ("RLM_SANDBOX", "vm"),
            ("RLM_ENTROPY_THRESHOLD", "9"),
            ("RLM_MAX_STDOUT_BYTES", "10"),
            ("RLM_LLM_BASE_URL", "localhost:8080"),
        ] {
            let err = env(&[(k, v)]).unwrap_err();
            assert!(err.to_string().contains(k), "{k}={v}: {err}");
        }
        let err = env(&[("RLM_SANDBOX", "unsafe")]).unwrap_err();
        assert!(
            err.to_string().contains("RLM_ALLOW_UNSAFE_RUNTIME"),
            "{err}"
        );
        assert!(env(&[("RLM_SANDBOX", "unsafe"), ("RLM_ALLOW_UNSAFE_RUNTIME", "1")]).is_ok());
    }

    #[test]
    fn providers_pick_their_key_and_defaults() {
        let c = env(&[
            ("RLM_LLM_PROVIDER", "anthropic"),
            ("ANTHROPIC_API_KEY", "k1"),
            ("OPENAI_API_KEY", "k2"),
        ])
        .unwrap();
        assert_eq!(c.llm.provider, Provider::Anthropic);
        assert_eq!(c.llm.api_key.as_deref(), Some("k1"));
        assert_eq!(c.llm.base_url, "https://api.anthropic.com/v1");
        let c = env(&[
            ("RLM_LLM_PROVIDER", "gemini"),
            ("GEMINI_API_KEY", "g"),
            ("RLM_LLM_MODEL", "gemini-2.5-pro"),
        ])
        .unwrap();
        assert_eq!(
            (c.llm.model.as_str(), c.llm.api_key.as_deref()),
            ("gemini-2.5-pro", Some("g"))
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("x", "512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("x", "512MB").unwrap(), 512 << 20);
        assert_eq!(parse_size("x", "2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("x", "1000").unwrap(), 1000);
        assert!(parse_size("x", "-5").is_err());
    }
}
