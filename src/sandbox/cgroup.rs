//! Per-sandbox cgroups, where the host allows them: one memory limit for the whole sandbox
//! (every process in it together), a process limit and a CPU quota. A cgroup is created under
//! this process's own cgroup of each controller (v1 controllers where the machine mounts
//! them, the unified v2 hierarchy elsewhere), the sandbox enters it before it execs (so
//! nothing it starts escapes), and it is removed when the sandbox is gone. Without
//! permission or controllers (not root, no delegation) there is none, and the sandbox keeps
//! its per-process rlimits only; `rlm sandbox check` and every result say which.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Where this process's cgroups are, per controller.
#[derive(Debug, Clone, Default)]
struct Layout {
    /// v1 controller directories (this process's cgroup in each hierarchy).
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
    cpu: Option<PathBuf>,
    /// This process's cgroup in the unified (v2) hierarchy.
    unified: Option<PathBuf>,
}

/// The limits one sandbox's cgroup enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CgroupLimits {
    pub(crate) memory_bytes: u64,
    pub(crate) pids: u64,
    /// CPU time per wall time (1.0 = one core).
    pub(crate) cpus: f64,
}

/// One sandbox's cgroup(s).
#[derive(Debug)]
pub(crate) struct Cgroup {
    dirs: Vec<PathBuf>,
    /// `cgroup.procs` of each directory, open for the child to write `0` (itself) into.
    procs: Vec<File>,
    /// Where the OOM kill count is read (`memory.oom_control` or `memory.events`).
    oom_file: Option<PathBuf>,
    /// What is enforced, for reports.
    pub(crate) summary: String,
}

fn mountinfo() -> Vec<(String, String, String)> {
    // (mount point, fs type, super options)
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mount = left.split_whitespace().nth(4)?.to_string();
            let mut r = right.split_whitespace();
            let fstype = r.next()?.to_string();
            let _source = r.next()?;
            let opts = r.next().unwrap_or("").to_string();
            Some((mount, fstype, opts))
        })
        .collect()
}

fn detect() -> &'static Layout {
    static L: OnceLock<Layout> = OnceLock::new();
    L.get_or_init(|| {
        let mounts = mountinfo();
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mut layout = Layout::default();
        for line in own.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let rel = path.trim_start_matches('/');
            if ctrls.is_empty() {
                if let Some((m, _, _)) = mounts.iter().find(|(_, t, _)| t == "cgroup2") {
                    layout.unified = Some(Path::new(m).join(rel));
                }
                continue;
            }
            for ctrl in ctrls.split(',') {
                let Some((m, _, _)) = mounts
                    .iter()
                    .find(|(_, t, o)| t == "cgroup" && o.split(',').any(|x| x == ctrl))
                else {
                    continue;
                };
                let dir = Path::new(m).join(rel);
                match ctrl {
                    "memory" => layout.memory = Some(dir),
                    "pids" => layout.pids = Some(dir),
                    "cpu" => layout.cpu = Some(dir),
                    _ => {}
                }
            }
        }
        layout
    })
}

fn write(dir: &Path, file: &str, value: &str) -> std::io::Result<()> {
    OpenOptions::new()
        .write(true)
        .open(dir.join(file))?
        .write_all(value.as_bytes())
}

