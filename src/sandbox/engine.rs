//! The session engine: one persistent REPL per session, whatever the backend. It sends
//! cells, answers host calls, enforces the per-cell wall clock, checks every frame against the
//! cell it belongs to, restarts the REPL after a crash, timeout or protocol violation, and
//! kills it when the session is dropped. It names no backend: everything backend-specific goes
//! through [`Backend`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::backend::{Backend, Launched, POOL_MAX_FILES, ReadyInfo};
use super::pipes::{Event, Pipes};
use super::pool::Pool;
use super::protocol::{HostMsg, HostReply, ReplMsg, decode_call, encode, encode_reply};
use super::session::{ExecutionResult, HostCalls, ReplLost, Sandbox, SandboxSession, SessionSpec};
use crate::BoxFuture;
use crate::config::{SandboxConfig, SandboxKind};
use crate::error::{Error, Result};
use crate::runtime;

/// Most documents one session accepts.
const MAX_DOCS: usize = 1000;
/// How long a fresh REPL may take to report ready.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A [`Sandbox`] made of the session engine and one backend, with its pool of pre-started
/// REPLs when the configuration asks for one.
#[derive(Debug, Clone)]
pub(crate) struct EngineSandbox {
    backend: Arc<dyn Backend>,
    cfg: Arc<SandboxConfig>,
    pool: Option<Arc<Pool>>,
    /// Sandbox starts in progress at once (see [`concurrent_starts`]).
    starts: runtime::Limiter,
}

/// How many sandboxes start at once: a start is mostly CPU (Python's own start-up), and a
/// thousand started together on two cores all finish late (past their start timeout)
/// instead of most finishing early; a few per core keep the cores busy and the queue short.
fn concurrent_starts() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 4
}

impl EngineSandbox {
    pub(crate) fn new(backend: Arc<dyn Backend>, cfg: Arc<SandboxConfig>) -> Self {
        let pool = (cfg.pool > 0).then(|| Pool::start(backend.clone(), cfg.pool, START_TIMEOUT));
        EngineSandbox {
            backend,
            cfg,
            pool,
            starts: runtime::Limiter::new(concurrent_starts()),
        }
    }
}

impl Sandbox for EngineSandbox {
    fn start(&self, spec: SessionSpec) -> BoxFuture<'static, Result<Box<dyn SandboxSession>>> {
        let (backend, cfg, starts) = (self.backend.clone(), self.cfg.clone(), self.starts.clone());
        let pooled = self
            .pool
            .as_ref()
            .filter(|_| spec.files.len() <= POOL_MAX_FILES)
            .and_then(|p| p.take());
        Box::pin(async move {
            if spec.files.len() > MAX_DOCS {
                return Err(Error::context(format!(
                    "{} documents given; at most {MAX_DOCS} are supported per run: join them into fewer \
                     documents or one file",
                    spec.files.len()
                )));
            }
            let mut s = Session {
                backend,
                cfg,
                starts,
                spec,
                proc: None,
                state_lost: false,
            };
            s.proc = Some(match pooled {
                // A pre-started REPL that died while waiting, or that refused its context
                // or limits, is replaced by a fresh one (which reports any real cause).
                Some(l) => match s.bind(l).await {
                    Ok(l) => l,
                    Err(_) => s.spawn().await?,
                },
                None => s.spawn().await?,
            });
            Ok(Box::new(s) as Box<dyn SandboxSession>)
        })
    }

    fn kind(&self) -> SandboxKind {
        self.backend.kind()
    }
}

/// A fresh, unguessable-enough token for one cell (the REPL's frames about the cell must
/// echo it; it guards against frames from another cell, not against code that reads the
/// driver's memory, which no in-process token could).
fn cell_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:016x}", h.finish())
}

struct Session {
    backend: Arc<dyn Backend>,
    cfg: Arc<SandboxConfig>,
    starts: runtime::Limiter,
    spec: SessionSpec,
    proc: Option<Launched>,
    /// The REPL died or was killed; the next cell starts a fresh one.
    state_lost: bool,
}

/// Runs `f` with the pipes of `l` on the blocking pool.
async fn with_pipes<T: Send + 'static>(
    l: &mut Launched,
    f: impl FnOnce(&mut Pipes) -> T + Send + 'static,
) -> T {
    let mut pipes = l.pipes.take().expect("pipes are present between steps");
    let (pipes, out) = runtime::unblock(move || {
        let out = f(&mut pipes);
        (pipes, out)
    })
    .await;
    l.pipes = Some(pipes);
    out
}

impl Session {
    /// Launches a REPL and waits for its ready report.
    async fn spawn(&self) -> Result<Launched> {
        let _permit = self.starts.acquire().await;
        let (backend, spec) = (self.backend.clone(), self.spec.clone());
        let l = runtime::unblock(move || backend.launch(&spec)).await?;
        self.ready(l, true).await
    }

