//! Host uids for sandboxes when the host runs as root: one unprivileged uid per sandbox, so
//! `RLIMIT_NPROC` (counted per uid) limits each sandbox on its own.
//!
//! A uid is leased machine-wide: a lease is an exclusive `flock` on `<dir>/<uid>.lock`
//! (`RLM_UID_LOCK_DIR`, `/run/rlm/uids` by default), held for as long as the sandbox lives
//! and released by the kernel if the process dies. Two `rlm` processes (a server and a CLI,
//! say) therefore never hand out the same uid.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use crate::error::{Error, Result};

/// How many uids above the base a host may use at once.
pub(crate) const RANGE: u32 = 8192;

/// An exclusive claim on one host uid; released on drop.
#[derive(Debug)]
pub(crate) struct UidLease {
    uid: u32,
    _lock: File,
}

impl UidLease {
    /// The leased uid.
    pub(crate) fn uid(&self) -> u32 {
        self.uid
    }

    /// Leases the lowest free uid in `base..base + RANGE`, with its lock file in `dir`.
    pub(crate) fn take(base: u32, dir: &Path) -> Result<UidLease> {
        create_private(dir).map_err(|e| {
            Error::config(
                "RLM_UID_LOCK_DIR",
                format!(
                    "cannot create the uid lease directory {}: {e}; point RLM_UID_LOCK_DIR at a directory \
                     this process can write (the same one for every rlm on the machine)",
                    dir.display()
                ),
            )
        })?;
        let mut local = in_process().lock().unwrap_or_else(|e| e.into_inner());
        for uid in base..base.saturating_add(RANGE) {
            if local.contains(&uid) {
                continue;
            }
            let path = dir.join(format!("{uid}.lock"));
            let f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| {
                    Error::sandbox(format!(
                        "cannot open the uid lease {}: {e}; check that {} is writable",
                        path.display(),
                        dir.display()
                    ))
                })?;
            match f.try_lock() {
                Ok(()) => {
                    local.insert(uid);
                    return Ok(UidLease { uid, _lock: f });
                }
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => {
                    return Err(Error::sandbox(format!(
                        "cannot lock the uid lease {}: {e}",
                        path.display()
                    )));
                }
            }
        }
        Err(Error::sandbox(format!(
            "all {RANGE} sandbox uids from {base} are in use on this machine (by this and other rlm \
             processes); wait for runs to finish or lower the number of concurrent runs"
        )))
    }
}

impl Drop for UidLease {
    fn drop(&mut self) {
        in_process()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.uid);
    }
}

/// Uids leased by this process (a second `flock` on the same file from another descriptor
/// of this process would also fail, but this avoids reopening held files).
fn in_process() -> &'static Mutex<BTreeSet<u32>> {
    static SET: OnceLock<Mutex<BTreeSet<u32>>> = OnceLock::new();
    SET.get_or_init(|| Mutex::new(BTreeSet::new()))
}

fn create_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_exclusive_and_released() {
        let dir = std::env::temp_dir().join(format!("rlm-uid-test-{}", std::process::id()));
        let a = UidLease::take(3_000_000, &dir).unwrap();
        let b = UidLease::take(3_000_000, &dir).unwrap();
        assert_ne!(a.uid(), b.uid());
        let first = a.uid();
        drop(a);
        let c = UidLease::take(3_000_000, &dir).unwrap();
        assert_eq!(c.uid(), first, "a released uid is handed out again");
        drop((b, c));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
