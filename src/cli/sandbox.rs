//! `rlm sandbox exec` (Python from stdin in a fresh sandbox) and `rlm sandbox check` (each
//! isolation layer, as seen from inside by `probe.py`).

use std::io::Read;
use std::process::ExitCode;

use rlm::sandbox::{self, NoHostCalls, SessionSpec};
use rlm::{Orchestrator, SandboxConfig, SandboxKind};

use super::{Args, term, usage_error};

pub(crate) const SUMMARY: &str =
    "run Python from stdin in a fresh sandbox (exec), or report each isolation layer (check)";

/// Run inside the sandbox by `check`.
const PROBE: &str = include_str!("probe.py");

pub(crate) fn help() -> String {
    "rlm sandbox exec [--context FILE] [--timeout SECS] [--memory SIZE] [--json]\n\
     rlm sandbox check [--json]\n\n\
     exec: runs the Python code on stdin in a fresh sandbox of the configured backend\n\
     (RLM_SANDBOX) and prints its stdout and stderr (with --json: one object with stdout,\n\
     stderr, exit_code, timed_out, memory_exceeded, duration_ms and backend). --context binds\n\
     FILE read-only as `ctx`/`context`; --timeout and --memory override RLM_EXECUTION_TIMEOUT\n\
     and RLM_MEMORY_LIMIT. Exit 0 whenever the sandbox ran (whatever the code did), 2 on a\n\
     usage error, 3 when the sandbox could not run.\n\n\
     check: starts a sandbox, inspects it from inside (namespaces, uid, capabilities, seccomp,\n\
     network, limits, root) and prints one line per layer (with --json: an object with\n\
     backend, ok and layers). Exit 0 when the sandbox would run, 1 when it would refuse, 2 on\n\
     a usage or configuration error.\n"
        .into()
}

pub(crate) fn main(args: &[String]) -> ExitCode {
    match args.first().map(String::as_str) {
        Some("exec") => exec(&args[1..]),
        Some("check") => check(&args[1..]),
        _ => usage_error("sandbox", "usage: rlm sandbox exec|check [OPTIONS]"),
    }
}

fn exec(args: &[String]) -> ExitCode {
    let err = |m: String| usage_error("sandbox", m);
    let a = match Args::parse(args, &["--context", "--timeout", "--memory"], &["--json"]) {
        Ok(a) if a.positional.is_empty() => a,
        Ok(a) => return err(format!("unexpected argument {:?}", a.positional[0])),
        Err(e) => return err(e),
    };
    let mut b = Orchestrator::builder().env();
    if let Some(v) = a.value("--timeout") {
        b = b.setting_from("RLM_EXECUTION_TIMEOUT", v, "--timeout");
    }
    if let Some(v) = a.value("--memory") {
        b = b.setting_from("RLM_MEMORY_LIMIT", v, "--memory");
    }
    let cfg = match b.resolve() {
        Ok(c) => c.sandbox,
        Err(e) => return err(e.to_string()),
    };
    let spec = match a.value("--context") {
        Some(p) => match SessionSpec::for_file(p, cfg.inline_context_bytes) {
            Ok(s) => s,
            Err(e) => return err(e.to_string()),
        },
        None => SessionSpec::empty(),
    };
    let mut code = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut code) {
        return err(format!("cannot read Python code from stdin: {e}"));
    }
    let sb = match sandbox::from_config(&cfg) {
        Ok(s) => s,
        Err(e) => return err(e.to_string()),
    };
    let result = futures_lite::future::block_on(async {
        let mut session = sb.start(spec).await?;
        let r = session.execute(&code, &NoHostCalls).await;
        session.close().await;
        r
    });
    let r = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rlm: {}", term::safe(&e.to_string()));
            return ExitCode::from(3);
        }
    };
    let backend = if r.unsafe_runtime {
        "unsafe".to_string()
    } else {
        sb.kind().to_string()
    };
    if a.has("--json") {
        let v = serde_json::json!({
            "stdout": r.stdout,
            "stderr": r.stderr,
            "exit_code": r.exit_code,
            "timed_out": r.timed_out,
            "memory_exceeded": r.memory_exceeded,
            "lost_because": r.lost_because.as_ref().map(ToString::to_string),
            "duration_ms": r.duration.as_secs_f64() * 1000.0,
            "backend": backend,
        });
        println!("{v}");
    } else {
        print!("{}", term::safe(&r.stdout));
        eprint!("{}", term::safe(&r.stderr));
        if let Some(why) = &r.lost_because {
            eprintln!("[rlm] {}", term::safe(&why.to_string()));
        }
    }
    ExitCode::SUCCESS
}

/// One isolation layer as `check` reports it.
struct Layer {
    name: String,
    active: bool,
    detail: String,
}

impl Layer {
    fn new(name: impl Into<String>, active: bool, detail: impl Into<String>) -> Self {
        Layer {
            name: name.into(),
            active,
            detail: detail.into(),
        }
    }
}

