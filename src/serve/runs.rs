//! Admission (slots and the queue), the run itself, and cancelling runs one by one or all at
//! once at shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::State;
use super::api::ApiError;
use crate::context::Context;
use crate::events::RunEvent;
use crate::orchestrator::{CancelHandle, Orchestrator};
use crate::result::RunResult;

/// Cancels one run, including before it started (while it waits for a slot).
#[derive(Debug)]
pub(crate) struct RunCancel {
    requested: AtomicBool,
    handle: CancelHandle,
}

impl RunCancel {
    pub(crate) fn cancel(&self) {
        self.requested.store(true, Ordering::SeqCst);
        self.handle.cancel();
    }

    fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }
}

/// Slots, the admission count and every live run.
#[derive(Debug)]
pub(crate) struct Runs {
    slots_tx: async_channel::Sender<()>,
    slots_rx: async_channel::Receiver<()>,
    /// Runs admitted and not finished (running + queued).
    admitted: AtomicUsize,
    limit: usize,
    live: Mutex<HashMap<u64, Arc<RunCancel>>>,
    next: AtomicU64,
    /// Set once shutdown's grace period is over: every run is cancelled, queued ones never
    /// start.
    cancel_all: AtomicBool,
    /// Set when shutdown begins: nothing new is admitted.
    draining: AtomicBool,
}

impl Runs {
    pub(crate) fn new(max_concurrent: usize, queue: usize) -> Runs {
        let n = max_concurrent.max(1);
        let (slots_tx, slots_rx) = async_channel::bounded(n);
        for _ in 0..n {
            let _ = slots_tx.try_send(());
        }
        Runs {
            slots_tx,
            slots_rx,
            admitted: AtomicUsize::new(0),
            limit: n + queue,
            live: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            cancel_all: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        }
    }

    /// Runs admitted and not finished.
    pub(crate) fn admitted(&self) -> usize {
        self.admitted.load(Ordering::SeqCst)
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Cancels every run, and every run admitted from now on.
    pub(crate) fn cancel_all(&self) {
        self.cancel_all.store(true, Ordering::SeqCst);
        for c in self.live.lock().unwrap_or_else(|e| e.into_inner()).values() {
            c.cancel();
        }
    }
}

/// A place in the server: taken by [`admit`], given back on drop.
#[derive(Debug)]
pub(crate) struct Admission {
    state: Arc<State>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.state.runs.admitted.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A place for one more run, or 503 (shutting down) / 429 (slots and queue full).
pub(crate) fn admit(state: &Arc<State>) -> Result<Admission, ApiError> {
    let r = &state.runs;
    if r.is_draining() {
        return Err(ApiError::new(
            503,
            "shutting_down",
            "the server is shutting down",
        ));
    }
    let prev = r.admitted.fetch_add(1, Ordering::SeqCst);
    let adm = Admission {
        state: state.clone(),
    };
    if prev >= r.limit {
        drop(adm);
        return Err(ApiError::new(
            429,
            "overloaded",
            "every run slot and the queue are taken; retry later",
        ));
    }
    Ok(adm)
}

/// Seconds a client refused with 429 should wait: the mean run time so far, 1 to 60.
pub(crate) fn retry_after(state: &State) -> u64 {
    (state.metrics.mean_run_seconds().ceil() as u64).clamp(1, 60)
}

/// A run, prepared and not yet started.
pub(crate) struct Prepared {
    pub(crate) cancel: Arc<RunCancel>,
    id: u64,
    events: crate::events::EventStream,
    result: crate::BoxFuture<'static, RunResult>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").field("id", &self.id).finish()
    }
}

/// Prepares `query` over `context` on `orch` (nothing runs until [`execute`]) and registers
/// it for cancellation.
pub(crate) fn prepare(
    state: &State,
    orch: &Orchestrator,
    query: String,
    context: Option<Context>,
) -> Prepared {
    let obs = orch.arun_observed(query, context);
    let cancel = Arc::new(RunCancel {
        requested: AtomicBool::new(false),
        handle: obs.cancel,
    });
    let id = state.runs.next.fetch_add(1, Ordering::SeqCst);
    state
        .runs
        .live
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, cancel.clone());
    if state.runs.cancel_all.load(Ordering::SeqCst) {
        cancel.cancel();
    }
    Prepared {
        cancel,
        id,
        events: obs.events,
        result: Box::pin(obs.result),
    }
}

/// Gives back what a run held, whether it finished or was dropped (a client gone).
struct Running<'a> {
    state: &'a State,
    id: u64,
    slot: bool,
    queued: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let m = &self.state.metrics;
        if self.queued {
            m.queued.fetch_sub(1, Ordering::SeqCst);
        }
        if self.slot {
            m.in_flight.fetch_sub(1, Ordering::SeqCst);
            let _ = self.state.runs.slots_tx.try_send(());
        }
        self.state
            .runs
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// Waits for a slot, runs, records the metrics. Each event goes to `on_event` as it happens
/// (it returns false when nobody listens any more: the run is then cancelled). Dropping the
/// future cancels the run and kills its sandbox.
pub(crate) async fn execute(
    state: &State,
    _admission: Admission,
    p: Prepared,
    mut on_event: impl FnMut(RunEvent) -> bool + Send,
) -> RunResult {
    let mut guard = Running {
        state,
        id: p.id,
        slot: false,
        queued: true,
    };
    state.metrics.queued.fetch_add(1, Ordering::SeqCst);
    let waited = Instant::now();
    let got = state.runs.slots_rx.recv().await.is_ok();
    state.metrics.queued.fetch_sub(1, Ordering::SeqCst);
    guard.queued = false;
    guard.slot = got;
    state.metrics.queue_wait(waited.elapsed());
    if p.cancel.is_requested() || !got {
        let r = RunResult::failed(crate::Error::Cancelled);
        state.metrics.run_finished(&r);
        return r;
    }
    state.metrics.in_flight.fetch_add(1, Ordering::SeqCst);
    let cancel = p.cancel.clone();
    let events = p.events;
    let forward = async move {
        while let Some(e) = events.recv().await {
            if !on_event(e) {
                cancel.cancel();
            }
        }
    };
    let (result, ()) = futures_lite::future::zip(p.result, forward).await;
    state.metrics.run_finished(&result);
    drop(guard);
    result
}

/// A cancel handle attached to no run, for tests of the modules that keep them.
#[cfg(test)]
pub(crate) fn test_cancel() -> Arc<RunCancel> {
    Arc::new(RunCancel {
        requested: AtomicBool::new(false),
        handle: CancelHandle::new().0,
    })
}
