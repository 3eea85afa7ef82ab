//! The public entry point: [`Orchestrator`] and its builder.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, Limits, PromptMode, Provider, SandboxKind};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::events::EventStream;
use crate::llm::{HttpClient, LanguageModel, PriceTable};
use crate::log::TrajectoryLog;
use crate::result::RunResult;
use crate::run::{self, Shared};
use crate::runtime;
use crate::sandbox::{self, Sandbox};
use crate::settings::{self, Sourced};
use crate::tools::{Tool, Toolbox};

/// Runs recursive-language-model tasks. Cheap to clone (`Arc` inside), `Send + Sync`; one
/// instance serves any number of concurrent runs, each with its own history, budget, sandbox
/// session and egress filter.
///
/// ```no_run
/// let orch = rlm::Orchestrator::from_env()?;
/// let result = orch.run_with_context("How many lines mention ERROR?", rlm::Context::file("app.log"));
/// println!("{}", result.final_answer.unwrap_or_default());
/// # Ok::<(), rlm::Error>(())
/// ```
#[derive(Clone)]
pub struct Orchestrator {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator")
            .field("model", &self.shared.llm.model())
            .field("sandbox", &self.shared.sandbox.kind())
            .finish_non_exhaustive()
    }
}

/// A run in progress with its event stream and a way to cancel it; see
/// [`Orchestrator::arun_observed`].
#[derive(Debug)]
#[non_exhaustive]
pub struct ObservedRun<F> {
    /// Events in order; the stream ends when the run ends.
    pub events: EventStream,
    /// The run itself: await it (or spawn it) to drive it.
    pub result: F,
    /// Cancels the run.
    pub cancel: CancelHandle,
}

/// Cancels one run: its sandboxes (and those of its child runs) are killed and it ends with
/// [`Error::Cancelled`]. Cloneable; cancelling a finished run does nothing.
#[derive(Debug, Clone)]
pub struct CancelHandle {
    tx: async_channel::Sender<()>,
}

impl<F> ObservedRun<F> {
    /// A run's events channel and cancel signal, handed to `make`, which returns the run.
    pub(crate) fn start(
        make: impl FnOnce(async_channel::Sender<crate::RunEvent>, async_channel::Receiver<()>) -> F,
    ) -> ObservedRun<F> {
        let (tx, rx) = async_channel::unbounded();
        let (cancel, signal) = CancelHandle::new();
        ObservedRun {
            events: EventStream::new(rx),
            result: make(tx, signal),
            cancel,
        }
    }
}

impl CancelHandle {
    /// A handle and the signal the run waits on.
    pub(crate) fn new() -> (CancelHandle, async_channel::Receiver<()>) {
        let (tx, rx) = async_channel::bounded(1);
        (CancelHandle { tx }, rx)
    }

    /// Requests cancellation; the run ends at its next await point.
    pub fn cancel(&self) {
        let _ = self.tx.try_send(());
    }
}

impl Orchestrator {
    /// A builder starting from the defaults (the environment is read only after
    /// [`OrchestratorBuilder::env`]).
    pub fn builder() -> OrchestratorBuilder {
        OrchestratorBuilder {
            explicit: BTreeMap::new(),
            errors: Vec::new(),
            use_env: false,
            llm: None,
            sub_llm: None,
            sandbox: None,
            prices: PriceTable::default(),
            trajectory: None,
            tools: Toolbox::default(),
        }
    }

    /// Builds an orchestrator from the environment variables documented in the README
    /// (`RLM_LLM_PROVIDER`, `RLM_LLM_MODEL`, `OPENAI_API_KEY`, ...).
    pub fn from_env() -> Result<Orchestrator> {
        Orchestrator::builder().env().build()
    }

    /// The settings in use.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The same orchestrator (model, sandbox, settings) writing its runs' trajectories to
    /// `log` instead (e.g. one file per task of an evaluation).
    pub fn with_trajectory(&self, log: TrajectoryLog) -> Orchestrator {
        let s = &self.shared;
        Orchestrator {
            shared: Arc::new(Shared {
                config: s.config.clone(),
                llm: s.llm.clone(),
                sub_llm: s.sub_llm.clone(),
                sandbox: s.sandbox.clone(),
                prices: s.prices.clone(),
                trajectory: Some(Arc::new(log)),
                known_secrets: s.known_secrets.clone(),
                tools: s.tools.clone(),
            }),
        }
    }

