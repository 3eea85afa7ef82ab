//! One run: the agent loop and everything it owns (history, steps, budget, sandbox session,
//! egress filter). Nothing here is shared between runs.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::context::{Context, LoadedContext};
use crate::egress::{Direction, EgressFilter, Filtered};
use crate::error::{Error, Result};
use crate::events::RunEvent;
use crate::llm::{CompletionRequest, LanguageModel, Message, PriceTable};
use crate::parse::{extract_python_code, final_from_stdout, final_from_text};
use crate::prompt::{PromptInput, first_user_message, no_code_nudge, system_prompt};
use crate::result::{Finding, RunResult, Step, StepKind, Usage};
use crate::runtime::{self, Limiter};
use crate::sandbox::{BoxFuture, ExecutionResult, HostCalls, Sandbox, SessionSpec};

/// Immutable parts of an orchestrator, shared by all its runs.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) llm: Arc<dyn LanguageModel>,
    pub(crate) sandbox: Arc<dyn Sandbox>,
    pub(crate) prices: PriceTable,
}

/// Outputs above this size are filtered on the blocking pool.
const OFFLOAD_BYTES: usize = 64 << 10;

/// State of one run.
struct Run {
    shared: Arc<Shared>,
    start: Instant,
    steps: Mutex<Vec<Step>>,
    usage: Mutex<Usage>,
    events: Option<async_channel::Sender<RunEvent>>,
    fatal: Mutex<Option<Error>>,
    iteration: AtomicU32,
    filter: Mutex<Option<EgressFilter>>,
    subcalls: Limiter,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `query` to completion. Never panics on bad input; every failure ends up in the
/// result.
pub(crate) async fn execute(
    shared: Arc<Shared>,
    query: String,
    context: Option<Context>,
    events: Option<async_channel::Sender<RunEvent>>,
) -> RunResult {
    let run = Run {
        subcalls: Limiter::new(shared.config.limits.max_concurrent_subcalls),
        shared,
        start: Instant::now(),
        steps: Mutex::new(Vec::new()),
        usage: Mutex::new(Usage::default()),
        events,
        fatal: Mutex::new(None),
        iteration: AtomicU32::new(0),
        filter: Mutex::new(None),
    };
    run.emit(RunEvent::Started {
        query: query.clone(),
    });
    let limit = run.shared.config.limits.run_timeout;
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
    let (final_answer, failure) = match outcome {
        Ok(a) => (Some(a), None),
        Err(e) => (None, Some(e)),
    };
    let result = RunResult {
        success: final_answer.is_some(),
        final_answer,
        iterations: run.iteration.load(Ordering::Relaxed),
        steps: std::mem::take(&mut *lock(&run.steps)),
        usage: lock(&run.usage).clone(),
        error: failure.as_ref().map(ToString::to_string),
        failure,
        duration: run.start.elapsed(),
    };
    run.emit(RunEvent::Finished {
        success: result.success,
        final_answer: result.final_answer.clone(),
        error: result.error.clone(),
    });
    result
}

impl Run {
    fn emit(&self, ev: RunEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.try_send(ev);
        }
    }

