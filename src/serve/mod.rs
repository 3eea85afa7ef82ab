//! `rlm serve`: runs over JSON/HTTP (feature `serve`, on by default).
//!
//! [`Server::bind`] takes an [`Orchestrator`] (whose limits are the server's maxima) and a
//! [`ServeConfig`]; [`Server::run`] serves until [`ShutdownHandle::shut_down`], then stops
//! accepting, lets runs in progress finish until the grace period ends, cancels the rest
//! (their sandboxes killed) and returns. Endpoints, JSON shapes and status codes are in the
//! README's "`rlm serve`" section.
//!
//! The server keeps no state that matters across requests except async runs: sync and
//! streamed runs need nothing shared, so N replicas behind a load balancer just work; the id
//! of an async run belongs to the replica that answered the `POST` (route `GET`/`DELETE`
//! of `/v1/runs/{id}` to it, e.g. by a sticky header, or poll every replica).
//!
//! Modules: `api` (request JSON, validation, error shape; pure), `paths` (context names
//! under the context root), `metrics` (counters and their text format; pure), `access`
//! (access-log lines; pure), `jobs` (async runs kept for a bounded time and count), `runs`
//! (admission, slots, the run itself, cancellation), `http` (routes and responses on
//! trillium-http) and `listener` (threads, accept loop, shutdown).

mod access;
mod api;
mod http;
mod jobs;
mod listener;
mod metrics;
mod paths;
mod runs;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::orchestrator::Orchestrator;

pub use listener::{Server, ShutdownHandle};

/// Where access-log lines (one JSON object each) go.
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// Settings of a [`Server`]. Start from [`ServeConfig::default`] and change what you need.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServeConfig {
    /// Address to listen on (port 0: any free port; see [`Server::local_addr`]).
    pub listen: SocketAddr,
    /// Directory file contexts are named relative to; `None`: file contexts are refused.
    pub context_root: Option<PathBuf>,
    /// Runs at once; more wait in the queue.
    pub max_concurrent: usize,
    /// Runs waiting for a slot; beyond it requests get 429 with `Retry-After`.
    pub queue: usize,
    /// Accepted bearer tokens; empty: no authentication.
    pub tokens: Vec<String>,
    /// Largest request body in bytes (413 above).
    pub max_body: u64,
    /// After shutdown is requested, how long runs in progress may take before they are
    /// cancelled.
    pub shutdown_grace: Duration,
    /// Executor threads serving connections.
    pub threads: usize,
    /// How long the result of a finished async run is kept.
    pub result_ttl: Duration,
    /// How many finished async results are kept at most (the oldest go first).
    pub max_results: usize,
    /// Open connections at most; a connection beyond it is closed at once (so idle or slow
    /// clients cannot take every descriptor the sandboxes need).
    pub max_connections: usize,
    /// Access-log sink; `None`: stdout.
    pub access_log: Option<LogSink>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            context_root: None,
            max_concurrent: 4,
            queue: 64,
            tokens: Vec::new(),
            max_body: 10 << 20,
            shutdown_grace: Duration::from_secs(30),
            threads: 2,
            result_ttl: Duration::from_secs(600),
            max_results: 1000,
            max_connections: 1024,
            access_log: None,
        }
    }
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("listen", &self.listen)
            .field("context_root", &self.context_root)
            .field("max_concurrent", &self.max_concurrent)
            .field("queue", &self.queue)
            .field("tokens", &format_args!("[{} redacted]", self.tokens.len()))
            .field("max_body", &self.max_body)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("threads", &self.threads)
            .field("result_ttl", &self.result_ttl)
            .field("max_results", &self.max_results)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// Everything the connections share.
pub(crate) struct State {
    pub(crate) orch: Orchestrator,
    pub(crate) cfg: ServeConfig,
    /// The canonical context root.
    pub(crate) root: Option<PathBuf>,
    pub(crate) metrics: metrics::Metrics,
    pub(crate) runs: runs::Runs,
    pub(crate) jobs: jobs::Jobs,
    pub(crate) log: LogSink,
    /// The executor the server's threads run (streamed and async runs are spawned on it).
    pub(crate) ex: Arc<async_executor::Executor<'static>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}
