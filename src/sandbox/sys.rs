//! Every libc call and every `unsafe` block of the sandbox, behind small safe functions.
//!
//! Each function checks the return value of every call it makes and turns failures into
//! `std::io::Error`s; each `unsafe` block says why it is sound. Nothing else in the crate
//! touches libc (the one other `unsafe` site is the read-only `mmap` of context files in
//! `handle.rs`).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// True when the effective uid is 0.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid takes no arguments, cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The real uid of this process.
pub(crate) fn real_uid() -> u32 {
    // SAFETY: getuid takes no arguments, cannot fail and has no preconditions.
    unsafe { libc::getuid() }
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A sealed-in-spirit data descriptor (memfd, close-on-exec) holding `data`, positioned at 0.
pub(crate) fn memfd(name: &str, data: &[u8]) -> io::Result<OwnedFd> {
    let cname = CString::new(name).map_err(|_| io::Error::other("NUL in a memfd name"))?;
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call; the flags are
    // plain integers.
    let fd = cvt(unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by memfd_create, is open, and nothing else owns it.
    let mut f = unsafe { File::from_raw_fd(fd) };
    f.write_all(data)?;
    // SAFETY: lseek on a descriptor we own; the offset and whence are plain integers.
    let r = unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_SET) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(OwnedFd::from(f))
}

/// A pipe `(read end, write end)`, both close-on-exec.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [libc::c_int; 2] = [-1, -1];
    // SAFETY: `fds` is a valid, writable array of two ints, as pipe2 requires.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Most descriptors sent with one message (the kernel's `SCM_MAX_FD` is 253).
const FDS_PER_MESSAGE: usize = 250;

/// Sends `fds` over the Unix stream socket `sock`, at most [`FDS_PER_MESSAGE`] at a time,
/// each batch attached to one `F` byte, then `data`. The receiver reads to the end and
/// collects the descriptors in order; the leading `F`s mark the batches.
pub(crate) fn send_fds(sock: BorrowedFd<'_>, fds: &[RawFd], data: &[u8]) -> io::Result<()> {
    for batch in fds.chunks(FDS_PER_MESSAGE) {
        let fd_bytes = std::mem::size_of_val(batch);
        // SAFETY: CMSG_SPACE computes a size from a plain integer.
        let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
        // u64 elements keep the control buffer aligned for `cmsghdr`.
        let mut control = vec![0u64; space.div_ceil(8)];
        let mut byte = *b"F";
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        // SAFETY: an all-zero msghdr is a valid empty header; the fields are set below.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: `msg` points at a control buffer of `space` bytes, enough for one header
        // with `fd_bytes` of data, so CMSG_FIRSTHDR is non-null and CMSG_DATA has room for
        // the descriptors; `batch` is a valid slice of that many bytes.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as _;
            std::ptr::copy_nonoverlapping(
                batch.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(c),
                fd_bytes,
            );
        }
        // SAFETY: `msg`, its iovec and control buffer are valid for the call; MSG_NOSIGNAL
        // turns a closed peer into EPIPE instead of a signal.
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n != 1 {
            return Err(if n < 0 {
                io::Error::last_os_error()
            } else {
                io::Error::other("short send of descriptors")
            });
        }
    }
    let mut rest = data;
    while !rest.is_empty() {
        // SAFETY: sending from a valid slice of `rest.len()` bytes.
        let n = unsafe {
            libc::send(
                sock.as_raw_fd(),
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        rest = &rest[n as usize..];
    }
    Ok(())
}

/// Duplicates `fd` to the lowest free number >= `min` (close-on-exec), so that the `dup2`
/// calls in a child never overwrite a source they still need.
pub(crate) fn dup_at_least(fd: BorrowedFd<'_>, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor borrowed for the duration of the call.
    let n = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) })?;
    // SAFETY: fcntl succeeded, so `n` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// Puts `fd` into non-blocking mode.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL on a descriptor borrowed for the duration of the call.
    let fl = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: F_SETFL with flags derived from F_GETFL, on the same borrowed descriptor.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK) })?;
    Ok(())
}

/// What `poll` reported for one descriptor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Ready {
    /// Data (or end of file / an error to read) is waiting.
    pub(crate) readable: bool,
    /// The descriptor can take more data.
    pub(crate) writable: bool,
}