    /// The same orchestrator (model, sandbox, settings, trajectory) with `limits` for its
    /// runs instead: per-request limits of a service, checked against the service's own
    /// maxima by the caller. Shares the LLM client and the sandbox; cheap.
    pub fn with_limits(&self, limits: Limits) -> Orchestrator {
        let mut config = self.shared.config.clone();
        config.limits = limits;
        self.with_config(config)
    }

    /// The same orchestrator with another answer schema (or none) for its runs: typed
    /// answers per request. Shares the LLM clients and the sandbox; cheap.
    pub fn with_answer_schema(&self, schema: Option<crate::Schema>) -> Orchestrator {
        let mut config = self.shared.config.clone();
        config.answer_schema = schema;
        self.with_config(config)
    }

    fn with_config(&self, config: Config) -> Orchestrator {
        let s = &self.shared;
        Orchestrator {
            shared: Arc::new(Shared {
                config,
                llm: s.llm.clone(),
                sub_llm: s.sub_llm.clone(),
                sandbox: s.sandbox.clone(),
                prices: s.prices.clone(),
                trajectory: s.trajectory.clone(),
                known_secrets: s.known_secrets.clone(),
                tools: s.tools.clone(),
            }),
        }
    }

    /// Runs `query` without context. The future is `Send + 'static`: await it on any executor
    /// or spawn it. Dropping it cancels the run and kills its sandboxes.
    pub fn arun(
        &self,
        query: impl Into<String>,
    ) -> impl Future<Output = RunResult> + Send + 'static {
        run::execute(self.shared.clone(), query.into(), None, None, None)
    }

    /// Runs `query` over `context` (a file path, text, or a list of documents).
    pub fn arun_with_context(
        &self,
        query: impl Into<String>,
        context: impl Into<Context>,
    ) -> impl Future<Output = RunResult> + Send + 'static {
        run::execute(
            self.shared.clone(),
            query.into(),
            Some(context.into()),
            None,
            None,
        )
    }

    /// Like [`arun_with_context`](Self::arun_with_context), plus the run's [`RunEvent`]s
    /// while it happens (for progress displays or streaming to clients) and a
    /// [`CancelHandle`].
    ///
    /// [`RunEvent`]: crate::RunEvent
    pub fn arun_observed(
        &self,
        query: impl Into<String>,
        context: Option<Context>,
    ) -> ObservedRun<impl Future<Output = RunResult> + Send + 'static> {
        let (shared, query) = (self.shared.clone(), query.into());
        ObservedRun::start(|events, cancel| {
            run::execute(shared, query, context, Some(events), Some(cancel))
        })
    }

    /// A session: several questions, one after the other, to one REPL that keeps its
    /// variables, every context given so far and the conversation (see [`Session`](crate::Session)).
    /// Starts nothing until its first call.
    pub fn session(&self) -> crate::Session {
        crate::session::Session::new(self.shared.clone())
    }

    /// Blocking [`arun`](Self::arun). Safe to call from inside a running executor (it blocks
    /// that thread; from async code prefer `arun`).
    pub fn run(&self, query: impl Into<String>) -> RunResult {
        runtime::block_on(self.arun(query))
    }

    /// Blocking [`arun_with_context`](Self::arun_with_context).
    pub fn run_with_context(
        &self,
        query: impl Into<String>,
        context: impl Into<Context>,
    ) -> RunResult {
        runtime::block_on(self.arun_with_context(query, context))
    }
}

/// Configures an [`Orchestrator`]: the one way to set anything.
///
/// Every setting has a name (its environment variable, e.g. `RLM_MAX_ITERATIONS`), a short
/// key (`max_iterations`) and often a typed method ([`max_iterations`](Self::max_iterations)).
/// Values given to the builder (typed methods or [`setting`](Self::setting)) win over the
/// environment (read only after [`env`](Self::env)), which wins over the defaults; each value
/// is validated once, in [`build`](Self::build), and errors name where the bad value came
/// from.
#[must_use]
pub struct OrchestratorBuilder {
    explicit: BTreeMap<&'static str, Sourced>,
    errors: Vec<Error>,
    use_env: bool,
    llm: Option<Arc<dyn LanguageModel>>,
    sub_llm: Option<Arc<dyn LanguageModel>>,
    sandbox: Option<Arc<dyn Sandbox>>,
    prices: PriceTable,
    trajectory: Option<Arc<TrajectoryLog>>,
    tools: Toolbox,
}