    /// Hands a pre-started REPL this session's context and waits for its second ready
    /// report (it was verified when it first came up).
    async fn bind(&self, l: Launched) -> Result<Launched> {
        let (spec, cfg) = (self.spec.clone(), self.cfg.clone());
        let (l, bound) = runtime::unblock(move || {
            let mut l = l;
            let r = l.bind(&spec, &cfg);
            (l, r)
        })
        .await;
        // On failure `l` is dropped here: killed and reaped off this executor.
        bound?;
        self.ready(l, false).await
    }

    /// Waits for a REPL's ready report, then (`verify`) checks it against what the backend
    /// promises; any other outcome kills the REPL and explains why.
    async fn ready(&self, mut l: Launched, verify: bool) -> Result<Launched> {
        let ev = with_pipes(&mut l, |p| {
            p.step(None, Instant::now() + START_TIMEOUT, false)
        })
        .await;
        match ev {
            Event::Msg(ReplMsg::Ready { .. }) if !verify => Ok(l),
            Event::Msg(ReplMsg::Ready { python, kernel }) => {
                let backend = self.backend.clone();
                let (l, verdict) = runtime::unblock(move || {
                    let v = backend.verify(&ReadyInfo { python, kernel }, &mut l);
                    if v.is_err() {
                        backend.kill(&mut l);
                    }
                    (l, v)
                })
                .await;
                verdict.map(|()| l)
            }
            other => {
                let backend = self.backend.clone();
                let what = l
                    .name
                    .as_ref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default();
                let (stderr, status) = runtime::unblock(move || {
                    // A process that is exiting on its own gets a moment to report its status.
                    let status = l.reap(Duration::from_millis(20));
                    backend.kill(&mut l);
                    let stderr = l.pipes.as_mut().map(|p| p.stderr.finish());
                    (stderr.unwrap_or_default(), status)
                })
                .await;
                let status = status.map(|s| format!(" (status {s})")).unwrap_or_default();
                let why = match other {
                    Event::Timeout => "it did not report ready in time".to_string(),
                    Event::Protocol(p) => p,
                    Event::Msg(m) => format!("it sent {m:?} before reporting ready"),
                    Event::Eof => format!("it exited during start-up{status}"),
                };
                Err(Error::sandbox(format!(
                    "the Python REPL{what} could not be started: {why}. stderr: {}.{}",
                    stderr.trim(),
                    self.backend.diagnose(&stderr)
                )))
            }
        }
    }

    /// Kills the REPL without blocking the caller: SIGKILL now, the rest (reaping, engine
    /// calls) on the blocking pool.
    fn kill(&mut self) {
        if let Some(mut l) = self.proc.take() {
            l.signal_kill();
            let backend = self.backend.clone();
            runtime::detach(move || backend.kill(&mut l));
        }
    }

