//! # rlm: Recursive Language Models, run safely
//!
//! An LLM gets a task and a (possibly huge) context. Instead of reading the context, it writes
//! Python that runs in a **persistent, sandboxed REPL** where the context is a read-only,
//! memory-mapped file (`ctx`). Its code can call sub-LLMs (`llm_query`,
//! `llm_query_batched`) on pieces of the context. Everything that leaves the sandbox passes an
//! **egress filter** before it reaches an LLM. The run ends when the REPL signals a final answer.
//!
//! ```
//! use rlm::{Orchestrator, llm::ScriptedLlm};
//!
//! // A scripted model stands in for a provider here so the example runs offline; the code it
//! // writes really runs in the bubblewrap sandbox.
//! let llm = ScriptedLlm::replies([
//!     "```python\nimport math\nv = math.comb(10, 3)\nprint(v)\n```",
//!     "```python\nFINAL_VAR('v')\n```",
//! ]);
//! let orch = Orchestrator::builder().llm(llm).build()?;
//! let result = orch.run("How many ways to choose 3 of 10?");
//! assert_eq!(result.final_answer.as_deref(), Some("120"));
//! # Ok::<(), rlm::Error>(())
//! ```
//!
//! With a real provider, use [`Orchestrator::from_env`] (see the README for the variables) or
//! the builder's [`base_url`](OrchestratorBuilder::base_url) /
//! [`api_key`](OrchestratorBuilder::api_key).
//!
//! ## Any executor, or none
//! [`Orchestrator::arun`] returns a `Send + 'static` future that needs no particular runtime:
//! await it under smol, async-std or tokio, or spawn it. [`Orchestrator::run`] is
//! `futures_lite::future::block_on` over the same future, and is safe to call from inside a
//! running executor (it blocks that thread; from async code prefer `arun`).
//!
//! # Architecture
//!
//! ## Modules
//! Pure (no I/O; unit- and property-tested next to the code):
//! - `settings`: the one configuration path: every setting's name, key, flag, default and
//!   parser; builder calls, flags and the environment are sources of `name = text` pairs,
//!   resolved (builder/flags > environment > default) and validated once into a [`Config`]
//!   (`config`: the plain, readable values);
//! - `agent`: the loop's decisions as a state machine (given a reply or a block's result:
//!   ask the model, run a block, answer, or stop and why; nudges, repeat detection, a
//!   runaway reply cut to its first blocks, and the refusal of final answers (each rule
//!   once per run, three at most): without evidence, computed from a capped search,
//!   nothing from a search that matched nothing, words found nowhere, a sentence where a
//!   value was asked, the wrong kind of answer, a meaning question without a helper model);
//! - `answer_kind`: what kind of answer a question asks for (a number, names, a value rather
//!   than a sentence) and whether it is about meaning (sentiment, tone, urgency);
//! - `budget`: the ledger of a tree of runs (usage and cost per model, limits checked and a
//!   call reserved before every LLM call);
//! - `prompt`: every text the model reads (system prompt, context description, turn
//!   messages, nudges, observations, sub-call errors);
//! - `secrets`: the secret rules and the one-pass scanner that finds them; `mask`: the
//!   placeholders of a tree of runs and the exact values that must never leave;
//! - `parse`: fenced code blocks and textual final answers;
//! - `egress`: the filter (a single-pass trigger scan with one anchored linear-time regex per
//!   secret rule, per-token entropy, context echo by content-defined fingerprints of the whole
//!   context, binary detection, truncation);
//! - `llm::openai`, `llm::anthropic`, `llm::gemini`, `llm::pricing`: wire formats and prices;
//! - `sandbox::protocol` (frames, typed [`sandbox::HostCall`]s, per-cell tokens),
//!   `sandbox::capture` (capped output), `sandbox::seccomp` (the BPF program);
//! - `trajectory`: the versioned JSON Lines events; `view`: their HTML rendering;
//! - `tools`: host tools ([`Tool`]): names, argument schemas and their checks, the listing the
//!   prompt shows (the handlers run from `run`'s host-call dispatch);
//! - `session`: what a [`Session`] keeps between its calls (REPL, contexts, conversation) and
//!   the one-call-at-a-time rule;
//! - `routing`: which model (root, the sub-model of a depth, an allowed one) and which client
//!   answer a call; `schema`: the JSON Schema subset that checks typed answers and tool
//!   arguments;
//! - `result`, `events`, `error`: plain data (`events` also covers child runs and sub-calls
//!   of the whole tree);
//! - `eval::{suite, score, generate, report}`: evaluation suites (JSON Lines), answer
//!   scoring, seeded task generators and the per-family report;
//! - `serve::{api, paths, metrics, access}` (feature `serve`): the service's request JSON
//!   and its validation against the server's maxima, context names under the context root
//!   (lexical check; the symlink check canonicalizes on the blocking pool), the Prometheus
//!   text and the access-log lines.
//!
//! I/O:
//! - `runtime`: the only module that owns the blocking pool and timers (`unblock`,
//!   `detach`, `sleep`, `timeout`, `Limiter`);
//! - `llm::http`: the only module speaking HTTP (one shared `ureq` agent per client);
//! - `sandbox::engine`: the session engine for every backend (frames, deadlines, host calls,
//!   restarts, kills); `sandbox::backend`: the small `Backend` trait (launch / verify / kill)
//!   implemented by `sandbox::bwrap`, `sandbox::docker` (feature `docker`) and
//!   `sandbox::unisolated`; `sandbox::pipes` (the REPL's pipes), `sandbox::spawner` (the
//!   threads that start sandbox processes), `sandbox::pool` (pre-started REPLs that receive
//!   their context later), `sandbox::driver` (the embedded Python driver, compiled once per
//!   interpreter), `sandbox::uid` (machine-wide uid leases), `sandbox::cgroup` (per-sandbox
//!   cgroups); `sandbox::sys` holds every libc call and every `unsafe` block of the sandbox
//!   (the `posix_spawn`-like start, descriptor passing, polling);
//! - `handle` (the read-only `mmap` of context files, the crate's one other `unsafe` site) and
//!   `context` (what a run was given, private copies of in-memory text and masked copies);
//!   `private_dir` (the locked 0700 temporary directories those copies live in; the first
//!   one a process makes sweeps directories whose owner died, even by SIGKILL);
//! - `log`: the trajectory writer;
//! - `serve::{listener, http, runs, jobs}` (feature `serve`): the accept loop and graceful
//!   shutdown, routes on trillium-http, admission (slots, queue, 429) and cancellation, and
//!   the async runs kept per replica.
//!
//! Glue: `orchestrator` (public API, builder), `run` (drives the agent for a tree of runs:
//! context, session, LLM calls, filter, host calls) and `eval::runner` (runs a suite through
//! an orchestrator, writing trajectories).
//!
//! ## The path of one run
//! 1. `arun` creates a tree (budget ledger, sub-call limiter, observer) and its root run —
//!    nothing per run lives in the [`Orchestrator`].
//! 2. The query is masked; the context is validated and memory-mapped on the blocking pool,
//!    scanned for secrets once, and replaced by a masked copy where it has any; the egress
//!    filter fingerprints the masked view.
//! 3. The sandbox starts one REPL session while the first LLM request is already in flight
//!    (the first error of the two ends both): the backend launches the embedded Python
//!    driver (bubblewrap execs `/usr/bin/python3 -S /opt/rlm/repl.pyc`, compiled once per
//!    process), context files passed read-only; the engine waits for its ready frame and
//!    lets the backend verify it. With a sandbox pool, a pre-started REPL is taken instead
//!    and handed the context files as descriptors over a socket; it lowers its limits to the
//!    session's and reports ready again.
//! 4. The agent reads the first reply; each reply's code blocks run one by one in the
//!    persistent REPL; stdout and stderr pass the egress filter and become the next user
//!    message. Sub-LLM requests (`llm_query`, `rlm_query`, ...) arrive as frames on the
//!    REPL's protocol pipe, are decoded into typed host calls and answered by the host while
//!    the block waits; `rlm_query` starts a child run (depth + 1) in the same tree. A host
//!    tool call names a tool: the host answers only tools registered for that run, with
//!    arguments its schema accepts. When the root conversation reaches `RLM_COMPACT_AT` of
//!    the context window, one LLM call summarises its older turns, which the summary
//!    replaces; the REPL keeps its state and is handed the full history as `history` by a
//!    cell of the host (`compaction.rs` decides, `agent.rs` applies, `run.rs` calls).
//! 5. The run ends on `FINAL(...)`/`FINAL_VAR(...)` in the REPL (or a `FINAL(...)` stdout
//!    line, or a final answer stated in a reply *without* code), on a limit, or when
//!    cancelled. The session is killed (SIGKILL before the result is returned; reaping it
//!    and removing its cgroup finish on the blocking pool, see [`wait_for_cleanup`]), the
//!    context released, the trajectory flushed, and the result returned.
//!
//! ## Threads
//! The library starts no executor. It uses: its own process-wide blocking pool
//! (`rlm-blocking-N` threads, started on demand up to 2,048 and ended after 2 s idle) for
//! HTTP calls, REPL pipe I/O, context loading, large filtering, killing and reaping
//! sandboxes, and trajectory writes; one `rlm-timer` thread for timeouts and backoff sleeps;
//! and eight `rlm-spawner-N` threads that start sandbox processes (so `PR_SET_PDEATHSIG` is
//! tied to threads that never exit; several, so sandbox starts overlap). A sandbox is started
//! the way `posix_spawn` starts a program (`clone(CLONE_VM | CLONE_VFORK)`: the child runs
//! in this process's memory until its `exec`, so no page table is copied), at most four per
//! core at once. Concurrent sub-calls of a batch run on a private `async-executor` inside
//! the run's own future. Filtering an output of 256
//! KiB or more scans its two halves on two scoped threads. Nothing blocks the caller's
//! executor: a test runs a run on a single-threaded executor next to a 1 ms ticker.
//!
//! [`serve::Server::run`] (feature `serve`) is the one place the crate runs an executor of
//! its own: an `async-executor` driven by the calling thread and `threads - 1` more
//! (`rlm-serve-N`), each blocking on `async_io::block_on` (which also drives the async-io
//! reactor for the listener and connections). Connections, streamed and async runs are tasks
//! on it; their blocking work goes to the pool above. The threads end when `run` returns.
//!
//! The Python package (`python/`, its own crate and workspace: pyo3, built with maturin into
//! an abi3 wheel; module `rlm._native` under the pure-Python package `rlm`) is a client of
//! this API, not part of the library: `Orchestrator(**settings)` feeds its keyword arguments
//! to [`OrchestratorBuilder::setting_from`] (after [`OrchestratorBuilder::env`]), and every run
//! is an [`Orchestrator::arun_observed`] future driven by an `async-executor` on two to four
//! `rlm-py-exec-N` threads of its own; one `rlm-py-deliver` thread takes the GIL to hand
//! finished runs to Python, which completes the asyncio future with
//! `loop.call_soon_threadsafe`. Cancelling the asyncio task fires the run's
//! [`CancelHandle`]. It starts no tokio and no asyncio loop, runs no Python on those threads,
//! and exposes neither sessions, events nor Python-defined models, sandboxes or tools.
//!
//! ## Threat model
//! The model's code is hostile (and may be steered by hostile data in the context).
//!
//! Secrets: before anything sees a context, `mask` replaces every secret the rules of
//! `secrets` find with a stable `[SECRET:kind#n]` placeholder; the sandbox, the prompt's
//! preview, sub-calls and child runs only ever see the masked view, so no secret from the
//! context can reach a provider in any encoding the code might choose. Every request to a
//! provider passes one function (`run::Tree::complete`) that masks what the rules find and
//! redacts the exact values (and simple encodings) of the run's secrets, the API key and
//! secret-looking environment variables; behind it the egress filter scans stdout and
//! stderr together and across blocks. Best effort only: secrets no rule recognises, and
//! values the code computes.
//!
//! Isolation: the code runs as uid 65534 in new user, mount, pid, network, ipc, uts and
//! cgroup namespaces; sees only read-only `/usr`, a size-capped `/tmp`, a read-only `/dev`
//! with a small `/dev/shm`, minimal `/etc` and the masked context; has no network (not even
//! the host's loopback), no capabilities, no new privileges, a seccomp filter (no `ptrace`,
//! non-unix sockets, mounts, namespaces including `clone` with `CLONE_NEW*`, keyrings, `bpf`,
//! `io_uring`, ...; an architecture without a filter table refuses to start), rlimits on
//! memory, CPU, processes, file size and open files, and, where the host allows, a cgroup of
//! its own (memory of all its processes together, processes, CPU quota); the host kills it at
//! a wall-clock deadline, when the run is dropped or cancelled, and when the host process
//! dies. bubblewrap is started with an empty environment and reads its arguments from a file
//! descriptor, so `/proc/1` shows neither host variables nor host paths. When the host runs
//! as root each sandbox runs under its own unprivileged host uid, leased machine-wide. The
//! REPL side of the protocol is untrusted input: size-limited, validated frames; host calls
//! decoded into a closed set of typed calls; every frame about a cell must carry that cell's
//! id and fresh token (anything else, or a frame between cells, kills and restarts the
//! REPL); depth, budget, models and limits are enforced by the host. API keys never appear
//! in errors, `Debug` output or results. A pooled sandbox runs no session code before it
//! gets its context and lowers its limits to the session's, and it serves exactly one
//! session.
//!
//! The service (`serve`, feature `serve`): every endpoint but `/healthz` needs a bearer
//! token when a token file is given (without one the server binds only loopback addresses
//! unless told otherwise, and answers only requests addressed to a loopback name, against
//! DNS rebinding); requests from web pages (an `Origin` header) and non-JSON posts are
//! refused; bodies, open connections, files or documents per request, streamed events and
//! kept results are bounded; context names stay under the context root (`..`, absolute
//! names and symlinks out of it refused); access logs carry no header, body, query, token or
//! full async id.
//!
//! ## Deliberately not done
//! - No tokio (or any runtime) dependency; no spawning onto an ambient executor.
//! - No in-process Python, no "restricted Python" pretending to be a sandbox.
//! - No silent fall-back to less isolation: an unknown or unavailable backend is an error;
//!   the unisolated backend runs only when named (`RLM_SANDBOX=unsafe`) and allowed
//!   (`RLM_ALLOW_UNSAFE_RUNTIME=1`).
//! - No final answer is ever taken from a reply's prose when that reply contains code.
//! - Cancelling an in-flight HTTP request: a dropped run stops waiting at once, but the pool
//!   thread finishes the request (bounded by the request timeout).
//! - Streaming LLM responses token by token: replies are short code blocks, and progress is
//!   reported per step through [`RunEvent`]s instead.
//! - Secrecy from code *inside* the sandbox: per-cell tokens stop frames from other cells,
//!   not code that reads the driver's memory (the host enforces every limit itself).
//! - In the service: no deadline on a slow client's request head (open
//!   connections are capped instead), and a context file is checked by path and then opened
//!   by path (someone who can write under the context root could swap a directory for a
//!   symlink in between).
#![warn(missing_docs, rust_2018_idioms, missing_debug_implementations)]

