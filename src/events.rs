//! Events emitted while a run is in progress, for progress displays and streaming services.

use serde::{Deserialize, Serialize};

use crate::result::{Step, Usage};

/// One thing that happened during a run. Delivered in order over the channel returned by
/// [`Orchestrator::arun_observed`](crate::Orchestrator::arun_observed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunEvent {
    /// The run started.
    Started {
        /// The user's query.
        query: String,
    },
    /// An LLM turn is about to be requested.
    Iteration {
        /// 1-based turn number.
        iteration: u32,
    },
    /// A code block started executing.
    Executing {
        /// 1-based turn number.
        iteration: u32,
        /// The code.
        code: String,
    },
    /// A step finished.
    Step {
        /// The finished step.
        step: Box<Step>,
        /// Usage so far.
        usage: Usage,
    },
    /// The run ended (successfully or not).
    Finished {
        /// Whether it produced an answer.
        success: bool,
        /// The answer.
        final_answer: Option<String>,
        /// Why it failed.
        error: Option<String>,
    },
}
