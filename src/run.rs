//! Drives runs: the tree of runs (a root and the child runs `rlm_query` starts) with its
//! shared budget, deadline and log, and one run's I/O: the context, the sandbox session, LLM
//! calls, the egress filter and the host calls the REPL makes. The decisions are made by the
//! pure [`Agent`]; this module only carries them out.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::BoxFuture;
use crate::agent::{Action, Agent, BlockResult, Stop};
use crate::budget::Ledger;
use crate::config::Config;
use crate::context::{Context, LoadedContext};
use crate::egress::{Direction, EgressFilter, Filtered};
use crate::error::{Error, Result};
use crate::events::RunEvent;
use crate::llm::{Completion, CompletionRequest, LanguageModel, Message, PriceTable};
use crate::log::TrajectoryLog;
use crate::mask::{KnownSecrets, SecretTable};
use crate::parse::final_from_stdout;
use crate::prompt::{self, BlockOutcome, PromptInput, first_user_message, system_prompt};
use crate::result::{Finding, RunResult, SandboxReport, Step, StepKind};
use crate::routing::{self, Route};
use crate::runtime::{self, Limiter};
use crate::sandbox::{HostCall, HostCalls, HostReply, Sandbox, SandboxSession, SessionSpec};
use crate::trajectory::{RunRef, SCHEMA_VERSION, TrajectoryEvent, now_ms};

/// Immutable parts of an orchestrator, shared by all its runs.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) llm: Arc<dyn LanguageModel>,
    /// The sub-model's client (`RLM_SUB_MODEL`), when it has one.
    pub(crate) sub_llm: Option<Arc<dyn LanguageModel>>,
    pub(crate) sandbox: Arc<dyn Sandbox>,
    pub(crate) prices: PriceTable,
    pub(crate) trajectory: Option<Arc<TrajectoryLog>>,
    /// Values that must never reach a provider besides the contexts' secrets: API keys and
    /// secret-looking environment variables, read when the orchestrator was built.
    pub(crate) known_secrets: Vec<Vec<u8>>,
    /// Host tools of the root run and of child runs.
    pub(crate) tools: Arc<crate::tools::Toolbox>,
}

/// Outputs above this size are filtered on the blocking pool.
const OFFLOAD_BYTES: usize = 64 << 10;

/// What the runs of one tree share: the budget, the observer of the root, the sub-call
/// limit.
struct Tree {
    shared: Arc<Shared>,
    ledger: Ledger,
    events: Option<async_channel::Sender<RunEvent>>,
    /// Sub-LLM calls of the whole tree in flight at once.
    subcalls: Limiter,
    /// Child runs in flight at once, per depth of the run that starts them (one limiter per
    /// level, so a child waiting for its own children never holds the permit they need).
    children: Vec<Limiter>,
    /// The secrets of every context of the tree, and their placeholders (a session's, shared
    /// by all its calls, so a placeholder always means one value).
    secrets: Arc<SecretTable>,
    /// The matcher of known values, rebuilt when the table grows: (table size, matcher).
    known: Mutex<(usize, Arc<KnownSecrets>)>,
    /// The last sub-call id given out (for [`RunEvent::SubCallStarted`]).
    calls: AtomicU64,
}

impl Tree {
    fn known(&self) -> Arc<KnownSecrets> {
        let mut k = lock(&self.known);
        let n = self.secrets.len();
        if k.0 != n || k.0 == usize::MAX {
            let mut values = self.secrets.values();
            values.extend(self.shared.known_secrets.iter().cloned());
            *k = (n, Arc::new(KnownSecrets::new(&values)));
        }
        k.1.clone()
    }

    /// The last check on any text that goes to a provider: secrets the rules find are
    /// masked (with this tree's placeholders) and known values redacted. Returns the text
    /// and what was found.
    fn guard(&self, text: &str) -> (String, Vec<Finding>) {
        let (masked, _) = self.secrets.mask_str(text);
        let (out, hits) = self.known().redact(&masked);
        let mut findings = Vec::new();
        if masked != text {
            findings.push(Finding::new("masked_at_exit", 0, text.len()));
        }
        findings.extend(
            hits.into_iter()
                .map(|(s, e)| Finding::new("known_secret", s, e)),
        );
        (out, findings)
    }

    /// Guards every message of `req` (see [`guard`](Self::guard)).
    fn guard_request(&self, req: &mut CompletionRequest) -> Vec<Finding> {
        let mut findings = Vec::new();
        for m in &mut req.messages {
            let (text, f) = self.guard(&m.content);
            m.content = text;
            findings.extend(f);
        }
        findings
    }

    /// The one way to a provider: every message passes [`guard`](Self::guard) first (on the
    /// blocking pool when the request is large).
    async fn complete(
        self: &Arc<Self>,
        client: routing::Client,
        mut req: CompletionRequest,
    ) -> (Result<Completion>, Vec<Finding>) {
        let size: usize = req.messages.iter().map(|m| m.content.len()).sum();
        let findings = if size > OFFLOAD_BYTES {
            let tree = self.clone();
            let (r, f) = runtime::unblock(move || {
                let f = tree.guard_request(&mut req);
                (req, f)
            })
            .await;
            req = r;
            f
        } else {
            self.guard_request(&mut req)
        };
        let llm = match (client, &self.shared.sub_llm) {
            (routing::Client::Sub, Some(sub)) => sub,
            _ => &self.shared.llm,
        };
        (llm.complete(req).await, findings)
    }
}

