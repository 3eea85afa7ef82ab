//! The real-model tier: the library against the local llama.cpp server and the small coding
//! model installed by `rlm setup`. Without them these tests print why they are skipped (and
//! fail instead when RLM_REQUIRE_LOCAL_MODEL=1, as in CI). Assertions are about structure and
//! executed results, never exact wording.

#[allow(dead_code)]
#[path = "../src/cli/local_model.rs"]
mod local_model;

/// What `local_model` asks of the CLI's signal handling (no signals in tests).
mod signals {
    pub(crate) fn received() -> Option<i32> {
        None
    }
}

use std::sync::{Mutex, OnceLock};

use rlm::{Context, Orchestrator, RunEvent, StepKind};

static SERVER: OnceLock<Option<String>> = OnceLock::new();
static SERIAL: Mutex<()> = Mutex::new(());

/// The shared local server, or `None` (with a message) when the model is not installed.
fn server() -> Option<String> {
    let s = SERVER.get_or_init(|| match local_model::installed() {
        // Started from a thread that never exits: the server dies with the thread that
        // started it (its death signal), and test threads end with their test.
        Some((bin, model)) => {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let server = local_model::LocalServer::start(&bin, &model, false)
                    .expect("local server starts");
                tx.send(server.base_url.clone()).unwrap();
                loop {
                    std::thread::park();
                }
            });
            Some(rx.recv().expect("the server thread reports its URL"))
        }
        None => {
            if std::env::var("RLM_REQUIRE_LOCAL_MODEL").is_ok_and(|v| v == "1") {
                panic!("RLM_REQUIRE_LOCAL_MODEL=1 but the local model is not installed: run `rlm setup`");
            }
            eprintln!("SKIPPED: the local model is not installed in {} (run `rlm setup`)", local_model::cache_dir().display());
            None
        }
    });
    s.clone()
}

fn orch(url: &str) -> rlm::OrchestratorBuilder {
    Orchestrator::builder()
        .base_url(url)
        .model(local_model::MODEL_NAME)
        .max_iterations(8)
}

#[test]
fn answers_from_a_context_file_by_value() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(url) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let mut text = String::new();
    for i in 0..400 {
        text.push_str(&format!(
            "Entry {i}: routine status update, nothing to report today.\n"
        ));
        if i == 271 {
            text.push_str("Entry 271b: the vault access code is 58213.\n");
        }
    }
    std::fs::write(&path, &text).unwrap();
    let r = orch(&url).build().unwrap().run_with_context(
        "What is the vault access code? Answer with the number.",
        Context::file(&path),
    );
    assert!(r.success, "{:?} {:#?}", r.error, r.steps);
    assert!(
        r.final_answer.as_deref().unwrap().contains("58213"),
        "{:?}",
        r.final_answer
    );
    assert!(
        r.steps.iter().any(|s| s.kind == StepKind::CodeExecution),
        "the model worked through code"
    );
}

#[test]
fn code_calls_llm_query_through_the_host() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(url) = server() else { return };
    let r = orch(&url)
        .custom_instructions("For this task you must call llm_query once in your first code block and print its result.")
        .build()
        .unwrap()
        .run("Use llm_query to ask for the capital of France, print the reply, then give the city as your final answer.");
    let subs: Vec<_> = r
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::SubQuery)
        .collect();
    assert!(!subs.is_empty(), "no sub-query was made: {:#?}", r.steps);
    assert!(
        subs.iter()
            .all(|s| s.success && !s.output.is_empty() && s.prompt_tokens.unwrap_or(0) > 0)
    );
    assert!(r.success, "{:?}", r.error);
}

#[test]
fn events_stream_while_running_and_usage_is_real() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(url) = server() else { return };
    let o = orch(&url).build().unwrap();
    let run = o.arun_observed(
        "Compute 17 * 23 with Python and give the result as your final answer.",
        None,
    );
    let events = run.events;
    let collector = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while let Some(e) = events.recv_blocking() {
            seen.push((std::time::Instant::now(), e));
        }
        seen
    });
    let r = futures_lite::future::block_on(run.result);
    let finished_at = std::time::Instant::now();
    let seen = collector.join().unwrap();
    assert!(r.success, "{:?}", r.error);
    assert!(
        r.final_answer.as_deref().unwrap().contains("391"),
        "{:?}",
        r.final_answer
    );
    let first_step = seen
        .iter()
        .find(|(_, e)| matches!(e, RunEvent::Step { .. }))
        .expect("step events");
    assert!(
        finished_at.duration_since(first_step.0).as_millis() > 0,
        "events arrive before the run ends"
    );
    assert!(
        r.usage.prompt_tokens > 100 && r.usage.completion_tokens > 0,
        "{:?}",
        r.usage
    );
    assert_eq!(r.usage.cost_usd, None, "a local model has no known price");
    let llm = r
        .steps
        .iter()
        .find(|s| s.kind == StepKind::LlmCall)
        .unwrap();
    assert_eq!(llm.model.as_deref().map(|m| m.is_empty()), Some(false));
}

