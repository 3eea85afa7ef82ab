//! The Docker backend (feature `docker`) against a real engine: `DOCKER_HOST` or the default
//! socket. Skipped with a message when no engine answers or the image is absent (nothing is
//! ever pulled), unless RLM_REQUIRE_DOCKER=1 (CI), which turns that into a failure. The image
//! comes from RLM_TEST_DOCKER_IMAGE (default `python:3.11-slim`). `.ci/podman.sh` provides both
//! on a machine without Docker: podman's Docker API service and an image built offline.
#![cfg(feature = "docker")]

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rlm::sandbox::{
    ExecutionResult, HostCall, HostCalls, HostReply, NoHostCalls, ReplLost, SandboxSession,
    SessionSpec, from_config,
};
use rlm::{Error, SandboxConfig, SandboxKind};

static SERIAL: Mutex<()> = Mutex::new(());

/// Skips (returns `None`) with `why`, or fails where RLM_REQUIRE_DOCKER=1.
fn unavailable<T>(why: String) -> Option<T> {
    if std::env::var("RLM_REQUIRE_DOCKER").is_ok_and(|v| v == "1") {
        panic!(
            "RLM_REQUIRE_DOCKER=1 but {why} (CI: `eval \"$(bash .ci/podman.sh)\"` provides an engine and an image)"
        );
    }
    eprintln!("SKIPPED: {why}");
    None
}

fn image() -> String {
    std::env::var("RLM_TEST_DOCKER_IMAGE").unwrap_or_else(|_| "python:3.11-slim".into())
}

fn config() -> Option<SandboxConfig> {
    let info = Command::new("docker")
        .args(["info", "--format", "{{json .Runtimes}}"])
        .output();
    if !info.is_ok_and(|o| o.status.success()) {
        return unavailable(format!(
            "no Docker engine answers (DOCKER_HOST={}); start one or point DOCKER_HOST at podman's socket",
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unset".into())
        ));
    }
    let image = image();
    if !Command::new("docker")
        .args(["image", "inspect", &image])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return unavailable(format!(
            "image {image} is not present in the engine (set RLM_TEST_DOCKER_IMAGE)"
        ));
    }
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