/// Settings by name with where they came from; the API keys' values are never shown.
impl std::fmt::Debug for OrchestratorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let settings: BTreeMap<&str, String> = self
            .explicit
            .iter()
            .map(|(k, v)| {
                let shown = if *k == settings::API_KEY || *k == settings::SUB_API_KEY {
                    "[set]".to_string()
                } else {
                    v.value.clone()
                };
                (*k, format!("{shown} ({})", v.origin))
            })
            .collect();
        f.debug_struct("OrchestratorBuilder")
            .field("settings", &settings)
            .field("errors", &self.errors)
            .field("use_env", &self.use_env)
            .field("custom_llm", &self.llm.is_some())
            .field("custom_sub_llm", &self.sub_llm.is_some())
            .field("custom_sandbox", &self.sandbox.is_some())
            .field("tools", &self.tools)
            .finish_non_exhaustive()
    }
}

impl OrchestratorBuilder {
    /// Registers a host tool: the REPL gets a Python function of that name, and the system
    /// prompt lists it (see [`Tool`]). Child runs get the same tools unless
    /// [`child_tools`](Self::child_tools) says otherwise. Two tools with one name are an
    /// error in [`build`](Self::build).
    pub fn tool(mut self, tool: Tool) -> Self {
        self.tools.root.push(tool);
        self
    }

    /// The tools of child runs (`rlm_query`), instead of the root's; empty for none.
    pub fn child_tools(mut self, tools: impl IntoIterator<Item = Tool>) -> Self {
        self.tools.children = Some(tools.into_iter().collect());
        self
    }

    /// Also reads the environment variables documented in the README, for every setting not
    /// given to the builder.
    pub fn env(mut self) -> Self {
        self.use_env = true;
        self
    }

    /// Sets the setting `name` (an environment variable name such as `RLM_MAX_DEPTH`, a key
    /// such as `max_depth`, or an `rlm run` flag such as `--max-depth`) from text, exactly as
    /// if it came from the environment. Errors (an unknown name, a bad value) surface in
    /// [`build`](Self::build) and name `name`.
    pub fn setting(self, name: &str, value: impl Into<String>) -> Self {
        self.setting_from(name, value, name)
    }

    /// Like [`setting`](Self::setting), but errors about the value name `source` (the
    /// command-line flag, form field or keyword argument it came from).
    pub fn setting_from(mut self, name: &str, value: impl Into<String>, source: &str) -> Self {
        let value = value.into();
        if name == settings::API_KEY || name == settings::SUB_API_KEY {
            let key = if name == settings::API_KEY {
                settings::API_KEY
            } else {
                settings::SUB_API_KEY
            };
            self.explicit.insert(
                key,
                Sourced {
                    value,
                    origin: source.to_string(),
                },
            );
            return self;
        }
        match settings::find(name) {
            Some(s) => {
                self.explicit.insert(
                    s.var,
                    Sourced {
                        value,
                        origin: source.to_string(),
                    },
                );
            }
            None => self.errors.push(Error::config(
                name,
                format!(
                    "unknown setting; known settings are {}, {}, {}",
                    settings::SETTINGS
                        .iter()
                        .map(|s| s.key)
                        .collect::<Vec<_>>()
                        .join(", "),
                    settings::API_KEY,
                    settings::SUB_API_KEY
                ),
            )),
        }
        self
    }

    fn set(mut self, var: &'static str, method: &str, value: String) -> Self {
        self.explicit.insert(
            var,
            Sourced {
                value,
                origin: format!("OrchestratorBuilder::{method}"),
            },
        );
        self
    }

    /// Uses this language model instead of the configured provider.
    pub fn llm(mut self, llm: impl LanguageModel + 'static) -> Self {
        self.llm = Some(Arc::new(llm));
        self
    }

    /// Uses a shared language model.
    pub fn llm_arc(mut self, llm: Arc<dyn LanguageModel>) -> Self {
        self.llm = Some(llm);
        self
    }

