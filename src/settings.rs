//! The one configuration path (pure): every setting has a name (its environment variable), a
//! short key, an optional command-line flag, a documented default and one parser. Builder
//! calls, flags and the environment are all just sources of `name = text` pairs; [`resolve`]
//! takes the first source that has a value (builder and flags > environment > default),
//! parses and validates it once, derives the provider-dependent defaults (base URL, model,
//! which key variable to read) and checks the result as a whole. Errors name the flag,
//! variable or builder call the bad value came from.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{CgroupPolicy, Config, PromptMode, Provider, SandboxKind};
use crate::error::{Error, Result};

type Apply = fn(&mut Config, &str) -> std::result::Result<(), String>;

/// One named setting.
#[derive(Clone, Copy)]
pub(crate) struct Setting {
    /// The environment variable; also the canonical name.
    pub(crate) var: &'static str,
    /// A short name (builder `setting`, Python keyword arguments).
    pub(crate) key: &'static str,
    /// The `rlm run` flag that sets it, if any.
    pub(crate) flag: Option<&'static str>,
    /// The default, as documented.
    pub(crate) default: &'static str,
    /// What it does.
    pub(crate) help: &'static str,
    apply: Apply,
}

impl std::fmt::Debug for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setting").field("var", &self.var).finish()
    }
}

macro_rules! setting {
    ($var:literal, $key:literal, $flag:expr, $default:literal, $help:literal, $apply:expr) => {
        Setting {
            var: $var,
            key: $key,
            flag: $flag,
            default: $default,
            help: $help,
            apply: $apply,
        }
    };
}