/// State of one run (root or child).
struct Run {
    tree: Arc<Tree>,
    id: String,
    parent_id: Option<String>,
    depth: u32,
    start: Instant,
    steps: Mutex<Vec<Step>>,
    /// An error raised inside a host call that must end the run (a limit, a leak).
    fatal: Mutex<Option<Error>>,
    iteration: AtomicU32,
    filter: Mutex<Option<EgressFilter>>,
    /// The end of the previous block's output (host memory only).
    carry: Mutex<Vec<u8>>,
    /// How the code was isolated (from the first block).
    report: Mutex<Option<SandboxReport>>,
    /// The run's context, checked for changes after every block and before every sub-call.
    context: Mutex<Option<Arc<LoadedContext>>>,
    /// The conversation as last sent (with the last observation when the turn limit ends
    /// the run), for the best-effort call.
    conversation: Mutex<Vec<Message>>,
    /// The final answer as the JSON value the answer schema accepted.
    answer_json: Mutex<Option<String>>,
    /// The session this (root) run continues, if any.
    chat: Option<Arc<crate::session::Chat>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn new_run_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "run-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed) + 1
    )
}

/// Runs `query` to completion as the root of a new tree. Never panics on bad input; every
/// failure ends up in the result. A signal on `cancel` ends the run with
/// [`Error::Cancelled`] (its sandboxes are killed as its futures are dropped).
pub(crate) async fn execute(
    shared: Arc<Shared>,
    query: String,
    context: Option<Context>,
    events: Option<async_channel::Sender<RunEvent>>,
    cancel: Option<async_channel::Receiver<()>>,
) -> RunResult {
    execute_in(shared, None, query, context, events, cancel).await
}

/// [`execute`], continuing the session `chat` when given (its REPL, contexts and
/// conversation).
pub(crate) async fn execute_in(
    shared: Arc<Shared>,
    chat: Option<Arc<crate::session::Chat>>,
    query: String,
    context: Option<Context>,
    events: Option<async_channel::Sender<RunEvent>>,
    cancel: Option<async_channel::Receiver<()>>,
) -> RunResult {
    let limits = &shared.config.limits;
    let tree = Arc::new(Tree {
        subcalls: Limiter::new(limits.max_concurrent_subcalls),
        children: (0..limits.max_depth.max(1))
            .map(|_| Limiter::new(limits.max_concurrent_subcalls))
            .collect(),
        ledger: Ledger::new(limits.clone(), shared.prices.clone()),
        secrets: chat.as_ref().map(|c| c.secrets.clone()).unwrap_or_default(),
        known: Mutex::new((usize::MAX, Arc::new(KnownSecrets::new(&[])))),
        calls: AtomicU64::new(0),
        shared,
        events,
    });
    // The user's own query is masked too (best effort: the rules find what they know), and
    // known values (the API key, secret-looking environment variables) are redacted, so
    // neither the events nor the trajectory hold them.
    let (query, _) = tree.guard(&query);
    let mut run = Run::new(tree.clone(), None, 0);
    run.chat = chat;
    run.emit(RunEvent::Started {
        query: query.clone(),
        run_id: run.id.clone(),
    });
    let limit = tree.shared.config.limits.run_timeout;
    let timed = async {
        runtime::timeout(limit, run.drive(&query, context))
            .await
            .unwrap_or_else(|| {
                Err(Error::Timeout {
                    message: format!(
                        "the run exceeded its wall-clock limit of {:.0}s (RLM_RUN_TIMEOUT)",
                        limit.unwrap_or_default().as_secs_f64()
                    ),
                })
            })
    };
    let cancelled = async {
        match cancel {
            Some(rx) if rx.recv().await.is_ok() => Err(Error::Cancelled),
            // No handle, or every handle dropped without cancelling: never fires.
            _ => futures_lite::future::pending().await,
        }
    };
    let outcome = futures_lite::future::or(timed, cancelled).await;
    let partial = match &outcome {
        Err(e @ (Error::BudgetExceeded { .. } | Error::Timeout { .. }))
            if tree.shared.config.best_effort =>
        {
            run.best_effort(e).await
        }
        _ => None,
    };
    let mut result = run.finish_run(outcome);
    result.partial_answer = partial;
    if let Some(log) = &tree.shared.trajectory {
        log.flush().await;
    }
    run.emit(RunEvent::Finished {
        success: result.success,
        final_answer: result.final_answer.clone(),
        error: result.error.clone(),
    });
    // Only the answer handed to the caller, never the trajectory or the events.
    if tree.shared.config.reveal_secrets
        && let Some(a) = &result.final_answer
    {
        result.final_answer = Some(tree.secrets.reveal(a));
    }
    if tree.shared.config.reveal_secrets
        && let Some(a) = &result.partial_answer
    {
        result.partial_answer = Some(tree.secrets.reveal(a));
    }
    if tree.shared.config.reveal_secrets
        && let Some(j) = &result.answer_json
        && let Ok(mut v) = serde_json::from_str::<serde_json::Value>(j)
    {
        // String by string, so the JSON stays valid whatever the secrets hold.
        reveal_strings(&mut v, &|s: &str| tree.secrets.reveal(s));
        result.answer_json = Some(v.to_string());
    }
    result
}

/// Replaces every string in `v` by `f` of it.
fn reveal_strings(v: &mut serde_json::Value, f: &dyn Fn(&str) -> String) {
    match v {
        serde_json::Value::String(s) => *s = f(s),
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| reveal_strings(x, f)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| reveal_strings(x, f)),
        _ => {}
    }
}

impl Run {
    fn new(tree: Arc<Tree>, parent_id: Option<String>, depth: u32) -> Run {
        Run {
            tree,
            id: new_run_id(),
            parent_id,
            depth,
            start: Instant::now(),
            steps: Mutex::new(Vec::new()),
            fatal: Mutex::new(None),
            iteration: AtomicU32::new(0),
            filter: Mutex::new(None),
            carry: Mutex::new(Vec::new()),
            report: Mutex::new(None),
            context: Mutex::new(None),
            answer_json: Mutex::new(None),
            conversation: Mutex::new(Vec::new()),
            chat: None,
        }
    }

    fn cfg(&self) -> &Config {
        &self.tree.shared.config
    }

    fn at(&self) -> RunRef {
        RunRef {
            v: SCHEMA_VERSION,
            ts: now_ms(),
            run_id: self.id.clone(),
            parent_id: self.parent_id.clone(),
            depth: self.depth,
        }
    }

