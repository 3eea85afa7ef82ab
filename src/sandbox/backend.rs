//! The small trait every sandbox backend implements (launch / verify / kill), the launched
//! process the session engine drives, and the process plumbing the backends share.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::process::Command;
use std::time::{Duration, Instant};

use super::cgroup::{Cgroup, CgroupLimits};
use super::pipes::Pipes;
use super::session::SessionSpec;
use super::spawner;
use super::sys::{self, ChildSetup, Exec, Limit, Proc};
use super::uid::UidLease;
use crate::config::{CgroupPolicy, SandboxConfig, SandboxKind};
use crate::error::{Error, Result};
use crate::runtime;

/// What the REPL reported when it came up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadyInfo {
    /// Python version inside the sandbox.
    pub(crate) python: String,
    /// Kernel release seen inside (gVisor reports its own).
    pub(crate) kernel: String,
}

/// A backend: how a REPL process is started, checked and stopped. The methods block (they
/// start processes and wait); the session engine calls them on the blocking pool.
pub(crate) trait Backend: Send + Sync + fmt::Debug + 'static {
    /// Which backend this is.
    fn kind(&self) -> SandboxKind;

    /// Starts one REPL process for `spec`.
    fn launch(&self, spec: &SessionSpec) -> Result<Launched>;

    /// Starts one REPL for the sandbox pool: it starts with no context, reports ready, and
    /// then waits for [`Launched::bind`] to hand it a session's context. `None`: this
    /// backend cannot start REPLs ahead of their context (the pool stays empty).
    fn launch_pooled(&self) -> Option<Result<Launched>> {
        None
    }

    /// Checks the REPL's ready report against what the backend promises. May mark the
    /// process as running without the promised isolation (`unsafe_runtime`) or refuse it.
    fn verify(&self, _ready: &ReadyInfo, _launched: &mut Launched) -> Result<()> {
        Ok(())
    }

    /// Kills the process and everything it started, and reaps it.
    fn kill(&self, launched: &mut Launched) {
        launched.kill_and_reap();
    }

    /// What to tell the user when a REPL did not start, given what it printed on stderr:
    /// the likely cause and what to do.
    fn diagnose(&self, _stderr: &str) -> String {
        String::new()
    }
}

/// A running REPL process and the host ends of its pipes. Dropped while still running (a
/// start abandoned half-way), it is killed at once and reaped on the blocking pool; its uid
/// lease is released only after that.
#[derive(Debug)]
pub(crate) struct Launched {
    /// `None` once reaped.
    child: Option<Proc>,
    /// Taken by the engine while a step runs on the blocking pool.
    pub(crate) pipes: Option<Pipes>,
    /// The host uid the process runs as (root hosts); released when the process is gone.
    lease: Option<UidLease>,
    /// The sandbox's cgroup, removed when the process is gone.
    cgroup: Option<Cgroup>,
    /// The launcher's children that were killed (the sandbox's init).
    inner: Vec<u32>,
    /// Backend-specific name (the container name for Docker).
    pub(crate) name: Option<String>,
    /// The process runs without the isolation its backend promises.
    pub(crate) unsafe_runtime: bool,
    /// A pooled REPL's end of the socket its context arrives on (see [`Launched::bind`]).
    pub(crate) binder: Option<OwnedFd>,
}

/// The children of `pid` (`/proc/PID/task/PID/children`; a procfs read).
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

impl Launched {
    /// Starts killing the process (cheap, never blocks). A launcher with children (bwrap's
    /// monitor above the sandbox's init) loses its children first: it then reaps them and
    /// exits by itself, so no killed process of the sandbox is left for the host's init to
    /// reap (until it is, it still counts against its uid's process limit). Without children,
    /// the process group gets SIGKILL. Nothing is signalled once the process has been reaped
    /// (its pid may belong to someone else by then).
    pub(crate) fn signal_kill(&mut self) {
        let Some(c) = self.child.as_mut() else {
            return;
        };
        if !matches!(c.try_wait(), Ok(None)) {
            return;
        }
        let pid = c.id();
        let inner = children_of(pid);
        if inner.is_empty() {
            let _ = sys::kill_group(pid);
        } else {
            for p in &inner {
                let _ = sys::kill_one(*p);
            }
            self.inner = inner;
        }
    }

