//! The REPL as a child process: bubblewrap (namespaces, seccomp, rlimits, uid drop) or a
//! plain subprocess with rlimits. Owns the process: `Drop` SIGKILLs and reaps it.

use std::collections::BTreeSet;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use super::protocol::{Decoder, HostMsg, ReplMsg, encode};
use super::{
    BoxFuture, ExecutionResult, HostCalls, REPL_DRIVER, Sandbox, SandboxSession, SessionSpec,
    seccomp,
};
use crate::config::SandboxConfig;
use crate::error::{Error, Result};
use crate::runtime;

/// First fd number of context files inside the sandbox.
const CTX_FD_BASE: RawFd = 20;
/// Most documents one session accepts.
const MAX_DOCS: usize = 1000;
/// How long a fresh REPL may take to report ready.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The default backend: a persistent Python REPL inside bubblewrap.
///
/// Isolation: new user, mount, pid, net, ipc, uts and cgroup namespaces; an empty root with
/// read-only `/usr`, a size-capped private `/tmp`, the context files read-only under
/// `/context`, and nothing else; uid/gid 65534; no capabilities; no new privileges; a seccomp
/// filter; rlimits on memory, CPU, processes, file size and open files. bwrap starts with an
/// empty environment and reads its arguments from a file descriptor, so neither the host
/// environment nor host paths are visible through `/proc/1`. When the host runs as root the
/// sandbox runs under a dedicated unprivileged host uid so the process limit holds.
#[derive(Debug, Clone)]
pub struct BwrapSandbox {
    cfg: Arc<SandboxConfig>,
}

/// A plain subprocess with rlimits and no isolation. Only constructed when
/// `allow_unsafe_runtime` is set; every result carries `unsafe_runtime = true`.
#[derive(Debug, Clone)]
pub struct UnsafeSandbox {
    cfg: Arc<SandboxConfig>,
}

impl BwrapSandbox {
    /// A bubblewrap sandbox with these limits.
    pub fn new(cfg: SandboxConfig) -> Self {
        BwrapSandbox { cfg: Arc::new(cfg) }
    }
}

impl UnsafeSandbox {
    /// An unisolated sandbox with these limits.
    pub fn new(cfg: SandboxConfig) -> Self {
        UnsafeSandbox { cfg: Arc::new(cfg) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    Bwrap,
    Unsafe,
    /// A container through the `docker` CLI (see `docker.rs`).
    #[cfg(feature = "docker")]
    Docker(Arc<super::docker::Plan>),
}

impl Sandbox for BwrapSandbox {
    fn start(&self, spec: SessionSpec) -> BoxFuture<'static, Result<Box<dyn SandboxSession>>> {
        let cfg = self.cfg.clone();
        Box::pin(async move {
            let mode = match find_bwrap(&cfg.bwrap) {
                Ok(_) => Mode::Bwrap,
                Err(_) if cfg.allow_unsafe_runtime => Mode::Unsafe,
                Err(e) => return Err(e),
            };
            ProcessSession::start(cfg, spec, mode)
                .await
                .map(|s| Box::new(s) as Box<dyn SandboxSession>)
        })
    }
    fn backend(&self) -> &'static str {
        "bwrap"
    }
}

impl Sandbox for UnsafeSandbox {
    fn start(&self, spec: SessionSpec) -> BoxFuture<'static, Result<Box<dyn SandboxSession>>> {
        let cfg = self.cfg.clone();
        Box::pin(async move {
            ProcessSession::start(cfg, spec, Mode::Unsafe)
                .await
                .map(|s| Box::new(s) as Box<dyn SandboxSession>)
        })
    }
    fn backend(&self) -> &'static str {
        "unsafe"
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
            "bubblewrap ({}) was not found; install it (apt-get install bubblewrap) or, to run model code \
             WITHOUT isolation, set RLM_ALLOW_UNSAFE_RUNTIME=1",
            p.display()
        ))
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid() == 0
    }
}

/// Host uids handed to concurrent sessions when the host runs as root: one uid per session so
/// that `RLIMIT_NPROC` (counted per uid) is per sandbox.
pub(crate) struct UidSlot(u32);