/// Every setting, in the order they are applied (the provider first: it decides the defaults
/// of the base URL and model and which key variable is read).
pub(crate) const SETTINGS: &[Setting] = &[
    setting!(
        "RLM_LLM_PROVIDER",
        "provider",
        Some("--provider"),
        "openai",
        "`openai` (also any OpenAI-compatible server), `anthropic` or `gemini`",
        |c, v| {
            let p = Provider::parse(v).ok_or_else(|| format!(
                "unknown provider {v:?}; use \"openai\" (also any OpenAI-compatible server), \"anthropic\" or \"gemini\""))?;
            c.llm.provider = p;
            c.llm.model = p.default_model().into();
            c.llm.base_url = p.default_base_url().into();
            Ok(())
        }
    ),
    setting!(
        "RLM_LLM_MODEL",
        "model",
        Some("--model"),
        "per provider",
        "model name: `gpt-4o-mini`, `claude-3-5-haiku-latest` or `gemini-2.0-flash` by default",
        |c, v| {
            c.llm.model = v.to_string();
            Ok(())
        }
    ),
    setting!(
        "RLM_LLM_BASE_URL",
        "base_url",
        Some("--base-url"),
        "per provider",
        "the provider's URL; a loopback URL needs no key",
        |c, v| {
            if !(v.starts_with("http://") || v.starts_with("https://")) {
                return Err(format!("expected an http:// or https:// URL, got {v:?}"));
            }
            c.llm.base_url = v.trim_end_matches('/').to_string();
            Ok(())
        }
    ),
    setting!(
        "RLM_LLM_TEMPERATURE",
        "temperature",
        None,
        "0",
        "sampling temperature (a turn that repeats the previous code is resampled warmer)",
        |c, v| {
            c.llm.temperature = float_in(v, 0.0, 2.0)? as f32;
            Ok(())
        }
    ),
    setting!(
        "RLM_LLM_MAX_TOKENS",
        "llm_max_tokens",
        None,
        "2048",
        "upper bound on the tokens of one reply (always sent)",
        |c, v| {
            c.llm.max_tokens =
                u32::try_from(positive(v)?).map_err(|_| format!("too large: {v:?}"))?;
            Ok(())
        }
    ),
    setting!(
        "RLM_LLM_TIMEOUT",
        "request_timeout",
        None,
        "300s",
        "timeout of one LLM HTTP call",
        |c, v| {
            c.llm.request_timeout = duration(v)?;
            Ok(())
        }
    ),
    setting!(
        "RLM_LLM_MAX_ATTEMPTS",
        "max_attempts",
        None,
        "4",
        "attempts per LLM call for retryable failures (429, 5xx, connection errors)",
        |c, v| {
            c.llm.max_attempts = positive(v)? as u32;
            Ok(())
        }
    ),
    setting!(
        "RLM_LLM_MAX_IN_FLIGHT",
        "max_in_flight",
        None,
        "64",
        "LLM requests in flight at once, across all runs of one orchestrator",
        |c, v| {
            c.llm.max_in_flight = positive(v)? as usize;
            Ok(())
        }
    ),
    setting!(
        "RLM_ALLOWED_MODELS",
        "allowed_models",
        None,
        "none",
        "comma-separated models code may ask for with `llm_query(prompt, model=...)` besides the main one",
        |c, v| {
            c.llm.allowed_models = v
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(String::from)
                .collect();
            Ok(())
        }
    ),
    setting!(
        "RLM_PROMPT_CACHE",
        "prompt_cache",
        None,
        "1",
        "Anthropic prompt caching: `cache_control` on the system prompt and the earlier turns, so each turn reads the conversation so far from the cache (`0` turns it off)",
        |c, v| {
            c.llm.prompt_cache = boolean(v)?;
            Ok(())
        }
    ),
    setting!(
        "RLM_SUB_MODEL",
        "sub_model",
        Some("--sub-model"),
        "none",
        "the cheaper model for `llm_query` and child runs below the root; a comma-separated list gives one per depth (`a,b`: `a` for the root's sub-calls, `b` below), the last serving deeper levels",
        |c, v| {
            let models: Vec<String> = v
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(String::from)
                .collect();
            if models.is_empty() {
                return Err(format!(
                    "expected a model name or a comma-separated list, got {v:?}"
                ));
            }
            c.sub = Some(crate::config::SubModels {
                models,
                llm: c.llm.clone(),
            });
            Ok(())
        }
    ),
    setting!(
        "RLM_SUB_PROVIDER",
        "sub_provider",
        Some("--sub-provider"),
        "the root's",
        "wire format of the sub-model (`openai`, `anthropic`, `gemini`); its key: RLM_SUB_API_KEY, else that provider's variable at its public URL only",
        |c, v| {
            c.sub_given.0 = Some(Provider::parse(v).ok_or_else(|| {
                format!("unknown provider {v:?}; use \"openai\", \"anthropic\" or \"gemini\"")
            })?);
            Ok(())
        }
    ),
    setting!(
        "RLM_SUB_BASE_URL",
        "sub_base_url",
        Some("--sub-base-url"),
        "the root's, or the sub-provider's",
        "URL of the sub-model's server (default: the root's URL when the provider is the same, else the sub-provider's public URL)",
        |c, v| {
            if !(v.starts_with("http://") || v.starts_with("https://")) {
                return Err(format!("expected an http:// or https:// URL, got {v:?}"));
            }
            c.sub_given.1 = Some(v.trim_end_matches('/').to_string());
            Ok(())
        }
    ),
    setting!(
        "RLM_ANSWER_SCHEMA",
        "answer_schema",
        Some("--schema"),
        "none",
        "a JSON Schema file (or inline JSON text) the final answer must match; an invalid answer goes back to the model with the errors, a valid one is also returned parsed (`answer_json`)",
        |c, v| {
            let s = if v.starts_with('{') {
                crate::Schema::parse(v)
            } else {
                crate::Schema::from_file(v)
            };
            c.answer_schema = Some(s.map_err(|e| match e {
                Error::Config { message, .. } => message,
                e => e.to_string(),
            })?);
            Ok(())
        }
    ),
    setting!(
        "RLM_BEST_EFFORT",
        "best_effort",
        None,
        "1",
        "when turns, time or budget run out, one last call (if the budget allows; at most 60 s past a time limit) asks for the best answer from what was seen, returned as `partial_answer`, never as the final answer (`0` turns this off)",
        |c, v| {
            c.best_effort = boolean(v)?;
            Ok(())
        }
    ),
    setting!(
        "RLM_MAX_ITERATIONS",
        "max_iterations",
        Some("--max-iterations"),
        "20",
        "LLM turns per run",
        |c, v| {
            c.limits.max_iterations = positive(v)? as u32;
            Ok(())
        }
    ),
    setting!(
        "RLM_MAX_DEPTH",
        "max_depth",
        Some("--max-depth"),
        "1",
        "depth limit of the tree of runs (1: `rlm_query` is a plain sub-call; 2: one level of child runs)",
        |c, v| {
            c.limits.max_depth = u32::try_from(int(v)?).map_err(|_| format!("too large: {v:?}"))?;
            Ok(())
        }
    ),
    setting!(
        "RLM_COST_LIMIT_USD",
        "max_cost_usd",
        Some("--budget-usd"),
        "unlimited",
        "spend per tree of runs in USD, checked before each call",
        |c, v| {
            c.limits.max_cost_usd = optional(v, |v| float_in(v, 0.0, f64::MAX))?;
            Ok(())
        }
    ),
    setting!(
        "RLM_MAX_TOKENS",
        "max_tokens",
        None,
        "unlimited",
        "prompt + completion tokens per tree of runs",
        |c, v| {
            c.limits.max_tokens = optional(v, positive)?;
            Ok(())
        }
    ),
    setting!(
        "RLM_MAX_LLM_CALLS",
        "max_llm_calls",
        None,
        "unlimited",
        "LLM calls per tree of runs",
        |c, v| {
            c.limits.max_llm_calls =
                optional(v, |v| positive(v).map(|n| n.min(u32::MAX as u64) as u32))?;
            Ok(())
        }
    ),
    setting!(
        "RLM_RUN_TIMEOUT",
        "run_timeout",
        Some("--timeout"),
        "1800s",
        "wall-clock limit per run (`90`, `90s`, `5m`; `none` for no limit)",
        |c, v| {
            c.limits.run_timeout = optional(v, duration)?;
            Ok(())
        }
    ),
    setting!(
        "RLM_MAX_NO_CODE_REPLIES",
        "max_no_code_replies",
        None,
        "3",
        "consecutive replies without code before a run gives up",
        |c, v| {
            c.limits.max_no_code_replies = positive(v)? as u32;
            Ok(())
        }
    ),
    setting!(
        "RLM_MAX_CONCURRENT_SUBCALLS",
        "max_concurrent_subcalls",
        None,
        "32",
        "sub-calls (`llm_query_batched`, `rlm_query_batched`) of one tree in flight at once",
        |c, v| {
            c.limits.max_concurrent_subcalls = positive(v)? as usize;
            Ok(())
        }
    ),
    setting!(
        "RLM_PROMPT_MODE",
        "prompt_mode",
        None,
        "auto",
        "`compact` (short steps and worked examples, for small local models), `frontier` (the RLM paper's orchestrator prompt: decompose, batch sub-calls) or `auto` (compact for a local server or a small model, else frontier)",
        |c, v| {
            c.prompt_mode = match v.to_ascii_lowercase().as_str() {
                "auto" => PromptMode::Auto,
                "compact" | "full" => PromptMode::Compact,
                "frontier" | "simple" => PromptMode::Frontier,
                _ => {
                    return Err(format!(
                        "expected \"auto\", \"compact\" or \"frontier\", got {v:?}"
                    ));
                }
            };
            Ok(())
        }
    ),
    setting!(
        "RLM_REQUIRE_EVIDENCE",
        "require_evidence",
        None,
        "1",
        "over a context, a FINAL value typed in that no output showed and no code computed is refused once, asking for the evidence (`0` turns this off)",
        |c, v| {
            c.require_evidence = boolean(v)?;
            Ok(())
        }
    ),
    setting!(
        "RLM_CONTEXT_WINDOW",
        "context_window",
        None,
        "auto",
        "the model's context window in tokens; older turns are shortened to stay within it (`auto`: 200000 for Claude, about 1M for Gemini 1.5/2.x and GPT-4.1, 16384 for a local server or a small model, else 128000)",
        |c, v| {
            c.context_window = if v.eq_ignore_ascii_case("auto") {
                None
            } else {
                let n = positive(v)?;
                if n < 2048 {
                    return Err(format!("must be at least 2048 tokens (or auto), got {v:?}"));
                }
                Some(n)
            };
            Ok(())
        }
    ),
    setting!(
        "RLM_COMPACT_AT",
        "compact_at",
        None,
        "0.8",
        "history compaction: when the root conversation reaches this fraction of the context window, older turns are summarised by one LLM call and the full history stays in the REPL as `history` (`off`: older turns are only shortened)",
        |c, v| {
            c.compact_at = crate::compaction::parse_fraction(v)?;
            Ok(())
        }
    ),
    setting!(
        "RLM_LOCAL_MODEL",
        "local_model",
        Some("--local-model"),
        "1.5b",
        "the local model `rlm` starts when no provider is configured: `1.5b` (Qwen2.5-Coder-1.5B) or `0.5b` (faster, weaker; `rlm setup --model 0.5b` installs it)",
        |c, v| {
            c.local_model = match v.to_ascii_lowercase().as_str() {
                m @ ("1.5b" | "0.5b") => m.to_string(),
                _ => return Err(format!("expected \"1.5b\" or \"0.5b\", got {v:?}")),
            };
            Ok(())
        }
    ),
    setting!(
        "RLM_CUSTOM_INSTRUCTIONS",
        "custom_instructions",
        None,
        "none",
        "extra instructions appended to the system prompt",
        |c, v| {
            c.custom_instructions = Some(v.to_string());
            Ok(())
        }
    ),
    setting!(
        "RLM_REVEAL_SECRETS",
        "reveal_secrets",
        None,
        "0",
        "`1` puts the real values of masked secrets back into the final answer returned to you (trajectories, logs and events keep the placeholders)",
        |c, v| {
            c.reveal_secrets = boolean(v)?;
            Ok(())
        }
    ),
    setting!(
        "RLM_SANDBOX",
        "sandbox",
        None,
        "bwrap",
        "`bwrap`, `docker` (feature `docker`, on by default) or `unsafe` (plain subprocess; needs RLM_ALLOW_UNSAFE_RUNTIME=1)",
        |c, v| {
            c.sandbox.kind = match v.to_ascii_lowercase().as_str() {
                "bwrap" | "bubblewrap" => SandboxKind::Bwrap,
                "unsafe" | "process" | "subprocess" => SandboxKind::Unsafe,
                "docker" | "container" => SandboxKind::Docker,
                other => {
                    return Err(format!(
                        "unknown sandbox {other:?}; use \"bwrap\", \"docker\" or \"unsafe\" (the latter also needs RLM_ALLOW_UNSAFE_RUNTIME=1)"
                    ));
                }
            };
            Ok(())
        }
    ),
    setting!(
        "RLM_ALLOW_UNSAFE_RUNTIME",
        "allow_unsafe_runtime",
        None,
        "0",
        "`1` accepts running model code without the backend's full isolation (`unsafe` backend, Docker without gVisor); results are marked `unsafe_runtime`",
        |c, v| {
            c.sandbox.allow_unsafe_runtime = boolean(v)?;
            Ok(())
        }
    ),
    setting!(
        "RLM_BWRAP",
        "bwrap",
        None,
        "bwrap",
        "the bubblewrap binary",
        |c, v| {
            c.sandbox.bwrap = PathBuf::from(v);
            Ok(())
        }
    ),
    setting!(
        "RLM_PYTHON",
        "python",
        None,
        "/usr/bin/python3",
        "the interpreter run inside the sandbox (must live under /usr for bwrap)",
        |c, v| {
            c.sandbox.python = PathBuf::from(v);
            Ok(())
        }
    ),
    setting!(
        "RLM_DOCKER",
        "docker",
        None,
        "docker",
        "the docker CLI for the Docker backend (`DOCKER_HOST` is honoured)",
        |c, v| {
            c.sandbox.docker = PathBuf::from(v);
            Ok(())
        }
    ),
    setting!(
        "RLM_DOCKER_IMAGE",
        "docker_image",
        None,
        "python:3.11-slim",
        "image for the Docker backend (never pulled implicitly)",
        |c, v| {
            c.sandbox.docker_image = v.to_string();
            Ok(())
        }
    ),
    setting!(
        "RLM_DOCKER_SHIP_CONTEXT",
        "docker_ship_context",
        None,
        "auto",
        "Docker: send context files over the container's stdin instead of bind mounts (`auto`: when DOCKER_HOST is a remote engine), `always`, `never`",
        |c, v| {
            c.sandbox.docker_ship_context = match v.to_ascii_lowercase().as_str() {
                "auto" => None,
                "always" | "1" | "true" => Some(true),
                "never" | "0" | "false" => Some(false),
                _ => return Err(format!("use auto, always or never, not {v:?}")),
            };
            Ok(())
        }
    ),
    setting!(
        "RLM_EXECUTION_TIMEOUT",
        "execution_timeout",
        None,
        "60s",
        "wall-clock limit per code block, sub-calls excluded; the sandbox is killed and restarted",
        |c, v| {
            c.sandbox.execution_timeout = duration(v)?;
            Ok(())
        }
    ),
    setting!(
        "RLM_MAX_CELL_WALL",
        "max_cell_wall",
        None,
        "1800s",
        "wall-clock limit per code block including the sub-calls it waits for",
        |c, v| {
            c.sandbox.max_cell_wall = duration(v)?;
            Ok(())
        }
    ),
    setting!(
        "RLM_MEMORY_LIMIT",
        "memory_limit",
        None,
        "1g",
        "address-space limit of the REPL (`512m`, `1.5g`, bytes)",
        |c, v| {
            c.sandbox.memory_bytes = size(v)?;
            Ok(())
        }
    ),
    setting!(
        "RLM_CPU_TIME_LIMIT",
        "cpu_time_limit",
        None,
        "600s",
        "CPU time of one sandbox",
        |c, v| {
            let d = duration(v)?;
            if d < Duration::from_secs(1) {
                return Err(format!(
                    "must be at least 1s (the kernel counts whole seconds), got {v:?}"
                ));
            }
            c.sandbox.cpu_time = d;
            Ok(())
        }
    ),
    setting!(
        "RLM_PIDS_LIMIT",
        "pids_limit",
        None,
        "64",
        "processes in the sandbox",
        |c, v| {
            c.sandbox.pids = positive(v)?;
            Ok(())
        }
    ),
    setting!(
        "RLM_CGROUPS",
        "cgroups",
        None,
        "auto",
        "per-sandbox cgroups (one memory limit for all the sandbox's processes, a process limit, a CPU quota): `auto` where the host allows them, `off`, or `required`",
        |c, v| {
            c.sandbox.cgroups = match v.to_ascii_lowercase().as_str() {
                "auto" => CgroupPolicy::Auto,
                "off" | "0" | "no" => CgroupPolicy::Off,
                "required" | "require" | "1" | "yes" => CgroupPolicy::Required,
                _ => return Err(format!("expected auto, off or required, got {v:?}")),
            };
            Ok(())
        }
    ),
    setting!(
        "RLM_CPU_QUOTA",
        "cpu_quota",
        None,
        "1",
        "CPU cores a sandbox may use at once (its cgroup's quota)",
        |c, v| {
            c.sandbox.cpus = float_in(v, 0.01, 1024.0)?;
            Ok(())
        }
    ),
    setting!(
        "RLM_FILE_SIZE_LIMIT",
        "file_size_limit",
        None,
        "64m",
        "largest file the code may write",
        |c, v| {
            c.sandbox.file_size_bytes = size(v)?;
            Ok(())
        }
    ),
    setting!(
        "RLM_OPEN_FILES_LIMIT",
        "open_files_limit",
        None,
        "256",
        "open file descriptors in the sandbox",
        |c, v| {
            c.sandbox.open_files = positive(v)?;
            Ok(())
        }
    ),
    setting!(
        "RLM_TMP_SIZE",
        "tmp_size",
        None,
        "64m",
        "size of the sandbox's private writable /tmp",
        |c, v| {
            c.sandbox.tmpfs_bytes = size(v)?;
            Ok(())
        }
    ),
    setting!(
        "RLM_NETWORK_ENABLED",
        "network_enabled",
        None,
        "0",
        "`1` shares the host network with the sandbox (off: no network at all)",
        |c, v| {
            c.sandbox.network_enabled = boolean(v)?;
            Ok(())
        }
    ),
    setting!(
        "RLM_INLINE_CONTEXT_LIMIT",
        "inline_context_limit",
        None,
        "64m",
        "contexts up to this size are also the string `context` in the REPL",
        |c, v| {
            c.sandbox.inline_context_bytes = size(v)?;
            Ok(())
        }
    ),
    setting!(
        "RLM_SANDBOX_POOL",
        "sandbox_pool",
        Some("--sandbox-pool"),
        "0",
        "sandboxes kept started and ready (bwrap): a run takes one instead of waiting for a start; never reused",
        |c, v| {
            let n = int(v)?;
            if n > 10_000 {
                return Err(format!("at most 10000, got {v:?}"));
            }
            c.sandbox.pool = n as usize;
            Ok(())
        }
    ),
    setting!(
        "RLM_SANDBOX_UID_BASE",
        "sandbox_uid_base",
        None,
        "61000",
        "first host uid leased to sandboxes when rlm runs as root",
        |c, v| {
            let n = u32::try_from(int(v)?).map_err(|_| format!("too large: {v:?}"))?;
            if n < 1000 {
                return Err(format!(
                    "must be at least 1000 (not a system uid), got {v:?}"
                ));
            }
            c.sandbox.host_uid = n;
            Ok(())
        }
    ),
    setting!(
        "RLM_UID_LOCK_DIR",
        "uid_lock_dir",
        None,
        "/run/rlm/uids",
        "directory of the machine-wide uid leases (shared by every rlm process on the machine)",
        |c, v| {
            c.sandbox.uid_lock_dir = PathBuf::from(v);
            Ok(())
        }
    ),
    setting!(
        "RLM_ENTROPY_THRESHOLD",
        "entropy_threshold",
        None,
        "4.5",
        "bits/char above which a long token is redacted",
        |c, v| {
            c.egress.entropy_threshold = float_in(v, 0.0, 8.0)?;
            Ok(())
        }
    ),
    setting!(
        "RLM_ALLOW_DIGESTS",
        "allow_digests",
        None,
        "1",
        "let hex digests and UUIDs through the entropy rule",
        |c, v| {
            c.egress.allow_digests = boolean(v)?;
            Ok(())
        }
    ),
    setting!(
        "RLM_RAISE_ON_LEAK",
        "raise_on_leak",
        None,
        "0",
        "`1` turns an egress finding into `Error::DataLeak` instead of a redaction",
        |c, v| {
            c.egress.raise_on_leak = boolean(v)?;
            Ok(())
        }
    ),
    setting!(
        "RLM_ECHO_MIN_BYTES",
        "echo_min_bytes",
        None,
        "4096",
        "a verbatim run of the context at least this long in an observation is cut (the root reads excerpts and results, not the context itself)",
        |c, v| {
            let n = size(v)?;
            if n < 64 {
                return Err(format!("must be at least 64 bytes, got {v:?}"));
            }
            c.egress.echo_min_bytes = n as usize;
            Ok(())
        }
    ),
    setting!(
        "RLM_MAX_STDOUT_BYTES",
        "max_output_bytes",
        None,
        "20000",
        "cap per output stream and observation (head and tail kept)",
        |c, v| {
            let n = size(v)?;
            if n < 256 {
                return Err(format!("must be at least 256 bytes, got {v:?}"));
            }
            c.sandbox.max_output_bytes = n as usize;
            c.egress.max_output_bytes = n as usize;
            Ok(())
        }
    ),
];

