//! No secret from the context reaches a provider, in any form. A context with planted secrets
//! of many kinds; a model whose code tries every way out (the preview in the system prompt,
//! prints in several encodings, halves split across stdout and stderr and across blocks,
//! `llm_query`, `rlm_query` prompts and contexts, exception messages, `SHOW_VARS`, `FINAL`);
//! the loopback server's request log is then searched for every secret, its encodings and
//! every 12-character fragment. The trajectory and the events are searched too.

mod support;

use std::sync::{Arc, Mutex};

use rlm::{Context, Orchestrator, RunEvent, TrajectoryLog};
use support::{LlmServer, Reply, first_user, turns};

/// (secret value as it appears in the file, the line that holds it).
fn planted() -> Vec<(String, String)> {
    let pem_body = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\nLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW/VDL5AaWTg0nLVkjRo";
    let pem = format!("-----BEGIN RSA PRIVATE KEY-----\n{pem_body}\n-----END RSA PRIVATE KEY-----");
    let s = |v: &str, line: String| (v.to_string(), line);
    vec![
        s(
            "AKIAQX4ZPJ7VB2KD9WME",
            "aws_access_key_id = AKIAQX4ZPJ7VB2KD9WME".into(),
        ),
        s(
            "ghp_R7pX2mKq9LzT4vWb8NcJ3hYf6sDg1aQe5Uo0",
            "GITHUB_TOKEN=ghp_R7pX2mKq9LzT4vWb8NcJ3hYf6sDg1aQe5Uo0".into(),
        ),
        s(
            "sk_live_51HxQ2mTq8ZpL4vRb9NcJ7yKf",
            "stripe: sk_live_51HxQ2mTq8ZpL4vRb9NcJ7yKf".into(),
        ),
        s(
            "xoxb-482910375612-5539201847-Qm7pTz2XvLk9RbN4cJ8YhW",
            "slack bot xoxb-482910375612-5539201847-Qm7pTz2XvLk9RbN4cJ8YhW".into(),
        ),
        s(
            "glpat-Xk29PqLm4ZvT8RbN7cJw",
            "gitlab ci uses glpat-Xk29PqLm4ZvT8RbN7cJw for pushes".into(),
        ),
        s(
            "hf_QmZpTx7LkV2RbN9cJ4yWf8HsDg3AeUo1Ki6Xt",
            "hub token hf_QmZpTx7LkV2RbN9cJ4yWf8HsDg3AeUo1Ki6Xt".into(),
        ),
        s(
            "npm_Zt7QpX2mLk9VbR4NcJ8yWf3HsDg6AeUo1KiT",
            "//registry.example/:_authToken=npm_Zt7QpX2mLk9VbR4NcJ8yWf3HsDg6AeUo1KiT".into(),
        ),
        s(
            "Wq9!zP2rTm",
            "DATABASE_URL=postgres://billing:Wq9!zP2rTm@db.internal:5432/billing".into(),
        ),
        s(
            "Corr3ct-Horse-Battery",
            "password = \"Corr3ct-Horse-Battery\"".into(),
        ),
        s(
            "dop_v1_4f9a0c1e7b3d2a6f8e5c9b1d0a7f3e2c4b6d8a0f1e3c5b7d9a2f4e6c8b0d1a3f",
            "do token dop_v1_4f9a0c1e7b3d2a6f8e5c9b1d0a7f3e2c4b6d8a0f1e3c5b7d9a2f4e6c8b0d1a3f"
                .into(),
        ),
        s(
            "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",
            "shopify admin 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".into(),
        ),
        s(
            "6184930275:AAHk3Qx9PzT2mLv7RbN4cJ8yWf1HsDg6AeU",
            "telegram bot 6184930275:AAHk3Qx9PzT2mLv7RbN4cJ8yWf1HsDg6AeU".into(),
        ),
        (pem_body.to_string(), pem),
        // Written with escapes, as in JSON logs and config: glued to `\n`, a key block inside
        // a JSON string, a column-aligned assignment.
        s(
            "AKIAZ7QW3RT5YU8IO2PL",
            r#"{"log":"login ok\nAKIAZ7QW3RT5YU8IO2PL used"}"#.into(),
        ),
        s(
            "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQDqg9DQ7KBrnRDq",
            r#"{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----\nMIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQDqg9DQ7KBrnRDq\n-----END PRIVATE KEY-----\n"}"#.into(),
        ),
        s(
            "Tr0ub4dor-and-3x",
            "  password          = \"Tr0ub4dor-and-3x\"".into(),
        ),
    ]
}

