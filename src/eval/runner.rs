//! Running a suite (I/O): every task as a run of one orchestrator, several at once, each with
//! its own trajectory file, scored as it ends.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::log::TrajectoryLog;
use crate::orchestrator::Orchestrator;
use crate::runtime;

use super::report::{EvalReport, TaskOutcome};
use super::suite::{Suite, Task, TaskContext};

/// How a suite is run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EvalOptions {
    /// Tasks run at once (at least 1).
    pub concurrency: usize,
    /// Where each task's trajectory (`<id>.jsonl`) goes, if anywhere.
    pub trajectories: Option<PathBuf>,
    /// How many times each task runs (each run is scored on its own).
    pub repeat: u32,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            concurrency: 1,
            trajectories: None,
            repeat: 1,
        }
    }
}

impl EvalOptions {
    /// Tasks run at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Writes each task's trajectory to `dir/<id>.jsonl` (the directory is created).
    pub fn trajectories(mut self, dir: impl Into<PathBuf>) -> Self {
        self.trajectories = Some(dir.into());
        self
    }

    /// Runs each task `n` times.
    pub fn repeat(mut self, n: u32) -> Self {
        self.repeat = n.max(1);
        self
    }
}

/// Checks that every context file of `suite` exists and is readable, so a suite with a
/// wrong path fails before any model call.
pub fn check_contexts(suite: &Suite) -> Result<()> {
    for t in &suite.tasks {
        let paths: Vec<&PathBuf> = match &t.context {
            TaskContext::File(p) => vec![p],
            TaskContext::Files(ps) => ps.iter().collect(),
            _ => vec![],
        };
        for p in paths {
            std::fs::metadata(p).map_err(|e| {
                Error::config(
                    "suite",
                    format!(
                        "task {:?}: context file {}: {e}; paths are relative to the suite file",
                        t.id,
                        p.display()
                    ),
                )
            })?;
        }
    }
    Ok(())
}

/// Runs every task of `suite` with `orch` and scores the answers; `on_done` sees each
/// outcome as it ends (from the task's own thread of control, in completion order).
pub async fn run_suite(
    orch: &Orchestrator,
    suite: &Suite,
    opts: &EvalOptions,
    on_done: impl Fn(&TaskOutcome) + Send + Sync,
) -> Result<EvalReport> {
    check_contexts(suite)?;
    if let Some(dir) = &opts.trajectories {
        let d = dir.clone();
        runtime::unblock(move || std::fs::create_dir_all(&d))
            .await
            .map_err(|e| {
                Error::config(
                    "trajectories",
                    format!("cannot create {}: {e}", dir.display()),
                )
            })?;
    }
    let started = Instant::now();
    let limiter = runtime::Limiter::new(opts.concurrency.max(1));
    let outcomes: Mutex<Vec<(usize, TaskOutcome)>> = Mutex::new(Vec::new());
    let jobs: Vec<(usize, &Task, u32)> = suite
        .tasks
        .iter()
        .flat_map(|t| (0..opts.repeat.max(1)).map(move |r| (t, r)))
        .enumerate()
        .map(|(i, (t, r))| (i, t, r))
        .collect();
    let on_done = Arc::new(on_done);
    {
        let ex = async_executor::Executor::new();
        ex.run(async {
            let tasks: Vec<_> = jobs
                .iter()
                .map(|&(i, task, rep)| {
                    let (limiter, outcomes, on_done) = (&limiter, &outcomes, on_done.clone());
                    ex.spawn(async move {
                        let _permit = limiter.acquire().await;
                        let o =
                            run_task(orch, task, rep, opts.repeat, opts.trajectories.as_deref())
                                .await;
                        on_done(&o);
                        outcomes
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((i, o));
                    })
                })
                .collect();
            for t in tasks {
                t.await;
            }
        })
        .await;
    }
    let mut outcomes = outcomes.into_inner().unwrap_or_else(|e| e.into_inner());
    outcomes.sort_by_key(|(i, _)| *i);
    Ok(EvalReport::new(
        orch.config().llm.model.clone(),
        outcomes.into_iter().map(|(_, o)| o).collect(),
        started.elapsed(),
    ))
}

async fn run_task(
    orch: &Orchestrator,
    task: &Task,
    rep: u32,
    repeat: u32,
    trajectories: Option<&Path>,
) -> TaskOutcome {
    let run_id = if repeat > 1 {
        format!("{}#{}", task.id, rep + 1)
    } else {
        task.id.clone()
    };
    let mut trajectory = None;
    let orch = match trajectories {
        Some(dir) => {
            let path = dir.join(format!("{}.jsonl", file_name(&run_id)));
            let p = path.clone();
            match runtime::unblock(move || TrajectoryLog::create(&p)).await {
                Ok(log) => {
                    trajectory = Some(path);
                    orch.with_trajectory(log)
                }
                Err(_) => orch.clone(),
            }
        }
        None => orch.clone(),
    };
    let started = Instant::now();
    let result = match task.context.to_context() {
        Some(c) => orch.arun_with_context(task.question.clone(), c).await,
        None => orch.arun(task.question.clone()).await,
    };
    let right = result
        .final_answer
        .as_deref()
        .is_some_and(|a| task.scoring.is_right(&task.expected, a));
    TaskOutcome {
        id: run_id,
        family: task.family.clone(),
        right,
        answer: result.final_answer.clone(),
        expected: task.expected.to_string(),
        error: result.error.clone(),
        iterations: result.iterations,
        tokens: result.usage.prompt_tokens + result.usage.completion_tokens,
        llm_calls: result.usage.calls,
        cost_usd: result.usage.cost_usd,
        duration_ms: started.elapsed().as_millis() as u64,
        trajectory,
    }
}

/// A task id as a file name: `[A-Za-z0-9._-]`, the rest replaced.
fn file_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}