/// A setting as documented: its name, key, flag, default and meaning. See
/// [`known_settings`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SettingInfo {
    /// The environment variable, e.g. `RLM_MAX_DEPTH`.
    pub name: &'static str,
    /// The short key, e.g. `max_depth` (also accepted by `OrchestratorBuilder::setting`).
    pub key: &'static str,
    /// The `rlm run` flag, if any.
    pub flag: Option<&'static str>,
    /// The default.
    pub default: &'static str,
    /// What it does.
    pub help: &'static str,
}

/// Every setting [`OrchestratorBuilder::setting`](crate::OrchestratorBuilder::setting) and
/// the environment accept (the API key is read from the selected provider's variable,
/// `OPENAI_API_KEY`, `ANTHROPIC_API_KEY` or `GEMINI_API_KEY`, or given as `api_key`).
pub fn known_settings() -> Vec<SettingInfo> {
    SETTINGS
        .iter()
        .map(|s| SettingInfo {
            name: s.var,
            key: s.key,
            flag: s.flag,
            default: s.default,
            help: s.help,
        })
        .collect()
}

/// The key used for an API key given to the builder (never read from a flag: command lines
/// are visible to every user of the machine).
pub(crate) const API_KEY: &str = "api_key";

/// The setting called `name`: its environment variable, its key or its flag.
pub(crate) fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS
        .iter()
        .find(|s| s.var == name || s.key == name || s.flag == Some(name))
}

