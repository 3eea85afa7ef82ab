//! Sandboxes: where the model's code runs.
//!
//! A [`Sandbox`] starts one [`SandboxSession`] per run: a long-lived Python REPL whose
//! variables, imports and functions persist between code blocks. The default backend jails
//! the REPL with bubblewrap (see [`BwrapSandbox`]); [`UnsafeSandbox`] runs a plain subprocess
//! with rlimits and is only available after an explicit opt-in.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{SandboxConfig, SandboxKind};
use crate::context::LoadedContext;
use crate::error::{Error, Result};

#[cfg(feature = "docker")]
mod docker;
mod process;
mod protocol;
mod seccomp;

#[cfg(feature = "docker")]
pub use docker::DockerSandbox;
pub use process::{BwrapSandbox, UnsafeSandbox};

/// A boxed, `Send` future borrowing for `'a`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The Python driver that runs inside every sandbox (standard library only).
pub const REPL_DRIVER: &str = include_str!("repl.py");

/// Names the REPL defines for the model's code. The system prompt names exactly these.
pub const REPL_FUNCTIONS: &[&str] = &[
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
    /// Wall-clock time of the block (time spent waiting on host calls excluded).
    #[serde(with = "secs_f64")]
    pub duration: Duration,
    /// A final answer signalled with `FINAL(...)` / `FINAL_VAR(...)` in this block.
    pub final_answer: Option<String>,
    /// The REPL was restarted before this block (after a crash or timeout): earlier
    /// variables are gone.
    pub restarted: bool,
    /// The REPL died during this block; the next block starts a fresh one.
    pub state_lost: bool,
    /// The block ran without isolation ([`UnsafeSandbox`]).
    pub unsafe_runtime: bool,
}

impl ExecutionResult {
    /// True when the block ran to completion without exception or limit.
    pub fn success(&self) -> bool {
        self.exit_code == 0 && !self.timed_out && !self.memory_exceeded
    }
}

mod secs_f64 {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs_f64(f64::deserialize(d)?.max(0.0)))
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
                    path: d.path.clone(),
                    name: d.name.clone(),
                })
                .collect(),
            is_list: ctx.is_list,
            inline: ctx.total_bytes() <= inline_limit,
        }
    }
}

/// Requests that code in the REPL makes to the host while a block runs (`llm_query`, ...).
pub trait HostCalls: Send + Sync {
    /// Handles one call; `Err` becomes a Python `RuntimeError` with that message.
    fn call(
        &self,
        name: &str,
        args: serde_json::Value,
    ) -> BoxFuture<'_, std::result::Result<serde_json::Value, String>>;
}

/// A [`HostCalls`] that refuses every call.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHostCalls;

impl HostCalls for NoHostCalls {
    fn call(
        &self,
        name: &str,
        _args: serde_json::Value,
    ) -> BoxFuture<'_, std::result::Result<serde_json::Value, String>> {
        let msg = format!("{name} is not available in this session");
        Box::pin(async move { Err(msg) })
    }
}

/// A backend that starts REPL sessions.
pub trait Sandbox: Send + Sync + fmt::Debug {
    /// Starts a fresh session.
    fn start(&self, spec: SessionSpec) -> BoxFuture<'static, Result<Box<dyn SandboxSession>>>;
    /// Backend name (`bwrap`, `unsafe`).
    fn backend(&self) -> &'static str;
}

/// One persistent REPL. Dropping it kills the sandbox and every process in it.
pub trait SandboxSession: Send {
    /// Runs one block. A Python exception is a normal result (traceback in `stderr`); `Err` is
    /// reserved for a sandbox that cannot run at all.
    fn execute<'a>(
        &'a mut self,
        code: &'a str,
        calls: &'a dyn HostCalls,
    ) -> BoxFuture<'a, Result<ExecutionResult>>;
}

/// The sandbox selected by `cfg`.
pub fn from_config(cfg: &SandboxConfig) -> Result<Arc<dyn Sandbox>> {
    match cfg.kind {
        SandboxKind::Bwrap => Ok(Arc::new(BwrapSandbox::new(cfg.clone()))),
        SandboxKind::Unsafe => {
            if !cfg.allow_unsafe_runtime {
                return Err(Error::config(
                    "RLM_ALLOW_UNSAFE_RUNTIME",
                    "the unsafe sandbox runs model code without isolation; set RLM_ALLOW_UNSAFE_RUNTIME=1 to accept that",
                ));
            }
            Ok(Arc::new(UnsafeSandbox::new(cfg.clone())))
        }
        #[cfg(feature = "docker")]
        SandboxKind::Docker => Ok(Arc::new(DockerSandbox::new(cfg.clone()))),
        #[cfg(not(feature = "docker"))]
        SandboxKind::Docker => Err(Error::config(
            "RLM_SANDBOX",
            "this build of rlm has no Docker backend; rebuild with the `docker` feature",
        )),
    }
}