    fn log(&self, e: TrajectoryEvent) {
        if let Some(t) = &self.tree.shared.trajectory {
            t.write(&e);
        }
    }

    /// Tree events (sub-calls, child runs) from any run of the tree, for the observer.
    fn emit_tree(&self, ev: RunEvent) {
        if let Some(tx) = &self.tree.events {
            let _ = tx.try_send(ev);
        }
    }

    /// Starts a sub-call: its id, announced to the observer with the start of `sent`.
    fn sub_call_started(&self, function: &str, sent: &str) -> u64 {
        let call_id = self.tree.calls.fetch_add(1, Ordering::Relaxed) + 1;
        self.emit_tree(RunEvent::SubCallStarted {
            run_id: self.id.clone(),
            depth: self.depth,
            call_id,
            function: function.to_string(),
            preview: preview(sent),
        });
        call_id
    }

    fn sub_call_finished(&self, call_id: u64, success: bool) {
        self.emit_tree(RunEvent::SubCallFinished {
            run_id: self.id.clone(),
            depth: self.depth,
            call_id,
            success,
        });
    }

    /// Root-run events for the observer (child runs report through the tree events).
    fn emit(&self, ev: RunEvent) {
        if self.depth == 0
            && let Some(tx) = &self.tree.events
        {
            let _ = tx.try_send(ev);
        }
    }

    fn push_step(&self, step: Step) {
        self.log(TrajectoryEvent::Step {
            at: self.at(),
            step: step.clone(),
        });
        lock(&self.steps).push(step.clone());
        self.emit(RunEvent::Step {
            step: Box::new(step),
            usage: self.tree.ledger.usage(),
        });
    }

    fn step(&self, kind: StepKind, input: String, output: String, started: Duration) -> Step {
        Step::new(
            self.iteration.load(Ordering::Relaxed),
            kind,
            input,
            output,
            started,
            self.start.elapsed().saturating_sub(started),
        )
    }

    /// The result of this run; for the root, `usage` covers the whole tree.
    fn finish_run(&self, outcome: Result<String>) -> RunResult {
        let (final_answer, failure) = match outcome {
            Ok(a) => (Some(a), None),
            Err(e) => (None, Some(e)),
        };
        let result = RunResult {
            run_id: self.id.clone(),
            success: final_answer.is_some(),
            final_answer,
            iterations: self.iteration.load(Ordering::Relaxed),
            steps: std::mem::take(&mut *lock(&self.steps)),
            usage: self.tree.ledger.usage(),
            error: failure.as_ref().map(ToString::to_string),
            failure,
            duration: self.start.elapsed(),
            sandbox: lock(&self.report).take(),
            answer_json: lock(&self.answer_json).take(),
            partial_answer: None,
        };
        self.log(TrajectoryEvent::RunEnd {
            at: self.at(),
            success: result.success,
            final_answer: result.final_answer.clone(),
            error: result.error.clone(),
            iterations: result.iterations,
            usage: result.usage.clone(),
            duration: result.duration,
        });
        result
    }

    /// One LLM call: budget checked (and the call reserved) before, usage recorded after.
    async fn call_llm(
        &self,
        messages: Vec<Message>,
        (client, model): Route,
        temperature: Option<f32>,
        kind: StepKind,
        input: String,
    ) -> Result<String> {
        let reservation = self.tree.ledger.reserve()?;
        let started = self.start.elapsed();
        // The step records what was sent: the input as the exit guards it.
        let input = if input.len() > OFFLOAD_BYTES {
            let tree = self.tree.clone();
            runtime::unblock(move || tree.guard(&input).0).await
        } else {
            self.tree.guard(&input).0
        };
        let mut req = CompletionRequest::new(messages);
        req.model = model;
        req.temperature = temperature;
        let (res, findings) = self.tree.complete(client, req).await;
        let mut step = self.step(kind, input, String::new(), started);
        step.findings = findings;
        match res {
            Ok(c) => {
                let (p, q) = (c.usage.prompt_tokens, c.usage.completion_tokens);
                let cost = self.tree.ledger.record(reservation, &c.model, c.usage);
                step.output = c.text.clone();
                step.model = Some(c.model);
                step.prompt_tokens = Some(p);
                step.completion_tokens = Some(q);
                step.cost_usd = cost;
                self.push_step(step);
                Ok(c.text)
            }
            Err(e) => {
                drop(reservation);
                step.success = false;
                step.error = Some(e.to_string());
                self.push_step(step);
                Err(e)
            }
        }
    }

    fn filter(&self) -> EgressFilter {
        lock(&self.filter)
            .clone()
            .unwrap_or_else(|| EgressFilter::new(self.cfg().egress.clone()))
    }

    async fn filter_out(
        &self,
        text: &str,
        source: &'static str,
        dir: Direction,
    ) -> Result<Filtered> {
        let f = self.filter();
        let known = self.tree.known();
        // The egress filter, then the exact values that must never leave (API keys,
        // secret-looking environment variables, the context's secrets): tool results and
        // anything else the host hands on are covered, not only requests to a provider.
        let both = move |t: &[u8]| {
            f.filter_dir(t, source, dir).map(|mut out| {
                let (text, hits) = known.redact(&out.text);
                if !hits.is_empty() {
                    out.text = text;
                    out.findings.extend(
                        hits.into_iter()
                            .map(|(s, e)| Finding::new("known_secret", s, e)),
                    );
                }
                out
            })
        };
        if text.len() > OFFLOAD_BYTES {
            let owned = text.to_string();
            runtime::unblock(move || both(owned.as_bytes())).await
        } else {
            both(text.as_bytes())
        }
    }

