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

use std::sync::Arc;

use crate::config::{SandboxConfig, SandboxKind};
use crate::error::{Error, Result};

mod backend;
mod bwrap;
mod capture;
mod cgroup;
#[cfg(feature = "docker")]
mod docker;
pub(crate) mod driver;
mod engine;
mod pipes;
mod pool;
mod protocol;
mod seccomp;
mod session;
mod spawner;
mod sys;
mod uid;
mod unisolated;

pub use crate::BoxFuture;
pub use protocol::{HostCall, HostReply};
pub use session::{
    ContextFile, ExecutionResult, HostCalls, NoHostCalls, ReplLost, Sandbox, SandboxSession,
    SessionSpec,
};

#[cfg(test)]
pub(crate) use driver::REPL_FUNCTIONS;
pub(crate) use session::changed_error;

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
    if cfg.pool > 0 && cfg.kind != SandboxKind::Bwrap {
        return Err(Error::config(
            "RLM_SANDBOX_POOL",
            format!(
                "only the bwrap backend starts sandboxes ahead of their context, and RLM_SANDBOX is {}; \
                 set RLM_SANDBOX_POOL=0 or use RLM_SANDBOX=bwrap",
                cfg.kind.as_str()
            ),
        ));
    }
    Ok(Arc::new(engine::EngineSandbox::new(backend, shared)))
}
