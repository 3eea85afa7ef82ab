//! Sessions: several questions to one REPL, one after the other ([`Session`]).
//!
//! A session keeps, between its calls, the REPL (every variable), every context given so far
//! (`ctx_0`/`context_0`, `ctx_1`/`context_1`, ...; `ctx`/`context` are the latest) and the
//! conversation (the earlier questions, the model's replies and the observations). Each call
//! is a run of its own with its own result, budget and events. One call at a time: a call
//! made while another is running is rejected with [`Error::SessionBusy`]. Dropping the
//! session kills its sandbox.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::context::{Context, LoadedContext};
use crate::error::{Error, Result};
use crate::llm::{Message, Role};
use crate::orchestrator::ObservedRun;
use crate::result::RunResult;
use crate::run::{self, Shared};
use crate::sandbox::{HostCalls, SandboxSession};

/// What a session keeps between its calls.
#[derive(Default)]
struct Kept {
    sandbox: Option<Box<dyn SandboxSession>>,
    history: Vec<Message>,
    contexts: usize,
}

/// The state of one session, shared by its calls.
#[derive(Default)]
pub(crate) struct Chat {
    kept: Mutex<Kept>,
    busy: AtomicBool,
    /// The secrets of every context of the session and their placeholders: one table for
    /// all calls, so `[SECRET:kind#1]` of an earlier context never means another value.
    pub(crate) secrets: Arc<crate::mask::SecretTable>,
}

impl Chat {
    /// The earlier conversation, the REPL (if one is running) and the number of contexts.
    pub(crate) fn take(&self) -> (Vec<Message>, Option<Box<dyn SandboxSession>>, usize) {
        let mut k = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        (k.history.clone(), k.sandbox.take(), k.contexts)
    }

    /// Keeps the REPL and the conversation of a finished call (`messages`: all of it, the
    /// system prompt first).
    pub(crate) fn keep(
        &self,
        sandbox: Box<dyn SandboxSession>,
        messages: &[Message],
        contexts: usize,
        answer: Option<&String>,
    ) {
        let mut history: Vec<Message> = messages.iter().skip(1).cloned().collect();
        // The next question is a user message, so the conversation ends with the model's
        // turn, which records the answer it gave.
        let outcome = match answer {
            Some(a) => format!("(FINAL answer given: {a})"),
            None => "(no answer was given to this question)".to_string(),
        };
        match history.last_mut() {
            Some(m) if m.role == Role::Assistant => {
                m.content.push_str("\n\n");
                m.content.push_str(&outcome);
            }
            _ => history.push(Message::assistant(outcome)),
        }
        let mut k = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        *k = Kept {
            sandbox: Some(sandbox),
            history,
            contexts,
        };
    }
}

/// Hands context number `index` of a session to its REPL (as the text of its masked
/// documents; the REPL maps them from its private `/tmp`, so a session's later contexts are
/// bounded by the sandbox's `/tmp` size).
pub(crate) async fn add_context(
    session: &mut dyn SandboxSession,
    calls: &dyn HostCalls,
    index: usize,
    lc: &LoadedContext,
) -> Result<()> {
    let docs: Vec<String> = lc
        .docs
        .iter()
        .map(|d| String::from_utf8_lossy(d.as_bytes()).into_owned())
        .collect();
    let docs = serde_json::to_string(&docs).expect("strings serialize");
    let code = format!(
        "__import__('sys').modules['__main__']._add_context({index}, {docs}, {})",
        if lc.is_list { "True" } else { "False" }
    );
    let r = session.execute(&code, calls).await?;
    if r.success() {
        Ok(())
    } else {
        Err(Error::sandbox(format!(
            "the session's REPL could not take context {index}: {}",
            r.stderr.lines().last().unwrap_or("failed")
        )))
    }
}