    /// Records the final answer `f` (already through the egress filter) and, with an answer
    /// schema, its validated value.
    fn finish(&self, f: Filtered, json: Option<String>, started: Duration) -> Result<String> {
        if json.is_some() {
            *lock(&self.answer_json) = json;
        }
        let mut step = self.step(
            StepKind::FinalAnswer,
            String::new(),
            f.text.clone(),
            started,
        );
        step.findings = f.findings;
        self.push_step(step);
        Ok(f.text)
    }

    /// After a limit ended the run: one last call, if the budget allows, for the best answer
    /// from the conversation so far (at most 60 s, or the request timeout if shorter).
    async fn best_effort(&self, why: &Error) -> Option<String> {
        let mut messages = lock(&self.conversation).clone();
        if messages.is_empty() {
            return None;
        }
        let reason = match why {
            Error::BudgetExceeded { message } | Error::Timeout { message } => message.clone(),
            e => e.to_string(),
        };
        let ask = prompt::best_effort(&reason);
        messages.push(Message::user(ask.clone()));
        let route = routing::for_run(self.cfg(), self.depth);
        let grace = self.cfg().llm.request_timeout.min(Duration::from_secs(60));
        let call = self.call_llm(messages, route, None, StepKind::LlmCall, ask);
        let reply = runtime::timeout(Some(grace), call).await?.ok()?;
        let text = crate::parse::final_from_text(&reply).unwrap_or(reply);
        let f = self
            .filter_out(text.trim(), "partial_answer", Direction::ToSubLlm)
            .await
            .ok()?;
        let started = self.start.elapsed();
        let mut step = self.step(
            StepKind::PartialAnswer,
            String::new(),
            f.text.clone(),
            started,
        );
        step.findings = f.findings;
        self.push_step(step);
        (!f.text.is_empty()).then_some(f.text)
    }

    /// Loads the context, starts the session, runs the agent loop, and always closes the
    /// session and releases the context off the caller's executor.
    async fn drive(&self, query: &str, context: Option<Context>) -> Result<String> {
        let cfg = self.cfg();
        // The context (and the filter's fingerprints of it) are released on the blocking pool:
        // unmapping files and removing private copies is file-system work.
        let loaded = match context {
            Some(c) => {
                let tree = self.tree.clone();
                Some(runtime::DropOffThread::new(
                    runtime::unblock(move || LoadedContext::load_masked(&c, &tree.secrets)).await?,
                ))
            }
            None => None,
        };
        if let Some(lc) = &loaded {
            *lock(&self.context) = Some(Arc::clone(lc));
            let (ecfg, lc2) = (cfg.egress.clone(), Arc::clone(lc));
            let f = runtime::unblock(move || EgressFilter::with_context(ecfg, lc2)).await;
            *lock(&self.filter) = Some(f);
        }
        let outcome = self
            .converse(query, loaded.as_deref().map(|lc| &**lc))
            .await;
        let filter = lock(&self.filter).take();
        lock(&self.context).take();
        runtime::DropOffThread::new((loaded, filter))
            .release()
            .await;
        outcome
    }

    /// Starts the session and runs the agent loop over it; the session is always closed.
    async fn converse(&self, query: &str, loaded: Option<&LoadedContext>) -> Result<String> {
        let cfg = self.cfg();
        // A session's contexts are handed to its REPL by a cell of the host (below), so its
        // sandbox starts without any.
        let spec = match (&self.chat, loaded) {
            (None, Some(lc)) => SessionSpec::for_context(lc, cfg.sandbox.inline_context_bytes),
            _ => SessionSpec::default(),
        };
        // One look at the documents' starts serves the description and the record check.
        let summaries = loaded.map(|lc| lc.summaries(400));
        let desc = summaries
            .as_ref()
            .zip(loaded)
            .map(|(d, lc)| crate::prompt::describe_context(d, lc.is_list));
        self.log(TrajectoryEvent::RunStart {
            at: self.at(),
            query: query.to_string(),
            model: self.model_name(),
            max_iterations: cfg.limits.max_iterations,
            max_depth: cfg.limits.max_depth,
            context: loaded
                .map(|lc| format!("{} document(s), {} bytes", lc.docs.len(), lc.total_bytes())),
        });
        let mode = cfg.prompt_mode.resolve(&self.model_name(), self.base_url());
        let system = system_prompt(&PromptInput {
            mode,
            context: desc.as_deref(),
            inline: spec.inline || (self.chat.is_some() && loaded.is_some()),
            is_list: spec.is_list,
            max_iterations: cfg.limits.max_iterations,
            custom: cfg.custom_instructions.as_deref(),
            recursion: self.depth + 1 < cfg.limits.max_depth,
            records: summaries.as_ref().is_some_and(|docs| {
                docs.iter()
                    .any(|d| crate::prompt::record_format(&d.preview).is_some())
            }),
        });
        let mut system = system;
        if let Some(schema) = cfg.answer_schema.as_ref().filter(|_| self.depth == 0) {
            system.push_str(&prompt::answer_schema(schema.as_json()));
        }
        system.push_str(&self.tools_prompt());
        let (earlier, kept, mut first) = match &self.chat {
            Some(chat) => chat.take(),
            None => (Vec::new(), None, 0),
        };
        if kept.is_none() {
            // A session whose REPL was lost (a cancelled or failed call) numbers its
            // contexts from 0 again.
            first = 0;
        }
        let mut user = first_user_message(query, loaded.is_some());
        if self.chat.is_some() {
            let index = first + usize::from(loaded.is_some());
            user = format!("{}{user}", prompt::session_note(index, loaded.is_some()));
        }
        let tokens = cfg.context_window.unwrap_or_else(|| {
            crate::config::default_context_window(&self.model_name(), self.base_url())
        });
        // History compaction: the root run only (child runs are short).
        let compact_at = cfg.compact_at.filter(|_| self.depth == 0);
        // Older turns are shortened beyond 70% of the window (about 3 characters per token,
        // and room for the reply), or, with compaction on, only beyond its threshold: a
        // fallback when a summary cannot be had.
        let fit_percent = compact_at.map_or(70, |f| ((f * 100.0) as usize + 5).max(70));
        let mut agent = Agent::new(
            system,
            user,
            cfg.limits.max_iterations,
            cfg.limits.max_no_code_replies,
        )
        .with_earlier(&earlier)
        .require_evidence(loaded.is_some() && cfg.require_evidence)
        .window_chars((tokens as usize).saturating_mul(3) / 100 * fit_percent)
        .compact_at(tokens, compact_at)
        .max_blocks(if mode == crate::config::PromptMode::Frontier {
            usize::MAX
        } else {
            // The compact prompt asks for one block per reply; a second one is often the
            // FINAL after the computation.
            2
        });
        // The sandbox starts while the first LLM call is in flight: that call needs no
        // sandbox, and the run's first request goes out without waiting for a process start.
        // The first error ends both (a start abandoned half-way is killed and reaped).
        let fresh = kept.is_none();
        let starting = async {
            match kept {
                Some(s) => Ok(s),
                None => self.tree.shared.sandbox.start(spec).await,
            }
        };
        let mut action = agent.start();
        let mut session = match action {
            Action::Ask { temperature } => {
                let (reply, session) = both_ok(self.ask(&agent, temperature), starting).await?;
                action = agent.on_reply(&reply);
                session
            }
            _ => starting.await?,
        };
        if fresh {
            self.define_tools(&mut *session).await?;
        }
        if let (Some(_), Some(lc)) = (&self.chat, loaded) {
            crate::session::add_context(&mut *session, self, first, lc).await?;
            first += 1;
        }
        let outcome = self.agent_loop(&mut agent, action, &mut *session).await;
        // A session keeps its REPL for the next call, unless this one ended on a leak or a
        // changed context: that REPL may hold what no check has seen, and is killed.
        let tainted = matches!(
            &outcome,
            Err(Error::DataLeak { .. } | Error::Context { .. })
        );
        if let Some(chat) = self.chat.as_ref().filter(|_| !tainted) {
            chat.keep(session, agent.messages(), first, outcome.as_ref().ok());
            return outcome;
        }
        // Killed now (SIGKILL before the result is returned); reaping it and removing its
        // cgroup finish on the blocking pool (`wait_for_cleanup` waits for them), which
        // saves the caller several milliseconds per run.
        drop(session);
        outcome
    }

