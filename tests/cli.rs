//! The `rlm` binary end to end against a loopback OpenAI-format server.

mod support;

use std::process::Command;

use serde_json::Value;
use support::{LlmServer, Reply, turns};

/// The binary with a clean environment: no inherited `RLM_*` settings or provider keys,
/// only what a shell needs (and the model cache, for the real-model tier).
/// The tests of this file take turns: several count the processes and directories this test
/// binary left, which another test's running `rlm` would add to.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `rlm view LOG -o HTML`, which must succeed; the page it wrote.
fn view_html(log: &std::path::Path, html: &std::path::Path) -> String {
    let out = rlm()
        .arg("view")
        .arg(log)
        .arg("-o")
        .arg(html)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(html).unwrap()
}

fn rlm() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rlm"));
    c.env_clear();
    for k in ["PATH", "HOME", "RLM_CACHE_DIR", "TMPDIR"] {
        if let Some(v) = std::env::var_os(k) {
            c.env(k, v);
        }
    }
    c
}

/// Runs `rlm ARGS` with `env` set and `input` on its stdin.
fn rlm_stdin(args: &[&str], input: &str, env: &[(&str, &str)]) -> std::process::Output {
    use std::io::Write;
    let mut c = rlm();
    c.args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn run_prints_answer_progress_and_json() {
    let _serial = serial();
    let server = LlmServer::start(|req, _| match turns(req) {
        0 => Reply::Text(
            "```python\nn = ctx.search('needle (\\\\d+)')[0]['match']\nprint(n)\n```".into(),
        ),
        _ => Reply::Text("```python\nFINAL(n.split()[1])\n```".into()),
    });
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("hay.txt");
    std::fs::write(
        &ctx,
        format!(
            "{}needle 4242\n{}",
            "hay\n".repeat(1000),
            "hay\n".repeat(1000)
        ),
    )
    .unwrap();
    let out = rlm()
        .args([
            "run",
            "--base-url",
            &server.base_url(),
            "--context",
            ctx.to_str().unwrap(),
            "find",
            "the",
            "needle",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "4242\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("turn 1: asking the model")
            && err.contains("running code")
            && err.contains("done in"),
        "{err}"
    );

    let out = rlm()
        .env("RLM_LLM_BASE_URL", server.base_url())
        .args([
            "run",
            "--json",
            "--quiet",
            "--context",
            ctx.to_str().unwrap(),
            "find it",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "--quiet: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["final_answer"], "4242");
    assert_eq!(v["success"], true);
    assert_eq!(v["iterations"], 2);
    assert!(v["steps"].as_array().unwrap().len() >= 4 && v["usage"]["calls"] == 2);

    let log = dir.path().join("run.jsonl");
    let out = rlm()
        .args([
            "run",
            "--quiet",
            "--base-url",
            &server.base_url(),
            "--log",
            log.to_str().unwrap(),
        ])
        .args(["--context", ctx.to_str().unwrap(), "find it"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let events =
        rlm::trajectory::parse_trajectory(&std::fs::read_to_string(&log).unwrap()).unwrap();
    assert!(matches!(
        events.first(),
        Some(rlm::trajectory::TrajectoryEvent::RunStart { .. })
    ));
    assert!(matches!(
        events.last(),
        Some(rlm::trajectory::TrajectoryEvent::RunEnd { success: true, .. })
    ));
}

#[test]
fn exit_codes() {
    let _serial = serial();
    let server = LlmServer::start(|_, _| Reply::Text("I cannot say.".into()));
    let out = rlm()
        .args([
            "run",
            "--base-url",
            &server.base_url(),
            "--max-iterations",
            "2",
            "q",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "no answer");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no answer"));

    let out = rlm()
        .env("RLM_MAX_ITERATIONS", "lots")
        .args(["run", "q"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RLM_MAX_ITERATIONS"));

    let empty_cache = tempfile::tempdir().unwrap();
    let out = rlm()
        .env("RLM_CACHE_DIR", empty_cache.path())
        .args(["run", "q"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "no key, no base URL, no local model"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("OPENAI_API_KEY") && err.contains("rlm setup"),
        "{err}"
    );

    let out = rlm()
        .args([
            "run",
            "--base-url",
            &server.base_url(),
            "--context",
            "/nonexistent.txt",
            "q",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.txt"));

    for bad in [
        vec!["run"],
        vec!["run", "--timeout", "-3", "q"],
        vec!["frobnicate"],
        vec!["run", "--bogus", "q"],
    ] {
        let out = rlm().args(&bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
    let out = rlm().args(["run", "--help"]).output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("--max-iterations")
    );
}

/// `--provider X` with only X's key variable set: the request carries X's auth header; without
/// a key (and a remote URL) the error names X's variable.
#[test]
fn provider_flag_reads_that_providers_key() {
    let _serial = serial();
    let server = LlmServer::start(|_, _| Reply::Text("FINAL(ok)".into()));
    for (provider, var, header, value) in [
        (
            "openai",
            "OPENAI_API_KEY",
            "authorization",
            "Bearer k-openai",
        ),
        ("anthropic", "ANTHROPIC_API_KEY", "x-api-key", "k-anthropic"),
        ("gemini", "GEMINI_API_KEY", "x-goog-api-key", "k-gemini"),
    ] {
        let before = server.meta.lock().unwrap().len();
        let key = value.trim_start_matches("Bearer ");
        let out = rlm()
            .env(var, key)
            .args([
                "run",
                "--quiet",
                "--provider",
                provider,
                "--base-url",
                &server.base_url(),
                "q",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{provider}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta = server.meta.lock().unwrap();
        assert_eq!(meta.len(), before + 1);
        assert_eq!(meta[before].header(header), Some(value), "{provider}");
        drop(meta);
        // The default (remote) URL and no key: an error naming this provider's variable, not
        // a fall-back to the local model.
        let empty_cache = tempfile::tempdir().unwrap();
        let out = rlm()
            .env("RLM_CACHE_DIR", empty_cache.path())
            .args(["run", "--provider", provider, "q"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{provider}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(var), "{provider}: {err}");
        for other in ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"] {
            assert!(other == var || !err.contains(other), "{provider}: {err}");
        }
    }
}

/// Two `rlm` processes on one machine never give their sandboxes the same host uid: a
/// sandbox holding 60 processes in one does not stop sandboxes in the other (with a shared
/// uid, the per-uid process limit would).
#[test]
fn two_rlm_processes_lease_different_uids() {
    let _serial = serial();
    if !std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    {
        eprintln!("SKIPPED: uid leases are only used when rlm runs as root");
        return;
    }
    use std::io::Write;
    let mut holder = rlm()
        .args(["sandbox", "exec", "--timeout", "30"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    holder
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"import os, time\nkids = []\ntry:\n    for i in range(58):\n        pid = os.fork()\n        if pid == 0:\n            time.sleep(8)\n            os._exit(0)\n        kids.append(pid)\nexcept OSError as e:\n    print('fork failed after', len(kids), e)\nprint('held', len(kids))\nfor k in kids:\n    os.waitpid(k, 0)\n",
        )
        .unwrap();
    // Wait until the holder's sandbox has its 60 processes.
    let holder_pid = holder.id();
    let sandbox_procs = || {
        support::descendants()
            .into_iter()
            .filter(|p| {
                let mut cur = *p;
                for _ in 0..16 {
                    let ppid = std::fs::read_to_string(format!("/proc/{cur}/status"))
                        .ok()
                        .and_then(|s| {
                            s.lines()
                                .find_map(|l| l.strip_prefix("PPid:"))
                                .and_then(|v| v.trim().parse::<u32>().ok())
                        });
                    match ppid {
                        Some(pp) if pp == holder_pid => return true,
                        Some(pp) if pp > 1 => cur = pp,
                        _ => return false,
                    }
                }
                false
            })
            .count()
    };
    let t = std::time::Instant::now();
    while sandbox_procs() < 58 && t.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if sandbox_procs() < 58 {
        let _ = holder.kill();
        let out = holder.wait_with_output().unwrap();
        let mut uids = String::new();
        for e in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
            if let Ok(st) = std::fs::read_to_string(e.path().join("status")) {
                let uid = st
                    .lines()
                    .find(|l| l.starts_with("Uid:"))
                    .unwrap_or("")
                    .to_string();
                if uid.contains("610") {
                    let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                    uids.push_str(&format!(
                        "{} {uid} {}\n",
                        e.file_name().to_string_lossy(),
                        String::from_utf8_lossy(&cmd).replace('\0', " ")
                    ));
                }
            }
        }
        panic!(
            "the holder's sandbox did not fill ({} processes): {} {}\n{uids}",
            sandbox_procs(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = rlm_stdin(
        &["sandbox", "exec"],
        "import os\nfor i in range(5):\n    if os.fork() == 0:\n        os._exit(0)\n    os.wait()\nprint('second rlm ok')",
        &[],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("second rlm ok"),
        "stdout {} stderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let held = holder.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&held.stdout).contains("held 58"),
        "{}",
        String::from_utf8_lossy(&held.stdout)
    );
}

#[test]
fn egress_scan_filters_stdin() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx.txt");
    let ctx_text: String = (0..200)
        .map(|i| format!("confidential line {i} of the customer database export\n"))
        .collect();
    std::fs::write(&ctx, &ctx_text).unwrap();
    let input = format!("token AKIAIOSFODNN7EXAMPLE then {}", &ctx_text[1000..2000]);
    let out = rlm_stdin(
        &[
            "egress",
            "scan",
            "--json",
            "--context",
            ctx.to_str().unwrap(),
        ],
        &input,
        &[("RLM_ECHO_MIN_BYTES", "512")],
    );
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = v["findings"].as_array().unwrap();
    assert_eq!(f[0]["rule"], "aws_access_key_id");
    assert_eq!(
        (f[0]["start"].as_u64(), f[0]["end"].as_u64()),
        (Some(6), Some(26))
    );
    assert_eq!(f[1]["rule"], "context_echo");
    assert!(
        !v["output"].as_str().unwrap().contains("AKIA")
            && !v["output"].as_str().unwrap().contains("line 30 of")
    );

    // With the default threshold (4 KiB) a 1000-byte excerpt is not an echo.
    let ctx_arg = ctx.to_str().unwrap();
    let out = rlm_stdin(
        &["egress", "scan", "--context", ctx_arg],
        &ctx_text[1000..2000],
        &[],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), &ctx_text[1000..2000]);

    let out = rlm_stdin(&["egress", "scan"], "plain text\n", &[]);
    assert_eq!(out.stdout, b"plain text\n");
}

/// `rlm egress mask`: to stdout, to a file (whole, via a rename), through a symlink (the link
/// stays), into a FIFO (written to, never replaced: renaming over a device node or a FIFO
/// would turn it into a regular file), and a directory refused; no temporary file is left.
#[test]
fn egress_mask_writes_where_told_and_never_replaces_special_files() {
    let _serial = serial();
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx.txt");
    std::fs::write(
        &ctx,
        "id AKIAIOSFODNN7EXAMPLE\nnothing here\ntoken ghp_1234567890abcdefghijklmnopqrstuvwxyzAB\n",
    )
    .unwrap();
    let expected = "id [SECRET:aws_access_key_id#1]\nnothing here\ntoken [SECRET:github_token#1]\n";
    let ctx_arg = ctx.to_str().unwrap();
    let out = rlm().args(["egress", "mask", ctx_arg]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("masked 2 secret(s)"),
        "{out:?}"
    );

    // A regular file, and a symlink to one.
    let real = dir.path().join("real.txt");
    std::fs::write(&real, "old").unwrap();
    let link = dir.path().join("link.txt");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    for target in [&real, &link] {
        let out = rlm()
            .args(["egress", "mask", ctx_arg, "-o", target.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(std::fs::read_to_string(&real).unwrap(), expected);
    }
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // A FIFO: read on a thread; it must still be a FIFO afterwards.
    let fifo = dir.path().join("fifo");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let out = rlm()
        .args(["egress", "mask", ctx_arg, "-o", fifo.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(kind.is_fifo(), "the FIFO was replaced: {kind:?}");
    assert_eq!(reader.join().unwrap(), expected);

    // A directory is refused, with the reason.
    let out = rlm()
        .args([
            "egress",
            "mask",
            ctx_arg,
            "-o",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("directory"),
        "{out:?}"
    );

    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["ctx.txt", "fifo", "link.txt", "real.txt"]);
}

/// SIGTERM while `rlm egress mask -o` writes: exit 128 + 15, the old file untouched, no
/// temporary file left.
#[test]
fn egress_mask_stopped_by_sigterm_leaves_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("big.txt");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&ctx).unwrap());
        let line = "an ordinary line of log text, key AKIAIOSFODNN7EXAMPLE, then more words\n";
        for _ in 0..(400 << 20) / line.len() {
            f.write_all(line.as_bytes()).unwrap();
        }
    }
    let target = dir.path().join("masked.txt");
    std::fs::write(&target, "previous").unwrap();
    let child = rlm()
        .args(["egress", "mask", ctx.to_str().unwrap(), "-o"])
        .arg(&target)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the temporary file exists, the write is under way.
    let t = std::time::Instant::now();
    let temp = loop {
        let found = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .find(|n| n.ends_with(".tmp"));
        if let Some(f) = found {
            break f;
        }
        assert!(t.elapsed().as_secs() < 60, "no temporary file appeared");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "{out:?}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "previous");
    assert!(!dir.path().join(&temp).exists(), "{temp} left behind");
}

/// A masked copy of a context lives in a private temporary directory. An `rlm` killed with
/// SIGKILL cannot remove it; the next `rlm` that makes one sweeps it (its lock is free), and
/// leaves a live process's directory alone.
#[test]
fn directories_of_a_killed_rlm_are_swept_by_the_next() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx.txt");
    std::fs::write(&ctx, "key AKIAIOSFODNN7EXAMPLE\nthe answer is 42\n").unwrap();
    let private = tmp.path().join("private");
    std::fs::create_dir(&private).unwrap();
    let dirs = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&private)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let slow = LlmServer::start(|_, _| {
        Reply::Delay(
            std::time::Duration::from_secs(60),
            "```python\nFINAL('x')\n```".into(),
        )
    });
    let run = |base_url: String| {
        let mut c = rlm();
        c.env("TMPDIR", &private)
            .args(["run", "--quiet", "--base-url", &base_url, "--context"])
            .arg(&ctx)
            .arg("what is the answer?")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c
    };
    // Two runs waiting on the model, each with its masked copy.
    let mut first = run(slow.base_url()).spawn().unwrap();
    let mut alive = run(slow.base_url()).spawn().unwrap();
    let t = std::time::Instant::now();
    while dirs().len() < 2 {
        assert!(
            t.elapsed().as_secs() < 30,
            "no private directories: {:?}",
            dirs()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    while slow.count() < 2 {
        assert!(
            t.elapsed().as_secs() < 30,
            "the runs did not reach the model"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let first_dir = format!("rlm-{}-", first.id());
    let alive_dir = format!("rlm-{}-", alive.id());
    first.kill().unwrap();
    first.wait().unwrap();
    let killed: Vec<String> = dirs()
        .into_iter()
        .filter(|d| d.starts_with(&first_dir))
        .collect();
    assert!(!killed.is_empty(), "{:?}", dirs());
    // The kernel drops the lock once the last process holding the directory is gone: the
    // killed run's sandbox (its child) can outlive it by a moment (it dies of the parent
    // death signal). Only then is the directory ownerless.
    for d in &killed {
        let t = std::time::Instant::now();
        while std::fs::File::open(private.join(d))
            .map(|f| f.try_lock().is_err())
            .unwrap_or(false)
        {
            assert!(
                t.elapsed().as_secs() < 10,
                "the killed run's directory stays locked"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    let fast = LlmServer::start(|_, _| Reply::Text("```python\nFINAL('42')\n```".into()));
    let out = run(fast.base_url()).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    let left = dirs();
    assert!(
        !left.iter().any(|d| d.starts_with(&first_dir)),
        "the killed run's directory is still there: {left:?}"
    );
    assert!(
        left.iter().any(|d| d.starts_with(&alive_dir)),
        "a live run's directory was swept: {left:?}"
    );
    alive.kill().unwrap();
    alive.wait().unwrap();
}

#[test]
fn sandbox_exec_and_check() {
    let _serial = serial();
    let run = rlm_stdin;
    let out = run(
        &["sandbox", "exec", "--json"],
        "import os\nprint(os.getuid())\nraise SystemExit(3)",
        &[],
    );
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["stdout"], "65534\n");
    assert_eq!(v["backend"], "bwrap");
    assert_eq!(v["timed_out"], false);
    assert!(
        v["duration_ms"].as_f64().unwrap() > 0.0
            && v["exit_code"].is_i64()
            && v["memory_exceeded"] == false
    );

    let out = run(
        &[
            "sandbox",
            "exec",
            "--json",
            "--timeout",
            "1",
            "--memory",
            "256m",
        ],
        "import time\ntime.sleep(30)",
        &[],
    );
    assert!(
        out.status.success(),
        "the sandbox ran, whatever the code did"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["timed_out"], true);

    let out = run(&["sandbox", "exec"], "print('plain')", &[]);
    assert_eq!(out.stdout, b"plain\n");

    let out = run(
        &["sandbox", "exec"],
        "print(1)",
        &[("RLM_BWRAP", "/nonexistent/bwrap")],
    );
    assert_ne!(
        out.status.code(),
        Some(0),
        "a sandbox that cannot run is an error"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("apt-get install bubblewrap"));

    let out = run(&["sandbox", "check", "--json"], "", &[]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    for l in v["layers"].as_array().unwrap() {
        assert_eq!(l["active"], true, "{l}");
    }
    let out = run(
        &["sandbox", "check"],
        "",
        &[("RLM_BWRAP", "/nonexistent/bwrap")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("would refuse to run"));
}

/// `rlm view` on a real trajectory, rendered by headless Chromium. Skipped with a message when
/// Chromium is absent, unless RLM_REQUIRE_CHROMIUM=1 (CI installs it and sets that).
#[test]
fn view_renders_a_real_trajectory_in_chromium() {
    let _serial = serial();
    let server = LlmServer::start(|req, _| {
        let first = support::first_user(req);
        if first.starts_with("Question: ROOT") {
            match turns(req) {
                0 => Reply::Text(
                    "```python\nsub = llm_query('what is 6*7?')\nprint('sub says', sub)\n```"
                        .into(),
                ),
                1 => Reply::Text("```python\nprint('key AKIAIOSFODNN7EXAMPLE')\n```".into()),
                _ => Reply::Text("```python\nFINAL('forty-two <b>bold</b>')\n```".into()),
            }
        } else {
            Reply::Text("42".into())
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("t.jsonl");
    let out = rlm()
        .args([
            "run",
            "--quiet",
            "--base-url",
            &server.base_url(),
            "--log",
            log.to_str().unwrap(),
            "ROOT: compute",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html_path = dir.path().join("page.html");
    let html = view_html(&log, &html_path);
    assert!(
        !html.contains("<script") && !html.contains("src=\"http") && !html.contains("href=\"http"),
        "self-contained"
    );

    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(chromium) = chromium else {
        if std::env::var("RLM_REQUIRE_CHROMIUM").is_ok() {
            panic!("Chromium is required (RLM_REQUIRE_CHROMIUM) but not installed");
        }
        eprintln!(
            "SKIPPED: headless Chromium not installed (apt-get install chromium); the HTML was checked as text only"
        );
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
        ])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", html_path.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("Final answer:") && dom.contains("forty-two &lt;b&gt;bold&lt;/b&gt;"),
        "final answer shown, escaped"
    );
    for needle in [
        "LLM reply",
        "sub = llm_query",
        "sub says 42",
        "Sub-query",
        "what is 6*7?",
        "redacted: aws_access_key_id",
        "[REDACTED:aws_access_key_id]",
    ] {
        assert!(dom.contains(needle), "the page lacks {needle:?}");
    }
    let steps = rlm::trajectory::parse_trajectory(&std::fs::read_to_string(&log).unwrap())
        .unwrap()
        .iter()
        .filter(|e| matches!(e, rlm::trajectory::TrajectoryEvent::Step { .. }))
        .count();
    assert_eq!(
        steps, 8,
        "3 LLM replies, 3 code blocks, 1 sub-query, 1 final answer"
    );
    assert_eq!(
        dom.matches("class=\"step").count(),
        steps,
        "every step is on the page"
    );
}

/// A run with a child run: the progress shows the child indented under the root, and `rlm
/// view` shows the child run inside its parent's sub-query step, checked in headless Chromium
/// by a script that walks the parsed page (skipped as above when Chromium is absent).
#[test]
fn child_runs_are_indented_in_progress_and_nested_in_view() {
    let _serial = serial();
    let server = LlmServer::start(|req, _| {
        let first = support::first_user(req);
        if first.starts_with("Question: ROOT") {
            match turns(req) {
                0 => Reply::Text("```python\na = rlm_query('CHILD: add')\nprint(a)\n```".into()),
                _ => Reply::Text("```python\nFINAL('root got ' + a)\n```".into()),
            }
        } else {
            match turns(req) {
                0 => Reply::Text("```python\nv = 40 + 2\nprint('child computed', v)\n```".into()),
                _ => Reply::Text("```python\nFINAL(v)\n```".into()),
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("t.jsonl");
    let out = rlm()
        .args(["run", "--max-depth", "2", "--base-url", &server.base_url()])
        .args(["--log", log.to_str().unwrap(), "ROOT: delegate"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "root got 42");
    let lines: Vec<&str> = stderr.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no line starting {needle:?} in\n{stderr}"))
    };
    let (root_turn, child, child_turn, child_done, root_turn2) = (
        at("turn 1: running code: a = rlm_query"),
        at("  child run (depth 1): CHILD: add"),
        at("  turn 2: asking the model"),
        at("  child run done"),
        at("turn 2: asking the model"),
    );
    assert!(root_turn < child && child < child_turn && child_turn < child_done);
    assert!(child_done < root_turn2, "{stderr}");

    let html_path = dir.path().join("page.html");
    let html = view_html(&log, &html_path);
    let Some(chromium) = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        if std::env::var("RLM_REQUIRE_CHROMIUM").is_ok() {
            panic!("Chromium is required (RLM_REQUIRE_CHROMIUM) but not installed");
        }
        eprintln!("SKIPPED: headless Chromium not installed");
        return;
    };
    // The page has no script of its own; this copy gets one that reports, for every run
    // section, the run whose step holds it, as the browser parsed the page.
    let probe = html.replace(
        "</body>",
        "<script>document.body.setAttribute('data-nesting', Array.from(document.querySelectorAll('section.run')).map(s => { const step = s.parentElement.closest('div.step'); const owner = step && step.closest('section.run'); return s.id + '<' + (owner ? owner.id + ':' + step.querySelector('.kind').textContent : 'top'); }).join(';'));</script></body>",
    );
    let probe_path = dir.path().join("probe.html");
    std::fs::write(&probe_path, probe).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", probe_path.display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    let dom = String::from_utf8_lossy(&out.stdout);
    let nesting = dom
        .split("data-nesting=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("the probe did not run: {dom}"))
        .replace("&lt;", "<");
    let events =
        rlm::trajectory::parse_trajectory(&std::fs::read_to_string(&log).unwrap()).unwrap();
    let ids: Vec<String> = events
        .iter()
        .filter(|e| matches!(e, rlm::trajectory::TrajectoryEvent::RunStart { .. }))
        .map(|e| e.at().run_id.clone())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(
        nesting,
        format!(
            "{root}<top;{child}<{root}:Sub-query",
            root = ids[0],
            child = ids[1]
        )
    );
    assert!(
        dom.contains("child computed 42"),
        "the child's steps are on the page"
    );
}

#[test]
fn schema_and_sub_model_flags() {
    let _serial = serial();
    let server = LlmServer::start(|req, _| {
        if req["model"] == "sub-x" {
            return Reply::Text("7".into());
        }
        match turns(req) {
            0 => Reply::Text("```python\na = llm_query('a number, please')\nprint(a)\n```".into()),
            _ => Reply::Text("```python\nFINAL({'n': int(a)})\n```".into()),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("answer.json");
    std::fs::write(
        &schema,
        r#"{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}"#,
    )
    .unwrap();
    let out = rlm()
        .args([
            "run",
            "--base-url",
            &server.base_url(),
            "--model",
            "root-x",
            "--sub-model",
            "sub-x",
            "--schema",
            schema.to_str().unwrap(),
            "--json",
            "give",
            "a",
            "number",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["answer_json"], r#"{"n":7}"#, "{v}");
    let models: Vec<String> = server
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| r["model"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(models.contains(&"sub-x".to_string()), "{models:?}");
    assert_eq!(
        models.iter().filter(|m| *m == "root-x").count(),
        2,
        "{models:?}"
    );

    // A schema the validator cannot check fully is refused up front, naming the file.
    std::fs::write(&schema, r#"{"type":"string","pattern":"^a"}"#).unwrap();
    let out = rlm()
        .args([
            "run",
            "--base-url",
            &server.base_url(),
            "--schema",
            schema.to_str().unwrap(),
            "q",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pattern"), "{err}");
}

/// Code the scripted model runs for a chat question, chosen by the question (the last message
/// of the first request of each question holds it).
fn chat_server() -> LlmServer {
    LlmServer::start(|req, _| {
        let last = support::last_message(req);
        let code = if last.contains("first question") {
            "found = ctx.read(0, len(ctx)).split()[-1]\nFINAL(found)"
        } else if last.contains("second question") {
            "FINAL('code ' + found)"
        } else if last.contains("third question") {
            "FINAL(ctx_1.read(0, len(ctx_1)).split()[-1] + ' ' + ctx_0.read(0, len(ctx_0)).split()[-1])"
        } else if last.contains("slow question") {
            "found = 1\nimport time\ntime.sleep(60)\nFINAL('slept')"
        } else if last.contains("fresh question") {
            "FINAL('fresh ' + str('found' in globals()))"
        } else {
            "FINAL('unexpected')"
        };
        Reply::Text(format!("```python\n{code}\n```"))
    })
}

/// `rlm chat` with piped input: one session for every line (a variable set by the first
/// question is read by the second), the --context file is `ctx`, a `:context` line makes
/// `ctx_1`, bad lines are reported and skipped, one answer per question, nothing left behind.
#[test]
fn chat_keeps_one_session_across_lines() {
    let _serial = serial();
    let server = chat_server();
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one.txt"), dir.path().join("two.txt"));
    std::fs::write(&one, "the code is 4242\n").unwrap();
    std::fs::write(&two, "the other code is 7777\n").unwrap();
    let input = format!(
        "first question?\n\nsecond question?\n:context {}\n:context {}/missing.txt\n:bogus\nthird question?\n:quit\nnever asked\n",
        two.display(),
        dir.path().display()
    );
    let out = rlm_stdin(
        &["chat", "--base-url", &server.base_url(), "--context"]
            .into_iter()
            .chain([one.to_str().unwrap()])
            .collect::<Vec<_>>(),
        &input,
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "4242\ncode 4242\n7777 4242\n",
        "{err}\n{}",
        server
            .all_requests()
            .chars()
            .rev()
            .take(3000)
            .collect::<String>()
            .chars()
            .rev()
            .collect::<String>()
    );
    assert!(
        err.contains("missing.txt") && err.contains(":bogus"),
        "{err}"
    );
    assert!(
        !err.contains("turn 1"),
        "no progress with piped input: {err}"
    );
    assert!(!server.all_requests().contains("never asked"));
    assert_eq!(support::wait_no_descendants(10), 0, "processes left behind");
}

/// Bad input: exit 2 with an error naming what is wrong.
#[test]
fn chat_rejects_bad_input() {
    let _serial = serial();
    let out = rlm_stdin(&["chat", "--context", "/nonexistent/ctx.txt"], "", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ctx.txt"));
    let out = rlm_stdin(&["chat", "--bogus"], "", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bogus"));
    let out = rlm_stdin(&["chat", "what", "is", "it"], "", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stdin"));
}

/// SIGINT during a question cancels it (an empty answer line) and the chat goes on with a
/// fresh REPL; SIGTERM ends the chat with 128 + 15; neither leaves a process behind.
#[test]
fn chat_sigint_cancels_a_question_and_sigterm_ends() {
    let _serial = serial();
    use std::io::Write;
    let server = chat_server();
    let spawn = || {
        rlm()
            .args(["chat", "--base-url", &server.base_url()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let kill = |sig: &str, pid: u32| {
        let st = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    };
    // Waits until the slow question's code has run for a while in the sandbox.
    let wait_slow = |before: usize| {
        let t = std::time::Instant::now();
        while server.count() <= before {
            assert!(
                t.elapsed().as_secs() < 60,
                "the question never reached the model"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    };

    let mut child = spawn();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"slow question\n").unwrap();
    wait_slow(0);
    let t = std::time::Instant::now();
    kill("-INT", child.id());
    stdin.write_all(b"fresh question\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(t.elapsed().as_secs() < 30, "the cancel took too long");
    assert!(out.status.success(), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "\nfresh False\n",
        "{err}"
    );
    assert!(err.contains("cancelled"), "{err}");
    assert_eq!(support::wait_no_descendants(10), 0, "processes left behind");

    let mut child = spawn();
    let mut stdin = child.stdin.take().unwrap();
    let before = server.count();
    stdin.write_all(b"slow question\n").unwrap();
    wait_slow(before);
    kill("-TERM", child.id());
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(out.status.code(), Some(143), "{out:?}");
    assert_eq!(support::wait_no_descendants(10), 0, "processes left behind");
}