    /// SIGKILL, then wait for the process (blocking): up to a second for a launcher to reap
    /// its killed children and exit, then SIGKILL to its whole group.
    pub(crate) fn kill_and_reap(&mut self) -> Option<std::process::ExitStatus> {
        self.signal_kill();
        let mut child = self.child.take()?;
        let deadline = Instant::now() + Duration::from_secs(1);
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                Ok(None) => {
                    let _ = sys::kill_group(child.id());
                    break child.wait().ok();
                }
                Err(_) => break None,
            }
        };
        self.released();
        status
    }

    /// Hands a pooled REPL (one started by [`Backend::launch_pooled`]) the context of
    /// `spec`: the files, opened read-only here, travel as descriptors over the REPL's
    /// binding socket, followed by their names and the limits a REPL started for this
    /// session would have had (the REPL lowers its own to them before any code runs: a
    /// pooled REPL was started with room for [`POOL_MAX_FILES`] files, and, without a leased
    /// uid, a process limit counted when it started); the socket is then closed. The REPL
    /// maps the files and reports ready again (blocking).
    pub(crate) fn bind(&mut self, spec: &SessionSpec, cfg: &SandboxConfig) -> Result<()> {
        if !matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None))) {
            return Err(Error::sandbox("the pre-started REPL is gone"));
        }
        let sock = self.binder.take().ok_or_else(|| {
            Error::sandbox("this REPL was not started to receive a context later")
        })?;
        let open_files = cfg
            .open_files
            .max(CTX_FD_BASE as u64 + spec.files.len() as u64 + 16);
        let processes = if self.lease.is_some() {
            cfg.pids
        } else {
            cfg.pids + processes_of(sys::real_uid())
        };
        let files = spec
            .files
            .iter()
            .map(|f| f.open_unchanged())
            .collect::<Result<Vec<_>>>()?;
        let fds: Vec<RawFd> = files.iter().map(|f| f.as_raw_fd()).collect();
        let body = serde_json::json!({
            "list": spec.is_list,
            "inline": spec.inline,
            "names": spec.files.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
            "limits": {"RLIMIT_NOFILE": open_files, "RLIMIT_NPROC": processes},
        })
        .to_string();
        sys::send_fds(sock.as_fd(), &fds, body.as_bytes()).map_err(|e| {
            Error::sandbox(format!(
                "cannot hand the context to a pre-started sandbox: {e}"
            ))
        })
    }

    /// The process is gone: its cgroup and uid lease are released (blocking). The uid is
    /// only released once the cgroup is empty: a process of the sandbox still dying under
    /// that uid must not count against the next sandbox's process limit.
    fn released(&mut self) {
        release(
            self.cgroup.take(),
            self.lease.take(),
            std::mem::take(&mut self.inner),
        );
    }

    /// What the sandbox's cgroup enforces, when it has one.
    pub(crate) fn cgroup_summary(&self) -> Option<String> {
        self.cgroup.as_ref().map(|c| c.summary.clone())
    }

    /// OOM kills in the sandbox's cgroup so far (a sysfs read, never blocking on a disk).
    pub(crate) fn oom_kills(&self) -> u64 {
        self.cgroup.as_ref().map_or(0, Cgroup::oom_kills)
    }

    /// The exit status of a process that is ending on its own (waits up to `grace`), killing
    /// it if it does not end (blocking).
    pub(crate) fn reap(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            match self.child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(st))) => {
                    self.child = None;
                    self.released();
                    return Some(st);
                }
                None | Some(Err(_)) => return None,
                Some(Ok(None)) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        self.kill_and_reap()
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        if self.child.is_none() {
            return;
        }
        self.signal_kill();
        let mut rest = Launched {
            child: self.child.take(),
            pipes: None,
            lease: self.lease.take(),
            cgroup: self.cgroup.take(),
            name: None,
            unsafe_runtime: false,
            inner: std::mem::take(&mut self.inner),
            binder: None,
        };
        runtime::detach(move || {
            rest.kill_and_reap();
        });
    }
}

