//! The Docker backend (feature `docker`) against a real engine: `DOCKER_HOST` or the default
//! socket. Skipped with a message when no engine answers or the image is absent (nothing is
//! ever pulled). The image comes from RLM_TEST_DOCKER_IMAGE (default `python:3.11-slim`).
#![cfg(feature = "docker")]

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rlm::sandbox::{ExecutionResult, NoHostCalls, SandboxSession, SessionSpec, from_config};
use rlm::{Error, SandboxConfig, SandboxKind};

static SERIAL: Mutex<()> = Mutex::new(());

fn config() -> Option<SandboxConfig> {
    let info = Command::new("docker")
        .args(["info", "--format", "{{json .Runtimes}}"])
        .output();
    let Some(info) = info.ok().filter(|o| o.status.success()) else {
        eprintln!(
            "SKIPPED: no Docker engine answers (DOCKER_HOST={}); start one or point DOCKER_HOST at podman's socket",
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unset".into())
        );
        return None;
    };
    let image =
        std::env::var("RLM_TEST_DOCKER_IMAGE").unwrap_or_else(|_| "python:3.11-slim".into());
    if !Command::new("docker")
        .args(["image", "inspect", &image])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!(
            "SKIPPED: image {image} is not present in the engine (set RLM_TEST_DOCKER_IMAGE)"
        );
        return None;
    }
    let _ = info;
    let mut c = rlm::Orchestrator::builder().resolve().unwrap().sandbox;
    c.kind = SandboxKind::Docker;
    c.docker_image = image;
    c.execution_timeout = Duration::from_secs(20);
    // Engines without (working) gVisor are accepted here as the explicit opt-in; results then
    // carry `unsafe_runtime`. The refusal path has its own test.
    c.allow_unsafe_runtime = true;
    Some(c)
}

fn start(c: &SandboxConfig, spec: SessionSpec) -> Box<dyn SandboxSession> {
    futures_lite::future::block_on(from_config(c).unwrap().start(spec))
        .expect("container session starts")
}

fn exec(s: &mut Box<dyn SandboxSession>, code: &str) -> ExecutionResult {
    futures_lite::future::block_on(s.execute(code, &NoHostCalls)).expect("runs")
}

fn our_containers() -> usize {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("name=rlm-{}-", std::process::id()),
        ])
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
        .unwrap_or(0)
}

#[test]
fn persistent_repl_output_and_containment() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(c) = config() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx.txt");
    std::fs::write(&ctx, "alpha\nbeta\ngamma\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&ctx, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut s = start(&c, SessionSpec::for_file(&ctx, 1 << 20).unwrap());
    let r = exec(
        &mut s,
        "x = 41\nimport os, subprocess\nprint('hi')\nos.write(1, b'raw\\n')\n_ = subprocess.run(['echo', 'child'])",
    );
    assert!(r.success(), "{r:?}");
    assert_eq!(r.stdout, "hi\nraw\nchild\n");
    let gvisor = exec(&mut s, "import os\nprint(os.uname().release)")
        .stdout
        .starts_with("4.4.0");
    assert_eq!(
        r.unsafe_runtime, !gvisor,
        "results are marked unsafe exactly when gVisor is not in use"
    );
    let r = exec(&mut s, "x + 1");
    assert_eq!(r.stdout, "42\n", "state persists");
    let r = exec(&mut s, "1/0");
    assert!(r.stderr.contains("ZeroDivisionError"));
    let probe = r#"import os, socket
print('uid', os.getuid())
print('lines', ctx.line_count(), ctx.search('beta')[0]['line'], context.split()[2])
for p in ['/usr/x', '/x', '/context/ctx.txt']:
    try:
        open(p, 'w'); print('WROTE', p)
    except OSError as e:
        print('denied', p)
import tempfile
open('ok', 'w').write('fine'); tempfile.mkstemp(); print('tmp ok', os.getcwd())
try:
    socket.create_connection(('1.1.1.1', 53), timeout=2); print('NETWORK')
except OSError as e:
    print('no network')
"#;
    let r = exec(&mut s, probe);
    let out = &r.stdout;
    assert!(
        out.contains("uid 65534") && out.contains("lines 3 2 gamma") && out.contains("tmp ok"),
        "{out} {}",
        r.stderr
    );
    assert!(!out.contains("WROTE") && !out.contains("NETWORK"), "{out}");
    drop(s);
    let t = Instant::now();
    while our_containers() > 0 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(our_containers(), 0, "containers left behind");
}

#[test]
fn timeout_kills_the_container_and_the_next_block_restarts() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut c) = config() else { return };
    c.execution_timeout = Duration::from_secs(2);
    let mut s = start(&c, SessionSpec::empty());
    exec(&mut s, "kept = 1");
    let r = exec(&mut s, "import time\ntime.sleep(60)");
    assert!(r.timed_out && r.state_lost, "{r:?}");
    let r = exec(&mut s, "print('kept' in globals())");
    assert!(r.restarted && r.stdout == "False\n", "{r:?}");
}

#[test]
fn gvisor_is_required_unless_unsafe_is_allowed() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut c) = config() else { return };
    c.allow_unsafe_runtime = false;
    match futures_lite::future::block_on(from_config(&c).unwrap().start(SessionSpec::empty())) {
        // A real gVisor engine: every result is safe.
        Ok(mut s) => assert!(!exec(&mut s, "print(1)").unsafe_runtime),
        // Anything else (no runsc, or an engine that ignores the runtime) is refused.
        Err(err) => {
            assert!(matches!(err, Error::Sandbox { .. }));
            assert!(
                err.to_string().contains("runsc")
                    && err.to_string().contains("RLM_ALLOW_UNSAFE_RUNTIME"),
                "{err}"
            );
        }
    }
    assert_eq!(our_containers(), 0);
}

#[test]
fn missing_images_are_never_pulled() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut c) = config() else { return };
    c.docker_image = "rlm-test/no-such-image:never".into();
    let err = futures_lite::future::block_on(from_config(&c).unwrap().start(SessionSpec::empty()))
        .err()
        .unwrap();
    assert!(err.to_string().contains("never pulls"), "{err}");
}
