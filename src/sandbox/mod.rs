//! Sandboxes: where the model's code runs.
//!
//! A [`Sandbox`] starts one [`SandboxSession`] per run: a long-lived Python REPL whose
//! variables, imports and functions persist between code blocks. [`from_config`] builds the
//! configured backend: bubblewrap (the default), Docker/gVisor (feature `docker`), or the
//! explicitly unsafe plain subprocess. An unknown or unavailable backend is an error, never a
//! silent fall-back to less isolation.
//!
//! Layout: `engine` drives sessions for any backend (frames, deadlines, restarts, kills);
//! `bwrap`, `docker` and `unisolated` each implement the small `Backend` trait; `sys` holds
//! every libc call and `unsafe` block; `protocol`, `capture` and `seccomp` are pure.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{SandboxConfig, SandboxKind};
use crate::context::LoadedContext;
use crate::error::{Error, Result};

mod backend;
mod bwrap;
mod capture;
#[cfg(feature = "docker")]
mod docker;
mod engine;
mod pipes;
mod protocol;
mod seccomp;
mod spawner;
mod sys;
mod uid;
mod unisolated;

pub use protocol::{HostCall, HostReply};

/// A boxed, `Send` future borrowing for `'a`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The Python driver that runs inside every sandbox (standard library only).
pub(crate) const REPL_DRIVER: &str = include_str!("repl.py");

/// Names the REPL defines for the model's code. The system prompt names exactly these (a
/// test checks both against the real REPL).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const REPL_FUNCTIONS: &[&str] = &[
    "FINAL",
    "final",
    "FINAL_VAR",
    "SHOW_VARS",
    "llm_query",
    "llm_query_batched",
    "rlm_query",
    "rlm_query_batched",
];

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
    /// Why the REPL was killed or ended during this block (the wall-clock limit, its exit
    /// status, a protocol violation), when it was.
    pub lost_because: Option<String>,
    /// The block ran without the isolation the backend promises (the `unsafe` backend, or
    /// Docker without gVisor when that was explicitly allowed).
    pub unsafe_runtime: bool,
}

impl ExecutionResult {
    /// True when the block ran to completion without exception or limit.
    pub fn success(&self) -> bool {
        self.exit_code == 0 && !self.timed_out && !self.memory_exceeded
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
        let msg = format!("{} is not available in this session", call.name());
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

/// The sandbox `cfg` selects. A backend this build does not have is an error naming the
/// setting; nothing falls back to a less isolated backend.
pub fn from_config(cfg: &SandboxConfig) -> Result<Arc<dyn Sandbox>> {
    let shared = Arc::new(cfg.clone());
    let backend: Arc<dyn backend::Backend> = match cfg.kind {
        SandboxKind::Bwrap => Arc::new(bwrap::Bwrap::new(shared.clone())),
        SandboxKind::Unsafe => {
            if !cfg.allow_unsafe_runtime {
                return Err(Error::config(
                    "RLM_ALLOW_UNSAFE_RUNTIME",
                    "the unsafe sandbox runs model code without isolation; set RLM_ALLOW_UNSAFE_RUNTIME=1 to accept that",
                ));
            }
            Arc::new(unisolated::Unisolated::new(shared.clone()))
        }
        #[cfg(feature = "docker")]
        SandboxKind::Docker => Arc::new(docker::Docker::new(shared.clone())),
        #[cfg(not(feature = "docker"))]
        SandboxKind::Docker => {
            return Err(Error::config(
                "RLM_SANDBOX",
                "this build of rlm has no Docker backend; rebuild with the `docker` feature",
            ));
        }
        SandboxKind::Custom => {
            return Err(Error::config(
                "RLM_SANDBOX",
                "`custom` names a sandbox you pass to the builder (OrchestratorBuilder::sandbox), not one rlm can start",
            ));
        }
    };
    Ok(Arc::new(engine::EngineSandbox::new(backend, shared)))
}