/// Removes `cgroup`, then releases `lease`; a lease whose sandbox's cgroup would not empty is
/// kept (until this process exits) rather than handed to another sandbox.
fn release(cgroup: Option<Cgroup>, lease: Option<UidLease>, inner: Vec<u32>) {
    let mut emptied = cgroup.is_none_or(Cgroup::remove);
    // The killed init of the sandbox, reaped by its launcher (or by the host's init if the
    // launcher died first): its uid is free once it is gone.
    let deadline = Instant::now() + Duration::from_secs(1);
    while inner
        .iter()
        .any(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
    {
        if Instant::now() >= deadline {
            emptied = false;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if emptied {
        drop(lease);
    } else if let Some(l) = lease {
        std::mem::forget(l);
    }
}

/// Most context files a pooled REPL can receive (sessions with more start a fresh REPL).
pub(crate) const POOL_MAX_FILES: usize = 64;

/// First descriptor number of context files inside the sandbox (when they are passed as
/// descriptors).
pub(crate) const CTX_FD_BASE: RawFd = 20;

/// Number of processes currently owned by `uid` (for `RLIMIT_NPROC` of non-root callers,
/// which counts every process of the user).
pub(crate) fn processes_of(uid: u32) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().as_bytes().iter().all(u8::is_ascii_digit))
                .filter(|e| e.metadata().map(|m| m.uid() == uid).unwrap_or(false))
                .count() as u64
        })
        .unwrap_or(0)
}

/// Descriptors a child gets at fixed numbers, and the limits and identity it runs with.
#[derive(Debug, Default)]
pub(crate) struct ChildPlan {
    fds: Vec<(OwnedFd, RawFd)>,
    pub(crate) limits: Vec<(Limit, u64)>,
    pub(crate) drop_to: Option<u32>,
    pub(crate) cgroup_procs: Vec<RawFd>,
}

impl ChildPlan {
    /// The child sees `fd` as descriptor number `target`.
    pub(crate) fn fd(&mut self, fd: OwnedFd, target: RawFd) {
        self.fds.push((fd, target));
    }

    /// A memfd holding `data`, seen by the child as `target`.
    pub(crate) fn data(&mut self, name: &str, data: &[u8], target: RawFd) -> Result<()> {
        let fd = sys::memfd(name, data)
            .map_err(|e| Error::sandbox(format!("cannot create an in-memory file: {e}")))?;
        self.fd(fd, target);
        Ok(())
    }

    /// Starts `cmd` (its program, arguments, explicit environment and working directory;
    /// with `inherit_env` this process's environment under it) from the spawner threads
    /// with this plan applied before exec. Stdin is `/dev/null` unless `piped_stdin`;
    /// stdout and stderr are pipes.
    pub(crate) fn spawn(
        self,
        cmd: Command,
        piped_stdin: bool,
        inherit_env: bool,
    ) -> std::io::Result<Spawned> {
        let mut env: Vec<(std::ffi::OsString, std::ffi::OsString)> = if inherit_env {
            std::env::vars_os().collect()
        } else {
            Vec::new()
        };
        for (k, v) in cmd.get_envs() {
            env.retain(|(name, _)| name != k);
            if let Some(v) = v {
                env.push((k.to_owned(), v.to_owned()));
            }
        }
        let exec = Exec {
            program: cmd.get_program().into(),
            args: cmd.get_args().map(|a| a.to_owned()).collect(),
            env,
            cwd: cmd.get_current_dir().map(|d| d.to_path_buf()),
        };
        let (stdin_child, stdin_host) = if piped_stdin {
            let (r, w) = sys::pipe()?;
            (r, Some(w))
        } else {
            (std::fs::File::open("/dev/null")?.into(), None)
        };
        let (stdout_host, stdout_child) = sys::pipe()?;
        let (stderr_host, stderr_child) = sys::pipe()?;
        // Move every source above every target, so no dup2 clobbers a source it still needs.
        let top = self.fds.iter().map(|(_, t)| *t).max().unwrap_or(2) + 1;
        let top = top.max(64);
        let mut high = Vec::with_capacity(self.fds.len());
        for (fd, target) in &self.fds {
            high.push((sys::dup_at_least(fd.as_fd(), top)?, *target));
        }
        let stdio = [
            sys::dup_at_least(stdin_child.as_fd(), top)?,
            sys::dup_at_least(stdout_child.as_fd(), top)?,
            sys::dup_at_least(stderr_child.as_fd(), top)?,
        ];
        drop((self.fds, stdin_child, stdout_child, stderr_child));
        let setup = ChildSetup {
            stdio: [
                stdio[0].as_raw_fd(),
                stdio[1].as_raw_fd(),
                stdio[2].as_raw_fd(),
            ],
            dups: high.iter().map(|(fd, t)| (fd.as_raw_fd(), *t)).collect(),
            limits: self.limits,
            drop_to: self.drop_to,
            cgroup_procs: self.cgroup_procs,
        };
        let proc = spawner::spawn(exec, setup)?;
        // The child has its copies now.
        drop((high, stdio));
        Ok(Spawned {
            proc,
            stdin: stdin_host,
            stdout: Some(stdout_host),
            stderr: Some(stderr_host),
        })
    }
}

