//! Evaluation: suites of questions with known answers, run and scored.
//!
//! A suite is a JSON Lines file (see [`Suite`] for the format); [`generate`] makes seeded
//! suites of the task families of the RLM paper over fresh data; [`run_suite`] runs one with
//! an [`Orchestrator`](crate::Orchestrator) and returns an [`EvalReport`]: right answers per
//! family, turns, tokens, cost and time. `rlm eval` is the command-line front end.
//!
//! ```no_run
//! use rlm::eval::{EvalOptions, Suite, run_suite};
//!
//! let orch = rlm::Orchestrator::from_env()?;
//! let suite = Suite::load("suite.jsonl")?;
//! let opts = EvalOptions::default().concurrency(2).trajectories("runs");
//! let report = futures_lite::future::block_on(run_suite(&orch, &suite, &opts, |o| {
//!     println!("{} {}", o.id, if o.right { "right" } else { "wrong" });
//! }))?;
//! print!("{}", report.table());
//! # Ok::<(), rlm::Error>(())
//! ```

mod generate;
mod report;
mod runner;
mod score;
mod suite;

pub use generate::{DEFAULT_SIZES, FAMILIES, Generated, generate, parse_size, size_label};
pub use report::{EvalReport, FamilyStats, TaskOutcome};
pub use runner::{EvalOptions, check_contexts, run_suite};
pub use score::Scoring;
pub use suite::{Expected, Suite, Task, TaskContext};
