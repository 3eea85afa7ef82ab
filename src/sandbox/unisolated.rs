//! The explicitly unsafe backend (`RLM_SANDBOX=unsafe`, only with
//! `RLM_ALLOW_UNSAFE_RUNTIME=1`): the REPL as a plain subprocess with rlimits, an empty
//! environment and, on a root host, a leased unprivileged uid. No namespaces, no seccomp:
//! every result is marked `unsafe_runtime`.

use std::os::fd::RawFd;
use std::process::Command;
use std::sync::Arc;

use super::backend::{self, Backend, CTX_FD_BASE, ChildPlan, Launched};
use super::driver::REPL_DRIVER;
use super::session::SessionSpec;
use super::sys;
use super::uid::UidLease;
use crate::config::{SandboxConfig, SandboxKind};
use crate::error::{Error, Result};

/// The unisolated backend.
#[derive(Debug, Clone)]
pub(crate) struct Unisolated {
    cfg: Arc<SandboxConfig>,
}

impl Unisolated {
    pub(crate) fn new(cfg: Arc<SandboxConfig>) -> Self {
        Unisolated { cfg }
    }
}

impl Backend for Unisolated {
    fn kind(&self) -> SandboxKind {
        SandboxKind::Unsafe
    }

    fn launch(&self, spec: &SessionSpec) -> Result<Launched> {
        let cfg = &self.cfg;
        let lease = if sys::is_root() {
            Some(UidLease::take(cfg.host_uid, &cfg.uid_lock_dir)?)
        } else {
            None
        };
        let cgroup = backend::cgroup(cfg)?;
        let (cmd_r, cmd_w) = sys::pipe().map_err(pipe_err)?;
        let (msg_r, msg_w) = sys::pipe().map_err(pipe_err)?;
        let mut plan = ChildPlan::default();
        plan.cgroup_procs = cgroup.as_ref().map(|c| c.procs_fds()).unwrap_or_default();
        plan.fd(cmd_r, 3);
        plan.fd(msg_w, 4);
        let mut fds = Vec::new();
        for (i, f) in spec.files.iter().enumerate() {
            let file = f.open_unchanged()?;
            let target = CTX_FD_BASE + i as RawFd;
            fds.push(target);
            plan.fd(file.into(), target);
        }
        backend::set_limits(&mut plan, cfg, spec.files.len(), lease.as_ref());
        let mut cmd = Command::new(&cfg.python);
        cmd.args(["-I", "-B", "-u", "-c", REPL_DRIVER])
            .env_clear()
            .env("RLM_CONTEXT_SPEC", backend::context_spec(spec, &fds))
            .env("LANG", "C.UTF-8")
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", "/tmp")
            .current_dir("/tmp");
        let child = plan
            .spawn(cmd, false, false)
            .map_err(|e| Error::sandbox(format!("cannot start {}: {e}", cfg.python.display())))?;
        let mut l = backend::launched(child, msg_r, cmd_w, cfg, lease, cgroup)?;
        l.unsafe_runtime = true;
        Ok(l)
    }
}

fn pipe_err(e: std::io::Error) -> Error {
    Error::sandbox(format!("cannot create a pipe: {e}"))
}