/// The names of the containers (running or not) whose name starts with `prefix`.
fn containers(prefix: &str, all: bool) -> Vec<String> {
    let filter = format!("name={prefix}");
    let mut args = vec!["ps", "--format", "{{.Names}}", "--filter", &filter];
    if all {
        args.push("-a");
    }
    let out = Command::new("docker")
        .args(&args)
        .output()
        .expect("docker ps");
    assert!(out.status.success(), "docker ps: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // The filter matches anywhere in the name.
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Answers `llm_query(p)` with `echo: p`.
struct Echo;

impl HostCalls for Echo {
    fn call(&self, call: HostCall) -> rlm::BoxFuture<'_, HostReply> {
        let reply = match call {
            HostCall::LlmQuery { prompt, .. } => HostReply::Text(format!("echo: {prompt}")),
            other => HostReply::Raise(format!("unexpected {}", other.name())),
        };
        Box::pin(async move { reply })
    }
}

fn our_containers() -> usize {
    containers(&format!("rlm-{}-", std::process::id()), true).len()
}

/// Waits up to `limit` for `done`; true if it came.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while !done() {
        if t.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
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
    // Host calls: their replies reach the block through the driver's frame queue.
    let r = futures_lite::future::block_on(
        s.execute("print(llm_query('ping'), llm_query('pong'))", &Echo),
    )
    .expect("runs");
    assert_eq!(r.stdout, "echo: ping echo: pong\n", "{r:?}");
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
    let ours = format!("rlm-{}-", std::process::id());
    let before = containers(&ours, true);
    let mut s = start(&c, SessionSpec::empty());
    exec(&mut s, "kept = 1");
    let first: Vec<String> = containers(&ours, false)
        .into_iter()
        .filter(|n| !before.contains(n))
        .collect();
    assert_eq!(first.len(), 1, "{first:?}");
    let t = Instant::now();
    let r = exec(&mut s, "import time\ntime.sleep(60)");
    assert!(r.timed_out && r.state_lost, "{r:?}");
    assert!(
        matches!(r.lost_because, Some(ReplLost::TimedOut { .. })),
        "{r:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // The timed-out container itself is gone, not only its client.
    assert!(
        wait_for(Duration::from_secs(10), || !containers(&ours, true)
            .contains(&first[0])),
        "the timed-out container {} still exists",
        first[0]
    );
    let r = exec(&mut s, "print('kept' in globals())");
    assert!(r.restarted && r.stdout == "False\n", "{r:?}");
    drop(s);
    assert!(wait_for(Duration::from_secs(10), || our_containers() == 0));
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

#[test]
fn no_network_not_even_host_loopback() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(c) = config() else { return };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let mut s = start(&c, SessionSpec::empty());
    let r = exec(
        &mut s,
        &format!(
            r#"import socket
print('interfaces', sorted(n for _, n in socket.if_nameindex()))
try:
    socket.create_connection(('127.0.0.1', {port}), timeout=2); print('CONNECTED')
except OSError as e:
    print('connect failed', e)
"#
        ),
    );
    assert!(r.success(), "{r:?}");
    assert!(
        r.stdout.contains("connect failed") && !r.stdout.contains("CONNECTED"),
        "{}",
        r.stdout
    );
    // Only a loopback of its own: no interface leads anywhere.
    assert!(
        r.stdout.contains("interfaces ['lo']"),
        "the container has a network: {}",
        r.stdout
    );
    assert!(
        listener.accept().is_err(),
        "nothing reached the host listener"
    );
}

#[test]
fn host_files_are_invisible() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(c) = config() else { return };
    let repo = env!("CARGO_MANIFEST_DIR");
    let manifest = format!("{repo}/Cargo.toml");
    // What the host has in /root (this test's own home when run as root, like CI).
    let root_entries: Vec<String> = std::fs::read_dir("/root")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut s = start(&c, SessionSpec::empty());
    // /root is mode 700 on the host: unreadable for the sandbox user even if it were mounted,
    // so the mount table is asked too (mount point and source path of every mount).
    let probe = format!(
        r#"import os
for p in [{repo:?}, {manifest:?}, '/proc/1/root' + {manifest:?}]:
    try:
        os.stat(p); print('VISIBLE', p)
    except OSError as e:
        print('hidden', p, type(e).__name__)
try:
    print('root has', sorted(os.listdir('/root')))
except OSError as e:
    print('root unreadable', type(e).__name__)
for line in open('/proc/self/mountinfo'):
    f = line.split()
    for p in (f[3], f[4]):
        for host in ('/root', {repo:?}):
            if p == host or p.startswith(host + '/'):
                print('MOUNTED', host, line.strip())
"#
    );
    let r = exec(&mut s, &probe);
    assert!(r.success(), "{r:?}");
    let out = &r.stdout;
    assert!(
        !out.contains("VISIBLE") && !out.contains("MOUNTED"),
        "{out}"
    );
    assert_eq!(out.matches("hidden").count(), 3, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("root "))
        .unwrap_or_else(|| panic!("{out}"));
    let leaked: Vec<&String> = root_entries
        .iter()
        .filter(|e| line.contains(&format!("'{e}'")))
        .collect();
    assert!(
        leaked.is_empty(),
        "the host's /root shows through: {leaked:?} in {line}"
    );
}

#[test]
fn fork_bomb_is_bounded_by_the_pids_limit() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut c) = config() else { return };
    c.pids = 32;
    let mut s = start(&c, SessionSpec::empty());
    let r = exec(&mut s, support::FORK_BOMB);
    let forked = support::forked(&r.stdout).unwrap_or_else(|| panic!("{r:?}"));
    assert!(forked < 40, "process limit not enforced: {r:?}");
    let r = exec(&mut s, "print('still alive')");
    assert_eq!(r.stdout, "still alive\n", "{r:?}");
}