/// A value and where it came from (a builder call, a flag or an environment variable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sourced {
    pub(crate) value: String,
    pub(crate) origin: String,
}

/// Resolves every setting: `lookup(var)` returns the value of the variable `var` from the
/// highest-priority source that has one. Blank values count as unset.
pub(crate) fn resolve(lookup: impl Fn(&str) -> Option<Sourced>) -> Result<Config> {
    let mut c = Config::defaults();
    let get = |var: &str| lookup(var).filter(|s| !s.value.trim().is_empty());
    for s in SETTINGS {
        if let Some(v) = get(s.var) {
            (s.apply)(&mut c, v.value.trim()).map_err(|m| Error::config(v.origin.clone(), m))?;
            c.origins.insert(s.var, v.origin);
        }
    }
    let key_var = c.llm.provider.key_var();
    if let Some(k) = get(API_KEY).or_else(|| get(key_var)) {
        c.llm.api_key = Some(k.value.trim().to_string());
        c.origins.insert(key_var, k.origin);
    }
    resolve_sub(&mut c, &get)?;
    c.validate()?;
    Ok(c)
}

/// The key given to the builder for the sub-model.
pub(crate) const SUB_API_KEY: &str = "sub_api_key";

/// The environment variable holding the sub-model's key for a server of its own.
pub(crate) const SUB_API_KEY_VAR: &str = "RLM_SUB_API_KEY";

