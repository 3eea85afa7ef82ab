//! The public entry point: [`Orchestrator`] and its builder.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, PromptMode, Provider, SandboxKind};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::events::RunEvent;
use crate::llm::{HttpClient, LanguageModel, PriceTable};
use crate::log::TrajectoryLog;
use crate::result::RunResult;
use crate::run::{self, Shared};
use crate::runtime;
use crate::sandbox::{self, Sandbox};

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
            .field("sandbox", &self.shared.sandbox.backend())
            .finish_non_exhaustive()
    }
}

/// A run in progress with its event stream; see [`Orchestrator::arun_observed`].
#[derive(Debug)]
pub struct ObservedRun<F> {
    /// Events in order; the channel closes when the run ends.
    pub events: async_channel::Receiver<RunEvent>,
    /// The run itself: await it (or spawn it) to drive it.
    pub result: F,
}

impl Orchestrator {
    /// A builder starting from default settings.
    pub fn builder() -> OrchestratorBuilder {
        OrchestratorBuilder {
            config: Config::default(),
            llm: None,
            sandbox: None,
            prices: PriceTable::default(),
            trajectory: None,
        }
    }

    /// Builds an orchestrator from the environment variables documented in the README
    /// (`RLM_LLM_PROVIDER`, `RLM_LLM_MODEL`, `OPENAI_API_KEY`, ...).
    pub fn from_env() -> Result<Orchestrator> {
        Orchestrator::builder().env()?.build()
    }

    /// The settings in use.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Runs `query` without context. The future is `Send + 'static`: await it on any executor
    /// or spawn it.
    pub fn arun(
        &self,
        query: impl Into<String>,
    ) -> impl Future<Output = RunResult> + Send + 'static {
        run::execute(self.shared.clone(), query.into(), None, None)
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
        )
    }

    /// Like [`arun_with_context`](Self::arun_with_context), plus a channel of [`RunEvent`]s
    /// delivered while the run happens (for progress displays or streaming to clients).
    pub fn arun_observed(
        &self,
        query: impl Into<String>,
        context: Option<Context>,
    ) -> ObservedRun<impl Future<Output = RunResult> + Send + 'static> {
        let (tx, rx) = async_channel::unbounded();
        ObservedRun {
            events: rx,
            result: run::execute(self.shared.clone(), query.into(), context, Some(tx)),
        }
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

/// Configures an [`Orchestrator`]. Every option has a matching environment variable read by
/// [`env`](Self::env).
#[derive(Debug)]
#[must_use]
pub struct OrchestratorBuilder {
    config: Config,
    llm: Option<Arc<dyn LanguageModel>>,
    sandbox: Option<Arc<dyn Sandbox>>,
    prices: PriceTable,
    trajectory: Option<Arc<TrajectoryLog>>,
}

impl OrchestratorBuilder {
    /// Replaces all settings.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Loads settings from the process environment (overriding earlier options).
    pub fn env(mut self) -> Result<Self> {
        self.config = Config::from_lookup(|k| std::env::var(k).ok())?;
        Ok(self)
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

    /// Uses this sandbox instead of the configured one.
    pub fn sandbox(mut self, sandbox: impl Sandbox + 'static) -> Self {
        self.sandbox = Some(Arc::new(sandbox));
        self
    }

    /// LLM provider (`RLM_LLM_PROVIDER`). The base URL and model switch to the provider's
    /// defaults unless they were set explicitly.
    pub fn provider(mut self, provider: Provider) -> Self {
        let old = self.config.llm.provider;
        if self.config.llm.base_url == old.default_base_url() {
            self.config.llm.base_url = provider.default_base_url().into();
        }
        if self.config.llm.model == old.default_model() {
            self.config.llm.model = provider.default_model().into();
        }
        self.config.llm.provider = provider;
        self
    }

    /// Timeout of one LLM HTTP call (`RLM_LLM_TIMEOUT`).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.config.llm.request_timeout = d;
        self
    }