/// Waits up to `timeout_ms` (at least 1 ms) for any of `fds` to be ready for reading
/// (`want_write == false`) or writing. `Interrupted` is reported as "nothing ready".
pub(crate) fn poll(fds: &[(BorrowedFd<'_>, bool)], timeout_ms: i32) -> io::Result<Vec<Ready>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|(fd, want_write)| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: if *want_write {
                libc::POLLOUT
            } else {
                libc::POLLIN
            },
            revents: 0,
        })
        .collect();
    // SAFETY: `p` is a valid, writable array of `p.len()` pollfd structs whose descriptors
    // are borrowed (open) for the duration of the call.
    let n = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms.max(1)) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![Ready::default(); fds.len()]);
        }
        return Err(e);
    }
    Ok(p.iter()
        .map(|x| Ready {
            readable: x.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0,
            writable: x.revents & (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) != 0,
        })
        .collect())
}

/// `read(2)` retried on `EINTR`. `Ok(0)` is end of file; a non-blocking descriptor with
/// nothing to read gives `ErrorKind::WouldBlock`.
pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes; the descriptor is borrowed.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `write(2)` retried on `EINTR`; a full non-blocking pipe gives `ErrorKind::WouldBlock`.
pub(crate) fn write(fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `data` is valid for reads of `data.len()` bytes; the descriptor is borrowed.
        let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Sends SIGKILL to the process group led by `pid` and to `pid` itself. `ESRCH` (already
/// gone) is not an error.
pub(crate) fn kill_group(pid: u32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    if pid <= 0 {
        return Err(io::Error::other("refusing to signal pid <= 0"));
    }
    let mut result = Ok(());
    for target in [-pid, pid] {
        // SAFETY: kill with a positive pid or a negative process-group id (never 0 or -1,
        // checked above) and a valid signal number.
        if unsafe { libc::kill(target, libc::SIGKILL) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                result = Err(e);
            }
        }
    }
    result
}

/// Sends SIGKILL to `pid` alone. `ESRCH` (already gone) is not an error.
pub(crate) fn kill_one(pid: u32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    if pid <= 1 {
        return Err(io::Error::other("refusing to signal pid <= 1"));
    }
    // SAFETY: kill with a positive pid above 1 (checked) and a valid signal number.
    if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(e);
        }
    }
    Ok(())
}

/// Resource limits a sandbox child gets before exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// Address space (bytes).
    AddressSpace,
    /// CPU time (seconds).
    Cpu,
    /// Largest file written (bytes).
    FileSize,
    /// Core dump size.
    Core,
    /// Open descriptors.
    OpenFiles,
    /// Processes of the (real) uid.
    Processes,
}

impl Limit {
    fn resource(self) -> libc::__rlimit_resource_t {
        match self {
            Limit::AddressSpace => libc::RLIMIT_AS,
            Limit::Cpu => libc::RLIMIT_CPU,
            Limit::FileSize => libc::RLIMIT_FSIZE,
            Limit::Core => libc::RLIMIT_CORE,
            Limit::OpenFiles => libc::RLIMIT_NOFILE,
            Limit::Processes => libc::RLIMIT_NPROC,
        }
    }
}

/// What a sandbox child does between its start and `exec`. Everything is computed before,
/// because the child shares the parent's memory and may not allocate or take locks.
#[derive(Debug)]
pub(crate) struct ChildSetup {
    /// Descriptors that become the child's stdin, stdout and stderr.
    pub(crate) stdio: [RawFd; 3],
    /// `(source, target)` descriptor numbers to `dup2` (sources are >= every target).
    pub(crate) dups: Vec<(RawFd, RawFd)>,
    /// Limits to set (soft = hard).
    pub(crate) limits: Vec<(Limit, u64)>,
    /// Unprivileged host uid/gid to switch to (root hosts).
    pub(crate) drop_to: Option<u32>,
    /// `cgroup.procs` files (open for writing) the child moves itself into.
    pub(crate) cgroup_procs: Vec<RawFd>,
}

