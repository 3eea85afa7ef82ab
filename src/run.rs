//! Runs: the agent loop and everything a run owns (history, steps, sandbox session, egress
//! filter). A root run and the child runs it starts with `rlm_query` form a tree that shares
//! one budget, one deadline and one trajectory log; nothing is shared between trees.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::context::{Context, LoadedContext};
use crate::egress::{Direction, EgressFilter, Filtered};
use crate::error::{Error, Result};
use crate::events::RunEvent;
use crate::llm::{CompletionRequest, LanguageModel, Message, PriceTable};
use crate::log::TrajectoryLog;
use crate::parse::{extract_python_code, final_from_stdout, final_from_text};
use crate::prompt::{PromptInput, first_user_message, no_code_nudge, system_prompt};
use crate::result::{Finding, RunResult, Step, StepKind, Usage};
use crate::runtime::{self, Limiter};
use crate::sandbox::{BoxFuture, ExecutionResult, HostCalls, Sandbox, SessionSpec};
use crate::trajectory::{RunRef, SCHEMA_VERSION, TrajectoryEvent, now_ms};

/// Immutable parts of an orchestrator, shared by all its runs.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) llm: Arc<dyn LanguageModel>,
    pub(crate) sandbox: Arc<dyn Sandbox>,
    pub(crate) prices: PriceTable,
    pub(crate) trajectory: Option<Arc<TrajectoryLog>>,
}

/// Outputs above this size are filtered on the blocking pool.
const OFFLOAD_BYTES: usize = 64 << 10;

/// What the runs of one tree share: the budget (usage), the observer of the root, the log.
struct Tree {
    shared: Arc<Shared>,
    usage: Mutex<Usage>,
    events: Option<async_channel::Sender<RunEvent>>,
    /// Sub-calls of the whole tree in flight at once.
    subcalls: Limiter,
    /// LLM calls started but not yet recorded in `usage` (so concurrent calls cannot all
    /// pass the call limit at once).
    reserved_calls: Mutex<u64>,
}

