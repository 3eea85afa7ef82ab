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
use std::os::unix::process::CommandExt;
use std::process::Command;

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

/// What a sandbox child does between `fork` and `exec`. Everything is computed before the
/// fork, because the child may not allocate.
#[derive(Debug)]
pub(crate) struct ChildSetup {
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
    /// Runs in the forked child before exec: async-signal-safe calls only, no allocation.
    fn apply(&self) -> io::Result<()> {
        // Into the sandbox's cgroups first (before the `dup2`s below reuse descriptor numbers) ("0" is the writer), while
        // still privileged enough to write there.
        for &fd in &self.cgroup_procs {
            // SAFETY: writing a 1-byte static buffer to a descriptor opened before the fork;
            // async-signal-safe.
            let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
            if n != 1 {
                return Err(io::Error::last_os_error());
            }
        }
        for &(src, dst) in &self.dups {
            // SAFETY: dup2 on descriptor numbers prepared before the fork (each source is
            // open and close-on-exec, each target is a plain number); async-signal-safe.
            cvt(unsafe { libc::dup2(src, dst) })?;
        }
        // SAFETY: setsid takes no arguments; async-signal-safe.
        cvt(unsafe { libc::setsid() })?;
        for &(limit, v) in &self.limits {
            let lim = libc::rlimit {
                rlim_cur: v as libc::rlim_t,
                rlim_max: v as libc::rlim_t,
            };
            // SAFETY: `lim` is a valid rlimit struct on the stack; async-signal-safe.
            cvt(unsafe { libc::setrlimit(limit.resource(), &lim) })?;
        }
        if let Some(uid) = self.drop_to {
            // SAFETY: setgroups with a zero-length list (the pointer is never read);
            // async-signal-safe.
            cvt(unsafe { libc::setgroups(0, std::ptr::null()) })?;
            // SAFETY: plain integer ids; async-signal-safe.
            cvt(unsafe { libc::setresgid(uid, uid, uid) })?;
            // SAFETY: plain integer ids; async-signal-safe.
            cvt(unsafe { libc::setresuid(uid, uid, uid) })?;
        }
        // After the uid change, which clears it. The spawning thread never exits, so this
        // fires only when the host process dies.
        // SAFETY: prctl(PR_SET_PDEATHSIG) with a valid signal number; async-signal-safe.
        cvt(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) })?;
        Ok(())
    }

    /// Installs this setup as `cmd`'s `pre_exec` hook.
    pub(crate) fn install(self, cmd: &mut Command) {
        // SAFETY: `apply` performs only async-signal-safe libc calls on data computed before
        // the fork, and allocates nothing.
        unsafe {
            cmd.pre_exec(move || self.apply());
        }
    }
}
