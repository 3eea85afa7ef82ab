//! Executor-neutral glue: the only module that owns the blocking pool and timers.
//!
//! * [`unblock`] runs blocking work (HTTP, process I/O, large filtering) on the process-wide
//!   blocking pool and returns a future any executor can await; [`detach`] runs it without
//!   waiting (kills, log writes). The pool starts threads on demand, up to [`MAX_THREADS`],
//!   and a thread that finds no work for [`IDLE_EXIT`] exits, so a burst of load leaves no
//!   parked threads behind (the `blocking` crate keeps every thread up to its limit forever).
//! * [`sleep`] is served by one lazily started timer thread (`rlm-timer`) holding a heap of
//!   deadlines; no executor reactor is needed.
//! * [`Limiter`] is an async semaphore made of a bounded `async_channel` pre-filled with
//!   tokens.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Most threads the blocking pool runs at once. Work beyond it waits in the pool's queue.
/// Each concurrent run holds at most a couple of threads at a time (an LLM request, a cell's
/// pipe exchange), so this serves well over a thousand concurrent runs.
pub(crate) const MAX_THREADS: usize = 2048;

/// A pool thread that found no work for this long exits.
pub(crate) const IDLE_EXIT: Duration = Duration::from_secs(2);

/// The blocking pool: a queue of tasks and the threads serving it.
struct Pool {
    state: Mutex<PoolState>,
    cond: Condvar,
}

struct PoolState {
    queue: VecDeque<async_task::Runnable>,
    /// Threads alive.
    threads: usize,
    /// Threads waiting for work.
    idle: usize,
    /// Wake-ups sent to idle threads and not yet taken.
    wakeups: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(PoolState {
            queue: VecDeque::new(),
            threads: 0,
            idle: 0,
            wakeups: 0,
        }),
        cond: Condvar::new(),
    })
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `r` and wakes an idle thread for it, or starts one.
    fn schedule(&'static self, r: async_task::Runnable) {
        let mut st = self.lock();
        st.queue.push_back(r);
        if st.idle > st.wakeups {
            st.wakeups += 1;
            self.cond.notify_one();
        } else if st.threads < MAX_THREADS {
            st.threads += 1;
            let n = st.threads;
            drop(st);
            let started = std::thread::Builder::new()
                .name(format!("rlm-blocking-{n}"))
                .spawn(move || self.serve());
            if started.is_err() {
                // No thread now: the queued task runs when a busy thread comes back.
                self.lock().threads -= 1;
            }
        }
    }

    /// A pool thread: runs queued tasks, waits for more, exits after [`IDLE_EXIT`] idle.
    fn serve(&'static self) {
        let mut st = self.lock();
        loop {
            while let Some(r) = st.queue.pop_front() {
                drop(st);
                // A panic in a task is reported to its awaiter by `async_task`; the thread
                // carries on.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.run()));
                st = self.lock();
            }
            st.idle += 1;
            let deadline = Instant::now() + IDLE_EXIT;
            loop {
                let now = Instant::now();
                let timed_out = now >= deadline;
                if st.wakeups > 0 {
                    st.wakeups -= 1;
                    st.idle -= 1;
                    break;
                }
                if timed_out {
                    st.idle -= 1;
                    if st.queue.is_empty() {
                        st.threads -= 1;
                        return;
                    }
                    break;
                }
                st = self
                    .cond
                    .wait_timeout(st, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
    }
}

/// Held by unit tests that start many pool threads at once, so that the test counting the
/// pool's threads does not count theirs.
#[cfg(test)]
pub(crate) static MANY_THREADS: Mutex<()> = Mutex::new(());

/// Threads of the blocking pool alive now.
#[cfg(test)]
fn blocking_threads() -> usize {
    pool().lock().threads
}

/// A blocking job's result, as a future. Dropping it before the job starts means the job
/// never runs; once started, the job runs to completion and its result is discarded.
#[derive(Debug)]
#[must_use = "a task is cancelled when dropped; `.detach()` lets it run"]
pub(crate) struct Task<T>(async_task::Task<T>);

impl<T> Task<T> {
    /// Lets the job run to completion without anyone waiting for it.
    pub(crate) fn detach(self) {
        self.0.detach();
    }
}

impl<T> Future for Task<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(&mut self.0).poll(cx)
    }
}

