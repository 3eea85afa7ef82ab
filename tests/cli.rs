//! The `rlm` binary end to end against a loopback OpenAI-format server.

mod support;

use std::process::Command;

use support::{LlmServer, Reply, turns};

fn rlm() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rlm"));
    for k in [
        "OPENAI_API_KEY",
        "RLM_LLM_BASE_URL",
        "RLM_LLM_MODEL",
        "RLM_MAX_ITERATIONS",
    ] {
        c.env_remove(k);
    }
    c
}

#[test]
fn run_prints_answer_progress_and_json() {
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
}

#[test]
fn exit_codes() {
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

    let out = rlm().args(["run", "q"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "no key, no local server");
    assert!(String::from_utf8_lossy(&out.stderr).contains("OPENAI_API_KEY"));

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