impl ChildSetup {
    /// Runs in the child before exec: plain system calls only, no allocation, no locks.
    /// The uid change uses raw system calls: glibc's wrappers would try to change the uids
    /// of every thread of the parent, whose memory the child shares.
    fn apply(&self) -> io::Result<()> {
        // Into the sandbox's cgroups first, while still privileged enough to write there
        // ("0" is the writer).
        for &fd in &self.cgroup_procs {
            // SAFETY: writing a 1-byte static buffer to a descriptor opened before the start.
            let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
            if n != 1 {
                return Err(io::Error::last_os_error());
            }
        }
        for (target, &src) in self.stdio.iter().enumerate() {
            // SAFETY: dup2 on descriptor numbers prepared before the start (each source is
            // open and close-on-exec, above every target).
            cvt(unsafe { libc::dup2(src, target as RawFd) })?;
        }
        for &(src, dst) in &self.dups {
            // SAFETY: as above.
            cvt(unsafe { libc::dup2(src, dst) })?;
        }
        // SAFETY: setsid takes no arguments.
        cvt(unsafe { libc::setsid() })?;
        for &(limit, v) in &self.limits {
            let lim = libc::rlimit {
                rlim_cur: v as libc::rlim_t,
                rlim_max: v as libc::rlim_t,
            };
            // SAFETY: `lim` is a valid rlimit struct on the stack.
            cvt(unsafe { libc::setrlimit(limit.resource(), &lim) })?;
        }
        if let Some(uid) = self.drop_to {
            let (id, none) = (uid as libc::c_long, std::ptr::null::<libc::gid_t>());
            // SAFETY: raw setgroups with an empty list (the pointer is never read).
            cvt_long(unsafe { libc::syscall(libc::SYS_setgroups, 0 as libc::c_long, none) })?;
            // SAFETY: raw setresgid/setresuid with plain integer ids.
            cvt_long(unsafe { libc::syscall(libc::SYS_setresgid, id, id, id) })?;
            // SAFETY: as above.
            cvt_long(unsafe { libc::syscall(libc::SYS_setresuid, id, id, id) })?;
        }
        // After the uid change, which clears it. The spawning thread never exits, so this
        // fires only when the host process dies.
        // SAFETY: prctl(PR_SET_PDEATHSIG) with a valid signal number.
        cvt(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) })?;
        Ok(())
    }
}