/// Completes the sub-model's connection from what was given: the provider (default: the
/// root's), the URL (the root's for the same provider, else the provider's public one) and
/// the key (the builder's `sub_api_key` or `RLM_SUB_API_KEY`, else the root's for the same
/// provider and URL, else the sub-provider's own variable, but only for that provider's own
/// public endpoint: a key is never sent to a server it was not given for).
fn resolve_sub(c: &mut Config, get: &impl Fn(&str) -> Option<Sourced>) -> Result<()> {
    let (provider, url) = c.sub_given.clone();
    let Some(sub) = c.sub.as_mut() else {
        if provider.is_some() || url.is_some() {
            let var = if provider.is_some() {
                "RLM_SUB_PROVIDER"
            } else {
                "RLM_SUB_BASE_URL"
            };
            let name = c.origins.get(var).cloned().unwrap_or(var.into());
            return Err(Error::config(
                name,
                "a sub-model connection needs the sub-model: set RLM_SUB_MODEL (or --sub-model)",
            ));
        }
        return Ok(());
    };
    let mut llm = c.llm.clone();
    llm.provider = provider.unwrap_or(c.llm.provider);
    llm.base_url = match (url, llm.provider == c.llm.provider) {
        (Some(u), _) => u,
        (None, true) => c.llm.base_url.clone(),
        (None, false) => llm.provider.default_base_url().into(),
    };
    llm.model = sub.models[0].clone();
    let same_endpoint = llm.provider == c.llm.provider && llm.base_url == c.llm.base_url;
    let own_endpoint =
        llm.base_url.trim_end_matches('/') == llm.provider.default_base_url().trim_end_matches('/');
    llm.api_key = match get(SUB_API_KEY).or_else(|| get(SUB_API_KEY_VAR)) {
        Some(k) => Some(k.value.trim().to_string()),
        None if same_endpoint => c.llm.api_key.clone(),
        None if own_endpoint => get(llm.provider.key_var()).map(|k| k.value.trim().to_string()),
        None => None,
    };
    sub.llm = llm;
    Ok(())
}

