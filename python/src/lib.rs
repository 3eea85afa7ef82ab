//! `rlm._native`: the compiled half of the Python package `rlm` (the pure-Python half, in
//! `python/rlm/`, is what users import: `from rlm import Orchestrator`).
//!
//! It holds an [`rlm::Orchestrator`] and runs its runs on this module's own threads, never on
//! the caller's:
//!
//! - `rlm-py-exec-N` (two to four, started on first use and kept for the life of the process):
//!   an [`async_executor::Executor`] driving every run's future. The futures themselves wait on
//!   the library's blocking pool and timer (see the `rlm` crate's docs), so a few threads
//!   serve thousands of concurrent runs. No tokio, no asyncio, no Python code on them.
//! - `rlm-py-deliver` (one): hands finished runs to Python. It is the only thread here that
//!   takes the GIL on its own, once per batch of finished runs, and calls each run's `done`
//!   callback, which (in `rlm/_orchestrator.py`) completes the asyncio future through
//!   `loop.call_soon_threadsafe`. Keeping that off the executor means a busy interpreter never
//!   stalls the runs themselves.
//!
//! The synchronous `run` submits to the same executor and waits for the result with the GIL
//! released, waking every 50 ms to let Python deliver signals (Ctrl-C cancels the run, waits
//! for its sandbox to be killed, and raises `KeyboardInterrupt`). It never touches asyncio, so
//! it works in a plain script and inside a running event loop (Jupyter), where it blocks that
//! loop's thread for the duration of the run like any blocking call.
//!
//! Cancellation: every run is started with [`rlm::Orchestrator::arun_observed`]; its
//! [`rlm::CancelHandle`] is what `RunHandle.cancel()` fires (when the asyncio task awaiting
//! it is cancelled) and what `shutdown()` fires for every run still going at interpreter exit.
//! The library then kills the run's sandboxes and ends it with `Error::Cancelled`; that result
//! is still delivered, and dropped on the Python side because the future is already cancelled.
//!
//! Results and errors cross as JSON text (the library's own serde formats); the Python side
//! turns them into dataclasses and the exception classes of `rlm.core.exceptions`.
//!
//! Not done here: no event streaming to Python, no sessions, no custom Python LLMs, sandboxes
//! or tools (the library supports them; the binding exposes the guide's API only).

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use futures_lite::FutureExt;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use rlm::{CancelHandle, Context, RunResult};

create_exception!(
    _native,
    NativeError,
    PyException,
    "An `rlm` error as JSON text (`{\"kind\": ..., ...}`); `rlm` turns it into a subclass of \
     `rlm.core.exceptions.RLMError` before a user sees it."
);

/// How a run ended: its result, or the text of a panic (a bug in `rlm`).
type Outcome = Result<RunResult, String>;

/// A finished run on its way to Python: the callback and what to hand it.
struct Completion {
    done: Py<PyAny>,
    outcome: Outcome,
}

/// The module's threads and the runs still going (for `shutdown`).
struct Runtime {
    executor: &'static async_executor::Executor<'static>,
    completions: async_channel::Sender<Completion>,
    live: Mutex<HashMap<u64, CancelHandle>>,
    next_id: AtomicU64,
    /// Set by `shutdown`: the interpreter is exiting, callbacks are no longer called.
    closing: AtomicBool,
    /// The process that started the threads: a child made by `fork()` has none of them
    /// (nor the library's own), so runs there are refused instead of hanging.
    pid: u32,
}

/// The executor threads: at least two (a run's polling never waits behind another's), at
/// most four (the futures only wait; their blocking work is on the library's pool).
fn executor_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 4)
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        let executor: &'static async_executor::Executor<'static> =
            Box::leak(Box::new(async_executor::Executor::new()));
        for i in 0..executor_threads() {
            std::thread::Builder::new()
                .name(format!("rlm-py-exec-{i}"))
                .spawn(move || {
                    futures_lite::future::block_on(
                        executor.run(futures_lite::future::pending::<()>()),
                    )
                })
                .expect("start an rlm-py-exec thread");
        }
        let (tx, rx) = async_channel::unbounded::<Completion>();
        std::thread::Builder::new()
            .name("rlm-py-deliver".into())
            .spawn(move || deliver_loop(rx))
            .expect("start the rlm-py-deliver thread");
        Runtime {
            executor,
            completions: tx,
            live: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closing: AtomicBool::new(false),
            pid: std::process::id(),
        }
    })
}

/// Calls the `done` callbacks of finished runs, a batch per GIL acquisition.
fn deliver_loop(rx: async_channel::Receiver<Completion>) {
    while let Ok(first) = rx.recv_blocking() {
        let rt = runtime();
        if rt.closing.load(Ordering::SeqCst) {
            // The interpreter is exiting: nobody waits for these any more. Forget the
            // callbacks rather than touch the interpreter (pyo3 would queue the decref).
            std::mem::forget(first.done);
            continue;
        }
        let attached = Python::try_attach(|py| {
            let mut next = Some(first);
            while let Some(c) = next.take() {
                deliver(py, c);
                next = rx.try_recv().ok();
            }
        });
        if attached.is_none() {
            // The interpreter is finalizing; nothing more can be delivered.
            return;
        }
    }
}

