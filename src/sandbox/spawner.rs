//! Where sandbox processes are started: dedicated threads that never exit.
//!
//! `PR_SET_PDEATHSIG` (and bwrap's `--die-with-parent`) fire when the *thread* that started the
//! child exits, so a short-lived pool thread would kill healthy sandboxes; these threads live
//! as long as the process. There are [`SPAWNERS`] of them: a child spends most of its time
//! between its start and exec moving itself into its cgroups (the kernel waits for an RCU
//! grace period there, about 20 ms), and one thread would make every sandbox start wait in
//! line behind the ones before it; several overlap those waits.

use super::sys::{self, ChildSetup, Exec, Proc};
use std::sync::OnceLock;

type Job = Box<dyn FnOnce() + Send>;

/// Spawner threads, all started with the first sandbox.
pub(crate) const SPAWNERS: usize = 8;

fn queue() -> &'static async_channel::Sender<Job> {
    static TX: OnceLock<async_channel::Sender<Job>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = async_channel::unbounded::<Job>();
        for i in 0..SPAWNERS {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("rlm-spawner-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv_blocking() {
                        // This thread must outlive its children (their parent-death signal
                        // is tied to it): a panicking job must not end it.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })
                .expect("spawn an rlm-spawner thread");
        }
        tx
    })
}

/// Starts `exec` with `setup` on a spawner thread and waits for the result (blocking: call
/// it from the blocking pool).
pub(crate) fn spawn(exec: Exec, setup: ChildSetup) -> std::io::Result<Proc> {
    let (tx, rx) = async_channel::bounded(1);
    let job: Job = Box::new(move || {
        let _ = tx.send_blocking(sys::spawn(&exec, &setup));
    });
    queue()
        .send_blocking(job)
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
    rx.recv_blocking()
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?
}
