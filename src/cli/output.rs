//! Files the CLI writes where the user says (masked copies, HTML pages, the demo document):
//! whole or not at all, and never in place of something that is not a file.
//!
//! A regular file (or a new path) is written to a temporary file beside it and renamed over
//! it at the end, so a failure, a full disk or a signal never leaves half a file; a symlink
//! keeps pointing where it did (its target is replaced). Anything else that already exists
//! there (`/dev/null`, a FIFO, a terminal) is written to directly: renaming over a device
//! node would replace it with a regular file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::signals;

/// Temporary files being written; removed by the signal handler before it ends the process.
static TEMPS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes every temporary file still being written (called on the way out after a signal).
pub(crate) fn remove_temps() {
    for p in TEMPS.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
        let _ = std::fs::remove_file(p);
    }
}

/// Writes `path` with `fill`. Stops with an error when a signal arrives while writing (the
/// temporary file is removed; a device or FIFO has what was written so far).
pub(crate) fn write_file<T>(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<T>,
) -> io::Result<T> {
    signals::install();
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "it is a directory; name a file",
            ));
        }
        Ok(m) if !m.is_file() => {
            let f = OpenOptions::new().write(true).open(path)?;
            let mut w = Stoppable(io::BufWriter::with_capacity(1 << 20, f));
            let out = fill(&mut w)?;
            w.flush()?;
            return Ok(out);
        }
        _ => {}
    }
    // A symlink's target is what gets replaced.
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let tmp = temp_beside(&target);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)?;
    TEMPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(tmp.clone());
    let result = write_and_rename(file, &tmp, &target, fill);
    let mut temps = TEMPS.lock().unwrap_or_else(|e| e.into_inner());
    temps.retain(|p| p != &tmp);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_and_rename<T>(
    file: File,
    tmp: &Path,
    target: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<T>,
) -> io::Result<T> {
    let mut w = Stoppable(io::BufWriter::with_capacity(1 << 20, file));
    let out = fill(&mut w)?;
    w.flush()?;
    // No fsync: the rename guards against failures and signals, not power loss (a masked
    // copy of 1 GiB would wait seconds for the disk).
    drop(w);
    stop_if_signalled()?;
    std::fs::rename(tmp, target)?;
    Ok(out)
}

/// `.NAME.rlm-PID-N.tmp` in the target's directory (same file system, so the rename is
/// atomic; unique across threads and processes).
fn temp_beside(target: &Path) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    target.with_file_name(format!(
        ".{name}.rlm-{}-{}.tmp",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

fn stop_if_signalled() -> io::Result<()> {
    match signals::received() {
        // Not `ErrorKind::Interrupted`: `write_all` retries those.
        Some(sig) => Err(io::Error::other(format!("stopped by signal {sig}"))),
        None => Ok(()),
    }
}

/// A writer that fails once a signal has arrived.
struct Stoppable<W>(W);

impl<W: Write> Write for Stoppable<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        stop_if_signalled()?;
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
