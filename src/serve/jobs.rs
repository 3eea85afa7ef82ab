//! Async runs of this replica: their ids, a way to cancel them, and their results, kept for a
//! bounded time and count after they finish.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::runs::RunCancel;

/// Where an async run is.
#[derive(Debug, Clone)]
pub(crate) enum JobState {
    /// Queued or running.
    Running,
    /// Finished; the result as JSON.
    Done(Arc<str>),
}

#[derive(Debug)]
struct Job {
    cancel: Arc<RunCancel>,
    state: JobState,
    /// The token that started it (its index in the token file), when the server has tokens.
    owner: Option<usize>,
}

#[derive(Debug, Default)]
struct Inner {
    jobs: HashMap<String, Job>,
    /// Finished jobs, oldest first, with when they finished.
    finished: VecDeque<(Instant, String)>,
    /// Bytes of the results kept.
    bytes: usize,
}

/// Bytes of finished results kept at most (the oldest go first): results carry every step
/// of their run, and a thousand large ones must not exhaust the server's memory.
const MAX_RESULT_BYTES: usize = 256 << 20;

fn result_len(j: &Job) -> usize {
    match &j.state {
        JobState::Done(r) => r.len(),
        JobState::Running => 0,
    }
}

/// The async runs of one server.
#[derive(Debug)]
pub(crate) struct Jobs {
    inner: Mutex<Inner>,
    ttl: Duration,
    max: usize,
}

impl Jobs {
    pub(crate) fn new(ttl: Duration, max: usize) -> Jobs {
        Jobs {
            inner: Mutex::new(Inner::default()),
            ttl,
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new run; its id.
    #[cfg(test)]
    pub(crate) fn add(&self, cancel: Arc<RunCancel>) -> String {
        self.add_for(cancel, None)
    }

    /// Registers a new run started by the token `owner`; its id.
    pub(crate) fn add_for(&self, cancel: Arc<RunCancel>, owner: Option<usize>) -> String {
        let id = new_id();
        self.lock().jobs.insert(
            id.clone(),
            Job {
                cancel,
                state: JobState::Running,
                owner,
            },
        );
        id
    }

    /// True when `id` is a run `owner` may read or cancel: one it started (any run, on a
    /// server without tokens). Unknown ids are `true` here and answered 404 by the caller.
    pub(crate) fn belongs_to(&self, id: &str, owner: Option<usize>) -> bool {
        self.lock().jobs.get(id).is_none_or(|j| j.owner == owner)
    }

    /// Records the result of `id`, then forgets results past their time or count.
    pub(crate) fn finish(&self, id: &str, result_json: String) {
        let now = Instant::now();
        let mut g = self.lock();
        let len = result_json.len();
        if let Some(j) = g.jobs.get_mut(id) {
            j.state = JobState::Done(result_json.into());
            g.finished.push_back((now, id.to_string()));
            g.bytes += len;
        }
        self.expire(&mut g, now);
    }

    fn expire(&self, g: &mut Inner, now: Instant) {
        while let Some((at, id)) = g.finished.front() {
            if now.duration_since(*at) > self.ttl
                || g.finished.len() > self.max
                || g.bytes > MAX_RESULT_BYTES
            {
                let id = id.clone();
                g.finished.pop_front();
                if let Some(j) = g.jobs.remove(&id) {
                    g.bytes -= result_len(&j);
                }
            } else {
                break;
            }
        }
    }

    /// The state of `id`, if this replica knows it.
    pub(crate) fn get(&self, id: &str) -> Option<JobState> {
        let mut g = self.lock();
        self.expire(&mut g, Instant::now());
        g.jobs.get(id).map(|j| j.state.clone())
    }

    /// Cancels `id` if it runs (its state before), or forgets its result if it finished.
    pub(crate) fn cancel(&self, id: &str) -> Option<JobState> {
        let mut g = self.lock();
        self.expire(&mut g, Instant::now());
        let state = g.jobs.get(id)?.state.clone();
        match state {
            JobState::Running => g.jobs[id].cancel.cancel(),
            JobState::Done(_) => {
                if let Some(j) = g.jobs.remove(id) {
                    g.bytes -= result_len(&j);
                }
                g.finished.retain(|(_, i)| i != id);
            }
        }
        Some(state)
    }
}

/// 128 random bits as 32 hex digits (from the kernel's random source; a hash of the time and
/// a counter where it cannot be read).
fn new_id() -> String {
    let mut b = [0u8; 16];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok();
    if !ok {
        use std::hash::{BuildHasher, Hasher};
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        for half in b.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(N.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos(),
            );
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cancel() -> Arc<RunCancel> {
        super::super::runs::test_cancel()
    }

    #[test]
    fn results_are_kept_for_a_bounded_count_and_time() {
        let jobs = Jobs::new(Duration::from_secs(60), 2);
        let ids: Vec<String> = (0..3).map(|_| jobs.add(cancel())).collect();
        assert_eq!(ids[0].len(), 32);
        assert_ne!(ids[0], ids[1]);
        assert!(matches!(jobs.get(&ids[0]), Some(JobState::Running)));
        for id in &ids {
            jobs.finish(id, "{}".into());
        }
        assert!(jobs.get(&ids[0]).is_none(), "the oldest went first");
        assert!(matches!(jobs.get(&ids[2]), Some(JobState::Done(_))));
        assert!(matches!(jobs.cancel(&ids[2]), Some(JobState::Done(_))));
        assert!(jobs.get(&ids[2]).is_none(), "DELETE forgets a result");
        let jobs = Jobs::new(Duration::ZERO, 10);
        let id = jobs.add(cancel());
        jobs.finish(&id, "{}".into());
        std::thread::sleep(Duration::from_millis(5));
        assert!(jobs.get(&id).is_none(), "expired");
    }

    #[test]
    fn results_are_kept_for_bounded_bytes() {
        let jobs = Jobs::new(Duration::from_secs(60), 1000);
        let big = "x".repeat(MAX_RESULT_BYTES / 3 + 1);
        let ids: Vec<String> = (0..3).map(|_| jobs.add(cancel())).collect();
        for id in &ids {
            jobs.finish(id, big.clone());
        }
        assert!(jobs.get(&ids[0]).is_none(), "the oldest went first");
        assert!(matches!(jobs.get(&ids[2]), Some(JobState::Done(_))));
        assert!(jobs.lock().bytes <= MAX_RESULT_BYTES);
        jobs.cancel(&ids[2]);
        jobs.cancel(&ids[1]);
        assert_eq!(jobs.lock().bytes, 0);
    }
}