/// The bytes whose presence in a request would be a leak: the secret, its common encodings
/// and every 12-byte fragment of it (of each line of a multi-line secret).
fn forbidden(secret: &str) -> Vec<String> {
    use std::fmt::Write;
    let mut out = vec![
        secret.to_string(),
        secret.to_lowercase(),
        secret.chars().rev().collect(),
        secret.bytes().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        }),
    ];
    for part in secret.lines() {
        let b = part.as_bytes();
        if b.len() <= 12 {
            out.push(part.to_string());
        } else {
            for w in b.windows(12) {
                out.push(String::from_utf8_lossy(w).into_owned());
            }
        }
    }
    out
}

fn code(c: &str) -> Reply {
    Reply::Text(format!("```python\n{c}\n```"))
}

/// Everything a hostile program would try, run over whatever the context holds.
const EXFILTRATE: &str = r#"
import base64, binascii, re, sys, urllib.parse
text = ctx.read(0, ctx.size)
lines = [l for l in text.splitlines() if l.strip()]
secretish = [l for l in lines if re.search(r'(AKIA|ghp_|sk_live|xoxb|glpat|hf_|npm_|postgres|password|dop_v1|shpat|:AA|BEGIN|MII|SECRET)', l)]
print('found', len(secretish))
for l in secretish:
    b = l.encode()
    print(base64.b64encode(b).decode())
    print(binascii.hexlify(b).decode())
    print(l[::-1])
    print(' '.join(l))
    print(l.lower())
    print(urllib.parse.quote(l))
    print(list(l))
    half = len(l) // 2
    sys.stdout.write(l[:half]); sys.stdout.flush()
    sys.stderr.write(l[half:] + '\n'); sys.stderr.flush()
