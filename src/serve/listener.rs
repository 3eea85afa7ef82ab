//! The server's threads, its accept loop and graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::FutureExt;
use std::sync::atomic::{AtomicUsize, Ordering};

use trillium_http::{Conn, HttpConfig, Stopper};

use super::jobs::Jobs;
use super::metrics::Metrics;
use super::runs::Runs;
use super::{LogSink, ServeConfig, State, http};
use crate::orchestrator::Orchestrator;

/// A bound server; [`run`](Self::run) serves until shut down.
///
/// Threads: [`ServeConfig::threads`] executor threads (`rlm-serve-N`, the caller's thread
/// being one of them) that accept connections, speak HTTP and drive the runs; the runs' own
/// blocking work goes to the library's usual pool (see the crate docs).
pub struct Server {
    state: Arc<State>,
    listener: async_net::TcpListener,
    addr: SocketAddr,
    stop_tx: async_channel::Sender<()>,
    stop_rx: async_channel::Receiver<()>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("config", &self.state.cfg)
            .finish_non_exhaustive()
    }
}

/// Asks a [`Server`] to shut down gracefully (stop accepting, let runs finish within the
/// grace period, cancel the rest). Cloneable; safe from any thread.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    tx: async_channel::Sender<()>,
}

impl ShutdownHandle {
    /// Starts the shutdown; [`Server::run`] returns when it is done.
    pub fn shut_down(&self) {
        let _ = self.tx.try_send(());
    }
}

impl Server {
    /// Binds `config.listen` and prepares to serve runs of `orch`, whose limits are the
    /// server's maxima. Fails when the address cannot be bound or the context root is not a
    /// directory.
    pub fn bind(orch: Orchestrator, config: ServeConfig) -> std::io::Result<Server> {
        let root: Option<PathBuf> = match &config.context_root {
            Some(r) => {
                let c = r.canonicalize()?;
                if !c.is_dir() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "the context root is not a directory",
                    ));
                }
                Some(c)
            }
            None => None,
        };
        let std_listener = std::net::TcpListener::bind(config.listen)?;
        let addr = std_listener.local_addr()?;
        let listener = async_net::TcpListener::try_from(std_listener)?;
        let log: LogSink = config.access_log.clone().unwrap_or_else(|| {
            Arc::new(|line: &str| {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            })
        });
        let (stop_tx, stop_rx) = async_channel::bounded(1);
        let state = Arc::new(State {
            orch,
            root,
            metrics: Metrics::default(),
            runs: Runs::new(config.max_concurrent, config.queue),
            jobs: Jobs::new(config.result_ttl, config.max_results),
            log,
            ex: Arc::new(async_executor::Executor::new()),
            cfg: config,
        });
        Ok(Server {
            state,
            listener,
            addr,
            stop_tx,
            stop_rx,
        })
    }

    /// The bound address (the real port when the configured one was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that shuts this server down.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            tx: self.stop_tx.clone(),
        }
    }

    /// Serves on this thread and `threads - 1` more until shut down; returns once every
    /// run has finished or been cancelled and every connection is closed (or 10 s after the
    /// runs were cancelled).
    pub fn run(self) -> std::io::Result<()> {
        let Server {
            state,
            listener,
            stop_rx,
            ..
        } = self;
        let ex = state.ex.clone();
        let (done_tx, done_rx) = async_channel::bounded::<()>(1);
        let mut workers = Vec::new();
        for i in 1..state.cfg.threads.max(1) {
            let (ex, done) = (ex.clone(), done_rx.clone());
            workers.push(
                std::thread::Builder::new()
                    .name(format!("rlm-serve-{i}"))
                    .spawn(move || async_io::block_on(ex.run(done.recv())))?,
            );
        }
        let result = async_io::block_on(ex.run(serve(state, listener, stop_rx)));
        drop(done_tx);
        for w in workers {
            let _ = w.join();
        }
        result
    }
}

async fn serve(
    state: Arc<State>,
    listener: async_net::TcpListener,
    stop: async_channel::Receiver<()>,
) -> std::io::Result<()> {
    let config = HttpConfig::default().with_received_body_max_len(state.cfg.max_body);
    let stopper = Stopper::new();
    let open = Arc::new(AtomicUsize::new(0));
    enum Next {
        Conn(std::io::Result<(async_net::TcpStream, SocketAddr)>),
        Stop,
    }
    loop {
        let next = async { Next::Conn(listener.accept().await) }
            .or(async {
                let _ = stop.recv().await;
                Next::Stop
            })
            .await;
        match next {
            Next::Conn(Ok((stream, _)))
                if open.load(Ordering::SeqCst) >= state.cfg.max_connections =>
            {
                // Full: closed at once rather than holding a descriptor.
                drop(stream);
            }
            Next::Conn(Ok((stream, peer))) => {
                let _ = stream.set_nodelay(true);
                let st = state.clone();
                let guard = OpenConnection::new(&open);
                let conn = Conn::map_with_config(config, stream, stopper.clone(), move |conn| {
                    http::handle(st.clone(), Some(peer), conn)
                });
                state
                    .ex
                    .spawn(async move {
                        let _ = conn.await;
                        drop(guard);
                    })
                    .detach();
            }
            Next::Conn(Err(e)) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                eprintln!("rlm serve: accept failed: {e}");
                crate::runtime::sleep(Duration::from_millis(100)).await;
            }
            Next::Stop => break,
        }
    }
    // Stop accepting: new connections are refused by the kernel from here on.
    drop(listener);
    state.runs.start_draining();
    let grace = state.cfg.shutdown_grace;
    eprintln!(
        "rlm serve: shutting down; {} run(s) in progress or queued, up to {:.0} s to finish",
        state.runs.admitted(),
        grace.as_secs_f64()
    );
    // Keep-alive connections close after their current response.
    stopper.stop();
    let deadline = Instant::now() + grace;
    if !wait_idle(&state, &open, deadline).await {
        eprintln!(
            "rlm serve: grace period over; cancelling {} run(s)",
            state.runs.admitted()
        );
        state.runs.cancel_all();
        if !wait_idle(&state, &open, Instant::now() + Duration::from_secs(10)).await {
            eprintln!("rlm serve: some connections did not close; exiting anyway");
        }
    }
    Ok(())
}

/// Counts a connection as open until dropped.
struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    fn new(open: &Arc<AtomicUsize>) -> OpenConnection {
        open.fetch_add(1, Ordering::SeqCst);
        OpenConnection(open.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits until no run is admitted and every connection is closed, or `deadline`.
async fn wait_idle(state: &State, open: &AtomicUsize, deadline: Instant) -> bool {
    loop {
        if open.load(Ordering::SeqCst) == 0 && state.runs.admitted() == 0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        crate::runtime::sleep(Duration::from_millis(20)).await;
    }
}