fn name() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "rlm-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes cgroups left by `rlm` processes that no longer exist (a crash, SIGKILL), once per
/// process and directory.
fn sweep(parent: &Path) {
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let n = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = n
            .strip_prefix("rlm-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

impl Cgroup {
    /// A cgroup with `limits` for one sandbox, or why there is none.
    pub(crate) fn create(limits: CgroupLimits) -> Result<Cgroup, String> {
        let l = detect();
        let name = name();
        let mut cg = Cgroup {
            dirs: Vec::new(),
            procs: Vec::new(),
            oom_file: None,
            summary: String::new(),
        };
        let mut enforced = Vec::new();
        let make = |parent: &Path| -> std::io::Result<PathBuf> {
            static SWEPT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
            {
                let mut swept = SWEPT.lock().unwrap_or_else(|e| e.into_inner());
                if !swept.iter().any(|p| p == parent) {
                    sweep(parent);
                    swept.push(parent.to_path_buf());
                }
            }
            let dir = parent.join(&name);
            std::fs::create_dir(&dir)?;
            Ok(dir)
        };
        let v1 = l.memory.is_some() || l.pids.is_some();
        if v1 {
            if let Some(p) = &l.memory
                && let Ok(dir) = make(p)
            {
                cg.dirs.push(dir.clone());
                if write(
                    &dir,
                    "memory.limit_in_bytes",
                    &limits.memory_bytes.to_string(),
                )
                .is_ok()
                {
                    // No swap behind the limit, where the kernel accounts it.
                    let _ = write(
                        &dir,
                        "memory.memsw.limit_in_bytes",
                        &limits.memory_bytes.to_string(),
                    );
                    cg.oom_file = Some(dir.join("memory.oom_control"));
                    enforced.push(format!("memory {} bytes", limits.memory_bytes));
                }
            }
            if let Some(p) = &l.pids
                && let Ok(dir) = make(p)
            {
                cg.dirs.push(dir.clone());
                if write(&dir, "pids.max", &limits.pids.to_string()).is_ok() {
                    enforced.push(format!("{} processes", limits.pids));
                }
            }
            if let Some(p) = &l.cpu
                && let Ok(dir) = make(p)
            {
                cg.dirs.push(dir.clone());
                let period = 100_000u64;
                let quota = ((limits.cpus * period as f64) as u64).max(1000);
                if write(&dir, "cpu.cfs_period_us", &period.to_string()).is_ok()
                    && write(&dir, "cpu.cfs_quota_us", &quota.to_string()).is_ok()
                {
                    enforced.push(format!("{:.2} CPUs", limits.cpus));
                }
            }
        } else if let Some(p) = &l.unified
            && let Ok(dir) = make(p)
        {
            cg.dirs.push(dir.clone());
            if write(&dir, "memory.max", &limits.memory_bytes.to_string()).is_ok() {
                let _ = write(&dir, "memory.swap.max", "0");
                cg.oom_file = Some(dir.join("memory.events"));
                enforced.push(format!("memory {} bytes", limits.memory_bytes));
            }
            if write(&dir, "pids.max", &limits.pids.to_string()).is_ok() {
                enforced.push(format!("{} processes", limits.pids));
            }
            let period = 100_000u64;
            let quota = ((limits.cpus * period as f64) as u64).max(1000);
            if write(&dir, "cpu.max", &format!("{quota} {period}")).is_ok() {
                enforced.push(format!("{:.2} CPUs", limits.cpus));
            }
        }
        if enforced.is_empty() || cg.oom_file.is_none() {
            let why = if cg.dirs.is_empty() {
                "no writable memory or pids cgroup (not root, or no delegation)"
            } else {
                "the cgroups this process may create have no memory controller"
            };
            cg.remove_now();
            return Err(why.into());
        }
        for d in &cg.dirs {
            let f = OpenOptions::new()
                .write(true)
                .open(d.join("cgroup.procs"))
                .map_err(|e| format!("cannot open {}/cgroup.procs: {e}", d.display()))?;
            cg.procs.push(f);
        }
        cg.summary = enforced.join(", ");
        Ok(cg)
    }

    /// Descriptors the child writes `0` into before it execs.
    pub(crate) fn procs_fds(&self) -> Vec<RawFd> {
        self.procs.iter().map(|f| f.as_raw_fd()).collect()
    }

    /// How many processes the kernel's OOM killer has killed in this cgroup.
    pub(crate) fn oom_kills(&self) -> u64 {
        let Some(f) = &self.oom_file else {
            return 0;
        };
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    fn remove_now(&mut self) {
        self.procs.clear();
        for d in self.dirs.drain(..).rev() {
            let _ = std::fs::remove_dir(&d);
        }
    }

    /// Removes the cgroup once its processes are gone (blocking: waits up to five seconds
    /// for the kernel to empty it). False when a directory could not be removed (processes
    /// still in it).
    pub(crate) fn remove(mut self) -> bool {
        self.procs.clear();
        let mut all = true;
        for d in std::mem::take(&mut self.dirs).into_iter().rev() {
            let mut removed = false;
            for _ in 0..500 {
                match std::fs::remove_dir(&d) {
                    Ok(()) => removed = true,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => removed = true,
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
                if removed {
                    break;
                }
            }
            all &= removed;
        }
        all
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.remove_now();
    }
}