    /// Reaps a REPL that ended on its own and returns its exit code.
    async fn reap(&mut self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        let Some(mut l) = self.proc.take() else {
            return 137;
        };
        let backend = self.backend.clone();
        let status = runtime::unblock(move || {
            let st = l.reap(Duration::from_millis(300));
            backend.kill(&mut l);
            st
        })
        .await;
        match status {
            Some(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(9)),
            None => 137,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How a cell ended, before it becomes an [`ExecutionResult`].
struct Outcome {
    exit_code: i32,
    timed_out: bool,
    memory_exceeded: bool,
    final_answer: Option<String>,
    /// What happens to the REPL now.
    then: Then,
    lost: Option<ReplLost>,
}

/// The REPL after a cell.
#[derive(PartialEq, Eq)]
enum Then {
    /// It lives on.
    Keep,
    /// It is killed (timeout, protocol violation).
    Kill,
    /// It ended on its own; reap it for its status.
    Reap,
}

impl Outcome {
    fn lost(exit_code: i32, timed_out: bool, then: Then, why: Option<ReplLost>) -> Self {
        Outcome {
            exit_code,
            timed_out,
            memory_exceeded: false,
            final_answer: None,
            then,
            lost: why,
        }
    }
}

impl SandboxSession for Session {
    fn close(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        let proc = self.proc.take();
        let backend = self.backend.clone();
        Box::pin(async move {
            if let Some(mut l) = proc {
                l.signal_kill();
                runtime::unblock(move || backend.kill(&mut l)).await;
            }
        })
    }

    fn execute<'a>(
        &'a mut self,
        code: &'a str,
        calls: &'a dyn HostCalls,
    ) -> BoxFuture<'a, Result<ExecutionResult>> {
        Box::pin(async move {
            let mut restarted = false;
            if self.proc.as_ref().is_some_and(|l| l.pipes.is_none()) {
                // An earlier cell was abandoned mid-step (its future dropped): the REPL's
                // state is unknown, so it is replaced.
                self.kill();
                self.state_lost = true;
            }
            if self.proc.is_none() {
                self.proc = Some(self.spawn().await?);
                restarted = self.state_lost;
                self.state_lost = false;
            }
            let token = cell_token();
            let id = {
                static IDS: AtomicU64 = AtomicU64::new(0);
                IDS.fetch_add(1, Ordering::Relaxed) + 1
            };
            let timeout = self.cfg.execution_timeout;
            let oom_before = self.proc.as_ref().map_or(0, |l| l.oom_kills());
            let started = Instant::now();
            let mut deadline = started + timeout;
            // Host calls do not count against the cell's limit, up to a bound: a cell cannot
            // live longer than `max_cell_wall` whatever it waits for.
            let hard_deadline = started + self.cfg.max_cell_wall.max(timeout);
            let mut waited_on_host = Duration::ZERO;
            let mut frame = Some(encode(&HostMsg::Exec {
                id,
                token: token.clone(),
                code: code.to_string(),
            }));
            let mut new_cell = true;
            let outcome = loop {
                let l = self.proc.as_mut().expect("a live REPL");
                let f = frame.take();
                let until = deadline.min(hard_deadline);
                let fresh = std::mem::replace(&mut new_cell, false);
                match with_pipes(l, move |p| p.step(f.as_deref(), until, fresh)).await {
                    Event::Msg(ReplMsg::Done {
                        id: done,
                        token: t,
                        ok,
                        final_answer,
                        memory_error,
                    }) if done == id && t == token => {
                        break Outcome {
                            exit_code: i32::from(!ok),
                            timed_out: false,
                            memory_exceeded: memory_error,
                            final_answer,
                            then: Then::Keep,
                            lost: None,
                        };
                    }
                    Event::Msg(ReplMsg::Call {
                        id: cell,
                        token: t,
                        call_id,
                        name,
                        args,
                    }) if cell == id && t == token => {
                        let t = Instant::now();
                        let reply = match decode_call(&name, &args) {
                            Ok(call) => calls.call(call).await,
                            Err(e) => HostReply::Raise(e),
                        };
                        let spent = t.elapsed();
                        waited_on_host += spent;
                        deadline += spent;
                        frame = Some(encode(&encode_reply(call_id, reply)));
                    }
                    Event::Timeout => {
                        let including_subcalls = Instant::now() >= hard_deadline;
                        let limit = if including_subcalls {
                            self.cfg.max_cell_wall.max(timeout)
                        } else {
                            timeout
                        };
                        break Outcome::lost(
                            137,
                            true,
                            Then::Kill,
                            Some(ReplLost::TimedOut {
                                limit,
                                including_subcalls,
                            }),
                        );
                    }
                    Event::Msg(m) => {
                        // A frame for another cell, or one that does not belong here at all.
                        let what = match m {
                            ReplMsg::Done { .. } => "a completion frame for another cell",
                            ReplMsg::Call { .. } => "a host call for another cell",
                            _ => "an unexpected frame",
                        };
                        break Outcome::lost(
                            137,
                            false,
                            Then::Kill,
                            Some(ReplLost::ProtocolViolation {
                                detail: format!("the REPL sent {what}"),
                            }),
                        );
                    }
                    Event::Protocol(p) => {
                        break Outcome::lost(
                            137,
                            false,
                            Then::Kill,
                            Some(ReplLost::ProtocolViolation { detail: p }),
                        );
                    }
                    Event::Eof => break Outcome::lost(0, false, Then::Reap, None),
                }
            };
            let unsafe_runtime = self.proc.as_ref().is_some_and(|l| l.unsafe_runtime);
            let cgroup = self.proc.as_ref().and_then(|l| l.cgroup_summary());
            // The kernel's OOM killer acting in the sandbox's cgroup during this cell (the
            // whole sandbox over its memory limit) is a memory-limit hit, whichever process
            // it chose.
            let oom = self
                .proc
                .as_ref()
                .is_some_and(|l| l.oom_kills() > oom_before);
            // What the cell wrote, collected before the REPL is killed or reaped.
            let (stdout, stderr) = self
                .proc
                .as_mut()
                .and_then(|l| l.pipes.as_mut())
                .map(|p| (p.stdout.finish(), p.stderr.finish()))
                .unwrap_or_default();
            let mut exit_code = outcome.exit_code;
            let mut lost = outcome.lost;
            match outcome.then {
                Then::Keep => {}
                Then::Kill => self.kill(),
                Then::Reap => {
                    exit_code = self.reap().await;
                    lost = Some(ReplLost::Exited { status: exit_code });
                }
            }
            let state_lost = outcome.then != Then::Keep;
            if state_lost {
                self.state_lost = true;
            }
            Ok(ExecutionResult {
                stdout,
                stderr,
                exit_code,
                timed_out: outcome.timed_out,
                memory_exceeded: outcome.memory_exceeded || oom,
                duration: started.elapsed().saturating_sub(waited_on_host),
                final_answer: outcome.final_answer,
                restarted,
                state_lost,
                lost_because: lost,
                unsafe_runtime,
                cgroup,
            })
        })
    }
}