    fn push_step(&self, step: Step) {
        let usage = lock(&self.usage).clone();
        lock(&self.steps).push(step.clone());
        self.emit(RunEvent::Step { step, usage });
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
        }
    }

    fn check_budget(&self) -> Result<()> {
        let l = &self.shared.config.limits;
        let u = lock(&self.usage);
        if let Some(max) = l.max_llm_calls
            && u.calls >= u64::from(max)
        {
            return Err(Error::BudgetExceeded {
                message: format!("{} LLM calls made, limit {max}", u.calls),
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
        Ok(())
    }

    /// One LLM call with budget check before and accounting after.
    async fn call_llm(
        &self,
        messages: Vec<Message>,
        kind: StepKind,
        input: String,
    ) -> Result<String> {
        self.check_budget()?;
        let started = self.start.elapsed();
        let res = self
            .shared
            .llm
            .complete(CompletionRequest::new(messages))
            .await;
        let mut step = self.step(kind, input, String::new(), started);
        match res {
            Ok(c) => {
                let cost = self
                    .shared
                    .prices
                    .lookup(&c.model)
                    .map(|p| p.cost(c.usage.prompt_tokens, c.usage.completion_tokens));
                lock(&self.usage).record(
                    &c.model,
                    c.usage.prompt_tokens,
                    c.usage.completion_tokens,
                    cost,
                );
                step.output = c.text.clone();
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
            .unwrap_or_else(|| EgressFilter::new(self.shared.config.egress.clone()))
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
        let cfg = &self.shared.config;
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
        let system = system_prompt(&PromptInput {
            mode: cfg.prompt_mode,
            context: desc.as_deref(),
            inline: spec.inline,
            is_list: spec.is_list,
            max_iterations: cfg.limits.max_iterations,
            custom: cfg.custom_instructions.as_deref(),
        });
        let mut session = self.shared.sandbox.start(spec).await?;
        let mut history = vec![
            Message::system(system),
            Message::user(first_user_message(query)),
        ];
        let max = cfg.limits.max_iterations;
        let mut no_code = 0;
        for it in 1..=max {
            self.iteration.store(it, Ordering::Relaxed);
            self.emit(RunEvent::Iteration { iteration: it });
            let last = history
                .last()
                .map(|m| m.content.clone())
                .unwrap_or_default();
            let reply = self
                .call_llm(history.clone(), StepKind::LlmCall, last)
                .await?;
            let blocks = extract_python_code(&reply);
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
            let next = if it < max {
                format!(
                    "Turn {}/{max}: continue with one ```python block; call FINAL(answer) once the answer is printed.",
                    it + 1
                )
            } else {
                String::new()
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

    /// `llm_query` on behalf of the REPL: secrets filtered out of the prompt, budget shared
    /// with the run, recorded as a sub-query step.
    async fn sub_query(&self, prompt: String) -> std::result::Result<String, String> {
        let _permit = self.subcalls.acquire().await;
        let f = match self
            .filter_out(&prompt, "llm_query", Direction::ToSubLlm)
            .await
        {
            Ok(f) => f,
            Err(e) => {
                let msg = format!("Error: prompt blocked by the egress filter: {e}");
                *lock(&self.fatal) = Some(e);
                return Err(msg);
            }
        };
        let messages = vec![Message::user(f.text.clone())];
        match self.call_llm(messages, StepKind::SubQuery, f.text).await {
            Ok(t) => Ok(t),
            Err(e @ Error::BudgetExceeded { .. }) => {
                let msg = format!("Error: {e}");
                *lock(&self.fatal) = Some(e);
                Err(msg)
            }
            Err(e) => Err(format!("Error: {e}")),
        }
    }
}

impl HostCalls for Run {
    fn call(
        &self,
        name: &str,
        args: serde_json::Value,
    ) -> BoxFuture<'_, std::result::Result<serde_json::Value, String>> {
        let name = name.to_string();
        Box::pin(async move {
            match name.as_str() {
                "llm_query" => {
                    let prompt = args
                        .get("prompt")
                        .and_then(|p| p.as_str())
                        .ok_or("llm_query: prompt must be a string")?;
                    self.sub_query(prompt.to_string())
                        .await
                        .map(serde_json::Value::String)
                }
                "llm_query_batched" => {
                    let prompts: Vec<String> = args
                        .get("prompts")
                        .and_then(|p| p.as_array())
                        .ok_or("llm_query_batched: prompts must be a list of strings")?
                        .iter()
                        .map(|p| {
                            p.as_str()
                                .map(str::to_string)
                                .ok_or("llm_query_batched: prompts must be strings")
                        })
                        .collect::<std::result::Result<_, _>>()?;
                    let ex = async_executor::Executor::new();
                    let answers = ex
                        .run(async {
                            let tasks: Vec<_> = prompts
                                .into_iter()
                                .map(|p| ex.spawn(self.sub_query(p)))
                                .collect();
                            let mut out = Vec::with_capacity(tasks.len());
                            for t in tasks {
                                out.push(serde_json::Value::String(t.await.unwrap_or_else(|e| e)));
                            }
                            out
                        })
                        .await;
                    Ok(serde_json::Value::Array(answers))
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