    /// The sub-model for `llm_query` and child runs below the root (`RLM_SUB_MODEL`); a
    /// comma-separated list gives one model per depth, the last serving deeper levels.
    pub fn sub_model(self, model: impl Into<String>) -> Self {
        self.set("RLM_SUB_MODEL", "sub_model", model.into())
    }

    /// The sub-model's provider (`RLM_SUB_PROVIDER`; default: the root's). Its key is read
    /// from that provider's variable only, unless given with
    /// [`sub_api_key`](Self::sub_api_key).
    pub fn sub_provider(self, provider: Provider) -> Self {
        self.set("RLM_SUB_PROVIDER", "sub_provider", provider.as_str().into())
    }

    /// The sub-model's server (`RLM_SUB_BASE_URL`).
    pub fn sub_base_url(self, url: impl Into<String>) -> Self {
        self.set("RLM_SUB_BASE_URL", "sub_base_url", url.into())
    }

    /// The sub-model's API key (else the sub-provider's variable, or the root's key when the
    /// sub-model uses the root's provider and URL).
    pub fn sub_api_key(mut self, key: impl Into<String>) -> Self {
        self.explicit.insert(
            settings::SUB_API_KEY,
            Sourced {
                value: key.into(),
                origin: "OrchestratorBuilder::sub_api_key".into(),
            },
        );
        self
    }

    /// Uses this language model for sub-calls and child runs instead of a client for the
    /// configured sub-model connection (the model names still come from `RLM_SUB_MODEL`,
    /// which must be set).
    pub fn sub_llm(mut self, llm: impl LanguageModel + 'static) -> Self {
        self.sub_llm = Some(Arc::new(llm));
        self
    }

    /// A JSON Schema the final answer must match (`RLM_ANSWER_SCHEMA`, `--schema FILE`):
    /// validated on the host, an invalid answer goes back to the model with the errors, and
    /// [`RunResult::answer_json`] carries the value.
    pub fn answer_schema(self, schema: crate::Schema) -> Self {
        self.set(
            "RLM_ANSWER_SCHEMA",
            "answer_schema",
            schema.as_json().to_string(),
        )
    }

    /// Uses this sandbox instead of the configured one.
    pub fn sandbox(mut self, sandbox: impl Sandbox + 'static) -> Self {
        self.sandbox = Some(Arc::new(sandbox));
        self
    }

    /// LLM provider (`RLM_LLM_PROVIDER`). The base URL, the model and the key variable follow
    /// the provider unless they are set explicitly.
    pub fn provider(self, provider: Provider) -> Self {
        self.set("RLM_LLM_PROVIDER", "provider", provider.as_str().into())
    }

    /// Model name (`RLM_LLM_MODEL`).
    pub fn model(self, model: impl Into<String>) -> Self {
        self.set("RLM_LLM_MODEL", "model", model.into())
    }

    /// Base URL of the provider or of an OpenAI-compatible server (`RLM_LLM_BASE_URL`).
    pub fn base_url(self, url: impl Into<String>) -> Self {
        self.set("RLM_LLM_BASE_URL", "base_url", url.into())
    }

    /// API key (else the selected provider's variable: `OPENAI_API_KEY`,
    /// `ANTHROPIC_API_KEY` or `GEMINI_API_KEY`).
    pub fn api_key(self, key: impl Into<String>) -> Self {
        self.setting(settings::API_KEY, key)
    }

    /// Sampling temperature (`RLM_LLM_TEMPERATURE`).
    pub fn temperature(self, t: f32) -> Self {
        self.set("RLM_LLM_TEMPERATURE", "temperature", t.to_string())
    }

    /// Timeout of one LLM HTTP call (`RLM_LLM_TIMEOUT`).
    pub fn request_timeout(self, d: Duration) -> Self {
        self.set(
            "RLM_LLM_TIMEOUT",
            "request_timeout",
            settings::duration_text(d),
        )
    }

    /// Attempts per LLM call for retryable failures (`RLM_LLM_MAX_ATTEMPTS`).
    pub fn max_attempts(self, n: u32) -> Self {
        self.set("RLM_LLM_MAX_ATTEMPTS", "max_attempts", n.to_string())
    }

