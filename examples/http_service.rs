//! A web service in Rust without tokio: `rlm::serve` (trillium-http on async-io threads the
//! server owns) embedded in your own program, with your own orchestrator and a shutdown on
//! Ctrl-C / SIGTERM. `rlm serve` is this plus flags; the README's "`rlm serve`" section has
//! the endpoints and JSON.
//!
//! ```text
//! OPENAI_API_KEY=... cargo run --example http_service -- 127.0.0.1:8000
//! curl -s 127.0.0.1:8000/v1/runs -d '{"query":"What is 2+2?"}'
//! curl -sN 127.0.0.1:8000/v1/runs -d '{"query":"What is 2+2?","stream":true}'
//! ```

use rlm::serve::{ServeConfig, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".into());
    // One orchestrator serves every request; its limits are the server's maxima.
    let orchestrator = rlm::Orchestrator::builder()
        .env()
        .max_iterations(15)
        .build()?;
    let mut config = ServeConfig::default();
    config.listen = addr.parse()?;
    config.max_concurrent = 8;
    config.queue = 32;
    // Loopback only and no token here; set `config.tokens` before listening elsewhere.
    let server = Server::bind(orchestrator, config)?;
    eprintln!("listening on http://{}/v1/runs", server.local_addr());
    let stop = server.shutdown_handle();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            stop.shut_down();
        }
    });
    server.run()?;
    // Sandboxes of cancelled runs are reaped before the process exits.
    rlm::wait_for_cleanup(std::time::Duration::from_secs(10));
    Ok(())
}