    /// Attempts per LLM call for retryable failures.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.config.llm.max_attempts = n;
        self
    }

    /// LLM requests in flight at once across all runs (`RLM_LLM_MAX_IN_FLIGHT`).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.config.llm.max_in_flight = n;
        self
    }

    /// Model name (`RLM_LLM_MODEL`).
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.config.llm.model = model.into();
        self
    }

    /// Base URL of an OpenAI-compatible server (`RLM_LLM_BASE_URL`).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.config.llm.base_url = url.into().trim_end_matches('/').to_string();
        self
    }

    /// API key (`OPENAI_API_KEY`).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.config.llm.api_key = Some(key.into());
        self
    }

    /// Maximum LLM turns per run (`RLM_MAX_ITERATIONS`).
    pub fn max_iterations(mut self, n: u32) -> Self {
        self.config.limits.max_iterations = n;
        self
    }

    /// Maximum recursion depth (`RLM_MAX_DEPTH`).
    pub fn max_depth(mut self, n: u32) -> Self {
        self.config.limits.max_depth = n;
        self
    }

    /// Spending limit per run in USD (`RLM_COST_LIMIT_USD`).
    pub fn max_cost_usd(mut self, usd: f64) -> Self {
        self.config.limits.max_cost_usd = Some(usd);
        self
    }

    /// Token limit per run.
    pub fn max_tokens(mut self, tokens: u64) -> Self {
        self.config.limits.max_tokens = Some(tokens);
        self
    }

    /// LLM call limit per run.
    pub fn max_llm_calls(mut self, calls: u32) -> Self {
        self.config.limits.max_llm_calls = Some(calls);
        self
    }

    /// Wall-clock limit per run (`RLM_RUN_TIMEOUT`); `None` for unlimited.
    pub fn run_timeout(mut self, d: Option<Duration>) -> Self {
        self.config.limits.run_timeout = d;
        self
    }

    /// Wall-clock limit per code block (`RLM_EXECUTION_TIMEOUT`).
    pub fn execution_timeout(mut self, d: Duration) -> Self {
        self.config.sandbox.execution_timeout = d;
        self
    }

    /// Memory limit of the REPL in bytes (`RLM_MEMORY_LIMIT`).
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.config.sandbox.memory_bytes = bytes;
        self
    }

    /// Explicitly allow running without bubblewrap (`RLM_ALLOW_UNSAFE_RUNTIME`).
    pub fn allow_unsafe_runtime(mut self, allow: bool) -> Self {
        self.config.sandbox.allow_unsafe_runtime = allow;
        self
    }

    /// Sandbox backend (`RLM_SANDBOX`).
    pub fn sandbox_kind(mut self, kind: SandboxKind) -> Self {
        self.config.sandbox.kind = kind;
        self
    }

    /// Turn egress findings into [`Error::DataLeak`] instead of redactions.
    pub fn raise_on_leak(mut self, raise: bool) -> Self {
        self.config.egress.raise_on_leak = raise;
        self
    }

    /// Output cap per stream and observation (`RLM_MAX_STDOUT_BYTES`).
    pub fn max_output_bytes(mut self, bytes: usize) -> Self {
        self.config.sandbox.max_output_bytes = bytes;
        self.config.egress.max_output_bytes = bytes;
        self
    }

    /// System prompt mode.
    pub fn prompt_mode(mut self, mode: PromptMode) -> Self {
        self.config.prompt_mode = mode;
        self
    }

    /// Extra instructions appended to the system prompt.
    pub fn custom_instructions(mut self, text: impl Into<String>) -> Self {
        self.config.custom_instructions = Some(text.into());
        self
    }

    /// Writes every run's trajectory (JSON Lines, schema in [`crate::trajectory`]) to `log`.
    pub fn trajectory(mut self, log: TrajectoryLog) -> Self {
        self.trajectory = Some(Arc::new(log));
        self
    }

    /// Models the REPL may request with `llm_query(prompt, model=...)` besides the main one.
    pub fn allowed_models<I, S>(mut self, models: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.llm.allowed_models = models.into_iter().map(Into::into).collect();
        self
    }

    /// Sub-calls in flight at once per tree of runs.
    pub fn max_concurrent_subcalls(mut self, n: usize) -> Self {
        self.config.limits.max_concurrent_subcalls = n;
        self
    }

    /// Replaces the price table used for cost accounting.
    pub fn prices(mut self, prices: PriceTable) -> Self {
        self.prices = prices;
        self
    }

    /// Validates the settings and builds the orchestrator. Starts nothing: sandboxes start
    /// per run.
    pub fn build(self) -> Result<Orchestrator> {
        self.config.validate()?;
        let llm = match self.llm {
            Some(l) => l,
            None => {
                let c = &self.config.llm;
                if c.api_key.is_none() && !is_local(&c.base_url) {
                    let var = c.provider.key_var();
                    return Err(Error::config(
                        var,
                        format!(
                            "no API key for {}; set {var}, or point RLM_LLM_BASE_URL at a local \
                             OpenAI-compatible server (e.g. http://127.0.0.1:8080/v1)",
                            c.base_url
                        ),
                    ));
                }
                Arc::new(HttpClient::new(c))
            }
        };
        let sandbox = match self.sandbox {
            Some(s) => s,
            None => sandbox::from_config(&self.config.sandbox)?,
        };
        Ok(Orchestrator {
            shared: Arc::new(Shared {
                config: self.config,
                llm,
                sandbox,
                prices: self.prices,
                trajectory: self.trajectory,
            }),
        })
    }
}

fn is_local(url: &str) -> bool {
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

    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}

    #[test]
    fn orchestrator_is_send_sync() {
        assert_send_sync::<Orchestrator>();
    }
}