fn uid_pool() -> &'static Mutex<BTreeSet<u32>> {
    static POOL: OnceLock<Mutex<BTreeSet<u32>>> = OnceLock::new();
    POOL.get_or_init(|| Mutex::new(BTreeSet::new()))
}

impl UidSlot {
    fn take(base: u32) -> Result<UidSlot> {
        let mut used = uid_pool().lock().unwrap_or_else(|e| e.into_inner());
        let uid = (base..base + 4096)
            .find(|u| !used.contains(u))
            .ok_or_else(|| Error::sandbox("more than 4096 concurrent sandboxes in one process"))?;
        used.insert(uid);
        Ok(UidSlot(uid))
    }
}

impl Drop for UidSlot {
    fn drop(&mut self) {
        uid_pool()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.0);
    }
}

/// A data file descriptor (memfd) holding `data`, positioned at 0.
fn memfd(name: &str, data: &[u8]) -> Result<OwnedFd> {
    let cname = CString::new(name).expect("no NUL in memfd names");
    // SAFETY: valid C string; the returned fd is owned below.
    #[allow(unsafe_code)]
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::sandbox(format!(
            "memfd_create: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: fd was just created and is owned by nobody else.
    #[allow(unsafe_code)]
    let mut f = unsafe { File::from_raw_fd(fd) };
    f.write_all(data)
        .map_err(|e| Error::sandbox(format!("writing sandbox data: {e}")))?;
    // SAFETY: plain lseek on an fd we own.
    #[allow(unsafe_code)]
    unsafe {
        libc::lseek(f.as_raw_fd(), 0, libc::SEEK_SET)
    };
    Ok(OwnedFd::from(f))
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints.
    #[allow(unsafe_code)]
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if r != 0 {
        return Err(Error::sandbox(format!(
            "pipe2: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: both fds were just created and are owned here.
    #[allow(unsafe_code)]
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Duplicates `fd` to a number >= `min` (close-on-exec), so that the `dup2` calls in the
/// child never overwrite a source they still need.
fn dup_high(fd: &OwnedFd, min: RawFd) -> Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a valid fd returns a new fd owned below.
    #[allow(unsafe_code)]
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if n < 0 {
        return Err(Error::sandbox(format!(
            "fcntl(F_DUPFD): {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: n is a fresh fd.
    #[allow(unsafe_code)]
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

fn set_nonblocking(fd: &OwnedFd) {
    // SAFETY: fcntl flag manipulation on a valid fd.
    #[allow(unsafe_code)]
    unsafe {
        let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

/// Number of processes currently owned by `uid` (for `RLIMIT_NPROC` of non-root callers,
/// which counts every process of the user).
fn processes_of(uid: u32) -> u64 {
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

/// Everything `pre_exec` needs, computed before fork (the child may not allocate).
struct ChildSetup {
    dups: Vec<(RawFd, RawFd)>,
    limits: Vec<(libc::__rlimit_resource_t, libc::rlim_t)>,
    drop_to: Option<u32>,
}

impl ChildSetup {
    /// Runs in the forked child before exec: async-signal-safe calls only.
    fn apply(&self) -> std::io::Result<()> {
        // SAFETY: only async-signal-safe libc calls on plain integers; no allocation.
        #[allow(unsafe_code)]
        unsafe {
            for &(src, dst) in &self.dups {
                if libc::dup2(src, dst) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The spawning thread is a dedicated, never-exiting thread, so this fires only
            // when the host process dies.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            for &(res, v) in &self.limits {
                let lim = libc::rlimit {
                    rlim_cur: v,
                    rlim_max: v,
                };
                if libc::setrlimit(res, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(uid) = self.drop_to
                && (libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setresgid(uid, uid, uid) != 0
                    || libc::setresuid(uid, uid, uid) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

type SpawnJob = Box<dyn FnOnce() + Send>;

/// Children are spawned from one dedicated thread that never exits: `PR_SET_PDEATHSIG` (and
/// bwrap's `--die-with-parent`) fire when the *thread* that forked the child exits, so a
/// short-lived pool thread would kill healthy sandboxes.
fn spawner() -> &'static Mutex<mpsc::Sender<SpawnJob>> {
    static TX: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("rlm-spawner".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .expect("spawn rlm-spawner thread");
        Mutex::new(tx)
    })
}

pub(crate) fn spawn_on_spawner(mut cmd: Command) -> std::io::Result<Child> {
    let (tx, rx) = mpsc::channel();
    let job: SpawnJob = Box::new(move || {
        let _ = tx.send(cmd.spawn());
    });
    spawner()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send(job)
        .map_err(|_| std::io::Error::other("spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("spawner thread is gone"))?
}

/// Output of one stream, capped: the first and last `cap / 2` bytes are kept.
#[derive(Debug, Default)]
struct Capture {
    head: Vec<u8>,
    tail: Vec<u8>,
    total: u64,
    cap: usize,
}

impl Capture {
    fn new(cap: usize) -> Self {
        Capture {
            cap,
            ..Default::default()
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        let half = self.cap / 2;
        let room = half.saturating_sub(self.head.len());
        let (h, t) = data.split_at(room.min(data.len()));
        self.head.extend_from_slice(h);
        if !t.is_empty() {
            self.tail.extend_from_slice(t);
            if self.tail.len() > 2 * half.max(1) {
                let cut = self.tail.len() - half;
                self.tail.drain(..cut);
            }
        }
    }

    fn finish(&mut self) -> String {
        let half = self.cap / 2;
        if self.tail.len() > half {
            let cut = self.tail.len() - half;
            self.tail.drain(..cut);
        }
        let kept = (self.head.len() + self.tail.len()) as u64;
        let mut out = String::from_utf8_lossy(&self.head).into_owned();
        if self.total > kept {
            out.push_str(&format!(
                "\n[... {} bytes of output cut (limit {} bytes per stream) ...]\n",
                self.total - kept,
                self.cap
            ));
        }
        out.push_str(&String::from_utf8_lossy(&self.tail));
        self.head.clear();
        self.tail.clear();
        self.total = 0;
        out
    }
}

/// The host ends of the REPL's pipes. Moved into blocking closures while a block runs.
pub(crate) struct Io {
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    msg: OwnedFd,
    cmd: OwnedFd,
    dec: Decoder,
    stdout: Capture,
    stderr: Capture,
}

enum Event {
    Msg(ReplMsg),
    Eof,
    Timeout,
    Protocol(String),
}

impl Io {
    /// Host ends of a REPL's pipes (`out`/`err` may be absent when output is multiplexed).
    pub(crate) fn new(
        out: Option<OwnedFd>,
        err: Option<OwnedFd>,
        msg: OwnedFd,
        cmd: OwnedFd,
        cap: usize,
    ) -> Io {
        for f in [out.as_ref(), err.as_ref(), Some(&msg), Some(&cmd)]
            .into_iter()
            .flatten()
        {
            set_nonblocking(f);
        }
        Io {
            out,
            err,
            msg,
            cmd,
            dec: Decoder::default(),
            stdout: Capture::new(cap),
            stderr: Capture::new(cap),
        }
    }

    /// Writes `frame` (if any), then waits for the next REPL message, collecting output
    /// meanwhile. Blocking: run it on the pool.
    fn step(&mut self, frame: Option<Vec<u8>>, deadline: Instant) -> Event {
        if let Some(f) = frame
            && let Err(ev) = self.write_all(&f, deadline)
        {
            return ev;
        }
        loop {
            match self.dec.next() {
                Ok(Some(ReplMsg::Output { stream, data })) => {
                    let bytes: Vec<u8> = data.chars().map(|c| c as u32 as u8).collect();
                    match stream.as_str() {
                        "stderr" => self.stderr.push(&bytes),
                        _ => self.stdout.push(&bytes),
                    }
                    continue;
                }
                Ok(Some(m)) => {
                    self.drain();
                    return Event::Msg(m);
                }
                Ok(None) => {}
                Err(e) => return Event::Protocol(e),
            }
            let now = Instant::now();
            if now >= deadline {
                return Event::Timeout;
            }
            let ms = (deadline - now).as_millis().min(i32::MAX as u128) as i32;
            let mut fds = vec![libc::pollfd {
                fd: self.msg.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            for f in [&self.out, &self.err].into_iter().flatten() {
                fds.push(libc::pollfd {
                    fd: f.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            // SAFETY: fds is a valid array of pollfd structs.
            #[allow(unsafe_code)]
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms.max(1)) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Event::Protocol(format!("poll: {e}"));
            }
            let mut buf = [0u8; 65536];
            for p in &fds[1..] {
                if p.revents != 0 {
                    self.read_stream(p.fd, &mut buf);
                }
            }
            if fds[0].revents != 0 {
                match read_fd(fds[0].fd, &mut buf) {
                    Some(0) => {
                        self.drain();
                        return Event::Eof;
                    }
                    Some(n) => self.dec.push(&buf[..n]),
                    None => {}
                }
            }
        }
    }

    fn read_stream(&mut self, fd: RawFd, buf: &mut [u8]) {
        let is_out = self.out.as_ref().is_some_and(|f| f.as_raw_fd() == fd);
        match read_fd(fd, buf) {
            Some(0) => {
                if is_out {
                    self.out = None;
                } else {
                    self.err = None;
                }
            }
            Some(n) => {
                if is_out {
                    self.stdout.push(&buf[..n]);
                } else {
                    self.stderr.push(&buf[..n]);
                }
            }
            None => {}
        }
    }

    /// Reads whatever output is already in the pipes (non-blocking fds).
    fn drain(&mut self) {
        let mut buf = [0u8; 65536];
        for is_out in [true, false] {
            loop {
                let fd = if is_out {
                    self.out.as_ref()
                } else {
                    self.err.as_ref()
                };
                let Some(fd) = fd.map(|f| f.as_raw_fd()) else {
                    break;
                };
                match read_fd(fd, &mut buf) {
                    Some(0) => {
                        if is_out {
                            self.out = None
                        } else {
                            self.err = None
                        }
                        break;
                    }
                    Some(n) if is_out => self.stdout.push(&buf[..n]),
                    Some(n) => self.stderr.push(&buf[..n]),
                    None => break,
                }
            }
        }
    }

    fn write_all(&mut self, mut data: &[u8], deadline: Instant) -> std::result::Result<(), Event> {
        while !data.is_empty() {
            // SAFETY: writing from a valid slice to an fd we own.
            #[allow(unsafe_code)]
            let n = unsafe { libc::write(self.cmd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
            if n > 0 {
                data = &data[n as usize..];
                continue;
            }
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::Interrupted => continue,
                std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(Event::Timeout);
                    }
                    // Keep reading output while the REPL is busy, so neither side stalls.
                    let mut fds = [libc::pollfd {
                        fd: self.cmd.as_raw_fd(),
                        events: libc::POLLOUT,
                        revents: 0,
                    }];
                    // SAFETY: valid pollfd array.
                    #[allow(unsafe_code)]
                    unsafe {
                        libc::poll(fds.as_mut_ptr(), 1, 50)
                    };
                    self.drain();
                }
                _ => return Err(Event::Eof),
            }
        }
        Ok(())
    }
}

/// `Some(n)` bytes read (0 = end of file), `None` when nothing is available.
fn read_fd(fd: RawFd, buf: &mut [u8]) -> Option<usize> {
    loop {
        // SAFETY: reading into a valid buffer from an fd we own.
        #[allow(unsafe_code)]
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Some(n as usize);
        }
        match std::io::Error::last_os_error().kind() {
            std::io::ErrorKind::Interrupted => continue,
            std::io::ErrorKind::WouldBlock => return None,
            _ => return Some(0),
        }
    }
}

/// A running REPL process.
pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) io: Option<Io>,
    pub(crate) _uid: Option<UidSlot>,
    /// `(docker binary, container name)` for container sessions: killed through the engine.
    pub(crate) container: Option<(PathBuf, String)>,
    /// The process runs without the isolation the backend promises (unsafe runtime).
    pub(crate) unsafe_runtime: bool,
}

impl Proc {
    fn kill(&mut self) -> Option<std::process::ExitStatus> {
        if let Ok(Some(st)) = self.child.try_wait() {
            return Some(st);
        }
        if let Some((docker, name)) = &self.container {
            let _ = Command::new(docker)
                .args(["kill", "--signal", "KILL", name])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling our own (not yet reaped) child and its process group.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
            libc::kill(pid, libc::SIGKILL);
        }
        self.child.wait().ok()
    }

    /// The exit status of a REPL that is ending on its own (waits up to `grace`), killing it
    /// if it does not.
    fn reap(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        self.kill()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// One persistent REPL session (bubblewrap or unsafe).
#[derive(Clone, Copy, PartialEq, Eq)]
enum LaunchMode {
    Bwrap,
    Unsafe,
}

pub(crate) struct ProcessSession {
    cfg: Arc<SandboxConfig>,
    spec: SessionSpec,
    mode: Mode,
    proc: Option<Proc>,
    state_lost: bool,
    next_id: u64,
}

impl ProcessSession {
    pub(crate) async fn start(
        cfg: Arc<SandboxConfig>,
        spec: SessionSpec,
        mode: Mode,
    ) -> Result<ProcessSession> {
        if spec.files.len() > MAX_DOCS {
            return Err(Error::context(format!(
                "{} documents given; at most {MAX_DOCS} are supported per run: join them into fewer documents or one file",
                spec.files.len()
            )));
        }
        let mut s = ProcessSession {
            cfg,
            spec,
            mode,
            proc: None,
            state_lost: false,
            next_id: 0,
        };
        s.proc = Some(s.spawn().await?);
        Ok(s)
    }

    async fn spawn(&self) -> Result<Proc> {
        let cfg = self.cfg.clone();
        let spec = self.spec.clone();
        let mode = self.mode.clone();
        let mut proc = runtime::unblock(move || match &mode {
            #[cfg(feature = "docker")]
            Mode::Docker(plan) => super::docker::launch(&cfg, &spec, plan),
            m => launch(&cfg, &spec, m),
        })
        .await?;
        let mode = &self.mode;
        let mut io = proc.io.take().expect("fresh process has io");
        let (mut io, ev) = runtime::unblock(move || {
            let ev = io.step(None, Instant::now() + START_TIMEOUT);
            (io, ev)
        })
        .await;
        match ev {
            #[cfg_attr(not(feature = "docker"), allow(unused_variables))]
            Event::Msg(ReplMsg::Ready { kernel, .. }) => {
                #[cfg(feature = "docker")]
                if let Mode::Docker(plan) = mode {
                    // podman's Docker API lists runsc but may silently run runc: check what the
                    // container really runs on (gVisor reports kernel 4.4.0).
                    let host =
                        std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
                    let gvisor_kernel = kernel != host.trim() && kernel.starts_with("4.4.0");
                    proc.unsafe_runtime = !(plan.gvisor && gvisor_kernel);
                    if proc.unsafe_runtime && !self.cfg.allow_unsafe_runtime {
                        let _ = proc.kill();
                        return Err(Error::sandbox(format!(
                            "the engine was asked for gVisor (runsc) but the container runs on kernel {kernel}, not \
                             gVisor's: the engine ignored the runtime (podman's Docker API does). Fix the engine, or set \
                             RLM_ALLOW_UNSAFE_RUNTIME=1 to accept its default runtime (results are marked unsafe)"
                        )));
                    }
                }
                proc.io = Some(io);
                Ok(proc)
            }
            other => {
                // Give a process that is exiting on its own a moment, to report its real status.
                std::thread::sleep(Duration::from_millis(20));
                let status = proc
                    .kill()
                    .map(|s| format!(" (status {s})"))
                    .unwrap_or_default();
                let stderr = io.stderr.finish();
                let why = match other {
                    Event::Timeout => "it did not report ready in time".to_string(),
                    Event::Protocol(p) => p,
                    _ => format!("it exited during start-up{status}"),
                };
                let hint = if *mode == Mode::Bwrap {
                    " Check that unprivileged user namespaces are enabled (`unshare -Ur true` must work) \
                     and that bubblewrap is installed (apt-get install bubblewrap); RLM_ALLOW_UNSAFE_RUNTIME=1 \
                     runs without isolation."
                } else {
                    ""
                };
                Err(Error::sandbox(format!(
                    "the Python REPL could not be started: {why}. stderr: {}.{hint}",
                    stderr.trim()
                )))
            }
        }
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let _ = p.kill();
        }
    }
}

impl SandboxSession for ProcessSession {
    fn execute<'a>(
        &'a mut self,
        code: &'a str,
        calls: &'a dyn HostCalls,
    ) -> BoxFuture<'a, Result<ExecutionResult>> {
        Box::pin(async move {
            let mut restarted = false;
            if self.proc.as_ref().is_none_or(|p| p.io.is_none()) {
                self.kill();
                self.proc = Some(self.spawn().await?);
                restarted = self.state_lost;
                self.state_lost = false;
            }
            self.next_id += 1;
            let id = self.next_id;
            let timeout = self.cfg.execution_timeout;
            let started = Instant::now();
            let mut deadline = started + timeout;
            let mut waited_on_host = Duration::ZERO;
            let mut io = self
                .proc
                .as_mut()
                .and_then(|p| p.io.take())
                .expect("live process");
            let mut frame = Some(encode(&HostMsg::Exec {
                id,
                code: code.to_string(),
            }));
            let unsafe_runtime =
                self.mode == Mode::Unsafe || self.proc.as_ref().is_some_and(|p| p.unsafe_runtime);
            loop {
                let f = frame.take();
                let (io2, ev) = runtime::unblock(move || {
                    let ev = io.step(f, deadline);
                    (io, ev)
                })
                .await;
                io = io2;
                let result = |exit_code,
                              timed_out,
                              memory_exceeded,
                              final_answer,
                              state_lost,
                              io: &mut Io| {
                    ExecutionResult {
                        stdout: io.stdout.finish(),
                        stderr: io.stderr.finish(),
                        exit_code,
                        timed_out,
                        memory_exceeded,
                        duration: started.elapsed().saturating_sub(waited_on_host),
                        final_answer,
                        restarted,
                        state_lost,
                        unsafe_runtime,
                    }
                };
                match ev {
                    Event::Msg(ReplMsg::Done {
                        id: done,
                        ok,
                        final_answer,
                        memory_error,
                    }) if done == id => {
                        let r = result(
                            i32::from(!ok),
                            false,
                            memory_error,
                            final_answer,
                            false,
                            &mut io,
                        );
                        if let Some(p) = self.proc.as_mut() {
                            p.io = Some(io);
                        }
                        return Ok(r);
                    }
                    Event::Msg(ReplMsg::Call {
                        id: cell,
                        call_id,
                        name,
                        args,
                    }) if cell == id => {
                        let t = Instant::now();
                        let reply = calls.call(&name, args).await;
                        let spent = t.elapsed();
                        waited_on_host += spent;
                        deadline += spent;
                        let (value, error) = match reply {
                            Ok(v) => (Some(v), None),
                            Err(e) => (None, Some(e)),
                        };
                        frame = Some(encode(&HostMsg::Reply {
                            call_id,
                            value,
                            error,
                        }));
                    }
                    Event::Timeout => {
                        self.kill();
                        self.state_lost = true;
                        let mut r = result(137, true, false, None, true, &mut io);
                        r.stderr.push_str(&format!(
                            "\n[rlm] the block ran longer than {:.1}s and the sandbox was killed; the REPL \
                             restarts with a fresh state (earlier variables are gone)\n",
                            timeout.as_secs_f64()
                        ));
                        return Ok(r);
                    }
                    Event::Eof | Event::Protocol(_) | Event::Msg(_) => {
                        let why = match &ev {
                            Event::Protocol(p) => format!("protocol violation: {p}"),
                            Event::Msg(m) => {
                                format!("protocol violation: unexpected message {m:?}")
                            }
                            _ => String::new(),
                        };
                        let mut proc = self.proc.take();
                        let status = runtime::unblock(move || {
                            proc.as_mut()
                                .and_then(|p| p.reap(Duration::from_millis(300)))
                        })
                        .await;
                        self.proc = None;
                        self.state_lost = true;
                        let code = match status {
                            Some(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(9)),
                            None => 137,
                        };
                        let mut r = result(code, false, false, None, true, &mut io);
                        r.stderr.push_str(&format!(
                            "\n[rlm] the REPL process ended (status {code}{}{}); it restarts with a fresh state \
                             (earlier variables are gone)\n",
                            if why.is_empty() { "" } else { ", " },
                            why
                        ));
                        return Ok(r);
                    }
                }
            }
        })
    }
}

impl Drop for ProcessSession {
    fn drop(&mut self) {
        self.kill();
    }
}

fn passwd_data() -> (&'static [u8], &'static [u8]) {
    (
        b"root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/tmp:/usr/sbin/nologin\n",
        b"root:x:0:\nnogroup:x:65534:\n",
    )
}

/// Spawns the REPL process (blocking: run on the pool).
fn launch(cfg: &SandboxConfig, spec: &SessionSpec, mode: &Mode) -> Result<Proc> {
    let mode = match mode {
        Mode::Bwrap => LaunchMode::Bwrap,
        _ => LaunchMode::Unsafe,
    };
    let root = is_root();
    let uid = if root && mode == LaunchMode::Bwrap {
        Some(UidSlot::take(cfg.host_uid)?)
    } else {
        None
    };
    let (cmd_r, cmd_w) = pipe()?;
    let (msg_r, msg_w) = pipe()?;
    let mut owned: Vec<(OwnedFd, RawFd)> = vec![(cmd_r, 3), (msg_w, 4)];
    // How the REPL reaches the context files:
    // - bwrap as the calling (non-root) user: read-only bind mounts at /context/<name>,
    //   made from descriptors we opened (bwrap consumes them);
    // - bwrap under a dropped uid (root host): that uid may not traverse the directories
    //   holding the files, so the REPL keeps read-only descriptors opened by the host instead
    //   (the dropped uid cannot reopen them for writing through /proc);
    // - unsafe runtime: descriptors as well.
    let use_fds = mode == LaunchMode::Unsafe || uid.is_some();
    let mut ctx_files = Vec::with_capacity(spec.files.len());
    for (i, f) in spec.files.iter().enumerate() {
        let file = File::open(&f.path).map_err(|e| {
            Error::context(format!("cannot open context {}: {e}", f.path.display()))
        })?;
        let target = CTX_FD_BASE + i as RawFd;
        if use_fds {
            ctx_files.push(target);
        }
        owned.push((OwnedFd::from(file), target));
    }
    let ctx_spec = serde_json::json!({
        "list": spec.is_list,
        "inline": spec.inline,
        "names": spec.files.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
        "fds": if use_fds { ctx_files.clone() } else { vec![] },
    })
    .to_string();
    let py_args: Vec<&OsStr> = vec![
        cfg.python.as_os_str(),
        OsStr::new("-I"),
        OsStr::new("-B"),
        OsStr::new("-u"),
    ];
    let mut limits: Vec<(libc::__rlimit_resource_t, libc::rlim_t)> = vec![
        (libc::RLIMIT_AS, cfg.memory_bytes),
        (libc::RLIMIT_CPU, cfg.cpu_seconds),
        (libc::RLIMIT_FSIZE, cfg.file_size_bytes),
        (libc::RLIMIT_CORE, 0),
    ];
    let nofile = cfg
        .open_files
        .max(CTX_FD_BASE as u64 + spec.files.len() as u64 + 16);
    limits.push((libc::RLIMIT_NOFILE, nofile));
    if !root {
        // RLIMIT_NPROC counts every process of the calling user.
        // SAFETY: getuid has no preconditions.
        #[allow(unsafe_code)]
        let me = unsafe { libc::getuid() };
        limits.push((libc::RLIMIT_NPROC, cfg.pids + processes_of(me)));
    } else if uid.is_some() {
        limits.push((libc::RLIMIT_NPROC, cfg.pids));
    }

    let mut cmd;
    match mode {
        LaunchMode::Bwrap => {
            let bwrap = find_bwrap(&cfg.bwrap)?;
            if !cfg.python.starts_with("/usr/") {
                return Err(Error::config(
                    "python",
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
            let (passwd, group) = passwd_data();
            owned.push((memfd("rlm-passwd", passwd)?, 12));
            owned.push((memfd("rlm-group", group)?, 13));
            owned.push((memfd("rlm-repl", REPL_DRIVER.as_bytes())?, 14));
            let mut a: Vec<Vec<u8>> = Vec::new();
            let mut arg = |s: &[u8]| a.push(s.to_vec());
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
                "--dev",
                "/dev",
            ] {
                arg(s.as_bytes());
            }
            arg(b"--size");
            arg(cfg.tmpfs_bytes.to_string().as_bytes());
            for s in [
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
                "/opt/rlm/repl.py",
            ] {
                arg(s.as_bytes());
            }
            if Path::new("/etc/localtime").exists() {
                for s in ["--ro-bind", "/etc/localtime", "/etc/localtime"] {
                    arg(s.as_bytes());
                }
            }
            if !spec.files.is_empty() {
                arg(b"--dir");
                arg(b"/context");
            }
            for (i, f) in spec.files.iter().enumerate().filter(|_| !use_fds) {
                arg(b"--ro-bind-fd");
                arg((CTX_FD_BASE + i as RawFd).to_string().as_bytes());
                arg(format!("/context/{}", f.name).as_bytes());
            }
            for s in ["--unshare-all", "--unshare-user", "--disable-userns"] {
                arg(s.as_bytes());
            }
            if cfg.network_enabled {
                arg(b"--share-net");
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
            ] {
                arg(s.as_bytes());
            }
            arg(b"--setenv");
            arg(b"RLM_CONTEXT_SPEC");
            arg(ctx_spec.as_bytes());
            if let Some(prog) = seccomp::program(cfg.network_enabled) {
                owned.push((memfd("rlm-seccomp", &prog)?, 11));
                arg(b"--seccomp");
                arg(b"11");
            }
            let mut blob = Vec::new();
            for x in &a {
                blob.extend_from_slice(x);
                blob.push(0);
            }
            owned.push((memfd("rlm-args", &blob)?, 10));
            cmd = Command::new(bwrap);
            // Options travel through fd 10 (no host paths in /proc/1/cmdline); bwrap requires
            // the command itself on the command line. It names only sandbox paths.
            cmd.arg("--args")
                .arg("10")
                .arg("--")
                .args(&py_args)
                .arg("/opt/rlm/repl.py")
                .env_clear();
        }
        LaunchMode::Unsafe => {
            cmd = Command::new(&cfg.python);
            cmd.args(&py_args[1..])
                .arg("-c")
                .arg(REPL_DRIVER)
                .env_clear();
            cmd.env("RLM_CONTEXT_SPEC", &ctx_spec)
                .env("LANG", "C.UTF-8")
                .env("PATH", "/usr/bin:/bin");
            cmd.env("HOME", "/tmp").current_dir(std::env::temp_dir());
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    let top = owned.iter().map(|(_, t)| *t).max().unwrap_or(0) + 1;
    let mut high = Vec::with_capacity(owned.len());
    for (fd, target) in &owned {
        high.push((dup_high(fd, top.max(64))?, *target));
    }
    drop(owned);
    let setup = ChildSetup {
        dups: high.iter().map(|(fd, t)| (fd.as_raw_fd(), *t)).collect(),
        limits,
        drop_to: uid.as_ref().map(|u| u.0),
    };
    // SAFETY: `apply` performs only async-signal-safe libc calls on pre-computed data.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || setup.apply());
    }
    let mut child = spawn_on_spawner(cmd).map_err(|e| {
        Error::sandbox(format!(
            "cannot start the sandbox ({}): {e}",
            if mode == LaunchMode::Bwrap {
                "bwrap"
            } else {
                "python"
            }
        ))
    })?;
    drop(high);
    let out: OwnedFd = child.stdout.take().expect("piped").into();
    let err: OwnedFd = child.stderr.take().expect("piped").into();
    let io = Io::new(Some(out), Some(err), msg_r, cmd_w, cfg.max_output_bytes);
    Ok(Proc {
        child,
        io: Some(io),
        _uid: uid,
        container: None,
        unsafe_runtime: mode == LaunchMode::Unsafe,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_head_and_tail() {
        let mut c = Capture::new(10);
        for _ in 0..1000 {
            c.push(b"0123456789");
        }
        let s = c.finish();
        assert!(s.starts_with("01234"));
        assert!(s.ends_with("56789"));
        assert!(s.contains("9990 bytes of output cut"), "{s}");
        c.push(b"abc");
        assert_eq!(c.finish(), "abc");
    }
}