/// Several questions to one REPL, one after the other; see
/// [`Orchestrator::session`](crate::Orchestrator::session).
///
/// ```
/// use rlm::{Orchestrator, Context, llm::ScriptedLlm};
/// let llm = ScriptedLlm::replies([
///     "```python\nn = len(ctx_0.search('x'))\nFINAL(n)\n```",
///     "```python\nFINAL(n * 10)\n```",
/// ]);
/// let session = Orchestrator::builder().llm(llm).build()?.session();
/// let first = session.run_with_context("How many x?", Context::text("x\nx\ny\n"));
/// assert_eq!(first.final_answer.as_deref(), Some("2"));
/// let second = session.run("And ten times that?");
/// assert_eq!(second.final_answer.as_deref(), Some("20"));
/// # Ok::<(), rlm::Error>(())
/// ```
pub struct Session {
    shared: Arc<Shared>,
    chat: Arc<Chat>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("busy", &self.chat.busy.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Marks a session free again when its call ends (or its future is dropped).
struct Busy(Arc<Chat>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
    }
}

impl Session {
    pub(crate) fn new(shared: Arc<Shared>) -> Session {
        Session {
            shared,
            chat: Arc::default(),
        }
    }

    /// Asks `query` in this session. The future is `Send + 'static`; dropping it cancels
    /// the call (and kills the REPL: the next call starts a fresh one, without the earlier
    /// variables, but with the conversation). While it runs, other calls on this session
    /// end at once with [`Error::SessionBusy`].
    pub fn arun(
        &self,
        query: impl Into<String>,
    ) -> impl Future<Output = RunResult> + Send + 'static {
        self.call(query.into(), None)
    }

    /// Asks `query` over a new context: it becomes `ctx_N`/`context_N` (N counting the
    /// session's contexts from 0) and `ctx`/`context`; earlier ones stay.
    pub fn arun_with_context(
        &self,
        query: impl Into<String>,
        context: impl Into<Context>,
    ) -> impl Future<Output = RunResult> + Send + 'static {
        self.call(query.into(), Some(context.into()))
    }

    /// Like [`arun_with_context`](Self::arun_with_context) (or [`arun`](Self::arun) when
    /// `context` is `None`), plus the call's [`RunEvent`](crate::RunEvent)s while it happens
    /// and a [`CancelHandle`](crate::CancelHandle). Cancelling the call loses the REPL, as
    /// dropping it does: the next call starts a fresh one.
    pub fn arun_observed(
        &self,
        query: impl Into<String>,
        context: Option<Context>,
    ) -> ObservedRun<impl Future<Output = RunResult> + Send + 'static> {
        ObservedRun::start(|events, cancel| {
            self.call_with(query.into(), context, Some(events), Some(cancel))
        })
    }

    /// Blocking [`arun`](Self::arun).
    pub fn run(&self, query: impl Into<String>) -> RunResult {
        crate::runtime::block_on(self.arun(query))
    }

    /// Blocking [`arun_with_context`](Self::arun_with_context).
    pub fn run_with_context(
        &self,
        query: impl Into<String>,
        context: impl Into<Context>,
    ) -> RunResult {
        crate::runtime::block_on(self.arun_with_context(query, context))
    }

    fn call(
        &self,
        query: String,
        context: Option<Context>,
    ) -> impl Future<Output = RunResult> + Send + 'static {
        self.call_with(query, context, None, None)
    }

    fn call_with(
        &self,
        query: String,
        context: Option<Context>,
        events: Option<async_channel::Sender<crate::RunEvent>>,
        cancel: Option<async_channel::Receiver<()>>,
    ) -> impl Future<Output = RunResult> + Send + 'static {
        let (shared, chat) = (self.shared.clone(), self.chat.clone());
        let busy = chat.busy.swap(true, Ordering::AcqRel);
        let guard = (!busy).then(|| Busy(chat.clone()));
        async move {
            let Some(_guard) = guard else {
                return RunResult::failed(Error::SessionBusy {
                    message: "another call of this session is still running; await it first, or open another session".into(),
                });
            };
            run::execute_in(shared, Some(chat), query, context, events, cancel).await
        }
    }
}