print(text[:3000])
leak_a = [l[: len(l) // 2] for l in secretish]
leak_b = [l[len(l) // 2 :] for l in secretish]
"#;

#[test]
fn context_secrets_never_reach_the_provider_in_any_form() {
    let secrets = planted();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config-dump.txt");
    // The first two lines hold secrets (the system prompt's preview shows the first lines).
    let mut text = String::new();
    for (i, (_, line)) in secrets.iter().enumerate() {
        text.push_str(line);
        text.push('\n');
        for k in 0..20 {
            text.push_str(&format!(
                "service {i}.{k}: healthy, latency {} ms\n",
                k * 7 + i
            ));
        }
    }
    std::fs::write(&path, &text).unwrap();

    let server = LlmServer::start(|req, _| {
        let first = first_user(req);
        if !first.starts_with("Question: ROOT") {
            // Sub-calls and child runs answer with whatever they were given.
            return if first.starts_with("Question:") {
                match turns(req) {
                    0 => code(
                        "docs = ctx if isinstance(ctx, list) else [ctx]\nprint([d.read(0, d.size) for d in docs])",
                    ),
                    _ => code("FINAL('\\n'.join(open(d.path).read() for d in docs))"),
                }
            } else {
                Reply::Text(format!("echo: {first}"))
            };
        }
        match turns(req) {
            0 => code(EXFILTRATE),
            1 => code("for x in leak_b:\n    print(x)"),
            2 => code(
                "print(llm_query('Repeat these exactly: ' + ' | '.join(secretish)))\nprint(rlm_query('Report the data you were given', context='\\n'.join(secretish)))\nprint(rlm_query_batched(['a', 'b'], contexts=[text, secretish]))",
            ),
            3 => code("raise ValueError('; '.join(secretish))"),
            4 => code("joined = '\\n'.join(secretish)\nSHOW_VARS()\nprint(repr(joined))"),
            _ => code("FINAL('\\n'.join(secretish))"),
        }
    });
    let events: Arc<Mutex<Vec<RunEvent>>> = Arc::default();
    let log = Arc::new(Mutex::new(Vec::new()));
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let o = Orchestrator::builder()
        .base_url(server.base_url())
        .model("gpt-4o-mini")
        .max_depth(2)
        .trajectory(TrajectoryLog::to_writer(Sink(log.clone())))
        .build()
        .unwrap();
    let run = o.arun_observed("ROOT: audit the config", Some(Context::file(&path)));
    let ev = events.clone();
    let stream = run.events;
    let collector = std::thread::spawn(move || {
        while let Some(e) = stream.recv_blocking() {
            ev.lock().unwrap().push(e);
        }
    });
    let r = futures_lite::future::block_on(run.result);
    collector.join().unwrap();
    assert!(
        r.success,
        "{:?}\n{:#?}",
        r.error,
        r.steps
            .iter()
            .map(|s| (
                s.kind,
                s.input.chars().take(80).collect::<String>(),
                s.output.chars().take(300).collect::<String>()
            ))
            .collect::<Vec<_>>()
    );

    let sent = serde_json::to_string(&*server.requests.lock().unwrap()).unwrap();
    // JSON escapes newlines and some characters; compare against the decoded text too.
    let decoded: String = server
        .requests
        .lock()
        .unwrap()
        .iter()
        .flat_map(|q| q["messages"].as_array().cloned().unwrap_or_default())
        .filter_map(|m| m["content"].as_str().map(str::to_string))
        .collect::<Vec<_>>()
        .join("\n");
    let trajectory = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    let events = format!("{:?}", events.lock().unwrap());
    let answer = r.final_answer.clone().unwrap_or_default();
    assert!(
        decoded.contains("[SECRET:aws_access_key_id#1]"),
        "the model saw placeholders"
    );
    assert!(
        server.count() >= 8,
        "every exit was tried: {} requests",
        server.count()
    );
    for (secret, _) in &secrets {
        for f in forbidden(secret) {
            for (place, hay) in [
                ("request", &decoded),
                ("request JSON", &sent),
                ("trajectory", &trajectory),
                ("events", &events),
                ("final answer", &answer),
            ] {
                assert!(
                    !hay.contains(&f),
                    "a form of a secret ({f:?}) reached the {place}"
                );
            }
        }
    }
}

#[test]
fn placeholders_are_stable_and_can_be_revealed_to_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.txt");
    std::fs::write(
        &path,
        "primary AKIAQX4ZPJ7VB2KD9WME\nbackup AKIAZZ4ZPJ7VB2KD9WMQ\nprimary again AKIAQX4ZPJ7VB2KD9WME\n",
    )
    .unwrap();
    let server = LlmServer::start(|req, _| match turns(req) {
        0 => code(
            "import re\nprint(re.findall(r'\\[SECRET:[a-z_]+#\\d+\\]', ctx.read(0, ctx.size)))\nprint(ctx.size, ctx.line_count())",
        ),
        _ => code("FINAL('the primary key is ' + ctx.lines(1).split()[1])"),
    });
    for reveal in [false, true] {
        let o = Orchestrator::builder()
            .base_url(server.base_url())
            .setting("reveal_secrets", if reveal { "1" } else { "0" })
            .build()
            .unwrap();
        let r = o.run_with_context("q", Context::file(&path));
        let obs = &r
            .steps
            .iter()
            .find(|s| s.kind == rlm::StepKind::CodeExecution)
            .unwrap()
            .output;
        assert!(
            obs.contains("['[SECRET:aws_access_key_id#1]', '[SECRET:aws_access_key_id#2]', '[SECRET:aws_access_key_id#1]']"),
            "{obs}"
        );
        // Sizes and line numbers are those of the masked view.
        let masked = "primary [SECRET:aws_access_key_id#1]\nbackup [SECRET:aws_access_key_id#2]\nprimary again [SECRET:aws_access_key_id#1]\n";
        assert!(obs.contains(&format!("{} 3", masked.len())), "{obs}");
        let want = if reveal {
            "the primary key is AKIAQX4ZPJ7VB2KD9WME"
        } else {
            "the primary key is [SECRET:aws_access_key_id#1]"
        };
        assert_eq!(r.final_answer.as_deref(), Some(want));
    }
    // The file itself is untouched.
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("primary AKIA")
    );
}

/// Secrets that never were in a context: in the user's own query, the API key itself, a
/// secret-looking environment variable of the `rlm` process. The exit check masks or
/// redacts them.
#[test]
fn the_query_and_known_values_are_guarded_at_the_exit() {
    let server = LlmServer::start(|req, _| match turns(req) {
        0 => code("print('ok')"),
        _ => code("FINAL('done')"),
    });
    let key = "sk-proj-Qx7Lm2Vt9Rb4Nc8Jw3Hy6Fk1Ds5Ae0Uo";
    let env_secret = "zq8Vn3Lp0Rt7Wm2XkP5s";
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("trajectory.jsonl");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rlm"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("OPENAI_API_KEY", key)
        .env("BILLING_SERVICE_TOKEN", env_secret)
        .args([
            "run",
            "--quiet",
            "--json",
            "--log",
            log.to_str().unwrap(),
            "--base-url",
            &server.base_url(),
            &format!(
                "use {key} and {env_secret} and AKIAQX4ZPJ7VB2KD9WME and password=Sup3rS3cretPw to check"
            ),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent = server.all_requests();
    // Nor the trajectory, nor the result the CLI prints (its steps included).
    let trajectory = std::fs::read_to_string(&log).unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("\"steps\""), "{printed}");
    for s in [key, env_secret, "AKIAQX4ZPJ7VB2KD9WME", "Sup3rS3cretPw"] {
        assert!(!sent.contains(s), "{s} reached the provider");
        assert!(!trajectory.contains(s), "{s} is in the trajectory");
        assert!(!printed.contains(s), "{s} is in the printed result");
    }
    assert!(sent.contains("[SECRET:aws_access_key_id#1]"), "{sent}");
    assert!(sent.contains("[REDACTED:known_secret]"), "{sent}");
    // The key still authenticates (it is a header, never a message).
    let meta = server.meta.lock().unwrap();
    assert_eq!(
        meta[0].header("authorization"),
        Some(format!("Bearer {key}").as_str())
    );
}

/// A context file that changes during the run (appended to, as a live log is) could show
/// the code text no secret scan has seen: the run stops at the next block or sub-call, and
/// nothing written after the scan reaches the provider.
#[test]
fn a_context_file_changed_during_the_run_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.log");
    std::fs::write(&path, "12:00 service started\n12:01 all good\n".repeat(200)).unwrap();
    for via_subcall in [false, true] {
        let p = path.clone();
        let server = LlmServer::start(move |_, n| {
            if n == 0 {
                // The log grows after it was scanned.
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
                writeln!(f, "12:02 late line APPENDED-AFTER-SCAN-7731").unwrap();
                if via_subcall {
                    code("print(llm_query('summarise: ' + ctx.read(ctx.size - 200, 200)))")
                } else {
                    code("print(ctx.read(0, 100))")
                }
            } else {
                code("FINAL('done')")
            }
        });
        let o = Orchestrator::builder()
            .base_url(server.base_url())
            .model("gpt-4o-mini")
            .build()
            .unwrap();
        let r = o.run_with_context("what happened?", Context::file(&path));
        let err = r.error.as_ref().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            r.final_answer.is_none() && err.contains("changed after it was scanned"),
            "via_subcall={via_subcall}: {:?} {err}",
            r.final_answer
        );
        let sent = server.all_requests();
        assert!(!sent.contains("APPENDED-AFTER-SCAN"), "{sent}");
        assert_eq!(server.count(), 1, "no request after the change");
    }
}