fn cvt_long(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A program to start: the path (searched in `PATH` when it has no `/`), its arguments, its
/// whole environment, and its working directory.
#[derive(Debug, Default)]
pub(crate) struct Exec {
    pub(crate) program: std::path::PathBuf,
    pub(crate) args: Vec<std::ffi::OsString>,
    pub(crate) env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    pub(crate) cwd: Option<std::path::PathBuf>,
}

/// A child started by [`spawn`]. Like `std::process::Child`, dropping it neither kills nor
/// reaps it.
#[derive(Debug)]
pub(crate) struct Proc {
    pid: u32,
    status: Option<std::process::ExitStatus>,
}

impl Proc {
    /// The process id.
    pub(crate) fn id(&self) -> u32 {
        self.pid
    }

    fn waitpid(&mut self, flags: libc::c_int) -> io::Result<Option<std::process::ExitStatus>> {
        use std::os::unix::process::ExitStatusExt;
        if let Some(st) = self.status {
            return Ok(Some(st));
        }
        let mut status: libc::c_int = 0;
        loop {
            // SAFETY: waitpid on our own child with a valid out-pointer.
            let r = unsafe { libc::waitpid(self.pid as libc::pid_t, &mut status, flags) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if r == 0 {
                return Ok(None);
            }
            let st = std::process::ExitStatus::from_raw(status);
            self.status = Some(st);
            return Ok(Some(st));
        }
    }

    /// The exit status if the process has ended (reaping it), without waiting.
    pub(crate) fn try_wait(&mut self) -> io::Result<Option<std::process::ExitStatus>> {
        self.waitpid(libc::WNOHANG)
    }

    /// Waits for the process to end and reaps it.
    pub(crate) fn wait(&mut self) -> io::Result<std::process::ExitStatus> {
        self.waitpid(0)?
            .ok_or_else(|| io::Error::other("waitpid returned no status"))
    }
}

/// What the child reads: prepared by the parent, shared through `CLONE_VM`.
struct ChildArgs<'a> {
    setup: &'a ChildSetup,
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    /// The child's errno when it could not exec (0: it did).
    error: *mut libc::c_int,
    /// This process's id: the child's parent while this process lives.
    parent: libc::pid_t,
}

/// Signals of Linux (1..=64).
const NSIG: libc::c_int = 65;

/// The child side of [`spawn`]: runs on its own stack in the parent's memory until exec.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points at the `ChildArgs` of `spawn`, which waits (CLONE_VFORK) until
    // this child has exec'd or exited, so it outlives every use here.
    let a = unsafe { &*(arg as *const ChildArgs<'_>) };
    // Handlers of the parent must not run in the child (they would run on the parent's
    // memory): every caught signal goes back to its default, SIGPIPE too (Rust ignores it);
    // then the signals the parent blocked for the start are unblocked.
    for sig in 1..NSIG {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        if (32..libc::SIGRTMIN()).contains(&sig) {
            // glibc's own signals (thread cancellation, set*id broadcast): its `sigaction`
            // refuses them, so, as its posix_spawn does, they are ignored through the raw
            // system call. Only the handler field (first in every layout) is set.
            let act: [libc::c_ulong; 4] = [libc::SIG_IGN as libc::c_ulong, 0, 0, 0];
            // SAFETY: a zero-filled kernel sigaction with SIG_IGN as its handler, large
            // enough for every architecture's layout; the old action is not asked for.
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig as libc::c_long,
                    act.as_ptr(),
                    std::ptr::null_mut::<libc::c_void>(),
                    8 as libc::c_long,
                )
            };
            continue;
        }
        // SAFETY: zeroed sigaction structs are valid; sigaction reads and writes only them.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && (old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN
                    || sig == libc::SIGPIPE)
            {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
    }
    // SAFETY: an emptied signal set on the stack; sigprocmask only reads it.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
    let fail = |code: libc::c_int| -> ! {
        // SAFETY: `error` points at an int in `spawn`'s frame, alive while it waits for us;
        // _exit ends this child only.
        unsafe {
            *a.error = code.max(1);
            libc::_exit(127)
        }
    };
    if let Err(e) = a.setup.apply() {
        fail(e.raw_os_error().unwrap_or(libc::EINVAL));
    }
    // The parent-death signal was set only now: a host that died before that would leave
    // this child running unsupervised.
    // SAFETY: getppid takes no arguments and cannot fail.
    if unsafe { libc::getppid() } != a.parent {
        fail(libc::ESRCH);
    }
    // SAFETY: `cwd` is null or a NUL-terminated string prepared by the parent.
    if !a.cwd.is_null() && unsafe { libc::chdir(a.cwd) } != 0 {
        fail(
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL),
        );
    }
    // SAFETY: `path`, `argv` and `envp` are NUL-terminated strings and null-terminated
    // arrays prepared by the parent; execve only returns on failure.
    unsafe { libc::execve(a.path, a.argv, a.envp) };
    fail(
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL),
    )
}