    /// Asks the model for the next turn of `agent`'s conversation.
    async fn ask(&self, agent: &Agent, temperature: Option<f32>) -> Result<String> {
        let it = agent.iteration();
        self.iteration.store(it, Ordering::Relaxed);
        if self.depth == 0 {
            self.emit(RunEvent::Iteration { iteration: it });
        } else {
            self.emit_tree(RunEvent::ChildIteration {
                run_id: self.id.clone(),
                depth: self.depth,
                iteration: it,
            });
        }
        let messages = agent.messages().to_vec();
        *lock(&self.conversation) = messages.clone();
        let last = messages
            .last()
            .map(|m| m.content.clone())
            .unwrap_or_default();
        let route = routing::for_run(self.cfg(), self.depth);
        self.call_llm(messages, route, temperature, StepKind::LlmCall, last)
            .await
    }

    async fn agent_loop(
        &self,
        agent: &mut Agent,
        mut action: Action,
        session: &mut dyn SandboxSession,
    ) -> Result<String> {
        loop {
            action = match action {
                Action::Ask { temperature } => {
                    let reply = self.ask(agent, temperature).await?;
                    agent.on_reply(&reply)
                }
                Action::Run { code, index, of } => {
                    let result = self.run_block(session, code, index, of).await?;
                    agent.on_block(result)
                }
                Action::Answer(answer) => {
                    // Filtered first: the schema checks, and `answer_json` carries, only what
                    // may leave.
                    let started = self.start.elapsed();
                    let f = self
                        .filter_out(&answer, "final_answer", Direction::ToSubLlm)
                        .await?;
                    match self.check_answer(&f.text) {
                        Ok(json) => return self.finish(f, json, started),
                        Err(text) => agent.reject_answer(text),
                    }
                }
                Action::Compact { question, turns } => {
                    let summary = self.summarise(&question, &turns).await;
                    let unsent = agent.history_unsent().to_vec();
                    // A REPL restarted since the last compaction lost what it held: it
                    // refuses the tail, and gets the whole history again.
                    if self
                        .give_history(session, &unsent, agent.history_held())
                        .await
                        || self.give_history(session, agent.history_all(), 0).await
                    {
                        agent.history_sent();
                    }
                    agent.on_compacted(summary)
                }
                Action::Stop(stop @ Stop::NoCode { .. }) => {
                    return Err(Error::NoCode {
                        message: stop.message(),
                    });
                }
                Action::Stop(stop) => {
                    *lock(&self.conversation) = agent.messages().to_vec();
                    return Err(Error::BudgetExceeded {
                        message: stop.message(),
                    });
                }
            };
        }
    }

    /// History compaction: one LLM call (under the budget, through the egress filter like
    /// any) summarises `turns`; `None` when it fails or is not allowed.
    async fn summarise(&self, question: &str, turns: &[Message]) -> Option<String> {
        let cfg = self.cfg();
        let tokens = cfg.context_window.unwrap_or_else(|| {
            crate::config::default_context_window(&self.model_name(), self.base_url())
        });
        // The request stays well within the window (about 3 characters per token).
        let max_chars = (tokens as usize).saturating_mul(3) / 2;
        let transcript = crate::compaction::transcript(turns, max_chars);
        let request = prompt::compaction_request(question, &transcript);
        let messages = vec![
            Message::system(prompt::COMPACTION_SYSTEM),
            Message::user(request),
        ];
        let route = routing::for_run(cfg, self.depth);
        let input = format!("{} earlier messages", turns.len());
        let reply = self
            .call_llm(messages, route, None, StepKind::Compaction, input)
            .await
            .ok()?;
        let reply = reply.trim();
        (!reply.is_empty()).then(|| reply.to_string())
    }