    /// LLM requests in flight at once across all runs (`RLM_LLM_MAX_IN_FLIGHT`).
    pub fn max_in_flight(self, n: usize) -> Self {
        self.set("RLM_LLM_MAX_IN_FLIGHT", "max_in_flight", n.to_string())
    }

    /// Maximum LLM turns per run (`RLM_MAX_ITERATIONS`).
    pub fn max_iterations(self, n: u32) -> Self {
        self.set("RLM_MAX_ITERATIONS", "max_iterations", n.to_string())
    }

    /// Maximum recursion depth (`RLM_MAX_DEPTH`).
    pub fn max_depth(self, n: u32) -> Self {
        self.set("RLM_MAX_DEPTH", "max_depth", n.to_string())
    }

    /// Spending limit per tree of runs in USD (`RLM_COST_LIMIT_USD`).
    pub fn max_cost_usd(self, usd: f64) -> Self {
        self.set("RLM_COST_LIMIT_USD", "max_cost_usd", usd.to_string())
    }

    /// Token limit per tree of runs (`RLM_MAX_TOKENS`).
    pub fn max_tokens(self, tokens: u64) -> Self {
        self.set("RLM_MAX_TOKENS", "max_tokens", tokens.to_string())
    }

    /// LLM call limit per tree of runs (`RLM_MAX_LLM_CALLS`).
    pub fn max_llm_calls(self, calls: u32) -> Self {
        self.set("RLM_MAX_LLM_CALLS", "max_llm_calls", calls.to_string())
    }

    /// Wall-clock limit per run (`RLM_RUN_TIMEOUT`); `None` for unlimited.
    pub fn run_timeout(self, d: Option<Duration>) -> Self {
        let v = d.map_or_else(|| "none".to_string(), settings::duration_text);
        self.set("RLM_RUN_TIMEOUT", "run_timeout", v)
    }

    /// Wall-clock limit per code block, sub-calls excluded (`RLM_EXECUTION_TIMEOUT`).
    pub fn execution_timeout(self, d: Duration) -> Self {
        self.set(
            "RLM_EXECUTION_TIMEOUT",
            "execution_timeout",
            settings::duration_text(d),
        )
    }

    /// Memory limit of the REPL in bytes (`RLM_MEMORY_LIMIT`).
    pub fn memory_limit(self, bytes: u64) -> Self {
        self.set("RLM_MEMORY_LIMIT", "memory_limit", bytes.to_string())
    }

    /// Explicitly allow running without the backend's full isolation
    /// (`RLM_ALLOW_UNSAFE_RUNTIME`).
    pub fn allow_unsafe_runtime(self, allow: bool) -> Self {
        self.set(
            "RLM_ALLOW_UNSAFE_RUNTIME",
            "allow_unsafe_runtime",
            u8::from(allow).to_string(),
        )
    }

    /// Sandbox backend (`RLM_SANDBOX`). [`SandboxKind::Custom`] is not a backend rlm can
    /// start: pass your sandbox with [`sandbox`](Self::sandbox) instead.
    pub fn sandbox_kind(self, kind: SandboxKind) -> Self {
        self.set("RLM_SANDBOX", "sandbox_kind", kind.as_str().into())
    }

    /// Turn egress findings into [`Error::DataLeak`] instead of redactions
    /// (`RLM_RAISE_ON_LEAK`).
    pub fn raise_on_leak(self, raise: bool) -> Self {
        self.set(
            "RLM_RAISE_ON_LEAK",
            "raise_on_leak",
            u8::from(raise).to_string(),
        )
    }

    /// Output cap per stream and observation (`RLM_MAX_STDOUT_BYTES`).
    pub fn max_output_bytes(self, bytes: usize) -> Self {
        self.set(
            "RLM_MAX_STDOUT_BYTES",
            "max_output_bytes",
            bytes.to_string(),
        )
    }

    /// System prompt mode (`RLM_PROMPT_MODE`).
    pub fn prompt_mode(self, mode: PromptMode) -> Self {
        let v = match mode {
            PromptMode::Compact => "compact",
            PromptMode::Frontier => "frontier",
            _ => "auto",
        };
        self.set("RLM_PROMPT_MODE", "prompt_mode", v.into())
    }