/// Calls `done(result_json, None)`, or `done(None, panic_text)`.
fn deliver(py: Python<'_>, c: Completion) {
    let args = match c.outcome {
        Ok(r) => match serde_json::to_string(&r) {
            Ok(j) => (Some(j), None),
            Err(e) => (None, Some(format!("the result could not be encoded: {e}"))),
        },
        Err(panic) => (None, Some(panic)),
    };
    if let Err(e) = c.done.call1(py, args) {
        // The Python callback swallows its own errors; anything left is a bug worth seeing.
        e.write_unraisable(py, Some(c.done.bind(py)));
    }
}

/// The text of a panic payload.
fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal error in rlm (please report): {msg}")
}

/// Builds the run's context from what the Python side passed (at most one is set).
fn context_from(
    file: Option<PathBuf>,
    files: Option<Vec<PathBuf>>,
    text: Option<String>,
    documents: Option<Vec<String>>,
) -> Option<Context> {
    file.map(Context::File)
        .or(files.map(Context::Files))
        .or(text.map(Context::Text))
        .or(documents.map(Context::Documents))
}

/// An `rlm::Error` as the `NativeError` the Python side maps to its exception classes.
fn native_error(e: &rlm::Error) -> PyErr {
    let json = serde_json::to_string(e).unwrap_or_else(|_| {
        serde_json::json!({"kind": "unknown", "message": e.to_string()}).to_string()
    });
    NativeError::new_err((json, e.to_string()))
}

/// The compiled orchestrator (`rlm.Orchestrator` wraps it).
#[pyclass(frozen, module = "rlm._native", name = "Orchestrator")]
struct NativeOrchestrator {
    inner: rlm::Orchestrator,
}

impl std::fmt::Debug for NativeOrchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.inner, f)
    }
}

impl NativeOrchestrator {
    /// Starts `query` on the executor; `finish` gets its outcome on an executor thread.
    fn start(
        &self,
        query: String,
        context: Option<Context>,
        finish: impl FnOnce(Outcome) + Send + 'static,
    ) -> PyResult<RunHandle> {
        let rt = runtime();
        if rt.pid != std::process::id() {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "rlm: this process was forked after rlm had started runs in its parent, and a \
                 forked child has none of rlm's threads; start runs in the parent only, or \
                 start child processes with the 'spawn' or 'forkserver' method \
                 (multiprocessing.set_start_method), or before the parent's first run",
            ));
        }
        let observed = self.inner.arun_observed(query, context);
        // Progress events are not forwarded to Python: with the stream gone, the run's
        // sends to it fail and are ignored.
        drop(observed.events);
        let id = rt.next_id.fetch_add(1, Ordering::Relaxed);
        let cancel = observed.cancel;
        rt.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, cancel.clone());
        let run = observed.result;
        rt.executor
            .spawn(run_then(run, move |outcome| {
                runtime()
                    .live
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                finish(outcome);
            }))
            .detach();
        Ok(RunHandle { id, cancel })
    }
}

/// Awaits `run` (a panic becomes an `Err`), then calls `finish` with the outcome.
async fn run_then(
    run: impl Future<Output = RunResult> + Send + 'static,
    finish: impl FnOnce(Outcome),
) {
    let outcome = AssertUnwindSafe(run)
        .catch_unwind()
        .await
        .map_err(panic_text);
    finish(outcome);
}

#[pymethods]
impl NativeOrchestrator {
    /// Builds an orchestrator from the environment plus `settings`, `(name, value)` pairs in
    /// the builder's text form; errors name the setting (as the keyword argument it came
    /// from). Raises `NativeError`.
    #[new]
    fn new(settings: Vec<(String, String)>) -> PyResult<Self> {
        let mut b = rlm::Orchestrator::builder().env();
        for (name, value) in &settings {
            b = b.setting_from(name, value.as_str(), name);
        }
        b.build()
            .map(|inner| NativeOrchestrator { inner })
            .map_err(|e| native_error(&e))
    }

    /// Starts a run and returns at once; `done(result_json, panic_text)` is called from the
    /// module's delivery thread (with the GIL) when it ends, cancelled or not.
    #[pyo3(signature = (query, done, file=None, files=None, text=None, documents=None))]
    fn submit(
        &self,
        query: String,
        done: Py<PyAny>,
        file: Option<PathBuf>,
        files: Option<Vec<PathBuf>>,
        text: Option<String>,
        documents: Option<Vec<String>>,
    ) -> PyResult<RunHandle> {
        let context = context_from(file, files, text, documents);
        self.start(query, context, move |outcome| {
            let _ = runtime()
                .completions
                .send_blocking(Completion { done, outcome });
        })
    }