    /// Appends `messages` (all already sent to the model) to the REPL's `history` (a cell of
    /// the host's own, not a step). False when the REPL did not take them.
    async fn give_history(
        &self,
        session: &mut dyn SandboxSession,
        messages: &[Message],
        held: usize,
    ) -> bool {
        if messages.is_empty() && held > 0 {
            return true;
        }
        // What the model was sent, as it was sent (known values redacted, secrets masked);
        // the system prompt (custom instructions, tool descriptions) stays on the host.
        let sent: Vec<Message> = messages
            .iter()
            .map(|m| match m.role {
                crate::llm::Role::System => Message::system("(the system prompt)"),
                _ => Message {
                    role: m.role,
                    content: self.tree.guard(&m.content).0,
                },
            })
            .collect();
        let json = serde_json::to_string(&sent).expect("messages serialize");
        let literal = serde_json::to_string(&json).expect("a string");
        let code =
            format!("__import__('sys').modules['__main__']._extend_history({literal}, {held})");
        matches!(session.execute(&code, self).await, Ok(r) if r.success())
    }

    /// With an answer schema (root run only): keeps the validated value, or returns what
    /// the model is told about an invalid answer.
    fn check_answer(&self, answer: &str) -> std::result::Result<Option<String>, String> {
        let Some(schema) = self
            .cfg()
            .answer_schema
            .as_ref()
            .filter(|_| self.depth == 0)
        else {
            return Ok(None);
        };
        match schema.check_value(answer) {
            Ok(v) => Ok(Some(v.to_string())),
            Err(errors) => {
                let mut step = self.step(
                    StepKind::FinalAnswer,
                    String::new(),
                    answer.to_string(),
                    self.start.elapsed(),
                );
                step.success = false;
                let shown: Vec<&str> = errors.iter().take(20).map(String::as_str).collect();
                step.error = Some(format!("answer schema: {}", shown.join("; ")));
                self.push_step(step);
                Err(prompt::invalid_answer(&errors, schema.as_json()))
            }
        }
    }

    /// Runs one block, filters what it printed, records the step.
    async fn run_block(
        &self,
        session: &mut dyn SandboxSession,
        code: String,
        index: usize,
        of: usize,
    ) -> Result<BlockResult> {
        self.emit(RunEvent::Executing {
            iteration: self.iteration.load(Ordering::Relaxed),
            code: code.clone(),
        });
        let started = self.start.elapsed();
        let r = session.execute(&code, self).await?;
        lock(&self.report).get_or_insert_with(|| SandboxReport {
            kind: self.tree.shared.sandbox.kind(),
            cgroup: r.cgroup.clone(),
            unsafe_runtime: r.unsafe_runtime,
        });
        if let Some(e) = lock(&self.fatal).take() {
            return Err(e);
        }
        if r.state_lost {
            self.define_tools(session).await?;
        }
        // A context file that changed under the run may have shown the code unscanned text:
        // nothing more of the run leaves.
        self.context_unchanged()?;
        // stdout and stderr are filtered as one text together with the end of the previous
        // block's output, so a secret split across streams or blocks is still found.
        let carry = std::mem::take(&mut *lock(&self.carry));
        let mut tail = r.stdout.clone();
        tail.push_str(&r.stderr);
        *lock(&self.carry) = tail_of(&tail, CARRY_BYTES).into_bytes();
        let f = self.filter();
        let parts = (r.stdout.clone(), r.stderr.clone());
        let filter = move || {
            f.filter_parts(
                &carry,
                &[
                    (parts.0.as_bytes(), "stdout"),
                    (parts.1.as_bytes(), "stderr"),
                ],
                Direction::ToRoot,
            )
        };
        let mut both = if r.stdout.len() + r.stderr.len() > OFFLOAD_BYTES {
            runtime::unblock(filter).await?
        } else {
            filter()?
        };
        let err = both.pop().expect("two parts");
        let out = both.pop().expect("two parts");
        let observation = prompt::observation(&BlockOutcome {
            index,
            of,
            stdout: &out.text,
            stderr: &err.text,
            restarted: r.restarted,
            memory_exceeded: r.memory_exceeded,
            lost_because: r.lost_because.as_ref(),
        });
        let mut step = self.step(StepKind::CodeExecution, code, observation.clone(), started);
        step.success = r.success();
        if !r.success() {
            step.error = Some(if r.timed_out {
                "timed out".into()
            } else if r.memory_exceeded {
                "memory limit exceeded".into()
            } else {
                last_line(&err.text)
            });
        }
        step.findings = out.findings;
        step.findings
            .extend(err.findings.into_iter().map(|f| Finding {
                rule: format!("{} (stderr)", f.rule),
                ..f
            }));
        self.push_step(step);
        let final_answer = r.final_answer.or_else(|| final_from_stdout(&r.stdout));
        // The words of a final answer that occur nowhere in the context (the agent decides
        // whether that matters); one pass over the documents, on the blocking pool.
        let loaded = lock(&self.context).clone();
        let absent = match (&final_answer, loaded) {
            (Some(a), Some(lc)) if self.cfg().require_evidence => {
                let words = crate::agent::answer_words(a);
                runtime::unblock(move || lc.absent_words(&words)).await
            }
            _ => Vec::new(),
        };
        Ok(BlockResult {
            observation,
            final_answer,
            absent,
        })
    }

    /// Records an error that must end this run (budget, leak) and returns the text the REPL
    /// sees.
    fn fail(&self, e: Error) -> String {
        let msg = prompt::sub_call_failed(&e);
        let mut f = lock(&self.fatal);
        if f.is_none() {
            *f = Some(e);
        }
        msg
    }

    /// Routes a sub-call, checking a model requested from the REPL (host-side).
    fn route(&self, model: Option<&str>) -> std::result::Result<Route, String> {
        routing::for_subcall(self.cfg(), self.tree.shared.llm.model(), self.depth, model)
    }