/// The process environment as a source.
pub(crate) fn env(var: &str) -> Option<Sourced> {
    std::env::var(var).ok().map(|value| Sourced {
        value,
        origin: var.to_string(),
    })
}

fn int(v: &str) -> std::result::Result<u64, String> {
    v.parse::<u64>()
        .map_err(|_| format!("expected a non-negative integer, got {v:?}"))
}

fn positive(v: &str) -> std::result::Result<u64, String> {
    match int(v) {
        Ok(0) | Err(_) => Err(format!("expected a positive integer, got {v:?}")),
        Ok(n) => Ok(n),
    }
}

fn float_in(v: &str, lo: f64, hi: f64) -> std::result::Result<f64, String> {
    let x = v
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| format!("expected a number, got {v:?}"))?;
    if x < lo || x > hi {
        return Err(if hi == f64::MAX {
            format!("must be >= {lo}, got {v:?}")
        } else {
            format!("must be within {lo}..={hi}, got {v:?}")
        });
    }
    Ok(x)
}

fn boolean(v: &str) -> std::result::Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!(
            "expected 1/0, true/false, yes/no or on/off, got {v:?}"
        )),
    }
}

/// `none`, `unlimited` or `off` for no limit, else the parsed value.
fn optional<T>(
    v: &str,
    parse: impl Fn(&str) -> std::result::Result<T, String>,
) -> std::result::Result<Option<T>, String> {
    match v.to_ascii_lowercase().as_str() {
        "none" | "unlimited" | "off" => Ok(None),
        _ => parse(v).map(Some),
    }
}

