//! Events emitted while a run is in progress, for progress displays and streaming services,
//! and the stream that delivers them.

use std::pin::Pin;
use std::task::{Context, Poll};

use serde::{Deserialize, Serialize};

use crate::result::{Step, Usage};

/// One thing that happened during a run. Delivered in order by the [`EventStream`] of
/// [`Orchestrator::arun_observed`](crate::Orchestrator::arun_observed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunEvent {
    /// The run started.
    #[non_exhaustive]
    Started {
        /// The user's query.
        query: String,
        /// The root run's id (the `parent_id` of its child runs).
        run_id: String,
    },
    /// An LLM turn is about to be requested.
    #[non_exhaustive]
    Iteration {
        /// 1-based turn number.
        iteration: u32,
    },
    /// A code block started executing.
    #[non_exhaustive]
    Executing {
        /// 1-based turn number.
        iteration: u32,
        /// The code.
        code: String,
    },
    /// A step finished.
    #[non_exhaustive]
    Step {
        /// The finished step.
        step: Box<Step>,
        /// Usage so far.
        usage: Usage,
    },
    /// A sub-call started (`llm_query`, one prompt of `llm_query_batched`, or a host tool),
    /// made by the run `run_id` (the root or any child run).
    #[non_exhaustive]
    SubCallStarted {
        /// The run whose code made the call.
        run_id: String,
        /// That run's depth (0 for the root).
        depth: u32,
        /// Unique within the tree of runs; [`SubCallFinished`](Self::SubCallFinished) repeats
        /// it.
        call_id: u64,
        /// The REPL function called (`llm_query`, `llm_query_batched`, or a tool's name).
        function: String,
        /// The start of what was sent, after the egress filter (at most 200 characters).
        preview: String,
    },
    /// A sub-call ended.
    #[non_exhaustive]
    SubCallFinished {
        /// The run whose code made the call.
        run_id: String,
        /// That run's depth.
        depth: u32,
        /// The id from [`SubCallStarted`](Self::SubCallStarted).
        call_id: u64,
        /// False when the code got an `Error: ...` string back.
        success: bool,
    },
    /// A child run started (`rlm_query` or one prompt of `rlm_query_batched`).
    #[non_exhaustive]
    ChildStarted {
        /// The child's id (its trajectory lines carry it).
        run_id: String,
        /// The run that started it.
        parent_id: String,
        /// The child's depth (1 for children of the root).
        depth: u32,
        /// The start of its question (at most 200 characters).
        query: String,
    },
    /// A child run asks its model for a turn.
    #[non_exhaustive]
    ChildIteration {
        /// The child's id.
        run_id: String,
        /// The child's depth.
        depth: u32,
        /// 1-based turn number within the child run.
        iteration: u32,
    },
    /// A child run ended.
    #[non_exhaustive]
    ChildFinished {
        /// The child's id.
        run_id: String,
        /// The run that started it.
        parent_id: String,
        /// The child's depth.
        depth: u32,
        /// Whether it produced an answer.
        success: bool,
        /// Why it failed.
        error: Option<String>,
    },
    /// The run ended (successfully or not). Always the last event.
    #[non_exhaustive]
    Finished {
        /// Whether it produced an answer.
        success: bool,
        /// The answer.
        final_answer: Option<String>,
        /// Why it failed.
        error: Option<String>,
    },
}

/// The events of one run, in order; the stream ends after [`RunEvent::Finished`].
///
/// Read it with [`recv`](Self::recv) from async code, [`recv_blocking`](Self::recv_blocking)
/// from a thread, or as a `futures_core::Stream` (re-exported by `futures-lite` and
/// `futures`).
#[derive(Debug)]
pub struct EventStream {
    rx: Pin<Box<async_channel::Receiver<RunEvent>>>,
}

impl Clone for EventStream {
    fn clone(&self) -> Self {
        EventStream::new((*self.rx).clone())
    }
}

impl EventStream {
    pub(crate) fn new(rx: async_channel::Receiver<RunEvent>) -> Self {
        EventStream { rx: Box::pin(rx) }
    }

    /// The next event, or `None` once the run has ended and every event was read.
    pub async fn recv(&self) -> Option<RunEvent> {
        self.rx.recv().await.ok()
    }

    /// Blocking [`recv`](Self::recv), for plain threads.
    pub fn recv_blocking(&self) -> Option<RunEvent> {
        self.rx.recv_blocking().ok()
    }

    /// The next event if one is waiting.
    pub fn try_recv(&self) -> Option<RunEvent> {
        self.rx.try_recv().ok()
    }

    /// True once the run has ended and every event was read.
    pub fn is_finished(&self) -> bool {
        self.rx.is_closed() && self.rx.is_empty()
    }
}

impl futures_lite::Stream for EventStream {
    type Item = RunEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<RunEvent>> {
        self.rx.as_mut().poll_next(cx)
    }
}
