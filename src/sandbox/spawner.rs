//! Where sandbox processes are forked: dedicated threads that never exit.
//!
//! `PR_SET_PDEATHSIG` (and bwrap's `--die-with-parent`) fire when the *thread* that forked the
//! child exits, so a short-lived pool thread would kill healthy sandboxes; these threads live
//! as long as the process.

use std::process::{Child, Command};
use std::sync::OnceLock;

type Job = Box<dyn FnOnce() + Send>;

fn queue() -> &'static async_channel::Sender<Job> {
    static TX: OnceLock<async_channel::Sender<Job>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = async_channel::unbounded::<Job>();
        std::thread::Builder::new()
            .name("rlm-spawner".into())
            .spawn(move || {
                while let Ok(job) = rx.recv_blocking() {
                    job();
                }
            })
            .expect("spawn the rlm-spawner thread");
        tx
    })
}

/// Spawns `cmd` on a spawner thread and waits for the result (blocking: call it from the
/// blocking pool).
pub(crate) fn spawn(mut cmd: Command) -> std::io::Result<Child> {
    let (tx, rx) = async_channel::bounded(1);
    let job: Job = Box::new(move || {
        let _ = tx.send_blocking(cmd.spawn());
    });
    queue()
        .send_blocking(job)
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
    rx.recv_blocking()
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?
}