/// State of one run (root or child).
struct Run {
    tree: Arc<Tree>,
    id: String,
    parent_id: Option<String>,
    depth: u32,
    start: Instant,
    steps: Mutex<Vec<Step>>,
    fatal: Mutex<Option<Error>>,
    iteration: AtomicU32,
    filter: Mutex<Option<EgressFilter>>,
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
/// failure ends up in the result.
pub(crate) async fn execute(
    shared: Arc<Shared>,
    query: String,
    context: Option<Context>,
    events: Option<async_channel::Sender<RunEvent>>,
) -> RunResult {
    let tree = Arc::new(Tree {
        subcalls: Limiter::new(shared.config.limits.max_concurrent_subcalls),
        shared,
        usage: Mutex::new(Usage::default()),
        events,
        reserved_calls: Mutex::new(0),
    });
    let run = Run::new(tree.clone(), None, 0);
    run.emit(RunEvent::Started {
        query: query.clone(),
    });
    let limit = tree.shared.config.limits.run_timeout;
    let outcome = runtime::timeout(limit, run.drive(&query, context))
        .await
        .unwrap_or_else(|| {
            Err(Error::Timeout {
                message: format!(
                    "the run exceeded its wall-clock limit of {:.0}s (RLM_RUN_TIMEOUT)",
                    limit.unwrap_or_default().as_secs_f64()
                ),
            })
        });
    let result = run.finish_run(outcome);
    run.emit(RunEvent::Finished {
        success: result.success,
        final_answer: result.final_answer.clone(),
        error: result.error.clone(),
    });
    result
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

    /// Root-run events for the observer (child runs are visible in the trajectory).
    fn emit(&self, ev: RunEvent) {
        if self.depth == 0 {
            if let Some(tx) = &self.tree.events {
                let _ = tx.try_send(ev);
            }
        }
    }

    fn push_step(&self, step: Step) {
        self.log(TrajectoryEvent::Step {
            at: self.at(),
            step: step.clone(),
        });
        lock(&self.steps).push(step.clone());
        let usage = lock(&self.tree.usage).clone();
        self.emit(RunEvent::Step {
            step: Box::new(step),
            usage,
        });
    }

    fn step(&self, kind: StepKind, input: String, output: String, started: Duration) -> Step {
        Step {
            iteration: self.iteration.load(Ordering::Relaxed),
            kind,
            input,
            output,
            success: true,
            error: None,
            started,
            duration: self.start.elapsed().saturating_sub(started),
            findings: Vec::new(),
            model: None,
            prompt_tokens: None,
            completion_tokens: None,
            cost_usd: None,
            child_run_id: None,
        }
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
            usage: lock(&self.tree.usage).clone(),
            error: failure.as_ref().map(ToString::to_string),
            failure,
            duration: self.start.elapsed(),
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

    /// Limits of the whole tree, checked before every LLM call; on success one call is
    /// reserved until [`Run::release_call`].
    fn check_budget(&self) -> Result<()> {
        let l = &self.cfg().limits;
        let u = lock(&self.tree.usage);
        let mut reserved = lock(&self.tree.reserved_calls);
        if let Some(max) = l.max_llm_calls
            && u.calls + *reserved >= u64::from(max)
        {
            return Err(Error::BudgetExceeded {
                message: format!(
                    "{} LLM calls made or in flight, limit {max}",
                    u.calls + *reserved
                ),
            });
        }
        if let Some(max) = l.max_tokens
            && u.total_tokens() >= max
        {
            return Err(Error::BudgetExceeded {
                message: format!("{} tokens used, limit {max}", u.total_tokens()),
            });
        }
        if l.max_cost_usd.is_some() && u.calls > 0 && u.cost_usd.is_none() {
            let unknown: Vec<&str> = u
                .per_model
                .iter()
                .filter(|(_, m)| m.cost_usd.is_none())
                .map(|(k, _)| k.as_str())
                .collect();
            return Err(Error::BudgetExceeded {
                message: format!(
                    "a cost limit is set (RLM_COST_LIMIT_USD) but the price of {} is unknown, so spending cannot be \
                     checked; add the model with PriceTable::set or remove the limit",
                    unknown.join(", ")
                ),
            });
        }
        if let (Some(max), Some(spent)) = (l.max_cost_usd, u.cost_usd)
            && spent >= max
        {
            return Err(Error::BudgetExceeded {
                message: format!("${spent:.4} spent, limit ${max:.4} (RLM_COST_LIMIT_USD)"),
            });
        }
        *reserved += 1;
        Ok(())
    }

    fn release_call(&self) {
        let mut r = lock(&self.tree.reserved_calls);
        *r = r.saturating_sub(1);
    }

    /// One LLM call with budget check before and accounting after.
    async fn call_llm(
        &self,
        messages: Vec<Message>,
        model: Option<String>,
        kind: StepKind,
        input: String,
    ) -> Result<String> {
        self.call_llm_with(messages, model, None, kind, input).await
    }

    async fn call_llm_with(
        &self,
        messages: Vec<Message>,
        model: Option<String>,
        temperature: Option<f32>,
        kind: StepKind,
        input: String,
    ) -> Result<String> {
        self.check_budget()?;
        let started = self.start.elapsed();
        let mut req = CompletionRequest::new(messages);
        req.model = model;
        req.temperature = temperature;
        let res = self.tree.shared.llm.complete(req).await;
        self.release_call();
        let mut step = self.step(kind, input, String::new(), started);
        match res {
            Ok(c) => {
                let (p, q) = (c.usage.prompt_tokens, c.usage.completion_tokens);
                let cost = self
                    .tree
                    .shared
                    .prices
                    .lookup(&c.model)
                    .map(|price| price.cost(p, q));
                lock(&self.tree.usage).record(&c.model, p, q, cost);
                step.output = c.text.clone();
                step.model = Some(c.model);
                step.prompt_tokens = Some(p);
                step.completion_tokens = Some(q);
                step.cost_usd = cost;
                self.push_step(step);
                Ok(c.text)
            }
            Err(e) => {
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
        if text.len() > OFFLOAD_BYTES {
            let owned = text.to_string();
            runtime::unblock(move || f.filter_dir(owned.as_bytes(), source, dir)).await
        } else {
            f.filter_dir(text.as_bytes(), source, dir)
        }
    }

    /// The final answer goes to the user, who owns the context, so context echo is allowed;
    /// secrets are still removed.
    async fn finish(&self, answer: String) -> Result<String> {
        let started = self.start.elapsed();
        let f = self
            .filter_out(&answer, "final_answer", Direction::ToSubLlm)
            .await?;
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

    async fn drive(&self, query: &str, context: Option<Context>) -> Result<String> {
        let cfg = self.cfg();
        let loaded = match context {
            Some(c) => Some(runtime::unblock(move || LoadedContext::load(&c)).await?),
            None => None,
        };
        if let Some(lc) = &loaded {
            let (ecfg, lc2) = (cfg.egress.clone(), lc.clone());
            let f = runtime::unblock(move || EgressFilter::with_context(ecfg, lc2)).await;
            *lock(&self.filter) = Some(f);
        }
        let spec = loaded
            .as_ref()
            .map(|lc| SessionSpec::for_context(lc, cfg.sandbox.inline_context_bytes))
            .unwrap_or_default();
        let desc = loaded.as_ref().map(|lc| lc.describe(400));
        self.log(TrajectoryEvent::RunStart {
            at: self.at(),
            query: query.to_string(),
            model: self.tree.shared.llm.model().to_string(),
            max_iterations: cfg.limits.max_iterations,
            max_depth: cfg.limits.max_depth,
            context: loaded
                .as_ref()
                .map(|lc| format!("{} document(s), {} bytes", lc.docs.len(), lc.total_bytes())),
        });
        let system = system_prompt(&PromptInput {
            mode: cfg.prompt_mode,
            context: desc.as_deref(),
            inline: spec.inline,
            is_list: spec.is_list,
            max_iterations: cfg.limits.max_iterations,
            custom: cfg.custom_instructions.as_deref(),
            recursion: self.depth + 1 < cfg.limits.max_depth,
        });
        let mut session = self.tree.shared.sandbox.start(spec).await?;
        let mut history = vec![
            Message::system(system),
            Message::user(first_user_message(query, loaded.is_some())),
        ];
        let max = cfg.limits.max_iterations;
        let mut no_code = 0;
        // A model that sends the same code again would loop forever at temperature 0: it is
        // told so, and the next turn is sampled with some temperature.
        let mut previous_code: Vec<String> = Vec::new();
        let mut repeats = 0u32;
        for it in 1..=max {
            self.iteration.store(it, Ordering::Relaxed);
            self.emit(RunEvent::Iteration { iteration: it });
            let last = history
                .last()
                .map(|m| m.content.clone())
                .unwrap_or_default();
            let temperature = (repeats > 0).then_some(0.3 + 0.2 * repeats.min(3) as f32);
            let reply = self
                .call_llm_with(history.clone(), None, temperature, StepKind::LlmCall, last)
                .await?;
            let blocks = extract_python_code(&reply);
            let repeated = !blocks.is_empty() && blocks == previous_code;
            repeats = if repeated { repeats + 1 } else { 0 };
            if repeated && history.len() >= 4 {
                // Keep one copy of the repeated attempt in view, not a growing wall of them:
                // drop the earlier identical reply and its observation.
                let n = history.len();
                history.drain(n - 2..n);
            }
            if !blocks.is_empty() {
                previous_code = blocks.clone();
            }
            history.push(Message::assistant(reply.clone()));
            if blocks.is_empty() {
                if let Some(ans) = final_from_text(&reply) {
                    return self.finish(ans).await;
                }
                no_code += 1;
                if no_code >= cfg.limits.max_no_code_replies {
                    return Err(Error::BudgetExceeded {
                        message: format!(
                            "the model replied {no_code} times in a row without code or a final answer"
                        ),
                    });
                }
                history.push(Message::user(no_code_nudge()));
                continue;
            }
            no_code = 0;
            let mut pieces = Vec::with_capacity(blocks.len());
            for (k, code) in blocks.iter().enumerate() {
                self.emit(RunEvent::Executing {
                    iteration: it,
                    code: code.clone(),
                });
                let started = self.start.elapsed();
                let r = session.execute(code, self).await?;
                if let Some(e) = lock(&self.fatal).take() {
                    return Err(e);
                }
                let out = self
                    .filter_out(&r.stdout, "stdout", Direction::ToRoot)
                    .await?;
                let err = self
                    .filter_out(&r.stderr, "stderr", Direction::ToRoot)
                    .await?;
                let obs = observation(k + 1, blocks.len(), &r, &out.text, &err.text);
                let mut step =
                    self.step(StepKind::CodeExecution, code.clone(), obs.clone(), started);
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
                pieces.push(obs);
                if let Some(ans) = r
                    .final_answer
                    .clone()
                    .or_else(|| final_from_stdout(&r.stdout))
                {
                    return self.finish(ans).await;
                }
            }
            let next = if it >= max {
                String::new()
            } else if repeated {
                format!(
                    "Turn {}/{max}: that was exactly the same code as your previous turn, with the same result. Write different code that fixes the problem.",
                    it + 1
                )
            } else {
                format!(
                    "Turn {}/{max}: continue with one ```python block; call FINAL(answer) once the answer is printed.",
                    it + 1
                )
            };
            history.push(Message::user(
                format!("{}\n\n{next}", pieces.join("\n\n"))
                    .trim_end()
                    .to_string(),
            ));
        }
        Err(Error::BudgetExceeded {
            message: format!(
                "max iterations ({max}) reached without a final answer (RLM_MAX_ITERATIONS)"
            ),
        })
    }

    /// Records an error that must end this run (budget, leak) and returns the message the
    /// REPL sees.
    fn fail(&self, e: Error) -> String {
        let msg = format!("Error: {e}");
        let mut f = lock(&self.fatal);
        if f.is_none() {
            *f = Some(e);
        }
        msg
    }

    /// Checks a model requested from the REPL against the allowed list (host-side).
    fn allowed_model(&self, model: Option<&str>) -> std::result::Result<Option<String>, String> {
        match model {
            None => Ok(None),
            Some(m) if m == self.tree.shared.llm.model() => Ok(None),
            Some(m) if self.cfg().llm.allowed_models.iter().any(|a| a == m) => {
                Ok(Some(m.to_string()))
            }
            Some(m) => Err(format!(
                "Error: model {m:?} is not allowed; allowed: {}",
                std::iter::once(self.tree.shared.llm.model())
                    .chain(self.cfg().llm.allowed_models.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// `llm_query` on behalf of the REPL: secrets filtered out of the prompt, budget shared
    /// with the tree, recorded as a sub-query step.
    async fn sub_query(
        &self,
        prompt: String,
        model: Option<String>,
    ) -> std::result::Result<String, String> {
        let _permit = self.tree.subcalls.acquire().await;
        let f = match self
            .filter_out(&prompt, "llm_query", Direction::ToSubLlm)
            .await
        {
            Ok(f) => f,
            Err(e) => return Err(self.fail(e)),
        };
        let messages = vec![Message::user(f.text.clone())];
        match self
            .call_llm(messages, model, StepKind::SubQuery, f.text)
            .await
        {
            Ok(t) => Ok(t),
            Err(e @ Error::BudgetExceeded { .. }) => Err(self.fail(e)),
            Err(e) => Err(format!("Error: {e}")),
        }
    }

    /// `rlm_query`: a whole child run at depth + 1 with its own sandbox session; at the
    /// depth limit it degrades to `llm_query`.
    fn child_query(
        &self,
        prompt: String,
        context: Option<Context>,
    ) -> BoxFuture<'_, std::result::Result<String, String>> {
        Box::pin(async move {
            if self.depth + 1 >= self.cfg().limits.max_depth {
                return self.sub_query(prompt, None).await;
            }
            let started = self.start.elapsed();
            let child = Run::new(self.tree.clone(), Some(self.id.clone()), self.depth + 1);
            let outcome = child.drive(&prompt, context).await;
            let result = child.finish_run(outcome);
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
                (Some(a), _) => Ok(a),
                // Limits and leaks end the whole tree, not just the child.
                (None, Some(e @ (Error::BudgetExceeded { .. } | Error::DataLeak { .. }))) => {
                    Err(self.fail(e))
                }
                (None, e) => Err(format!(
                    "Error: the child run ended without an answer: {}",
                    e.map(|e| e.to_string()).unwrap_or_else(|| "unknown".into())
                )),
            }
        })
    }

    async fn batched<F>(&self, items: Vec<F>) -> Vec<serde_json::Value>
    where
        F: std::future::Future<Output = std::result::Result<String, String>> + Send,
    {
        let ex = async_executor::Executor::new();
        ex.run(async {
            let tasks: Vec<_> = items.into_iter().map(|f| ex.spawn(f)).collect();
            let mut out = Vec::with_capacity(tasks.len());
            for t in tasks {
                out.push(serde_json::Value::String(t.await.unwrap_or_else(|e| e)));
            }
            out
        })
        .await
    }
}

fn str_arg<'a>(
    args: &'a serde_json::Value,
    key: &str,
    func: &str,
) -> std::result::Result<&'a str, String> {
    args.get(key)
        .and_then(|p| p.as_str())
        .ok_or_else(|| format!("{func}: {key} must be a string"))
}

fn str_list(
    args: &serde_json::Value,
    key: &str,
    func: &str,
) -> std::result::Result<Vec<String>, String> {
    args.get(key)
        .and_then(|p| p.as_array())
        .ok_or_else(|| format!("{func}: {key} must be a list of strings"))?
        .iter()
        .map(|p| {
            p.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{func}: {key} must be strings"))
        })
        .collect()
}

/// A context passed from the REPL: a string, a list of strings, or nothing.
fn context_arg(v: Option<&serde_json::Value>) -> std::result::Result<Option<Context>, String> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(Context::Text(s.clone()))),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| "rlm_query: context must be a str or a list of str".to_string())
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(|d| Some(Context::Documents(d))),
        Some(_) => Err("rlm_query: context must be a str or a list of str".into()),
    }
}

impl HostCalls for Run {
    /// Sub-call failures (an LLM error, a disallowed model, a child run without answer) come
    /// back to the code as strings starting with `Error:`, never as exceptions; malformed
    /// arguments raise. Limits and leaks end the run.
    fn call(
        &self,
        name: &str,
        args: serde_json::Value,
    ) -> BoxFuture<'_, std::result::Result<serde_json::Value, String>> {
        let name = name.to_string();
        Box::pin(async move {
            let text = |r: std::result::Result<String, String>| {
                serde_json::Value::String(r.unwrap_or_else(|e| e))
            };
            let model = self.allowed_model(args.get("model").and_then(|m| m.as_str()));
            match name.as_str() {
                "llm_query" => {
                    let prompt = str_arg(&args, "prompt", "llm_query")?.to_string();
                    Ok(match model {
                        Ok(m) => text(self.sub_query(prompt, m).await),
                        Err(e) => serde_json::Value::String(e),
                    })
                }
                "llm_query_batched" => {
                    let prompts = str_list(&args, "prompts", "llm_query_batched")?;
                    Ok(match model {
                        Ok(m) => {
                            let futs = prompts
                                .into_iter()
                                .map(|p| self.sub_query(p, m.clone()))
                                .collect();
                            serde_json::Value::Array(self.batched(futs).await)
                        }
                        Err(e) => serde_json::Value::Array(
                            prompts
                                .iter()
                                .map(|_| serde_json::Value::String(e.clone()))
                                .collect(),
                        ),
                    })
                }
                "rlm_query" => {
                    let prompt = str_arg(&args, "prompt", "rlm_query")?;
                    let context = context_arg(args.get("context"))?;
                    Ok(text(self.child_query(prompt.to_string(), context).await))
                }
                "rlm_query_batched" => {
                    let prompts = str_list(&args, "prompts", "rlm_query_batched")?;
                    let contexts: Vec<Option<Context>> = match args.get("contexts") {
                        None | Some(serde_json::Value::Null) => vec![None; prompts.len()],
                        Some(serde_json::Value::Array(cs)) if cs.len() == prompts.len() => cs
                            .iter()
                            .map(|c| context_arg(Some(c)))
                            .collect::<std::result::Result<_, _>>()?,
                        Some(_) => return Err(
                            "rlm_query_batched: contexts must be None or a list as long as prompts"
                                .into(),
                        ),
                    };
                    let futs = prompts
                        .into_iter()
                        .zip(contexts)
                        .map(|(p, c)| self.child_query(p, c))
                        .collect();
                    Ok(serde_json::Value::Array(self.batched(futs).await))
                }
                other => Err(format!("unknown host function {other:?}")),
            }
        })
    }
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("failed")
        .trim()
        .to_string()
}

/// What the model sees after a block.
fn observation(k: usize, n: usize, r: &ExecutionResult, out: &str, err: &str) -> String {
    let mut s = if n > 1 {
        format!("[block {k} of {n}] ")
    } else {
        String::new()
    };
    if r.restarted {
        s.push_str(
            "Note: the REPL had been restarted before this block; earlier variables are gone.\n",
        );
    }
    if r.timed_out {
        s.push_str("The block timed out and was killed; the REPL state is lost.\n");
    } else if r.memory_exceeded {
        s.push_str("The block hit the memory limit.\n");
    }
    let out = out.trim_end();
    let err = err.trim_end();
    if out.is_empty() && err.is_empty() {
        s.push_str("(no output: print() the values you want to see)");
    }
    if !out.is_empty() {
        s.push_str("Output:\n");
        s.push_str(out);
    }
    if !err.is_empty() {
        if !out.is_empty() {
            s.push('\n');
        }
        s.push_str("Errors:\n");
        s.push_str(err);
    }
    s
}