/// `program` as a path to exec: as given when it contains a `/`, else the first executable
/// of that name in this process's `PATH`.
fn resolve(program: &std::path::Path) -> io::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if program.as_os_str().as_bytes().contains(&b'/') {
        return Ok(program.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not found in PATH"))
}

fn cstring(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in an argument"))
}

/// Starts `exec` with `setup` applied, the way `posix_spawn` does: the child shares this
/// process's memory and runs until its `exec` while the calling thread waits
/// (`CLONE_VM | CLONE_VFORK`), so no page table is copied however large this process has
/// grown (a `fork` from a process serving a thousand runs spent more time copying page
/// tables than the sandbox took to start). Blocking; the calling thread becomes the child's
/// parent for `PR_SET_PDEATHSIG`.
pub(crate) fn spawn(exec: &Exec, setup: &ChildSetup) -> io::Result<Proc> {
    use std::os::unix::ffi::OsStrExt;
    let path = cstring(resolve(&exec.program)?.as_os_str().as_bytes())?;
    let args: Vec<CString> = std::iter::once(exec.program.as_os_str())
        .chain(exec.args.iter().map(|a| a.as_os_str()))
        .map(|a| cstring(a.as_bytes()))
        .collect::<io::Result<_>>()?;
    let env: Vec<CString> = exec
        .env
        .iter()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            cstring(&kv)
        })
        .collect::<io::Result<_>>()?;
    let cwd = exec
        .cwd
        .as_ref()
        .map(|c| cstring(c.as_os_str().as_bytes()))
        .transpose()?;
    let argv: Vec<*const libc::c_char> = args
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = env
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let mut error: libc::c_int = 0;
    let child = ChildArgs {
        setup,
        path: path.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: cwd.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
        error: &mut error,
        // SAFETY: getpid takes no arguments and cannot fail.
        parent: unsafe { libc::getpid() },
    };
    // The child's stack: it makes a few system calls, nothing deep.
    let mut stack = vec![0u8; 128 * 1024];
    // SAFETY: the pointer one past the end of `stack`, rounded down to 16 bytes, stays
    // within (or at the end of) the allocation.
    let top = unsafe { stack.as_mut_ptr().add(stack.len()) };
    let top = ((top as usize) & !15) as *mut libc::c_void;
    // Every signal is blocked while the child shares our memory and runs our handlers'
    // table; the child resets its handlers before unblocking.
    // SAFETY: sigset_t values on the stack, filled and read by the sigset functions.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `all` is a valid sigset_t.
    unsafe { libc::sigfillset(&mut all) };
    // SAFETY: valid sigset pointers; affects only this thread.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    // SAFETY: `child_main` only reads `child` (alive in this frame) and writes `error`;
    // CLONE_VFORK suspends this thread until the child has exec'd or exited, so nothing in
    // this frame changes or is freed meanwhile; `top` is the 16-byte-aligned top of a stack
    // that lives until after clone returns.
    let pid = unsafe {
        libc::clone(
            child_main,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&child as *const ChildArgs<'_>).cast_mut().cast(),
        )
    };
    let clone_error = io::Error::last_os_error();
    // SAFETY: restores this thread's mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    drop(stack);
    if pid < 0 {
        return Err(clone_error);
    }
    let mut proc = Proc {
        pid: pid as u32,
        status: None,
    };
    // SAFETY: reads the int the child may have written (it has exec'd or exited by now).
    let error = unsafe { std::ptr::read_volatile(&error) };
    if error != 0 {
        let _ = proc.wait();
        return Err(io::Error::from_raw_os_error(error));
    }
    Ok(proc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsFd;

    #[test]
    fn spawn_applies_the_setup_and_reports_exec_failures() {
        let (r, w) = pipe().unwrap();
        let null = File::open("/dev/null").unwrap();
        let extra = memfd("extra", b"from fd 9").unwrap();
        let extra = dup_at_least(extra.as_fd(), 64).unwrap();
        let setup = ChildSetup {
            stdio: [null.as_raw_fd(), w.as_raw_fd(), w.as_raw_fd()],
            dups: vec![(extra.as_raw_fd(), 9)],
            limits: vec![(Limit::OpenFiles, 77)],
            drop_to: None,
            cgroup_procs: vec![],
        };
        let exec = Exec {
            program: "sh".into(),
            args: [
                "-c",
                "ulimit -n; echo $FOO; pwd; cat <&9; echo; ps -o sid= -p $$",
            ]
            .map(Into::into)
            .to_vec(),
            env: vec![
                ("FOO".into(), "bar".into()),
                ("PATH".into(), "/usr/bin:/bin".into()),
            ],
            cwd: Some("/tmp".into()),
        };
        let mut p = spawn(&exec, &setup).unwrap();
        drop(w);
        let mut out = String::new();
        File::from(r).read_to_string(&mut out).unwrap();
        assert!(p.wait().unwrap().success());
        let lines: Vec<&str> = out.lines().map(str::trim).collect();
        assert_eq!(&lines[..4], ["77", "bar", "/tmp", "from fd 9"], "{out}");
        // A session of its own (setsid).
        assert_eq!(
            lines.get(4).copied(),
            Some(p.id().to_string().as_str()),
            "{out}"
        );

        let missing = Exec {
            program: "/nonexistent/program".into(),
            ..Exec::default()
        };
        let setup = ChildSetup {
            stdio: [null.as_raw_fd(); 3],
            ..setup
        };
        let e = spawn(&missing, &setup).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        let bad_limit = ChildSetup {
            limits: vec![(Limit::OpenFiles, u64::MAX - 1)],
            ..setup
        };
        assert!(
            spawn(&exec, &bad_limit).is_err(),
            "a limit above the hard limit fails the start"
        );
    }
}