/// A started child and the host ends of its standard streams.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) proc: Proc,
    /// Its stdin, when piped.
    pub(crate) stdin: Option<OwnedFd>,
    /// Its stdout (taken by a backend that reads frames from it).
    pub(crate) stdout: Option<OwnedFd>,
    pub(crate) stderr: Option<OwnedFd>,
}

/// The sandbox's cgroup as the configuration asks: `None` where cgroups are off or
/// unavailable (and not required), an error where they are required but unavailable.
pub(crate) fn cgroup(cfg: &SandboxConfig) -> Result<Option<Cgroup>> {
    if cfg.cgroups == CgroupPolicy::Off {
        return Ok(None);
    }
    let limits = CgroupLimits {
        memory_bytes: cfg.memory_bytes,
        // bwrap's own processes count too.
        pids: cfg.pids + 4,
        cpus: cfg.cpus,
    };
    match Cgroup::create(limits) {
        Ok(cg) => Ok(Some(cg)),
        Err(why) if cfg.cgroups == CgroupPolicy::Required => Err(Error::sandbox(format!(
            "RLM_CGROUPS=required but no cgroup can be made: {why}; run as root (or with a delegated \
             cgroup) or set RLM_CGROUPS=auto to fall back to per-process rlimits"
        ))),
        Err(_) => Ok(None),
    }
}

/// The rlimits of a REPL process from `cfg` (room for its `files` context descriptors), and
/// the uid it drops to. With a leased uid the process limit is the sandbox's own; without one
/// RLIMIT_NPROC counts every process of the calling user, so it is raised by those.
pub(crate) fn set_limits(
    plan: &mut ChildPlan,
    cfg: &SandboxConfig,
    files: usize,
    lease: Option<&UidLease>,
) {
    let open_files = cfg.open_files.max(CTX_FD_BASE as u64 + files as u64 + 16);
    plan.limits = vec![
        (Limit::AddressSpace, cfg.memory_bytes),
        (Limit::Cpu, cfg.cpu_time.as_secs().max(1)),
        (Limit::FileSize, cfg.file_size_bytes),
        (Limit::Core, 0),
        (Limit::OpenFiles, open_files),
    ];
    match lease {
        Some(l) => {
            plan.limits.push((Limit::Processes, cfg.pids));
            plan.drop_to = Some(l.uid());
        }
        None => plan
            .limits
            .push((Limit::Processes, cfg.pids + processes_of(sys::real_uid()))),
    }
}

/// The `RLM_CONTEXT_SPEC` the driver reads: list or single, inline or not, names, and the
/// descriptor numbers when the files arrive as descriptors rather than at `/context/<name>`.
pub(crate) fn context_spec(spec: &SessionSpec, fds: &[RawFd]) -> String {
    spec_json(spec, fds, None)
}

/// The `RLM_CONTEXT_SPEC` of a pooled REPL: no context yet; it arrives later on descriptor
/// `binder` (see [`Launched::bind`]).
pub(crate) fn deferred_spec(binder: RawFd) -> String {
    spec_json(&SessionSpec::default(), &[], Some(binder))
}

fn spec_json(spec: &SessionSpec, fds: &[RawFd], binder: Option<RawFd>) -> String {
    serde_json::json!({
        "deferred": binder,
        "list": spec.is_list,
        "inline": spec.inline,
        "names": spec.files.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
        "fds": fds,
        "hints": crate::prompt::REPL_HINTS
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect::<serde_json::Map<_, _>>(),
    })
    .to_string()
}

/// Wraps a spawned child's stdout/stderr and the protocol pipes.
pub(crate) fn launched(
    child: Spawned,
    msg: OwnedFd,
    cmd: OwnedFd,
    cfg: &SandboxConfig,
    lease: Option<UidLease>,
    cgroup: Option<Cgroup>,
) -> Result<Launched> {
    let (out, err) = (child.stdout, child.stderr);
    let mut l = Launched {
        child: Some(child.proc),
        pipes: None,
        lease,
        cgroup,
        inner: Vec::new(),
        name: None,
        unsafe_runtime: false,
        binder: None,
    };
    match Pipes::new(out, err, msg, cmd, cfg.max_output_bytes) {
        Ok(p) => {
            l.pipes = Some(p);
            Ok(l)
        }
        Err(e) => {
            l.kill_and_reap();
            Err(Error::sandbox(format!(
                "cannot set up the REPL's pipes: {e}"
            )))
        }
    }
}
