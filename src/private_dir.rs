//! Private temporary directories (in-memory contexts written out, masked copies of context
//! files): mode 0700, removed on drop, and never left behind for long, even by a process
//! killed with SIGKILL.
//!
//! Each directory is held with an exclusive `flock` for as long as it is in use. It is
//! created and locked under a hidden name and only then renamed to `rlm-<pid>-<n>-<nanos>`,
//! so every directory with that name is locked while its owner lives (the lock goes with the
//! inode through the rename, and the kernel drops it when the owner dies). The first
//! directory a process makes sweeps the temporary directory: a `rlm-…` directory of ours
//! whose lock can be taken has no owner any more, and is removed. Locks, unlike pids, hold
//! across PID namespaces sharing one `/tmp`.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// A private (0700) temporary directory, locked while it lives, removed on drop.
#[derive(Debug)]
pub(crate) struct PrivateDir {
    path: PathBuf,
    /// The open directory holding the lock.
    _lock: File,
}

impl PrivateDir {
    /// A new directory in the system's temporary directory (`TMPDIR`).
    pub(crate) fn new() -> Result<Self> {
        static SWEEP: Once = Once::new();
        static N: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        SWEEP.call_once(|| sweep(&base));
        let fail = |e: std::io::Error| {
            Error::context(format!(
                "cannot create a temporary directory in {}: {e}; set TMPDIR to a writable directory",
                base.display()
            ))
        };
        for _ in 0..16 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let name = format!(
                "rlm-{}-{}-{nanos:08x}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            );
            let hidden = base.join(format!(".{name}.new"));
            match std::fs::DirBuilder::new().mode(0o700).create(&hidden) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(fail(e)),
            }
            let path = base.join(&name);
            let locked = File::open(&hidden).and_then(|d| {
                d.try_lock().map_err(std::io::Error::other)?;
                Ok(d)
            });
            let lock = match locked.and_then(|d| std::fs::rename(&hidden, &path).map(|()| d)) {
                Ok(d) => d,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&hidden);
                    return Err(fail(e));
                }
            };
            return Ok(PrivateDir { path, _lock: lock });
        }
        Err(Error::context("cannot create a unique temporary directory"))
    }

    /// Writes `data` to the file `name` in the directory.
    pub(crate) fn write(&self, name: &str, data: &[u8]) -> Result<PathBuf> {
        let path = self.path.join(name);
        let mut f = File::create(&path)
            .map_err(|e| Error::context(format!("cannot write {}: {e}", path.display())))?;
        f.write_all(data)
            .map_err(|e| Error::context(format!("cannot write {}: {e}", path.display())))?;
        Ok(path)
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Removes the `rlm-<pid>-<n>-<hex>` directories in `base` whose owner is gone (their lock
/// can be taken). Others' directories and anything else are left alone.
fn sweep(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        if !is_ours_by_name(&name.to_string_lossy()) {
            continue;
        }
        let path = e.path();
        // Not following a symlink planted under that name.
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            _ => continue,
        }
        let Ok(dir) = File::open(&path) else { continue };
        if dir.try_lock().is_ok() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// `rlm-<digits>-<digits>-<8 hex digits>`.
fn is_ours_by_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("rlm-") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('-').collect();
    matches!(parts.as_slice(), [pid, n, hex]
        if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
            && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
            && hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_ours_by_name("rlm-123-0-0f7b9ab4"));
        assert!(!is_ours_by_name("rlm-123-0-0f7b9ab"));
        assert!(!is_ours_by_name(".rlm-123-0-0f7b9ab4.new"));
        assert!(!is_ours_by_name("rlm-123-4"), "a cgroup or container name");
        assert!(!is_ours_by_name("rlm-abc-0-0f7b9ab4"));
    }

    /// A directory whose owner is gone (its lock free) is swept; a live one is not.
    #[test]
    fn sweep_removes_only_unlocked_directories() {
        let base = tempfile::tempdir().unwrap();
        let dead = base.path().join("rlm-999999-0-00000000");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join("context.txt"), "x").unwrap();
        let live = base.path().join("rlm-999999-1-00000000");
        std::fs::create_dir(&live).unwrap();
        let held = File::open(&live).unwrap();
        held.try_lock().unwrap();
        let other = base.path().join("rlm-notours");
        std::fs::create_dir(&other).unwrap();
        sweep(base.path());
        assert!(!dead.exists());
        assert!(live.exists());
        assert!(other.exists());
        drop(held);
    }

    #[test]
    fn made_locked_and_removed_on_drop() {
        let d = PrivateDir::new().unwrap();
        let p = d.path().to_path_buf();
        assert!(is_ours_by_name(&p.file_name().unwrap().to_string_lossy()));
        assert!(
            File::open(&p).unwrap().try_lock().is_err(),
            "held while alive"
        );
        drop(d);
        assert!(!p.exists());
    }
}
