//! The default backend: the REPL inside bubblewrap.
//!
//! New user, mount, pid, net, ipc, uts and cgroup namespaces; an empty root with read-only
//! `/usr`, a size-capped private `/tmp`, the context files read-only under `/context`, and
//! nothing else; uid/gid 65534; no capabilities; no new privileges; a seccomp filter; rlimits
//! on memory, CPU, processes, file size and open files. bwrap starts with an empty environment
//! and reads its arguments from a descriptor, so neither the host environment nor host paths
//! are visible through `/proc/1`. When the host runs as root the sandbox runs under a leased
//! unprivileged host uid so the process limit holds.

use std::os::fd::{OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use super::backend::{self, Backend, CTX_FD_BASE, ChildPlan, Launched};
use super::driver::{REPL_DRIVER, compiled_driver};
use super::seccomp;
use super::session::SessionSpec;
use super::sys;
use super::uid::UidLease;
use crate::config::{SandboxConfig, SandboxKind};
use crate::error::{Error, Result};

/// The bubblewrap backend.
#[derive(Debug, Clone)]
pub(crate) struct Bwrap {
    cfg: Arc<SandboxConfig>,
}

impl Bwrap {
    pub(crate) fn new(cfg: Arc<SandboxConfig>) -> Self {
        Bwrap { cfg }
    }
}

/// Resolves the bwrap binary, or explains how to install it.
pub(crate) fn find_bwrap(p: &Path) -> Result<PathBuf> {
    let found = if p.components().count() > 1 {
        p.is_file().then(|| p.to_path_buf())
    } else {
        std::env::var_os("PATH")
            .unwrap_or_default()
            .to_string_lossy()
            .split(':')
            .map(|d| Path::new(d).join(p))
            .find(|c| c.is_file())
    };
    found.ok_or_else(|| {
        Error::sandbox(format!(
            "bubblewrap ({}) was not found; install it (apt-get install bubblewrap), or choose another \
             backend with RLM_SANDBOX (`unsafe` runs model code WITHOUT isolation and also needs \
             RLM_ALLOW_UNSAFE_RUNTIME=1)",
            p.display()
        ))
    })
}

/// Size of the sandbox's `/dev/shm` (semaphores and small shared memory for
/// `multiprocessing`).
const SHM_BYTES: u64 = 16 << 20;

const PASSWD: &[u8] =
    b"root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/tmp:/usr/sbin/nologin\n";
const GROUP: &[u8] = b"root:x:0:\nnogroup:x:65534:\n";

impl Backend for Bwrap {
    fn kind(&self) -> SandboxKind {
        SandboxKind::Bwrap
    }

    fn diagnose(&self, stderr: &str) -> String {
        diagnose(stderr, self.cfg.pids)
    }

    fn launch(&self, spec: &SessionSpec) -> Result<Launched> {
        self.launch_with(spec, false)
    }

    fn launch_pooled(&self) -> Option<Result<Launched>> {
        Some(self.launch_with(&SessionSpec::default(), true))
    }
}

impl Bwrap {
    /// Starts a REPL for `spec`, or (`pooled`) one with no context yet that receives it
    /// later over a socket (see [`Launched::bind`]).
    fn launch_with(&self, spec: &SessionSpec, pooled: bool) -> Result<Launched> {
        let cfg = &self.cfg;
        let bwrap = find_bwrap(&cfg.bwrap)?;
        if !cfg.python.starts_with("/usr/") {
            return Err(Error::config(
                "RLM_PYTHON",
                format!(
                    "the sandbox binds only /usr; {} is outside it: use /usr/bin/python3 (apt-get install python3)",
                    cfg.python.display()
                ),
            ));
        }
        if !cfg.python.is_file() {
            return Err(Error::sandbox(format!(
                "{} not found; install Python 3 (apt-get install python3)",
                cfg.python.display()
            )));
        }
        let program = seccomp::program(cfg.network_enabled).ok_or_else(|| {
            Error::sandbox(format!(
                "no seccomp filter table for this architecture ({}); the sandbox refuses to run \
                 unfiltered. RLM_SANDBOX=unsafe with RLM_ALLOW_UNSAFE_RUNTIME=1 runs without isolation",
                std::env::consts::ARCH
            ))
        })?;
        let root = sys::is_root();
        let lease = if root {
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
        // How the REPL reaches the context files:
        // - as the calling (non-root) user: read-only bind mounts at /context/<name>, made
        //   from descriptors we opened (bwrap consumes them);
        // - under a leased uid (root host): that uid may not traverse the directories holding
        //   the files, so the REPL keeps read-only descriptors opened by the host instead (it
        //   cannot reopen them for writing through /proc).
        // A pooled REPL always gets descriptors: its context arrives after the start.
        let use_fds = lease.is_some() || pooled;
        let mut ctx_fds = Vec::new();
        for (i, f) in spec.files.iter().enumerate() {
            let file = f.open_unchanged()?;
            let target = CTX_FD_BASE + i as RawFd;
            if use_fds {
                ctx_fds.push(target);
            }
            plan.fd(file.into(), target);
        }
        plan.data("rlm-passwd", PASSWD, 12)?;
        plan.data("rlm-group", GROUP, 13)?;
        let compiled = compiled_driver(&cfg.python);
        let driver = match &compiled {
            Some(pyc) => {
                plan.data("rlm-repl", pyc, 14)?;
                "/opt/rlm/repl.pyc"
            }
            None => {
                plan.data("rlm-repl", REPL_DRIVER.as_bytes(), 14)?;
                "/opt/rlm/repl.py"
            }
        };
        plan.data("rlm-seccomp", &program, 11)?;
        let binder = if pooled {
            let (host, child) = std::os::unix::net::UnixStream::pair().map_err(pipe_err)?;
            plan.fd(child.into(), BINDER_FD);
            Some(OwnedFd::from(host))
        } else {
            None
        };

        let mut a: Vec<String> = Vec::new();
        let mut arg = |s: &str| a.push(s.to_string());
        for s in [
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/sbin",
            "/sbin",
            "--proc",
            "/proc",
            // Only the usual device nodes, on a read-only /dev, and a small /dev/shm.
            "--dev",
            "/dev",
            "--size",
            &SHM_BYTES.to_string(),
            "--tmpfs",
            "/dev/shm",
            "--remount-ro",
            "/dev",
            "--size",
            &cfg.tmpfs_bytes.to_string(),
            "--tmpfs",
            "/tmp",
            "--dir",
            "/etc",
            "--ro-bind-data",
            "12",
            "/etc/passwd",
            "--ro-bind-data",
            "13",
            "/etc/group",
            "--dir",
            "/opt/rlm",
            "--ro-bind-data",
            "14",
            driver,
        ] {
            arg(s);
        }
        if Path::new("/etc/localtime").exists() {
            for s in ["--ro-bind", "/etc/localtime", "/etc/localtime"] {
                arg(s);
            }
        }
        if !spec.files.is_empty() {
            arg("--dir");
            arg("/context");
        }
        if !use_fds {
            for (i, f) in spec.files.iter().enumerate() {
                arg("--ro-bind-fd");
                arg(&(CTX_FD_BASE + i as RawFd).to_string());
                arg(&format!("/context/{}", f.name));
            }
        }
        for s in ["--unshare-all", "--unshare-user", "--disable-userns"] {
            arg(s);
        }
        if cfg.network_enabled {
            arg("--share-net");
        }
        for s in [
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/bin:/bin",
            "--setenv",
            "HOME",
            "/tmp",
            "--setenv",
            "LANG",
            "C.UTF-8",
            "--setenv",
            "PYTHONIOENCODING",
            "utf-8",
            "--hostname",
            "sandbox",
            "--uid",
            "65534",
            "--gid",
            "65534",
            "--cap-drop",
            "ALL",
            "--chdir",
            "/tmp",
            "--remount-ro",
            "/",
            "--seccomp",
            "11",
            "--setenv",
            "RLM_CONTEXT_SPEC",
            &if pooled {
                backend::deferred_spec(BINDER_FD)
            } else {
                backend::context_spec(spec, &ctx_fds)
            },
        ] {
            arg(s);
        }
        let mut blob = Vec::new();
        for x in &a {
            blob.extend_from_slice(x.as_bytes());
            blob.push(0);
        }
        plan.data("rlm-args", &blob, 10)?;

        let files = if pooled {
            backend::POOL_MAX_FILES
        } else {
            spec.files.len()
        };
        backend::set_limits(&mut plan, cfg, files, lease.as_ref());

        let mut cmd = Command::new(bwrap);
        // Options travel through fd 10 (no host paths in /proc/1/cmdline); bwrap requires the
        // command itself on the command line. It names only sandbox paths.
        cmd.arg("--args")
            .arg("10")
            .arg("--")
            .arg(&cfg.python)
            // -S: no `site` at start-up; the driver adds the package directories itself.
            .args(["-I", "-S", "-B", "-u", driver])
            .env_clear();
        let child = plan
            .spawn(cmd, false, false)
            .map_err(|e| Error::sandbox(format!("cannot start bwrap: {e}")))?;
        let mut l = backend::launched(child, msg_r, cmd_w, cfg, lease, cgroup)?;
        l.binder = binder;
        Ok(l)
    }
}

/// Where a pooled REPL finds its binding socket.
const BINDER_FD: RawFd = 15;

/// The cause of a failed start, from bubblewrap's message.
fn diagnose(stderr: &str, pids: u64) -> String {
    if stderr.contains("Resource temporarily unavailable") {
        format!(
            " The process limit was reached while the sandbox was starting: the sandbox's host uid \
             already runs {pids} processes (RLM_PIDS_LIMIT). Another program may be running \
             processes as that uid; when rlm is not root it shares your uid's limit with \
             everything else you run."
        )
    } else if stderr.contains("No space left on device") {
        " The machine's limit on user namespaces is used up (sysctl user.max_user_namespaces); \
         raise it or wait for other sandboxes to end."
            .into()
    } else if stderr.contains("setting up uid map")
        || stderr.contains("Operation not permitted")
        || stderr.contains("No permissions to create new namespace")
    {
        " Unprivileged user namespaces seem to be disabled: `unshare -Ur true` must work \
         (sysctl kernel.unprivileged_userns_clone=1, or a container allowing them)."
            .into()
    } else if stderr.contains("execvp") || stderr.contains("No such file") {
        " An interpreter or file the sandbox needs is missing (RLM_PYTHON must be under /usr)."
            .into()
    } else {
        " Check that bubblewrap is installed (apt-get install bubblewrap) and that unprivileged \
         user namespaces work (`unshare -Ur true`)."
            .into()
    }
}

fn pipe_err(e: std::io::Error) -> Error {
    Error::sandbox(format!("cannot create a pipe: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn start_failures_name_their_cause() {
        let d = super::diagnose(
            "bwrap: Creating new namespace failed: Resource temporarily unavailable",
            64,
        );
        assert!(
            d.contains("process limit") && d.contains("RLM_PIDS_LIMIT"),
            "{d}"
        );
        assert!(!d.contains("namespaces seem"), "{d}");
        let d = super::diagnose("bwrap: setting up uid map: Permission denied", 64);
        assert!(d.contains("unshare -Ur true"), "{d}");
        let d = super::diagnose(
            "bwrap: Creating new namespace failed: No space left on device",
            64,
        );
        assert!(d.contains("max_user_namespaces"), "{d}");
    }
}