fn check(args: &[String]) -> ExitCode {
    let a = match Args::parse(args, &[], &["--json"]) {
        Ok(a) if a.positional.is_empty() => a,
        Ok(a) => {
            return usage_error(
                "sandbox",
                format!("unexpected argument {:?}", a.positional[0]),
            );
        }
        Err(e) => return usage_error("sandbox", e),
    };
    let cfg = match Orchestrator::builder().env().resolve() {
        Ok(c) => c.sandbox,
        Err(e) => return usage_error("sandbox", e),
    };
    let (kind, ok, layers) = probe(&cfg);
    if a.has("--json") {
        let v = serde_json::json!({
            "backend": kind.as_str(),
            "ok": ok,
            "layers": layers.iter().map(|l| serde_json::json!({"layer": l.name, "active": l.active, "detail": l.detail})).collect::<Vec<_>>(),
        });
        println!("{v}");
    } else {
        for l in &layers {
            println!(
                "{:<22} {:<8} {}",
                l.name,
                if l.active { "active" } else { "INACTIVE" },
                term::safe_line(&l.detail)
            );
        }
        println!(
            "{}",
            if ok {
                "sandbox: ready"
            } else {
                "sandbox: would refuse to run"
            }
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Starts a sandbox, runs the probe in it and turns its report into layers.
fn probe(cfg: &SandboxConfig) -> (SandboxKind, bool, Vec<Layer>) {
    let mut layers = Vec::new();
    let sb = match sandbox::from_config(cfg) {
        Ok(s) => s,
        Err(e) => {
            layers.push(Layer::new("sandbox", false, e.to_string()));
            return (cfg.kind, false, layers);
        }
    };
    let kind = sb.kind();
    let outcome = futures_lite::future::block_on(async {
        let mut s = sb.start(SessionSpec::empty()).await?;
        let r = s.execute(PROBE, &NoHostCalls).await;
        s.close().await;
        r
    });
    let r = match outcome {
        Err(e) => {
            layers.push(Layer::new("sandbox", false, e.to_string()));
            return (kind, false, layers);
        }
        Ok(r) => r,
    };
    if r.unsafe_runtime && kind == SandboxKind::Unsafe {
        layers.push(Layer::new(
            "sandbox",
            false,
            "UNSAFE runtime: plain subprocess with rlimits only (RLM_SANDBOX=unsafe)",
        ));
        return (kind, true, layers);
    }
    let p: serde_json::Value = match serde_json::from_str(r.stdout.trim()) {
        Ok(p) => p,
        Err(_) => {
            layers.push(Layer::new(
                "sandbox",
                false,
                format!("probe failed: {}", r.stderr.trim()),
            ));
            return (kind, false, layers);
        }
    };
    if kind == SandboxKind::Docker {
        layers.push(Layer::new(
            "gVisor runtime",
            !r.unsafe_runtime,
            if r.unsafe_runtime {
                "not in use: the engine's default runtime (allowed by RLM_ALLOW_UNSAFE_RUNTIME)"
            } else {
                "in use"
            },
        ));
    }
    let host_ns = |n: &str| {
        std::fs::read_link(format!("/proc/self/ns/{n}"))
            .ok()
            .map(|l| l.display().to_string())
    };
    for n in ["user", "mnt", "pid", "net", "ipc", "uts", "cgroup"] {
        let inside = p["ns"][n].as_str().unwrap_or("").to_string();
        let differs = host_ns(n).is_some_and(|h| h != inside);
        layers.push(Layer::new(format!("{n} namespace"), differs, inside));
    }
    let uid = p["uid"].as_u64().unwrap_or(0);
    layers.push(Layer::new(
        "unprivileged uid",
        uid == 65534,
        format!("uid {uid}, gid {}", p["gid"]),
    ));
    // The sandbox's own uid_map only shows the nested namespace bwrap adds, so the host side
    // reports the uid drop.
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|st| {
            st.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    layers.push(Layer::new(
        "host uid drop",
        true,
        if kind == SandboxKind::Docker {
            "containers run as uid 65534".to_string()
        } else if root {
            format!(
                "host is root: each sandbox runs as its own leased host uid from {}",
                cfg.host_uid
            )
        } else {
            "host is not root: the sandbox runs as the calling user".into()
        },
    ));
    layers.push(Layer::new(
        "capabilities dropped",
        p["cap_eff"] == "0000000000000000",
        format!("CapEff {}", p["cap_eff"].as_str().unwrap_or("?")),
    ));
    layers.push(Layer::new(
        "no new privileges",
        p["no_new_privs"] == "1",
        format!("NoNewPrivs {}", p["no_new_privs"].as_str().unwrap_or("?")),
    ));
    layers.push(Layer::new(
        "seccomp filter",
        p["seccomp"] == "2",
        format!("Seccomp mode {}", p["seccomp"].as_str().unwrap_or("?")),
    ));
    let no_net = p["interfaces"]
        .as_array()
        .is_some_and(|a| a.iter().all(|i| i == "lo"));
    layers.push(Layer::new(
        "network isolated",
        no_net && !cfg.network_enabled,
        format!(
            "interfaces {}, AF_INET socket: {}",
            p["interfaces"], p["inet_socket"]
        ),
    ));
    let lim = &p["limits"];
    for (label, key) in [
        ("memory limit", "Max address space"),
        ("CPU limit", "Max cpu time"),
        ("process limit", "Max processes"),
        ("file size limit", "Max file size"),
        ("open files limit", "Max open files"),
    ] {
        let mut v = lim[key].as_str().unwrap_or("?").to_string();
        let mut active = v != "unlimited" && v != "?";
        if label == "memory limit"
            && let Some(cg) = p["cg_mem"].as_u64()
        {
            v = format!("{v} (address space); cgroup limit {cg} bytes");
            active = true;
        }
        layers.push(Layer::new(label, active, v));
    }
    layers.push(Layer::new(
        "cgroup limits",
        r.cgroup.is_some() || kind == SandboxKind::Docker,
        match (&r.cgroup, kind) {
            (Some(s), _) => format!("the whole sandbox: {s}"),
            (None, SandboxKind::Docker) => "enforced by the container engine".into(),
            (None, _) => {
                "none: per-process rlimits only (not root, or no delegated cgroup; RLM_CGROUPS)"
                    .into()
            }
        },
    ));
    layers.push(Layer::new(
        "read-only root",
        true,
        format!("/ holds {}", p["root"]),
    ));
    (kind, true, layers)
}