/// Seconds (`30`, `2.5`) or with a unit (`500ms`, `30s`, `5m`, `1h`).
pub(crate) fn duration(v: &str) -> std::result::Result<Duration, String> {
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
    let x: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("expected seconds (e.g. 30, 2.5, 500ms, 5m), got {v:?}"))?;
    if !x.is_finite() || x <= 0.0 || x * mult > 1e9 {
        return Err(format!("must be a positive duration, got {v:?}"));
    }
    Ok(Duration::from_secs_f64(x * mult))
}

/// Bytes, with optional unit: `1048576`, `512k`, `512m`, `512MB`, `1.5g`, `2GiB`.
pub(crate) fn size(v: &str) -> std::result::Result<u64, String> {
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
        format!("expected a size such as 536870912, 512m, 512MB or 1.5g, got {v:?}")
    })?;
    if !x.is_finite() || x <= 0.0 || x * mult as f64 >= u64::MAX as f64 {
        return Err(format!("must be a positive size, got {v:?}"));
    }
    Ok((x * mult as f64) as u64)
}

/// A duration as a setting value (milliseconds).
pub(crate) fn duration_text(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
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
        resolve(|k| {
            m.get(k).map(|v| Sourced {
                value: v.clone(),
                origin: k.to_string(),
            })
        })
    }

    #[test]
    fn defaults_and_overrides() {
        let c = env(&[]).unwrap();
        assert_eq!(c, Config::defaults());
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
            ("RLM_ALLOWED_MODELS", "a, b,,"),
        ])
        .unwrap();
        assert_eq!(c.llm.model, "qwen");
        assert_eq!(c.llm.base_url, "http://127.0.0.1:8080/v1");
        assert_eq!(c.llm.allowed_models, ["a", "b"]);
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
        assert_eq!(c.origin("RLM_LLM_MODEL"), Some("RLM_LLM_MODEL"));
        assert_eq!(c.origin("RLM_PIDS_LIMIT"), Some("RLM_PIDS_LIMIT"));
        assert_eq!(c.origin("RLM_MAX_DEPTH"), None);
        assert!(
            !format!("{:?}", c.llm).contains("sk-test"),
            "Debug must mask the key"
        );
        let c = env(&[("RLM_RUN_TIMEOUT", "none")]).unwrap();
        assert_eq!(c.limits.run_timeout, None);
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
            ("RLM_PROMPT_MODE", "chatty"),
            ("RLM_SANDBOX_UID_BASE", "0"),
            ("RLM_EXECUTION_TIMEOUT", "1e300"),
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
    fn sub_model_connection_and_key() {
        // Same provider and URL: the root's key.
        let c = env(&[
            ("OPENAI_API_KEY", "root-k"),
            ("RLM_SUB_MODEL", "gpt-4o-mini"),
        ])
        .unwrap();
        let sub = c.sub.unwrap();
        assert_eq!(sub.models, ["gpt-4o-mini"]);
        assert_eq!(sub.llm.model, "gpt-4o-mini");
        assert_eq!(sub.llm.api_key.as_deref(), Some("root-k"));
        // Another provider: its URL and only its own variable's key.
        let c = env(&[
            ("RLM_LLM_PROVIDER", "anthropic"),
            ("ANTHROPIC_API_KEY", "ant-k"),
            ("OPENAI_API_KEY", "oai-k"),
            ("RLM_SUB_MODEL", "a, b"),
            ("RLM_SUB_PROVIDER", "gemini"),
        ])
        .unwrap();
        let sub = c.sub.unwrap();
        assert_eq!(sub.models, ["a", "b"]);
        assert_eq!(sub.llm.provider, Provider::Gemini);
        assert_eq!(sub.llm.base_url, Provider::Gemini.default_base_url());
        assert_eq!(sub.llm.api_key, None, "never another provider's key");
        assert!(!format!("{:?}", c.llm).contains("ant-k"));
        // Same provider, another server: never the provider's key (it is the root's, or
        // someone else's); only a key given for that server.
        let c = env(&[
            ("OPENAI_API_KEY", "root-k"),
            ("RLM_SUB_MODEL", "m"),
            ("RLM_SUB_BASE_URL", "http://127.0.0.1:9/v1"),
        ])
        .unwrap();
        assert_eq!(
            c.sub.as_ref().unwrap().llm.base_url,
            "http://127.0.0.1:9/v1"
        );
        assert_eq!(
            c.sub.unwrap().llm.api_key,
            None,
            "no key for another server"
        );
        let c = env(&[
            ("OPENAI_API_KEY", "root-k"),
            ("RLM_SUB_MODEL", "m"),
            ("RLM_SUB_BASE_URL", "http://127.0.0.1:9/v1"),
            ("RLM_SUB_API_KEY", "sub-k"),
        ])
        .unwrap();
        assert_eq!(c.sub.unwrap().llm.api_key.as_deref(), Some("sub-k"));
        // Another provider at its public endpoint: that provider's own variable.
        let c = env(&[
            ("OPENAI_API_KEY", "root-k"),
            ("ANTHROPIC_API_KEY", "ant-k"),
            ("RLM_SUB_MODEL", "m"),
            ("RLM_SUB_PROVIDER", "anthropic"),
        ])
        .unwrap();
        assert_eq!(c.sub.unwrap().llm.api_key.as_deref(), Some("ant-k"));
        for (k, v) in [
            ("RLM_SUB_PROVIDER", "gemini"),
            ("RLM_SUB_BASE_URL", "http://x/v1"),
        ] {
            let e = env(&[(k, v)]).unwrap_err().to_string();
            assert!(e.contains(k) && e.contains("RLM_SUB_MODEL"), "{e}");
        }
        let e = env(&[("RLM_SUB_PROVIDER", "cohere"), ("RLM_SUB_MODEL", "m")]).unwrap_err();
        assert!(e.to_string().contains("RLM_SUB_PROVIDER"), "{e}");
        assert!(env(&[("RLM_SUB_MODEL", " , ")]).is_err());
    }

    #[test]
    fn names_keys_and_flags_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for s in SETTINGS {
            assert!(s.var.starts_with("RLM_"), "{}", s.var);
            for n in [Some(s.var), Some(s.key), s.flag].into_iter().flatten() {
                assert!(seen.insert(n), "{n} is used twice");
            }
            assert!(find(s.var).is_some() && find(s.key).is_some());
        }
        assert!(find("--provider").is_some_and(|s| s.var == "RLM_LLM_PROVIDER"));
    }

    #[test]
    fn the_readme_documents_every_setting() {
        let readme = include_str!("../README.md");
        for s in SETTINGS {
            assert!(
                readme.contains(&format!("| `{}` | `{}` |", s.var, s.key)),
                "README's configuration table lacks {}",
                s.var
            );
        }
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(size("512m").unwrap(), 512 << 20);
        assert_eq!(size("512MB").unwrap(), 512 << 20);
        assert_eq!(size("2GiB").unwrap(), 2 << 30);
        assert_eq!(size("1000").unwrap(), 1000);
        assert!(size("-5").is_err());
        assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(
            duration(&duration_text(Duration::from_millis(1500))).unwrap(),
            Duration::from_millis(1500)
        );
    }
}
