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
