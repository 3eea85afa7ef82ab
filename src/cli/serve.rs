//! `rlm serve`: runs over JSON/HTTP (the server itself is `rlm::serve`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use rlm::Orchestrator;
use rlm::serve::{ServeConfig, Server};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::{Args, usage_error};

pub(crate) const SUMMARY: &str =
    "serve runs over JSON/HTTP (POST /v1/runs, SSE, async ids, metrics)";

/// Flags of `rlm serve` that are not settings.
const OWN_VALUES: &[&str] = &[
    "--listen",
    "--context-root",
    "--max-concurrent",
    "--queue",
    "--token-file",
    "--max-body",
    "--shutdown-grace",
    "--threads",
    "--result-ttl",
    "--max-results",
    "--max-connections",
];
const SWITCHES: &[&str] = &["--insecure-no-auth"];

pub(crate) fn help() -> String {
    let d = ServeConfig::default();
    let mut s = format!(
        "rlm serve [OPTIONS]\n\n\
         Serves runs over JSON/HTTP: POST /v1/runs (sync, \"stream\": true for Server-Sent Events,\n\
         \"async\": true for an id), GET and DELETE /v1/runs/ID, GET /healthz, GET /metrics\n\
         (Prometheus text). The README's \"rlm serve\" section has the JSON. The first line on stdout\n\
         is {{\"msg\":\"listening\",\"addr\":\"http://HOST:PORT\"}}; then one JSON access-log line per\n\
         response. SIGTERM/SIGINT: stop accepting, let runs finish for --shutdown-grace, cancel the\n\
         rest, exit 0; a second signal exits at once.\n\n\
         Options:\n\
         \x20 --listen ADDR          address to listen on (default {}; port 0: any free port)\n\
         \x20 --context-root DIR     file contexts are names relative to DIR (none: refused)\n\
         \x20 --max-concurrent N     runs at once (default {})\n\
         \x20 --queue N              runs waiting for a slot; beyond: 429 + Retry-After (default {})\n\
         \x20 --token-file FILE      accepted bearer tokens, one per line (required unless the\n\
         \x20                        address is loopback or --insecure-no-auth is given)\n\
         \x20 --insecure-no-auth     serve a non-loopback address without authentication\n\
         \x20 --max-body BYTES       largest request body; above: 413 (default {}; K/M/G suffixes)\n\
         \x20 --shutdown-grace SECS  time runs get to finish after SIGTERM (default {})\n\
         \x20 --threads N            server executor threads (default {})\n\
         \x20 --result-ttl SECS      how long async results are kept (default {})\n\
         \x20 --max-results N        async results kept at most (default {})\n\
         \x20 --max-connections N    open connections at most; more are closed at once (default {})\n\n\
         The run settings below (and their environment variables) configure the model and sandbox,\n\
         and their limits are the server's maxima: a request's \"limits\" may only tighten them.\n\
         With the bwrap sandbox, RLM_SANDBOX_POOL defaults to --max-concurrent (at most 16) here.\n",
        d.listen,
        d.max_concurrent,
        d.queue,
        d.max_body,
        d.shutdown_grace.as_secs(),
        d.threads,
        d.result_ttl.as_secs(),
        d.max_results,
        d.max_connections,
    );
    s.push_str(&super::help::setting_flags());
    s
}

fn number<T: std::str::FromStr>(a: &Args, flag: &str, default: T) -> Result<T, String> {
    match a.value(flag) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("{flag}: {v:?} is not a valid number")),
    }
}

fn bytes(v: &str) -> Option<u64> {
    let v = v.trim();
    let (n, mul) = match v.char_indices().last()? {
        (i, 'k' | 'K') => (&v[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&v[..i], 1 << 20),
        (i, 'g' | 'G') => (&v[..i], 1 << 30),
        _ => (v, 1),
    };
    n.trim().parse::<u64>().ok()?.checked_mul(mul)
}

/// Tokens from FILE: one per line, blank lines and `#` comments ignored.
fn read_tokens(path: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--token-file: cannot read {path:?}: {}", e.kind()))?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if tokens.is_empty() {
        return Err(format!("--token-file: {path:?} holds no token"));
    }
    if let Some(short) = tokens.iter().find(|t| t.len() < 16) {
        let _ = short;
        return Err("--token-file: every token must be at least 16 characters long".into());
    }
    Ok(tokens)
}