#[test]
fn memory_hog_hits_the_memory_limit() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut c) = config() else { return };
    c.memory_bytes = 256 << 20;
    let mut s = start(&c, SessionSpec::empty());
    // podman before 4.6 answers the docker CLI's `run --rm` (wait?condition=removed) with
    // status 0 whatever the container's real status (containers/podman#18889).
    let rm_status = Command::new("docker")
        .args(["run", "--rm", "--network", "none", "--", &c.docker_image])
        .args(["python3", "-c", "raise SystemExit(3)"])
        .stdin(Stdio::null())
        .status()
        .expect("docker run")
        .code();
    let oom_status = if rm_status == Some(3) { 137 } else { 0 };
    let t = Instant::now();
    let r = exec(&mut s, "blob = bytearray(2 << 30)\nprint('ALLOCATED')");
    assert!(!r.stdout.contains("ALLOCATED") && !r.timed_out, "{r:?}");
    // Either Python's MemoryError, or the engine's OOM killer ending the container (SIGKILL:
    // status 137 where the engine reports it; the container is removed at once, so its
    // OOMKilled flag cannot be asked for).
    let lost_status = match r.lost_because {
        Some(ReplLost::Exited { status, .. }) if r.state_lost => Some(status),
        _ => None,
    };
    assert!(
        r.memory_exceeded || lost_status == Some(oom_status),
        "{r:?} (`docker run --rm` reports status {rm_status:?} for 3)"
    );
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    let r = exec(&mut s, "print('ok after oom')");
    assert_eq!(r.stdout, "ok after oom\n", "{r:?}");
}

/// However the test ends: kills the `rlm` child and removes the containers named after it.
struct Reap(String, Option<std::process::Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(c) = &mut self.1 {
            let _ = c.kill();
            let _ = c.wait();
        }
        let filter = format!("name={}", self.0);
        if let Ok(out) = Command::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("docker").args(["rm", "-f", id]).output();
            }
        }
    }
}

/// `rlm` killed with SIGKILL (no chance to clean up): its docker client dies with it (death
/// signal), the engine closes the container's stdin, and the driver, which watches stdin
/// even while a block runs, exits; the container, `--rm`, disappears.
#[test]
fn the_container_dies_with_rlm() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(_) = config() else { return };
    let mut child = Command::new(env!("CARGO_BIN_EXE_rlm"))
        .args(["sandbox", "exec", "--timeout", "300"])
        .env("RLM_SANDBOX", "docker")
        .env("RLM_ALLOW_UNSAFE_RUNTIME", "1")
        .env("RLM_DOCKER_IMAGE", image())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rlm");
    let prefix = format!("rlm-{}-", child.id());
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"open('/work/started', 'w').close()\nimport time\ntime.sleep(120)")
        .unwrap();
    drop(stdin);
    let mut guard = Reap(prefix.clone(), Some(child));
    // Until the block runs: its marker file is there.
    let running = wait_for(Duration::from_secs(30), || {
        let started = containers(&prefix, false).first().is_some_and(|name| {
            Command::new("docker")
                .args(["exec", name, "cat", "/work/started"])
                .output()
                .is_ok_and(|o| o.status.success())
        });
        started
            || guard
                .1
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some())
    });
    let child = guard.1.as_mut().unwrap();
    if let Ok(Some(st)) = child.try_wait() {
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        panic!("rlm ended before its block ran: {st} {err}");
    }
    assert!(
        running,
        "no block running in a container {prefix}* within 30 s"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let t = Instant::now();
    let gone = wait_for(Duration::from_secs(20), || {
        containers(&prefix, true).is_empty()
    });
    assert!(
        gone,
        "the container outlived rlm by 20 s: {:?}",
        containers(&prefix, true)
    );
    eprintln!("container gone {:?} after rlm was killed", t.elapsed());
}

#[test]
fn contexts_travel_over_stdin_to_an_engine_without_our_files() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut c) = config() else { return };
    // What `auto` does when DOCKER_HOST names a remote engine.
    c.docker_ship_context = Some(true);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big-context.txt");
    let mut text = String::new();
    for i in 0..150_000 {
        text.push_str(&format!("line {i}: status ok\n"));
    }
    text.push_str("the needle is 7731\n");
    std::fs::write(&path, &text).unwrap();
    let mut s = start(&c, SessionSpec::for_file(&path, 1 << 20).unwrap());
    let r = exec(
        &mut s,
        "import os\nh = ctx.search('needle is')[0]\n\
         print(ctx.size, h['line'], h['text'].split()[-1], os.path.exists('/context'), os.listdir('/ctx'))\n\
         print(any('big-context' in l for l in open('/proc/mounts')))",
    );
    assert_eq!(
        r.stdout.trim(),
        format!("{} 150001 7731 False []\nFalse", text.len()),
        "{}",
        r.stderr
    );
    futures_lite::future::block_on(s.close());
}