    /// Extra instructions appended to the system prompt (`RLM_CUSTOM_INSTRUCTIONS`).
    pub fn custom_instructions(self, text: impl Into<String>) -> Self {
        self.set(
            "RLM_CUSTOM_INSTRUCTIONS",
            "custom_instructions",
            text.into(),
        )
    }

    /// Models the REPL may request with `llm_query(prompt, model=...)` besides the main one
    /// (`RLM_ALLOWED_MODELS`).
    pub fn allowed_models<I, S>(self, models: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let list: Vec<String> = models.into_iter().map(Into::into).collect();
        self.set("RLM_ALLOWED_MODELS", "allowed_models", list.join(","))
    }

    /// Sub-calls in flight at once per tree of runs (`RLM_MAX_CONCURRENT_SUBCALLS`).
    pub fn max_concurrent_subcalls(self, n: usize) -> Self {
        self.set(
            "RLM_MAX_CONCURRENT_SUBCALLS",
            "max_concurrent_subcalls",
            n.to_string(),
        )
    }

    /// Writes every run's trajectory (JSON Lines, schema in [`crate::trajectory`]) to `log`.
    pub fn trajectory(mut self, log: TrajectoryLog) -> Self {
        self.trajectory = Some(Arc::new(log));
        self
    }

    /// Replaces the price table used for cost accounting.
    pub fn prices(mut self, prices: PriceTable) -> Self {
        self.prices = prices;
        self
    }

    /// The settings this builder resolves to (validated), without building anything.
    pub fn resolve(&self) -> Result<Config> {
        if let Some(e) = self.errors.first() {
            return Err(e.clone());
        }
        let env = self.use_env;
        settings::resolve(|var| {
            self.explicit.get(var).cloned().or_else(|| {
                // The key is read from the provider's variable, never from `api_key`.
                (env && var != settings::API_KEY && var != settings::SUB_API_KEY)
                    .then(|| settings::env(var))
                    .flatten()
            })
        })
    }

    /// Validates the settings and builds the orchestrator. Starts nothing: sandboxes start
    /// per run.
    pub fn build(self) -> Result<Orchestrator> {
        let mut config = self.resolve()?;
        self.tools.check()?;
        let llm = match self.llm {
            Some(l) => l,
            None => {
                let c = &config.llm;
                if c.api_key.is_none() && !is_local(&c.base_url) {
                    let var = c.provider.key_var();
                    return Err(Error::config(
                        var,
                        format!(
                            "no API key for the {} provider at {}; set {var}, or point RLM_LLM_BASE_URL at a \
                             local server (e.g. http://127.0.0.1:8080/v1)",
                            c.provider.as_str(),
                            c.base_url
                        ),
                    ));
                }
                Arc::new(HttpClient::new(c))
            }
        };
        let sub_llm = match (self.sub_llm, &config.sub) {
            (Some(l), Some(_)) => Some(l),
            (Some(_), None) => {
                return Err(Error::config(
                    "OrchestratorBuilder::sub_llm",
                    "a sub-model client needs the sub-model names: set RLM_SUB_MODEL (or sub_model)",
                ));
            }
            (None, Some(sub)) => {
                let c = &sub.llm;
                if c.api_key.is_none() && !is_local(&c.base_url) {
                    let var = c.provider.key_var();
                    return Err(Error::config(
                        var,
                        format!(
                            "no API key for the sub-model's {} provider at {}; set {var}, or point \
                             RLM_SUB_BASE_URL at a local server",
                            c.provider.as_str(),
                            c.base_url
                        ),
                    ));
                }
                Some(Arc::new(HttpClient::new(c)) as Arc<dyn LanguageModel>)
            }
            (None, None) => None,
        };
        let sandbox = match self.sandbox {
            Some(s) => s,
            None => sandbox::from_config(&config.sandbox)?,
        };
        // Values that must never reach a provider: the key, and secret-looking variables of
        // this process's environment.
        let mut known_secrets: Vec<Vec<u8>> = config
            .llm
            .api_key
            .iter()
            .chain(config.sub.iter().filter_map(|s| s.llm.api_key.as_ref()))
            .map(|k| k.as_bytes().to_vec())
            .collect();
        known_secrets.extend(secret_env_values());
        // What `config()` reports is what runs.
        config.llm.model = llm.model().to_string();
        config.sandbox.kind = sandbox.kind();
        Ok(Orchestrator {
            shared: Arc::new(Shared {
                config,
                llm,
                sub_llm,
                sandbox,
                prices: self.prices,
                trajectory: self.trajectory,
                known_secrets,
                tools: Arc::new(self.tools),
            }),
        })
    }
}

