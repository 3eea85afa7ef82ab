//! What a sandbox session is (the types and traits every backend and every caller share):
//! the outcome of a block, the context a session gets, host calls, and the `Sandbox` /
//! `SandboxSession` traits. A leaf module: it imports no other sandbox module but the typed
//! host calls of `protocol`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::protocol::{HostCall, HostReply};
use crate::BoxFuture;
use crate::config::SandboxKind;
use crate::context::LoadedContext;
use crate::error::Result;

/// Outcome of one code block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExecutionResult {
    /// Captured standard output (file-descriptor level, capped; head and tail kept).
    pub stdout: String,
    /// Captured standard error, including Python tracebacks.
    pub stderr: String,
    /// 0 when the block ran without exception, 1 after an exception, the process status
    /// (128 + signal) when the REPL died.
    pub exit_code: i32,
    /// The host killed the sandbox because the block ran past its wall-clock limit.
    pub timed_out: bool,
    /// The block hit the memory limit.
    pub memory_exceeded: bool,
    /// Wall-clock time of the block, time spent waiting on host calls excluded
    /// (milliseconds in JSON).
    #[serde(with = "crate::result::duration_ms")]
    pub duration: Duration,
    /// A final answer signalled with `FINAL(...)` / `FINAL_VAR(...)` in this block.
    pub final_answer: Option<String>,
    /// The REPL was restarted before this block (after a crash, timeout or protocol
    /// violation): earlier variables are gone.
    pub restarted: bool,
    /// The REPL died or was killed during this block; the next block starts a fresh one.
    pub state_lost: bool,
    /// Why the REPL was killed or ended during this block, when it was.
    pub lost_because: Option<ReplLost>,
    /// The block ran without the isolation the backend promises (the `unsafe` backend, or
    /// Docker without gVisor when that was explicitly allowed).
    pub unsafe_runtime: bool,
    /// What the sandbox's own cgroup enforces (e.g. `memory 1073741824 bytes, 68 processes,
    /// 1.00 CPUs`); `None`: per-process rlimits only (no cgroup on this host, or not this
    /// backend's way).
    pub cgroup: Option<String>,
}

impl ExecutionResult {
    /// True when the block ran to completion without exception or limit.
    pub fn success(&self) -> bool {
        self.exit_code == 0 && !self.timed_out && !self.memory_exceeded
    }
}

/// Why a REPL was killed or ended during a block; the next block starts a fresh REPL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReplLost {
    /// The block ran past its wall-clock limit and the sandbox was killed.
    #[non_exhaustive]
    TimedOut {
        /// The limit (milliseconds in JSON).
        #[serde(with = "crate::result::duration_ms")]
        limit: Duration,
        /// The limit that expired counts the sub-calls the block waited for
        /// (`max_cell_wall`), not only its own time (`execution_timeout`).
        including_subcalls: bool,
    },
    /// The REPL process ended on its own (a crash, `os._exit`, a signal).
    #[non_exhaustive]
    Exited {
        /// Its exit status (128 + n after signal n).
        status: i32,
    },
    /// The REPL sent a frame that does not belong to the running block (one for another
    /// block, one between blocks, or a malformed one); the sandbox was killed.
    #[non_exhaustive]
    ProtocolViolation {
        /// What was wrong.
        detail: String,
    },
}

impl std::fmt::Display for ReplLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplLost::TimedOut {
                limit,
                including_subcalls,
            } => write!(
                f,
                "the block ran longer than its limit of {:.1}s{} and the sandbox was killed",
                limit.as_secs_f64(),
                if *including_subcalls {
                    " (sub-calls included)"
                } else {
                    ""
                }
            ),
            ReplLost::Exited { status } => write!(f, "the REPL process ended (status {status})"),
            ReplLost::ProtocolViolation { detail } => {
                write!(f, "protocol violation: {detail}; the sandbox was killed")
            }
        }
    }
}

/// One context file made available to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContextFile {
    /// Host path (opened read-only).
    pub path: PathBuf,
    /// Name inside the sandbox: `/context/<name>`.
    pub name: String,
    /// The file as it was scanned for secrets: a file that no longer matches is refused.
    pub(crate) stamp: Option<crate::handle::FileStamp>,
}