/// Runs `f` on the blocking pool. Dropping the returned future before `f` starts means it
/// never runs; once started, `f` runs to completion and its result is discarded.
pub(crate) fn unblock<T, F>(f: F) -> Task<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // A panic in `f` reaches the awaiter with its own message.
    let (runnable, task) = async_task::Builder::new()
        .propagate_panic(true)
        .spawn(move |_| async move { f() }, |r| pool().schedule(r));
    runnable.schedule();
    Task(task)
}

/// Runs `f` on the blocking pool without waiting for it (killing and reaping processes,
/// writing logs): the caller's executor is never blocked by it.
pub(crate) fn detach<F>(f: F)
where
    F: FnOnce() + Send + 'static,
{
    let pending = pending();
    *pending.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    unblock(move || {
        // Counted down even when `f` panics, so `wait_detached` never waits for it in vain.
        let _done = PendingGuard(pending);
        f();
    })
    .detach();
}

/// Counts one detached job down when dropped.
struct PendingGuard(&'static (Mutex<u64>, Condvar));

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let mut n = self.0.0.lock().unwrap_or_else(|e| e.into_inner());
        *n -= 1;
        if *n == 0 {
            self.0.1.notify_all();
        }
    }
}

/// Detached jobs not yet finished, and a condition variable signalled when none is left.
fn pending() -> &'static (Mutex<u64>, Condvar) {
    static P: OnceLock<(Mutex<u64>, Condvar)> = OnceLock::new();
    P.get_or_init(|| (Mutex::new(0), Condvar::new()))
}

/// Blocks until every job handed to [`detach`] has finished (killed sandboxes reaped, their
/// cgroups and uid leases released, logs written), or `limit` passes. True when all did.
pub(crate) fn wait_detached(limit: Duration) -> bool {
    let (lock, cond) = pending();
    let deadline = Instant::now() + limit;
    let mut n = lock.lock().unwrap_or_else(|e| e.into_inner());
    while *n > 0 {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        n = cond
            .wait_timeout(n, deadline - now)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    true
}

/// Holds a value whose drop does blocking work (unmapping files, removing directories), so
/// that it is never dropped on the caller's executor: [`release`](Self::release) drops it on
/// the blocking pool and waits; a plain drop (a cancelled run) hands it to the pool without
/// waiting.
#[derive(Debug)]
pub(crate) struct DropOffThread<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> DropOffThread<T> {
    pub(crate) fn new(value: T) -> Self {
        DropOffThread(Some(value))
    }

    /// Drops the value on the blocking pool and waits until that is done.
    pub(crate) async fn release(mut self) {
        if let Some(v) = self.0.take() {
            unblock(move || drop(v)).await;
        }
    }
}

impl<T: Send + 'static> std::ops::Deref for DropOffThread<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_ref().expect("present until released")
    }
}

impl<T: Send + 'static> Drop for DropOffThread<T> {
    fn drop(&mut self) {
        if let Some(v) = self.0.take() {
            detach(move || drop(v));
        }
    }
}

/// Blocks the current thread on `fut`; the single sync entry point of the crate.
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    futures_lite::future::block_on(fut)
}

struct TimerState {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    wakers: std::collections::HashMap<u64, Waker>,
    next_id: u64,
}