/// Values of environment variables whose names say they hold secrets (`*_KEY`, `*TOKEN*`,
/// `*SECRET*`, `*PASSWORD*`, `*PASSWD*`, `*CREDENTIAL*`, `*_AUTH*`), at least 8 bytes long.
fn secret_env_values() -> Vec<Vec<u8>> {
    std::env::vars_os()
        .filter_map(|(k, v)| {
            let k = k.to_string_lossy().to_ascii_uppercase();
            let secret = k.ends_with("_KEY")
                || [
                    "TOKEN",
                    "SECRET",
                    "PASSWORD",
                    "PASSWD",
                    "CREDENTIAL",
                    "_AUTH",
                ]
                .iter()
                .any(|w| k.contains(w));
            let v = v.into_encoded_bytes();
            (secret && v.len() >= 8).then_some(v)
        })
        .collect()
}

/// True for loopback URLs (which need no API key).
pub(crate) fn is_local(url: &str) -> bool {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let host = rest.split(['/', ':']).next().unwrap_or("");
    host == "localhost" || host.starts_with("127.") || rest.starts_with("[::1]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_required_for_remote_only() {
        let err = Orchestrator::builder().build().unwrap_err();
        assert!(err.to_string().contains("OPENAI_API_KEY"), "{err}");
        let err = Orchestrator::builder()
            .provider(Provider::Gemini)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("GEMINI_API_KEY"), "{err}");
        assert!(
            Orchestrator::builder()
                .base_url("http://127.0.0.1:9/v1")
                .build()
                .is_ok()
        );
        assert!(
            Orchestrator::builder()
                .base_url("http://localhost:9/v1")
                .build()
                .is_ok()
        );
        let o = Orchestrator::builder()
            .api_key("sk-secretsecretsecretsecret")
            .build()
            .unwrap();
        assert!(!format!("{o:?}").contains("secret"));
        assert!(is_local("http://[::1]:8080/v1"));
        assert!(!is_local("https://api.openai.com/v1"));
    }

    #[test]
    fn builder_values_win_and_errors_name_their_source() {
        let b = Orchestrator::builder()
            .setting("--max-iterations", "0")
            .base_url("http://127.0.0.1:9/v1");
        let err = b.build().unwrap_err();
        assert!(err.to_string().contains("--max-iterations"), "{err}");
        let err = Orchestrator::builder()
            .setting("no_such_thing", "1")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("no_such_thing"), "{err}");
        assert!(
            err.to_string()
                .ends_with("max_output_bytes, api_key, sub_api_key"),
            "the keys the builder also accepts: {err}"
        );
        let c = Orchestrator::builder()
            .provider(Provider::Anthropic)
            .max_depth(3)
            .setting("max_depth", "2")
            .resolve()
            .unwrap();
        assert_eq!(c.limits.max_depth, 2, "the later value wins");
        assert_eq!(c.llm.base_url, Provider::Anthropic.default_base_url());
        assert_eq!(c.origin("RLM_MAX_DEPTH"), Some("max_depth"));
        assert_eq!(
            c.origin("RLM_LLM_PROVIDER"),
            Some("OrchestratorBuilder::provider")
        );
    }

    #[test]
    fn with_limits_changes_only_the_limits() {
        let o = Orchestrator::builder()
            .base_url("http://127.0.0.1:9/v1")
            .max_iterations(7)
            .build()
            .unwrap();
        let mut l = o.config().limits.clone();
        l.max_iterations = 3;
        let v = o.with_limits(l);
        assert_eq!(v.config().limits.max_iterations, 3);
        assert_eq!(o.config().limits.max_iterations, 7);
        assert_eq!(v.config().llm, o.config().llm);
    }

    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}

    #[test]
    fn orchestrator_is_send_sync() {
        assert_send_sync::<Orchestrator>();
    }
}
