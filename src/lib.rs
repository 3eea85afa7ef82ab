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
//! Pure (no I/O, unit- and property-tested next to the code):
//! - `parse`: fenced code blocks and textual final answers;
//! - `egress`: the filter (a single-pass trigger scan with one anchored linear-time regex per
//!   secret rule, per-token entropy, context echo by content-defined fingerprints of the whole
//!   context, binary detection, truncation);
//! - `prompt`: the system prompt, built from what the REPL really provides;
//! - `llm::openai`, `llm::anthropic`, `llm::gemini`, `llm::pricing`: wire formats and prices;
//! - `sandbox::protocol`, `sandbox::seccomp`: REPL frames and the BPF program;
//! - `trajectory`: the versioned JSON Lines events; `view`: their HTML rendering;
//! - `config`, `result`, `events`, `error`: plain data.
//!
//! I/O:
//! - `llm::http`: the only module speaking HTTP (one shared `ureq` agent per client);
//! - `sandbox::process`: the REPL child process (bubblewrap or plain), its pipes, kill + reap;
//!   `sandbox::docker`: the same over the `docker` CLI (feature `docker`);
//! - `context`, `handle`: memory-mapped context files and private temporary copies of
//!   in-memory text;
//! - `log`: the trajectory writer;
//! - `runtime`: the only module that knows about the `blocking` pool and timers.
//!
//! Glue: `orchestrator` (public API, builder) and `run` (the tree of runs: loop, state, host
//! calls from the REPL).
//!
//! ## The path of one run
//! 1. `arun` creates a per-run state (history, steps, usage, filter) — nothing per run lives
//!    in the [`Orchestrator`].
//! 2. The context is validated and memory-mapped (on the blocking pool); the egress filter
//!    fingerprints it.
//! 3. The sandbox starts one REPL session: bubblewrap execs `/usr/bin/python3` running the
//!    embedded driver ([`sandbox::REPL_DRIVER`]); context files are bound read-only.
//! 4. Loop: the LLM is called (budget checked before), code blocks are extracted from the
//!    reply and run one by one in the persistent REPL; stdout and stderr pass the egress
//!    filter and go back as the next user message. Sub-LLM requests from the REPL travel over
//!    the REPL's protocol pipe and are answered by the host while the block waits.
//! 5. The run ends on `FINAL(...)`/`FINAL_VAR(...)` in the REPL (or a `FINAL(...)` stdout
//!    line, or a final answer stated in a reply *without* code), or on a limit. The session is
//!    dropped, which kills the sandbox; the temporary files are removed.
//!
//! ## Threads
//! The library starts no executor. It uses: the process-wide `blocking` pool (`blocking-N`
//! threads, created on demand) for HTTP calls, REPL pipe I/O, context loading and large
//! filtering; one `rlm-timer` thread for timeouts and backoff sleeps; and one `rlm-spawner`
//! thread that forks sandbox processes (so `PR_SET_PDEATHSIG` is tied to a thread that never
//! exits). Concurrent sub-calls of a batch run on a private `async-executor` inside the run's
//! own future. Filtering an output of 256 KiB or more scans its two halves on two scoped
//! threads (on the blocking pool thread that filters it).
//!
//! ## Threat model
//! The model's code is hostile. It runs as uid 65534 in new user, mount, pid, network, ipc,
//! uts and cgroup namespaces; sees only read-only `/usr`, a size-capped `/tmp`, minimal
//! `/etc` and the context; has no network (not even the host's loopback), no capabilities,
//! no new privileges, a seccomp filter (no `ptrace`, non-unix sockets, mounts, namespaces,
//! keyrings, `bpf`, `io_uring`, ...), and rlimits on memory, CPU, processes, file size and
//! open files; the host kills it at a wall-clock deadline and when the run is dropped.
//! bubblewrap is started with an empty environment and reads its arguments from a file
//! descriptor, so `/proc/1` shows neither host variables nor host paths. When the host runs
//! as root the sandbox runs under a dedicated unprivileged host uid per session so the process
//! limit applies. Everything the sandbox prints is filtered before an LLM sees it, and API
//! keys never appear in errors, `Debug` output or results. The REPL side of the protocol is
//! treated as untrusted input (size-limited, validated frames).
//!
//! ## Deliberately not done
//! - No tokio (or any runtime) dependency; no spawning onto an ambient executor.
//! - No in-process Python, no "restricted Python" pretending to be a sandbox.
//! - No silent fallback to an unisolated runtime: only with `RLM_ALLOW_UNSAFE_RUNTIME=1`.
//! - No final answer is ever taken from a reply's prose when that reply contains code.
//! - Cancelling an in-flight HTTP request: a dropped run stops waiting at once, but the pool
//!   thread finishes the request (bounded by the request timeout).
//! - Streaming LLM responses token by token: replies are short code blocks, and progress is
//!   reported per step through [`RunEvent`]s instead.
//! - pids/memory cgroups for the bubblewrap sandbox: rlimits plus a dedicated host uid per
//!   sandbox (when the host is root) bound processes and memory without requiring cgroup
//!   delegation.
#![warn(missing_docs, rust_2018_idioms, missing_debug_implementations)]

mod agent;
mod budget;
mod config;
mod context;
mod egress;
mod error;
mod events;
mod handle;
pub mod llm;
mod log;
mod orchestrator;
mod parse;
mod prompt;
mod result;
mod run;
mod runtime;
pub mod sandbox;
mod settings;
pub mod trajectory;
mod view;

pub use config::{
    Config, EgressConfig, Limits, LlmConfig, PromptMode, Provider, SandboxConfig, SandboxKind,
};
pub use context::Context;
pub use egress::{EgressFilter, Filtered};
pub use error::{Error, Result};
pub use events::{EventStream, RunEvent};
pub use handle::{Chunks, ContextHandle, SearchHit};
pub use log::TrajectoryLog;
pub use orchestrator::{CancelHandle, ObservedRun, Orchestrator, OrchestratorBuilder};
pub use result::{Finding, ModelUsage, RunResult, Step, StepKind, Usage};
pub use settings::{SettingInfo, known_settings};
pub use view::render_html;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
