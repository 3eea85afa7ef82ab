//! The trajectory writer: one line per event, each written and flushed in order, so a crash
//! leaves a valid prefix. Writing never blocks the run's executor: lines are queued and
//! written by one task at a time on the blocking pool; [`TrajectoryLog::flush`] waits until
//! everything queued so far is on disk.

use std::collections::VecDeque;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::runtime;
use crate::trajectory::TrajectoryEvent;

/// A destination for trajectory events, shared by all runs of an orchestrator (lines of
/// concurrent runs interleave; each carries its `run_id`).
pub struct TrajectoryLog {
    inner: Arc<Inner>,
}

struct Inner {
    out: Mutex<Box<dyn Write + Send>>,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    lines: VecDeque<Item>,
    /// A writer task is running.
    draining: bool,
}

enum Item {
    Line(String),
    /// Everything before this is written: tell the waiter.
    Barrier(async_channel::Sender<()>),
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
            inner: Arc::new(Inner {
                out: Mutex::new(Box::new(w)),
                queue: Mutex::new(Queue::default()),
            }),
        }
    }

    fn push(&self, item: Item) {
        let start = {
            let mut q = self.inner.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.lines.push_back(item);
            !std::mem::replace(&mut q.draining, true)
        };
        if start {
            let inner = self.inner.clone();
            runtime::detach(move || inner.drain());
        }
    }

    /// Queues one event. Write errors are ignored: a full disk must not end a run.
    pub(crate) fn write(&self, e: &TrajectoryEvent) {
        self.push(Item::Line(e.to_line()));
    }

    /// Waits until every event queued so far is written and flushed.
    pub(crate) async fn flush(&self) {
        let (tx, rx) = async_channel::bounded(1);
        self.push(Item::Barrier(tx));
        let _ = rx.recv().await;
    }
}

impl Inner {
    /// Writes queued lines in order until the queue is empty (blocking).
    fn drain(&self) {
        loop {
            let item = {
                let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                match q.lines.pop_front() {
                    Some(i) => i,
                    None => {
                        q.draining = false;
                        return;
                    }
                }
            };
            match item {
                Item::Line(line) => {
                    let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
                    let _ = out.write_all(line.as_bytes());
                    let _ = out.flush();
                }
                Item::Barrier(tx) => {
                    let _ = tx.try_send(());
                }
            }
        }
    }
}