    /// The base URL of this run's own model.
    fn base_url(&self) -> &str {
        match (routing::for_run(self.cfg(), self.depth), &self.cfg().sub) {
            ((routing::Client::Sub, _), Some(sub)) => &sub.llm.base_url,
            _ => &self.cfg().llm.base_url,
        }
    }

    /// The model of this run's own conversation.
    fn model_name(&self) -> String {
        match routing::for_run(self.cfg(), self.depth) {
            (_, Some(m)) => m,
            _ => self.tree.shared.llm.model().to_string(),
        }
    }

    /// `llm_query` on behalf of the REPL: secrets filtered out of the prompt, budget shared
    /// with the tree, recorded as a sub-query step. Failures are `Error:` strings.
    async fn sub_query(&self, prompt: String, route: Route, function: &'static str) -> String {
        let _permit = self.tree.subcalls.acquire().await;
        let f = match self
            .filter_out(&prompt, "llm_query", Direction::ToSubLlm)
            .await
        {
            Ok(f) => f,
            Err(e) => return self.fail(e),
        };
        let call_id = self.sub_call_started(function, &f.text);
        let messages = vec![Message::user(f.text.clone())];
        let (ok, text) = match self
            .call_llm(messages, route, None, StepKind::SubQuery, f.text)
            .await
        {
            Ok(t) => (true, t),
            Err(e @ Error::BudgetExceeded { .. }) => (false, self.fail(e)),
            Err(e) => (false, prompt::sub_call_failed(&e)),
        };
        self.sub_call_finished(call_id, ok);
        text
    }

    /// `rlm_query`: a whole child run at depth + 1 with its own sandbox session; at the
    /// depth limit it degrades to `llm_query`.
    fn child_query(&self, prompt: String, context: Option<Context>) -> BoxFuture<'_, String> {
        Box::pin(async move {
            if self.depth + 1 >= self.cfg().limits.max_depth {
                let route = self.route(None).unwrap_or((routing::Client::Root, None));
                return self.sub_query(prompt, route, "rlm_query").await;
            }
            // At most `max_concurrent_subcalls` children per level at once, and none started
            // once a limit is reached.
            let _permit = self.tree.children[self.depth as usize].acquire().await;
            if let Err(e) = self.tree.ledger.check() {
                return self.fail(e);
            }
            let (prompt, _) = self.tree.secrets.mask_str(&prompt);
            let started = self.start.elapsed();
            let child = Run::new(self.tree.clone(), Some(self.id.clone()), self.depth + 1);
            self.emit_tree(RunEvent::ChildStarted {
                run_id: child.id.clone(),
                parent_id: self.id.clone(),
                depth: child.depth,
                query: preview(&self.tree.guard(&prompt).0),
            });
            let outcome = child.drive(&prompt, context).await;
            let result = child.finish_run(outcome);
            self.emit_tree(RunEvent::ChildFinished {
                run_id: child.id.clone(),
                parent_id: self.id.clone(),
                depth: child.depth,
                success: result.success,
                error: result.error.clone(),
            });
            let mut step = self.step(
                StepKind::SubQuery,
                prompt,
                result.final_answer.clone().unwrap_or_default(),
                started,
            );
            step.child_run_id = Some(child.id.clone());
            step.success = result.success;
            step.error = result.error.clone();
            self.push_step(step);
            match (result.final_answer, result.failure) {
                (Some(a), _) => a,
                // The tree's limits and leaks end the whole tree, not just the child (a
                // child that merely ran out of its own turns is an error its parent sees).
                (None, Some(e @ Error::DataLeak { .. })) => self.fail(e),
                (None, Some(e @ Error::BudgetExceeded { .. }))
                    if self.tree.ledger.check().is_err() =>
                {
                    self.fail(e)
                }
                (None, e) => prompt::child_failed(e.as_ref().map(|e| e as &dyn std::fmt::Display)),
            }
        })
    }

    /// Runs `items` concurrently on a private executor inside this future; results in input
    /// order.
    async fn batched<F>(&self, items: Vec<F>) -> Vec<String>
    where
        F: std::future::Future<Output = String> + Send,
    {
        let ex = async_executor::Executor::new();
        ex.run(async {
            let tasks: Vec<_> = items.into_iter().map(|f| ex.spawn(f)).collect();
            let mut out = Vec::with_capacity(tasks.len());
            for t in tasks {
                out.push(t.await);
            }
            out
        })
        .await
    }
}

impl Run {
    /// An error when a context file changed since it was scanned.
    fn context_unchanged(&self) -> Result<()> {
        match &*lock(&self.context) {
            Some(lc) => lc.unchanged(),
            None => Ok(()),
        }
    }
}

