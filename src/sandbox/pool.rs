//! Pre-started sandboxes: REPLs launched with no context, already past their start-up, each
//! handed to exactly one session (never reused: a session's REPL is killed when it ends).
//! A session that takes one gets its context over the REPL's binding socket
//! ([`Launched::bind`]) instead of waiting for a process to start; a replacement is started
//! in the background at once, at most [`MAX_STARTING`] at a time so that refilling never
//! crowds out the runs themselves.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::backend::{Backend, Launched, ReadyInfo};
use super::pipes::Event;
use super::protocol::ReplMsg;
use crate::runtime;

/// Pool starts in flight at once.
const MAX_STARTING: usize = 2;
/// After a failed start, the pool waits this long before trying again (sessions start their
/// own REPLs meanwhile, and report the cause).
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// A pool of pre-started REPLs for one sandbox configuration. Dropping the last reference
/// kills every REPL in it.
#[derive(Debug)]
pub(crate) struct Pool {
    backend: Arc<dyn Backend>,
    target: usize,
    start_timeout: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    ready: VecDeque<Launched>,
    starting: usize,
    paused_until: Option<Instant>,
}

impl Pool {
    /// A pool keeping `target` REPLs ready; filling starts at once.
    pub(crate) fn start(
        backend: Arc<dyn Backend>,
        target: usize,
        start_timeout: Duration,
    ) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            backend,
            target,
            start_timeout,
            state: Mutex::new(State::default()),
        });
        pool.refill();
        pool
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A ready REPL, if there is one (never waits); a replacement starts in the background.
    pub(crate) fn take(self: &Arc<Self>) -> Option<Launched> {
        let taken = self.lock().ready.pop_front();
        self.refill();
        taken
    }

    /// Starts REPLs in the background until `target` are ready or starting.
    fn refill(self: &Arc<Self>) {
        let mut st = self.lock();
        if st.paused_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        while st.ready.len() + st.starting < self.target && st.starting < MAX_STARTING {
            st.starting += 1;
            let weak = Arc::downgrade(self);
            let (backend, timeout) = (self.backend.clone(), self.start_timeout);
            runtime::detach(move || {
                let started = start_one(&*backend, timeout);
                Pool::started(&weak, started);
            });
        }
    }

    /// A background start ended: keep the REPL (or kill it, when the pool is gone), and go
    /// on filling.
    fn started(weak: &Weak<Pool>, started: Option<Launched>) {
        let Some(pool) = weak.upgrade() else {
            // Dropped here: killed and reaped.
            return;
        };
        {
            let mut st = pool.lock();
            st.starting -= 1;
            match started {
                Some(l) => st.ready.push_back(l),
                None => st.paused_until = Some(Instant::now() + PAUSE_AFTER_FAILURE),
            }
        }
        pool.refill();
    }
}

/// Launches one pooled REPL and waits for its ready report (blocking). `None` when it did
/// not start or was refused; the REPL is then killed.
fn start_one(backend: &dyn Backend, timeout: Duration) -> Option<Launched> {
    let mut l = backend.launch_pooled()?.ok()?;
    let ev = l
        .pipes
        .as_mut()?
        .step(None, Instant::now() + timeout, false);
    match ev {
        Event::Msg(ReplMsg::Ready { python, kernel }) => {
            match backend.verify(&ReadyInfo { python, kernel }, &mut l) {
                Ok(()) => Some(l),
                Err(_) => {
                    backend.kill(&mut l);
                    None
                }
            }
        }
        _ => {
            backend.kill(&mut l);
            None
        }
    }
}