fn config(a: &Args) -> Result<ServeConfig, String> {
    let d = ServeConfig::default();
    let mut c = d.clone();
    if let Some(l) = a.value("--listen") {
        c.listen = l
            .parse::<SocketAddr>()
            .map_err(|_| format!("--listen: {l:?} is not an address like 127.0.0.1:8080"))?;
    }
    c.context_root = a.value("--context-root").map(PathBuf::from);
    c.max_concurrent = number(a, "--max-concurrent", d.max_concurrent)?;
    if c.max_concurrent == 0 {
        return Err("--max-concurrent must be at least 1".into());
    }
    c.queue = number(a, "--queue", d.queue)?;
    c.threads = number(a, "--threads", d.threads)?.max(1);
    c.max_results = number(a, "--max-results", d.max_results)?;
    c.max_connections = number(a, "--max-connections", d.max_connections)?;
    if let Some(v) = a.value("--max-body") {
        c.max_body = bytes(v).ok_or_else(|| format!("--max-body: {v:?} is not a size"))?;
    }
    let secs = |flag: &str, default: Duration| -> Result<Duration, String> {
        let s: f64 = number(a, flag, default.as_secs_f64())?;
        Duration::try_from_secs_f64(s).map_err(|_| format!("{flag}: not a duration"))
    };
    c.shutdown_grace = secs("--shutdown-grace", d.shutdown_grace)?;
    c.result_ttl = secs("--result-ttl", d.result_ttl)?;
    if let Some(p) = a.value("--token-file") {
        c.tokens = read_tokens(p)?;
    } else if !c.listen.ip().is_loopback() && !a.has("--insecure-no-auth") {
        return Err(format!(
            "--listen {} is not a loopback address: give --token-file (or --insecure-no-auth)",
            c.listen
        ));
    }
    Ok(c)
}

pub(crate) fn main(args: &[String]) -> ExitCode {
    let err = |m: String| usage_error("serve", m);
    let mut with_value: Vec<&str> = OWN_VALUES.to_vec();
    with_value.extend(rlm::known_settings().iter().filter_map(|s| s.flag));
    let a = match Args::parse(args, &with_value, SWITCHES) {
        Ok(a) => a,
        Err(e) => return err(e),
    };
    if let Some(p) = a.positional.first() {
        return err(format!("unexpected argument {p:?}"));
    }
    let cfg = match config(&a) {
        Ok(c) => c,
        Err(e) => return err(e),
    };
    let mut builder = Orchestrator::builder().env();
    for (flag, v) in &a.values {
        if !OWN_VALUES.contains(&flag.as_str()) {
            builder = builder.setting(flag, v.clone());
        }
    }
    // A service keeps sandboxes started ahead (bwrap), one per run slot up to 16, unless
    // RLM_SANDBOX_POOL says otherwise: a request's run then starts without waiting for one.
    if let Ok(c) = builder.resolve()
        && c.sandbox.kind == rlm::SandboxKind::Bwrap
        && c.origin("RLM_SANDBOX_POOL").is_none()
    {
        builder = builder.setting("sandbox_pool", cfg.max_concurrent.clamp(1, 16).to_string());
    }
    let orch = match builder.build() {
        Ok(o) => o,
        Err(e) => return err(e.to_string()),
    };
    let server = match Server::bind(orch, cfg) {
        Ok(s) => s,
        Err(e) => return err(format!("cannot serve: {e}")),
    };
    let stop = server.shutdown_handle();
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return err("cannot install signal handlers".into());
    };
    let _ = std::thread::Builder::new()
        .name("rlm-signals".into())
        .spawn(move || {
            let mut first = true;
            for sig in signals.forever() {
                if !first {
                    eprintln!("rlm serve: second signal, exiting now");
                    std::process::exit(128 + sig);
                }
                first = false;
                eprintln!("rlm serve: signal {sig}: shutting down; send it again to exit at once");
                stop.shut_down();
            }
        });
    println!(
        "{}",
        serde_json::json!({"msg": "listening", "addr": format!("http://{}", server.local_addr())})
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    match server.run() {
        Ok(()) => {
            eprintln!("rlm serve: stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rlm serve: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_auth_rules() {
        assert_eq!(bytes("1024"), Some(1024));
        assert_eq!(bytes("4K"), Some(4096));
        assert_eq!(bytes("2m"), Some(2 << 20));
        assert_eq!(bytes("x"), None);
        let args = |v: &[&str]| {
            let v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
            Args::parse(&v, OWN_VALUES, SWITCHES).unwrap()
        };
        assert!(config(&args(&["--listen", "0.0.0.0:80"])).is_err());
        assert!(config(&args(&["--listen", "0.0.0.0:80", "--insecure-no-auth"])).is_ok());
        assert!(config(&args(&["--listen", "127.0.0.1:0"])).is_ok());
        assert!(config(&args(&["--max-concurrent", "0"])).is_err());
    }
}