struct Timer {
    state: Mutex<TimerState>,
    cond: Condvar,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<&'static Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let t: &'static Timer = Box::leak(Box::new(Timer {
            state: Mutex::new(TimerState {
                heap: BinaryHeap::new(),
                wakers: Default::default(),
                next_id: 0,
            }),
            cond: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("rlm-timer".into())
            .spawn(move || timer_loop(t))
            .expect("spawn rlm-timer thread");
        t
    })
}

fn timer_loop(t: &'static Timer) {
    let mut st = t.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let now = Instant::now();
        while let Some(Reverse((deadline, id))) = st.heap.peek().copied() {
            if deadline > now {
                break;
            }
            st.heap.pop();
            if let Some(w) = st.wakers.remove(&id) {
                w.wake();
            }
        }
        st = match st.heap.peek() {
            Some(Reverse((deadline, _))) => {
                let wait = deadline.saturating_duration_since(Instant::now());
                t.cond
                    .wait_timeout(st, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => t.cond.wait(st).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

/// A future that completes at a deadline.
#[derive(Debug)]
pub(crate) struct Sleep {
    deadline: Instant,
    id: Option<u64>,
}

/// Completes after `d`.
pub(crate) fn sleep(d: Duration) -> Sleep {
    Sleep {
        deadline: Instant::now() + d,
        id: None,
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            self.release();
            return Poll::Ready(());
        }
        let t = timer();
        let mut st = t.state.lock().unwrap_or_else(|e| e.into_inner());
        match self.id {
            Some(id) => {
                st.wakers.insert(id, cx.waker().clone());
            }
            None => {
                let id = st.next_id;
                st.next_id += 1;
                st.wakers.insert(id, cx.waker().clone());
                st.heap.push(Reverse((self.deadline, id)));
                self.id = Some(id);
                t.cond.notify_one();
            }
        }
        Poll::Pending
    }
}

impl Sleep {
    /// Forgets this sleep's waker. The heap entry stays until its deadline and is then
    /// skipped.
    fn release(&mut self) {
        if let Some(id) = self.id.take() {
            timer()
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .wakers
                .remove(&id);
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.release();
    }
}

/// Runs `fut`, or returns `None` when `limit` elapses first (dropping `fut`).
pub(crate) async fn timeout<F: Future>(limit: Option<Duration>, fut: F) -> Option<F::Output> {
    match limit {
        None => Some(fut.await),
        Some(d) => {
            futures_lite::future::or(async { Some(fut.await) }, async {
                sleep(d).await;
                None
            })
            .await
        }
    }
}

/// An async counting semaphore.
#[derive(Debug, Clone)]
pub(crate) struct Limiter {
    tx: async_channel::Sender<()>,
    rx: async_channel::Receiver<()>,
}

/// Held while a permit is in use; returns it on drop.
#[derive(Debug)]
pub(crate) struct Permit {
    tx: async_channel::Sender<()>,
}

impl Limiter {
    pub(crate) fn new(permits: usize) -> Self {
        let (tx, rx) = async_channel::bounded(permits.max(1));
        for _ in 0..permits.max(1) {
            tx.try_send(()).expect("fresh channel has room");
        }
        Limiter { tx, rx }
    }

    pub(crate) async fn acquire(&self) -> Permit {
        // The sender half lives in `self`, so the channel never closes while we wait.
        let _ = self.rx.recv().await;
        Permit {
            tx: self.tx.clone(),
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let _ = self.tx.try_send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_and_timeout() {
        let start = Instant::now();
        block_on(sleep(Duration::from_millis(30)));
        assert!(start.elapsed() >= Duration::from_millis(30));
        let r = block_on(timeout(
            Some(Duration::from_millis(20)),
            sleep(Duration::from_secs(5)),
        ));
        assert!(r.is_none());
        assert!(start.elapsed() < Duration::from_secs(2));
        let r = block_on(timeout(Some(Duration::from_secs(5)), async { 7 }));
        assert_eq!(r, Some(7));
    }

    #[test]
    fn pool_grows_under_load_and_idle_threads_exit() {
        let _one = MANY_THREADS.lock().unwrap_or_else(|e| e.into_inner());
        let start = Instant::now();
        let jobs: Vec<_> = (0..64)
            .map(|i| {
                unblock(move || {
                    std::thread::sleep(Duration::from_millis(200));
                    i
                })
            })
            .collect();
        let sum: usize = block_on(async {
            let mut s = 0;
            for j in jobs {
                s += j.await;
            }
            s
        });
        assert_eq!(sum, (0..64).sum::<usize>());
        // 64 jobs of 200 ms ran side by side, not in a queue.
        assert!(
            start.elapsed() < Duration::from_millis(1500),
            "{:?}",
            start.elapsed()
        );
        assert!(blocking_threads() >= 32, "{}", blocking_threads());
        std::thread::sleep(IDLE_EXIT + Duration::from_millis(800));
        // Other tests of this binary may hold a few threads; the burst's are gone.
        assert!(
            blocking_threads() < 16,
            "{} threads left",
            blocking_threads()
        );
    }

    #[test]
    fn a_task_dropped_before_it_starts_never_runs() {
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Occupy the pool's queue order: a job dropped right away is cancelled if it has
        // not started; one detached always runs.
        let r2 = ran.clone();
        let t = unblock(move || r2.store(true, std::sync::atomic::Ordering::SeqCst));
        t.detach();
        let start = Instant::now();
        while !ran.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(start.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn limiter_bounds_concurrency() {
        let lim = Limiter::new(2);
        block_on(async {
            let a = lim.acquire().await;
            let _b = lim.acquire().await;
            assert!(lim.rx.is_empty());
            drop(a);
            let _c = lim.acquire().await;
        });
    }
}