impl ContextFile {
    /// Opens the file read-only, refusing it if it changed since it was scanned (a changed
    /// file could show the sandbox text no secret scan has seen).
    pub(crate) fn open_unchanged(&self) -> crate::error::Result<std::fs::File> {
        let file = std::fs::File::open(&self.path).map_err(|e| {
            crate::error::Error::context(format!(
                "cannot open context {}: {e}",
                self.path.display()
            ))
        })?;
        let meta = file.metadata().map_err(|e| {
            crate::error::Error::context(format!(
                "cannot open context {}: {e}",
                self.path.display()
            ))
        })?;
        if let Some(stamp) = self.stamp
            && crate::handle::FileStamp::of(&meta) != stamp
        {
            return Err(changed_error(&self.name));
        }
        Ok(file)
    }
}

/// The error for a context file that changed after it was scanned.
pub(crate) fn changed_error(name: &str) -> crate::error::Error {
    crate::error::Error::context(format!(
        "context file {name} changed after it was scanned for secrets (the sandbox is never \
         shown text no scan has seen); pass a file nobody writes to during the run, or a copy"
    ))
}

/// What a session needs to know about the run's context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionSpec {
    /// Context files, bound read-only.
    pub files: Vec<ContextFile>,
    /// The context is a list of documents (`ctx` and `context` are lists).
    pub is_list: bool,
    /// Also expose the whole text as `context`.
    pub inline: bool,
}

impl SessionSpec {
    /// A session with no context.
    pub fn empty() -> Self {
        SessionSpec::default()
    }

    /// A session whose context is the text file at `path` (validated like a run's context;
    /// also exposed as `context` when at most `inline_limit` bytes).
    pub fn for_file(path: impl AsRef<std::path::Path>, inline_limit: u64) -> Result<Self> {
        let lc = LoadedContext::load(&crate::Context::file(path.as_ref()))?;
        Ok(SessionSpec::for_context(&lc, inline_limit))
    }

    pub(crate) fn for_context(ctx: &LoadedContext, inline_limit: u64) -> Self {
        SessionSpec {
            files: ctx
                .docs
                .iter()
                .map(|d| ContextFile {
                    path: d.path().to_path_buf(),
                    name: d.name().to_string(),
                    stamp: Some(d.stamp()),
                })
                .collect(),
            is_list: ctx.is_list,
            inline: ctx.total_bytes() <= inline_limit,
        }
    }
}

/// Requests that code in the REPL makes to the host while a block runs (`llm_query`, ...).
pub trait HostCalls: Send + Sync {
    /// Answers one call. [`HostReply::Raise`] becomes a Python `RuntimeError`.
    fn call(&self, call: HostCall) -> BoxFuture<'_, HostReply>;
}

/// A [`HostCalls`] that refuses every call.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHostCalls;

impl HostCalls for NoHostCalls {
    fn call(&self, call: HostCall) -> BoxFuture<'_, HostReply> {
        let msg = crate::prompt::host_call_unavailable(call.name());
        Box::pin(async move { HostReply::Raise(msg) })
    }
}

/// Something that starts REPL sessions. Implement it to run the model's code elsewhere.
pub trait Sandbox: Send + Sync + std::fmt::Debug {
    /// Starts a fresh session.
    fn start(&self, spec: SessionSpec) -> BoxFuture<'static, Result<Box<dyn SandboxSession>>>;
    /// Which backend this is ([`SandboxKind::Custom`] for your own).
    fn kind(&self) -> SandboxKind;
}

/// One persistent REPL. Dropping it kills the sandbox and every process in it (without
/// blocking the caller).
pub trait SandboxSession: Send + 'static {
    /// Runs one block. A Python exception is a normal result (traceback in `stderr`); `Err` is
    /// reserved for a sandbox that cannot run at all.
    fn execute<'a>(
        &'a mut self,
        code: &'a str,
        calls: &'a dyn HostCalls,
    ) -> BoxFuture<'a, Result<ExecutionResult>>;

    /// Ends the session and waits until its sandbox is gone (killed and reaped) without
    /// blocking the caller's executor. Dropping a session also kills it, but finishes the
    /// clean-up in the background.
    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move { drop(self) })
    }
}