impl HostCalls for Run {
    /// Sub-call failures (an LLM error, a disallowed model, a child run without answer) come
    /// back to the code as strings starting with `Error:`, never as exceptions. Limits and
    /// leaks end the run.
    fn call(&self, call: HostCall) -> BoxFuture<'_, HostReply> {
        Box::pin(async move {
            // After an error that ends the run (a leak, a limit, a changed context), the rest
            // of the cell gets nothing more from the host.
            let stop = match self.context_unchanged() {
                Err(e) => {
                    let reply = format!("Error: {e}");
                    lock(&self.fatal).get_or_insert(e);
                    Some(reply)
                }
                Ok(()) => lock(&self.fatal)
                    .as_ref()
                    .map(|e| format!("Error: the run is ending: {e}")),
            };
            if let Some(reply) = stop {
                return match call {
                    HostCall::LlmQueryBatched { prompts, .. } => {
                        HostReply::Texts(vec![reply; prompts.len()])
                    }
                    HostCall::RlmQueryBatched { prompts, .. } => {
                        HostReply::Texts(vec![reply; prompts.len()])
                    }
                    _ => HostReply::Text(reply),
                };
            }
            match call {
                HostCall::LlmQuery { prompt, model } => match self.route(model.as_deref()) {
                    Ok(m) => HostReply::Text(self.sub_query(prompt, m, "llm_query").await),
                    Err(e) => HostReply::Text(e),
                },
                HostCall::LlmQueryBatched { prompts, model } => {
                    match self.route(model.as_deref()) {
                        Ok(m) => {
                            let futs = prompts
                                .into_iter()
                                .map(|p| self.sub_query(p, m.clone(), "llm_query_batched"))
                                .collect();
                            HostReply::Texts(self.batched(futs).await)
                        }
                        Err(e) => HostReply::Texts(vec![e; prompts.len()]),
                    }
                }
                HostCall::Tool { name, args } => HostReply::Text(self.tool_call(name, args).await),
                HostCall::RlmQuery { prompt, context } => {
                    HostReply::Text(self.child_query(prompt, context).await)
                }
                HostCall::RlmQueryBatched { prompts, contexts } => {
                    let futs = prompts
                        .into_iter()
                        .zip(contexts)
                        .map(|(p, c)| self.child_query(p, c))
                        .collect();
                    HostReply::Texts(self.batched(futs).await)
                }
            }
        })
    }
}

impl Run {
    /// The host tools of this run.
    fn tools(&self) -> &[crate::tools::Tool] {
        self.tree.shared.tools.at(self.depth)
    }

    /// The system prompt's list of this run's tools (empty without tools).
    fn tools_prompt(&self) -> String {
        let tools = self.tools();
        if tools.is_empty() {
            return String::new();
        }
        let rows: Vec<_> = tools
            .iter()
            .map(|t| (t.name(), t.params(), t.description(), t.schema()))
            .collect();
        prompt::tools_section(&rows)
    }

    /// Defines this run's tools in a fresh REPL (a cell of the host's own, not a step).
    async fn define_tools(&self, session: &mut dyn SandboxSession) -> Result<()> {
        let tools = self.tools();
        if tools.is_empty() {
            return Ok(());
        }
        let spec = serde_json::to_string(&crate::tools::repl_spec(tools)).expect("a string");
        let code = format!("__import__('sys').modules['__main__']._define_tools({spec})");
        let r = session.execute(&code, self).await?;
        if r.success() {
            Ok(())
        } else {
            Err(Error::sandbox(format!(
                "the REPL could not define the host tools: {}",
                last_line(&r.stderr)
            )))
        }
    }

    /// A host tool called by the code: only a tool registered for this run, with arguments
    /// its schema accepts, under the tree's budget and the tool's timeout; the result passes
    /// the egress filter's secret checks. Failures are `Error:` strings.
    async fn tool_call(&self, name: String, args: String) -> String {
        let Some(tool) = self.tools().iter().find(|t| t.name() == name).cloned() else {
            let known: Vec<&str> = self.tools().iter().map(|t| t.name()).collect();
            return prompt::unknown_tool(&name, &known);
        };
        if let Err(e) = self.tree.ledger.check() {
            return self.fail(e);
        }
        let args = match tool.check_args(&args) {
            Ok(a) => a,
            Err(e) => return format!("Error: {name}: {e}"),
        };
        let _permit = self.tree.subcalls.acquire().await;
        let started = self.start.elapsed();
        let shown = self.tree.guard(&args).0;
        let call_id = self.sub_call_started(&name, &shown);
        let limit = tool.limit().unwrap_or(self.cfg().sandbox.execution_timeout);
        let outcome = match runtime::timeout(Some(limit), tool.call(args)).await {
            Some(Ok(text)) => match self.filter_out(&text, "tool", Direction::ToSubLlm).await {
                Ok(f) => Ok((f.text, f.findings)),
                Err(e) => {
                    // A leak (with `raise_on_leak`) ends the run, as from any sub-call.
                    let m = e.to_string();
                    lock(&self.fatal).get_or_insert(e);
                    Err(m)
                }
            },
            Some(Err(e)) => Err(e),
            None => Err(format!("timed out after {:.1}s", limit.as_secs_f64())),
        };
        let mut step = self.step(
            StepKind::ToolCall,
            format!("{name} {shown}"),
            String::new(),
            started,
        );
        let reply = match outcome {
            Ok((text, findings)) => {
                step.output = text.clone();
                step.findings = findings;
                text
            }
            Err(e) => {
                let msg = format!("Error: {name}: {}", self.tree.guard(&e).0);
                step.success = false;
                step.error = Some(msg.clone());
                msg
            }
        };
        self.sub_call_finished(call_id, step.success);
        self.push_step(step);
        reply
    }
}

/// The first 200 characters of `s` (what events show of prompts and questions).
fn preview(s: &str) -> String {
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// How much of a block's output is kept to be scanned with the next block's.
const CARRY_BYTES: usize = 4096;

/// The last `n` bytes of `s` (or fewer, at a character boundary).
fn tail_of(s: &str, n: usize) -> String {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("failed")
        .trim()
        .to_string()
}

/// Awaits `a` and `b` side by side. The first error ends the wait and drops the other
/// future; otherwise both values are returned.
async fn both_ok<A, B>(
    a: impl Future<Output = Result<A>>,
    b: impl Future<Output = Result<B>>,
) -> Result<(A, B)> {
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    let (mut ra, mut rb) = (None, None);
    futures_lite::future::poll_fn(|cx| {
        if ra.is_none()
            && let std::task::Poll::Ready(r) = a.as_mut().poll(cx)
        {
            ra = Some(r?);
        }
        if rb.is_none()
            && let std::task::Poll::Ready(r) = b.as_mut().poll(cx)
        {
            rb = Some(r?);
        }
        match (ra.take(), rb.take()) {
            (Some(x), Some(y)) => std::task::Poll::Ready(Ok((x, y))),
            (x, y) => {
                (ra, rb) = (x, y);
                std::task::Poll::Pending
            }
        }
    })
    .await
}