    /// Runs to completion and returns the result as JSON text, blocking the calling thread
    /// with the GIL released. Signals are checked every 50 ms: a `KeyboardInterrupt` cancels
    /// the run and is raised once its sandboxes are gone (or after 10 s).
    #[pyo3(signature = (query, file=None, files=None, text=None, documents=None))]
    fn run(
        &self,
        py: Python<'_>,
        query: String,
        file: Option<PathBuf>,
        files: Option<Vec<PathBuf>>,
        text: Option<String>,
        documents: Option<Vec<String>>,
    ) -> PyResult<String> {
        let context = context_from(file, files, text, documents);
        let (tx, rx) = mpsc::channel::<Outcome>();
        let handle = self.start(query, context, move |outcome| {
            let _ = tx.send(outcome);
        })?;
        // The receiver is not `Sync`: it moves into each wait and back out.
        let mut rx = rx;
        let outcome = loop {
            let (got, back) = py.detach(move || (rx.recv_timeout(Duration::from_millis(50)), rx));
            rx = back;
            match got {
                Ok(outcome) => break outcome,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(signal) = py.check_signals() {
                        handle.cancel.cancel();
                        py.detach(move || rx.recv_timeout(Duration::from_secs(10)).ok());
                        return Err(signal);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    break Err("internal error in rlm: the run was lost".into());
                }
            }
        };
        match outcome {
            Ok(r) => serde_json::to_string(&r).map_err(|e| {
                NativeError::new_err((
                    String::new(),
                    format!("the result could not be encoded: {e}"),
                ))
            }),
            Err(panic) => Err(NativeError::new_err((String::new(), panic))),
        }
    }

    /// The model the runs use.
    #[getter]
    fn model(&self) -> String {
        self.inner.config().llm.model.clone()
    }

    /// The provider's wire format (`openai`, `anthropic` or `gemini`).
    #[getter]
    fn provider(&self) -> String {
        self.inner.config().llm.provider.as_str().to_string()
    }

    /// The provider's base URL.
    #[getter]
    fn base_url(&self) -> String {
        self.inner.config().llm.base_url.clone()
    }

    /// The sandbox backend (`bwrap`, `docker`, ...).
    #[getter]
    fn sandbox(&self) -> String {
        self.inner.config().sandbox.kind.as_str().to_string()
    }

    /// Maximum LLM turns per run.
    #[getter]
    fn max_iterations(&self) -> u32 {
        self.inner.config().limits.max_iterations
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

/// A run started by `submit`: cancel it with `cancel()`.
#[pyclass(frozen, module = "rlm._native")]
#[derive(Debug)]
struct RunHandle {
    id: u64,
    cancel: CancelHandle,
}

#[pymethods]
impl RunHandle {
    /// Cancels the run: its sandboxes are killed and it ends with `Error::Cancelled`.
    /// Cancelling a finished run does nothing.
    fn cancel(&self) {
        self.cancel.cancel();
    }

    /// A number identifying the run within this process.
    #[getter]
    fn id(&self) -> u64 {
        self.id
    }
}

/// Runs still going (started and not yet finished).
#[pyfunction]
fn live_runs() -> usize {
    runtime()
        .live
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .len()
}

/// Called at interpreter exit: cancels every run still going, stops calling Python, and waits
/// up to `timeout` seconds for the library's background clean-up (sandboxes killed and
/// reaped). True when everything finished.
#[pyfunction]
fn shutdown(py: Python<'_>, timeout: f64) -> bool {
    let Some(rt) = RUNTIME.get() else {
        // No run was ever started: nothing to stop.
        return true;
    };
    rt.closing.store(true, Ordering::SeqCst);
    let handles: Vec<CancelHandle> = rt
        .live
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    for h in &handles {
        h.cancel();
    }
    let limit = Duration::try_from_secs_f64(timeout.max(0.0)).unwrap_or(Duration::ZERO);
    py.detach(|| {
        let deadline = Instant::now() + limit;
        while live_runs() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        rlm::wait_for_cleanup(deadline.saturating_duration_since(Instant::now()))
    })
}

/// Every setting: `(environment variable, keyword, default, meaning)`.
#[pyfunction]
fn known_settings() -> Vec<(&'static str, &'static str, &'static str, &'static str)> {
    rlm::known_settings()
        .into_iter()
        .map(|s| (s.name, s.key, s.default, s.help))
        .collect()
}

/// The compiled half of `rlm`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeOrchestrator>()?;
    m.add_class::<RunHandle>()?;
    m.add("NativeError", m.py().get_type::<NativeError>())?;
    m.add_function(wrap_pyfunction!(live_runs, m)?)?;
    m.add_function(wrap_pyfunction!(shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(known_settings, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
