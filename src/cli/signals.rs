//! SIGINT, SIGTERM and SIGHUP: the first one cancels every run in progress (their sandboxes
//! are killed, their temporary files removed) and lets the command end normally with exit
//! code 128 + the signal; a second one ends the process at once. Child processes this
//! command starts (the local model server) are tied to it with a death signal as well, so
//! not even SIGKILL leaves them behind.
//!
//! `rlm chat` switches SIGINT to [`chat_mode`]: it cancels the question in progress (the
//! runs being watched) and is then forgotten, so the chat goes on; SIGTERM and SIGHUP still
//! end the command.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};

use rlm::CancelHandle;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// `rlm chat`'s mode: SIGINT cancels the runs in progress only.
static CHAT: AtomicBool = AtomicBool::new(false);
/// A SIGINT in chat mode not yet taken by [`take_interrupt`].
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn runs() -> &'static Mutex<Vec<CancelHandle>> {
    static RUNS: OnceLock<Mutex<Vec<CancelHandle>>> = OnceLock::new();
    RUNS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Starts the handler thread (once).
pub(crate) fn install() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        let _ = std::thread::Builder::new()
            .name("rlm-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if sig == SIGINT && CHAT.load(Ordering::SeqCst) {
                        // `rlm chat`: Ctrl-C cancels the question in progress and the chat
                        // goes on; a second one before the chat has seen the first exits.
                        if INTERRUPTED.swap(true, Ordering::SeqCst) {
                            eprintln!("\nrlm: second Ctrl-C, exiting now");
                            super::output::remove_temps();
                            std::process::exit(128 + sig);
                        }
                        for c in runs().lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
                            c.cancel();
                        }
                        continue;
                    }
                    if RECEIVED.swap(sig, Ordering::SeqCst) != 0 {
                        eprintln!("rlm: second signal, exiting now");
                        super::output::remove_temps();
                        std::process::exit(128 + sig);
                    }
                    eprintln!("rlm: stopping (signal {sig}); send it again to exit at once");
                    for c in runs().lock().unwrap_or_else(|e| e.into_inner()).iter() {
                        c.cancel();
                    }
                }
            });
    });
}

/// Cancels `run` when a signal arrives (at once if one already has).
pub(crate) fn watch(run: CancelHandle) {
    if RECEIVED.load(Ordering::SeqCst) != 0
        || (CHAT.load(Ordering::SeqCst) && INTERRUPTED.load(Ordering::SeqCst))
    {
        run.cancel();
    }
    runs().lock().unwrap_or_else(|e| e.into_inner()).push(run);
}

/// The signal received, if any.
pub(crate) fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Chat mode: from now on SIGINT cancels the runs being watched (and forgets them) without
/// ending the command; [`take_interrupt`] tells whether one came.
pub(crate) fn chat_mode() {
    CHAT.store(true, Ordering::SeqCst);
}

/// True (once) when a SIGINT arrived in chat mode since the last call.
pub(crate) fn take_interrupt() -> bool {
    INTERRUPTED.swap(false, Ordering::SeqCst)
}

/// Stops watching the runs given to [`watch`] (they have ended).
pub(crate) fn forget() {
    runs().lock().unwrap_or_else(|e| e.into_inner()).clear();
}
