//! Executor-neutral glue: the only module that knows about the `blocking` pool and timers.
//!
//! * [`unblock`] runs blocking work (HTTP, process I/O, large filtering) on the process-wide
//!   `blocking` pool and returns a future any executor can await; [`detach`] runs it without
//!   waiting (kills, log writes).
//! * [`sleep`] is served by one lazily started timer thread (`rlm-timer`) holding a heap of
//!   deadlines; no executor reactor is needed.
//! * [`Limiter`] is an async semaphore made of a bounded `async_channel` pre-filled with
//!   tokens.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Runs `f` on the blocking pool. Dropping the returned future before `f` starts means it
/// never runs; once started, `f` runs to completion and its result is discarded.
pub(crate) fn unblock<T, F>(f: F) -> blocking::Task<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    blocking::unblock(f)
}

/// Runs `f` on the blocking pool without waiting for it (killing and reaping processes,
/// writing logs): the caller's executor is never blocked by it.
pub(crate) fn detach<F>(f: F)
where
    F: FnOnce() + Send + 'static,
{
    let pending = pending();
    *pending.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    blocking::unblock(move || {
        f();
        let mut n = pending.0.lock().unwrap_or_else(|e| e.into_inner());
        *n -= 1;
        if *n == 0 {
            pending.1.notify_all();
        }
    })
    .detach();
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