/// A boxed, `Send` future borrowing for `'a` (what the object-safe traits of this crate
/// return).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

mod agent;
mod answer_kind;
mod budget;
mod compaction;
mod config;
mod context;
mod egress;
mod error;
pub mod eval;
mod events;
mod handle;
pub mod llm;
mod log;
mod mask;
mod orchestrator;
mod parse;
mod private_dir;
mod prompt;
mod result;
mod routing;
mod run;
mod runtime;
pub mod sandbox;
mod schema;
mod secrets;
#[cfg(feature = "serve")]
pub mod serve;
mod session;
mod settings;
mod tools;
pub mod trajectory;
mod view;

pub use config::{
    CgroupPolicy, Config, EgressConfig, Limits, LlmConfig, PromptMode, Provider, SandboxConfig,
    SandboxKind, SubModels,
};
pub use context::Context;
pub use egress::{EgressFilter, Filtered};
pub use error::{Error, Result};
pub use events::{EventStream, RunEvent};
pub use handle::{Chunks, ContextHandle, SearchHit};
pub use log::TrajectoryLog;
pub use mask::mask_secrets;
pub use orchestrator::{CancelHandle, ObservedRun, Orchestrator, OrchestratorBuilder};
pub use result::{Finding, ModelUsage, RunResult, SandboxReport, Step, StepKind, Usage};
pub use schema::Schema;
pub use session::Session;
pub use settings::{SettingInfo, known_settings};
pub use tools::{Tool, ToolResult};
pub use view::render_html;

/// Waits until the clean-up this process started in the background is done (sandboxes of
/// dropped or cancelled runs killed and reaped, their cgroups removed and their host uids
/// released, trajectory lines written), or `limit` passes; true when everything finished.
///
/// Dropping a run or a session never blocks the caller; call this before the process exits
/// (as the `rlm` command does), so that nothing a dying sandbox still holds is handed to
/// another `rlm` process on the machine.
pub fn wait_for_cleanup(limit: std::time::Duration) -> bool {
    runtime::wait_detached(limit)
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