/// The README's main-job command: `rlm demo` runs the (idempotent) set-up and the real task on
/// the 4.2 MB document, and reports a correct answer.
#[test]
fn demo_command_answers_correctly() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if server().is_none() {
        return;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rlm"))
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("(correct)") && stdout.contains("2731") && stdout.contains("1840"),
        "{stdout}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("turn 1: asking the model") && err.contains("done in"),
        "progress is shown: {err}"
    );
}

/// The process ids of `pid`'s descendants whose command line contains `needle`.
fn descendants_of(pid: u32, needle: &str) -> Vec<u32> {
    let mut parent = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some(pp) = std::fs::read_to_string(e.path().join("status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("PPid:"))
                    .and_then(|v| v.trim().parse::<u32>().ok())
            })
        {
            parent.insert(p, pp);
        }
    }
    parent
        .keys()
        .copied()
        .filter(|&p| {
            let mut cur = p;
            for _ in 0..32 {
                match parent.get(&cur) {
                    Some(&pp) if pp == pid => return true,
                    Some(&pp) if pp > 1 => cur = pp,
                    _ => return false,
                }
            }
            false
        })
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

fn gone(pids: &[u32], secs: u64) -> bool {
    let t = std::time::Instant::now();
    while t.elapsed() < std::time::Duration::from_secs(secs) {
        if pids
            .iter()
            .all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
        {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

/// SIGTERM to `rlm run` using the local model (as service managers and test harnesses send
/// it) stops the run and the model server; after SIGKILL, which nothing can handle, the
/// server still dies with its parent. Nothing is left behind either way.
#[test]
fn signals_never_leave_the_local_server_or_sandboxes_behind() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if server().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("numbers.txt");
    std::fs::write(
        &ctx,
        (0..20000)
            .map(|i| format!("row {i} value {}\n", i * 7))
            .collect::<String>(),
    )
    .unwrap();
    let cache_entries = || {
        let mut v: Vec<String> = std::fs::read_dir(local_model::cache_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let before = cache_entries();
    for (signal, code) in [("TERM", Some(143)), ("KILL", None)] {
        let mut rlm = std::process::Command::new(env!("CARGO_BIN_EXE_rlm"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .env("RLM_CACHE_DIR", local_model::cache_dir())
            .args([
                "run",
                "--context",
                ctx.to_str().unwrap(),
                "What is the sum of every value?",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = rlm.id();
        // Wait until both the model server and the sandbox are up.
        let t = std::time::Instant::now();
        let (mut servers, mut repls) = (vec![], vec![]);
        while t.elapsed() < std::time::Duration::from_secs(120) {
            servers = descendants_of(pid, "llama-server");
            repls = descendants_of(pid, "/opt/rlm/repl.py");
            if !servers.is_empty() && !repls.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(
            !servers.is_empty() && !repls.is_empty(),
            "the run got going"
        );
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = rlm.wait().unwrap();
        assert_eq!(exit.code(), code, "{signal}: {exit:?}");
        assert!(
            gone(&servers, 10),
            "{signal}: the model server outlived rlm"
        );
        assert!(gone(&repls, 10), "{signal}: a sandbox outlived rlm");
        assert_eq!(cache_entries(), before, "{signal}: files left in the cache");
    }
}

/// The eval smoke suite: a handful of generated tasks (fixed seed, small data) run through
/// `rlm::eval` with the real model at temperature 0. The floor is below what the model
/// scores on them, so a regression of the loop, the prompt or the helpers shows, without
/// flakiness from one unlucky run.
#[test]
fn eval_smoke_suite_keeps_its_floor() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(url) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let families: Vec<String> = ["needle", "multidoc", "needle"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut tasks = Vec::new();
    for (seed, fam) in [
        (101u64, &families[0]),
        (102, &families[1]),
        (103, &families[2]),
    ] {
        let g = rlm::eval::generate(std::slice::from_ref(fam), seed, &[10_000], "data").unwrap();
        for (rel, content) in &g.files {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        tasks.push(g.suite.to_jsonl(std::path::Path::new("")));
    }
    let suite = rlm::eval::Suite::parse(&tasks.concat(), dir.path()).unwrap();
    let o = orch(&url)
        .temperature(0.0)
        .max_iterations(8)
        .build()
        .unwrap();
    let opts = rlm::eval::EvalOptions::default().trajectories(dir.path().join("runs"));
    let report =
        futures_lite::future::block_on(rlm::eval::run_suite(&o, &suite, &opts, |_| {})).unwrap();
    eprintln!("{}", report.table());
    assert_eq!(report.total.total, 3);
    assert!(
        report.total.right >= 2,
        "below the smoke floor (2 of 3): {:#?}",
        report.outcomes
    );
    // Each task left its trajectory.
    for o in &report.outcomes {
        assert!(o.trajectory.as_ref().is_some_and(|p| p.is_file()), "{o:?}");
    }
}
