//! The trajectory writer: appends one line per event and flushes it, so a crash leaves a
//! valid prefix.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::trajectory::TrajectoryEvent;

/// A destination for trajectory events, shared by all runs of an orchestrator (lines of
/// concurrent runs interleave; each carries its `run_id`).
pub struct TrajectoryLog {
    out: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for TrajectoryLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrajectoryLog").finish_non_exhaustive()
    }
}

impl TrajectoryLog {
    /// Creates (or truncates) `path`.
    pub fn create(path: impl AsRef<Path>) -> Result<TrajectoryLog> {
        let p = path.as_ref();
        let f = std::fs::File::create(p).map_err(|e| {
            Error::config("trajectory", format!("cannot create {}: {e}", p.display()))
        })?;
        Ok(TrajectoryLog::to_writer(f))
    }

    /// Writes to any writer.
    pub fn to_writer(w: impl Write + Send + 'static) -> TrajectoryLog {
        TrajectoryLog {
            out: Mutex::new(Box::new(w)),
        }
    }

    /// Writes one event (one `write` of a whole line, then a flush). Errors are ignored: a
    /// full disk must not end a run.
    pub(crate) fn write(&self, e: &TrajectoryEvent) {
        let line = e.to_line();
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }
}
