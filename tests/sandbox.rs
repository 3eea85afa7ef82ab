//! Hostile code against the real bubblewrap sandbox. Tests in this file are serialized so that
//! process counts are exact.
// `std::env::set_var` is unsafe in edition 2024; the tests here are serialized.
#![allow(unsafe_code)]

mod support;

use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rlm::sandbox::{ExecutionResult, NoHostCalls, SandboxSession, SessionSpec, from_config};
use rlm::{Error, SandboxConfig, SandboxKind};
use support::wait_no_descendants as wait_no_repl;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn cfg() -> SandboxConfig {
    let mut c = rlm::Orchestrator::builder().resolve().unwrap().sandbox;
    c.execution_timeout = Duration::from_secs(10);
    c
}

fn start(c: SandboxConfig) -> Box<dyn SandboxSession> {
    futures_lite::future::block_on(from_config(&c).unwrap().start(SessionSpec::empty()))
        .expect("bwrap sandbox starts")
}

fn exec(s: &mut Box<dyn SandboxSession>, code: &str) -> ExecutionResult {
    futures_lite::future::block_on(s.execute(code, &NoHostCalls)).expect("sandbox runs")
}

#[test]
fn persistent_state_exceptions_and_fd_level_capture() {
    let _g = serial();
    let mut s = start(cfg());
    let r = exec(
        &mut s,
        "import json\ndef f(x):\n    return x * 2\nstate = {'n': f(21)}",
    );
    assert!(r.success(), "{r:?}");
    let r = exec(&mut s, "raise ValueError('boom')");
    assert_eq!(r.exit_code, 1);
    assert!(r.stderr.contains("ValueError: boom"), "{}", r.stderr);
    let r = exec(
        &mut s,
        "import os, subprocess, sys\nprint(json.dumps(state))\nos.write(1, b'raw-fd\\n')\nsubprocess.run(['echo', 'from-child'])\nprint('err', file=sys.stderr)",
    );
    assert!(r.success(), "{r:?}");
    assert!(
        r.stdout.contains(r#"{"n": 42}"#)
            && r.stdout.contains("raw-fd")
            && r.stdout.contains("from-child"),
        "{}",
        r.stdout
    );
    assert_eq!(r.stderr, "err\n");
    let r = exec(&mut s, "import sys\nsys.exit(3)");
    assert!(
        r.stderr.contains("SystemExit"),
        "the REPL survives sys.exit"
    );
    let r = exec(&mut s, "state['n']");
    assert_eq!(r.stdout, "42\n", "a bare last expression is shown");
    drop(s);
    assert_eq!(wait_no_repl(2), 0);
}

#[test]
fn host_files_environment_and_cmdline_are_invisible() {
    let _g = serial();
    // SAFETY: tests in this binary are serialized by SERIAL; no other thread reads the env now.
    unsafe { std::env::set_var("RLM_TEST_HOST_SECRET", "hunter2-host-secret") };
    let cwd = std::env::current_dir().unwrap();
    let mut s = start(cfg());
    let probe = format!(
        r#"import os
print(sorted(os.listdir('/')))
for p in ['/etc/shadow', '/root', '/home', {cwd:?}, '/proc/1/root/etc/hostname']:
    try:
        os.stat(p); print('VISIBLE', p)
    except OSError as e:
        print('hidden', p, type(e).__name__)
print('environ', open('/proc/1/environ','rb').read(), dict(os.environ))
print('cmdline', open('/proc/1/cmdline','rb').read())
print('uid', os.getuid(), os.getgid())
print('caps', [l for l in open('/proc/self/status') if l.startswith(('CapEff','NoNewPrivs','Seccomp'))])
print('pids', sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))
"#,
        cwd = cwd.display().to_string()
    );
    let r = exec(&mut s, &probe);
    // SAFETY: as above.
    unsafe { std::env::remove_var("RLM_TEST_HOST_SECRET") };
    assert!(r.success(), "{r:?}");
    let out = r.stdout;
    assert!(!out.contains("VISIBLE"), "{out}");
    assert!(!out.contains("hunter2"), "host environment leaked: {out}");
    assert!(
        !out.contains(&cwd.display().to_string())
            || out.matches(&cwd.display().to_string()).count() == 1,
        "{out}"
    );
    assert!(out.contains("uid 65534 65534"), "{out}");
    assert!(
        out.contains("CapEff:\\t0000000000000000")
            && out.contains("NoNewPrivs:\\t1")
            && out.contains("Seccomp:\\t2"),
        "{out}"
    );
    assert!(
        out.contains("['bin', 'dev', 'etc', 'lib', 'lib64', 'opt', 'proc', 'sbin', 'tmp', 'usr']"),
        "{out}"
    );
    let cmdline = out.lines().find(|l| l.starts_with("cmdline")).unwrap();
    assert!(
        !cmdline.contains("/tmp/") && !cmdline.contains("--ro-bind"),
        "host paths in /proc/1/cmdline: {cmdline}"
    );
}

#[test]
fn no_network_not_even_host_loopback() {
    let _g = serial();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let mut s = start(cfg());
    let r = exec(
        &mut s,
        &format!(
            r#"import socket
for fam in (socket.AF_INET, socket.AF_INET6):
    try:
        c = socket.socket(fam); print('socket created', fam)
    except OSError as e:
        print('socket refused', e.errno)
try:
    socket.create_connection(('127.0.0.1', {port}), timeout=2); print('CONNECTED')
except OSError as e:
    print('connect failed', e)
a, b = socket.socketpair(); a.send(b'x'); print('unix ok', b.recv(1))
"#
        ),
    );
    assert!(
        !r.stdout.contains("CONNECTED") && !r.stdout.contains("socket created"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("socket refused 1"),
        "seccomp returns EPERM: {}",
        r.stdout
    );
    assert!(r.stdout.contains("unix ok"), "{}", r.stdout);
    assert!(
        listener.accept().is_err(),
        "nothing reached the host listener"
    );
}

#[test]
fn fork_bomb_is_bounded_and_host_survives() {
    let _g = serial();
    let mut c = cfg();
    c.pids = 32;
    let mut s = start(c);
    let r = exec(&mut s, support::FORK_BOMB);
    let forked = support::forked(&r.stdout).unwrap_or_else(|| panic!("{r:?}"));
    assert!(forked < 40, "process limit not enforced: {r:?}");
    let r = exec(&mut s, "print('still alive')");
    assert_eq!(r.stdout, "still alive\n");
}

#[test]
fn memory_bomb_hits_the_limit() {
    let _g = serial();
    let mut c = cfg();
    c.memory_bytes = 256 << 20;
    let mut s = start(c);
    let r = exec(&mut s, "blob = bytearray(2 << 30)");
    assert!(r.memory_exceeded, "{r:?}");
    let r = exec(&mut s, "print('ok after oom')");
    assert_eq!(r.stdout, "ok after oom\n");
}

#[test]
fn cpu_spin_and_sleep_are_killed_at_the_wall_clock_limit() {
    let _g = serial();
    let mut c = cfg();
    c.execution_timeout = Duration::from_millis(1500);
    let mut s = start(c);
    exec(&mut s, "kept = 1");
    for code in ["while True: pass", "import time\ntime.sleep(120)"] {
        let t = Instant::now();
        let r = exec(&mut s, code);
        assert!(r.timed_out && r.state_lost, "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert_eq!(wait_no_repl(2), 0, "the killed sandbox left processes");
        let r = exec(&mut s, "print('kept' in globals())");
        assert!(r.restarted, "the next block reports the restart");
        assert_eq!(r.stdout, "False\n");
        exec(&mut s, "kept = 1");
    }
}

#[test]
fn disk_fill_writes_outside_tmp_and_ptrace_fail() {
    let _g = serial();
    let mut c = cfg();
    c.tmpfs_bytes = 16 << 20;
    c.file_size_bytes = 8 << 20;
    let mut s = start(c);
    let r = exec(
        &mut s,
        r#"import os, ctypes, errno
def attempt(label, fn):
    try:
        fn(); print(label, 'OK')
    except OSError as e:
        print(label, 'denied', errno.errorcode.get(e.errno, e.errno))
attempt('bigfile', lambda: open('/tmp/big', 'wb').write(b'x' * (9 << 20)))
def fill():
    for i in range(10):
        with open(f'/tmp/f{i}', 'wb') as f:
            f.write(b'y' * (7 << 20))
attempt('fill', fill)
for p in ['/usr/evil', '/etc/evil', '/evil', '/opt/rlm/repl.py']:
    attempt('write ' + p, lambda p=p: open(p, 'w').write('x'))
libc = ctypes.CDLL(None, use_errno=True)
rc = libc.ptrace(16, 1, None, None)  # PTRACE_ATTACH to PID 1
print('ptrace', rc, errno.errorcode.get(ctypes.get_errno()))
"#,
    );
    let out = &r.stdout;
    assert!(out.contains("bigfile denied EFBIG"), "{out}");
    assert!(out.contains("fill denied ENOSPC"), "{out}");
    for p in ["/usr/evil", "/etc/evil", "/evil", "/opt/rlm/repl.py"] {
        assert!(out.contains(&format!("write {p} denied")), "{p}: {out}");
    }
    assert!(out.contains("ptrace -1 EPERM"), "{out}");
}

#[test]
fn signals_cannot_reach_the_host() {
    let _g = serial();
    let mut host_child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let mut s = start(cfg());
    let r = exec(
        &mut s,
        &format!(
            "import os\ntry:\n    os.kill({}, 9); print('KILLED')\nexcept OSError as e:\n    print('no', e.errno)\nos.kill(-1, 9)",
            host_child.id()
        ),
    );
    assert!(!r.stdout.contains("KILLED"), "{r:?}");
    assert!(
        host_child.try_wait().unwrap().is_none(),
        "a host process was killed from the sandbox"
    );
    host_child.kill().unwrap();
    host_child.wait().unwrap();
    let r = exec(&mut s, "print('recovered')");
    assert_eq!(r.stdout, "recovered\n");
}

#[test]
fn output_flood_is_capped_without_host_memory_growth() {
    let _g = serial();
    let mut c = cfg();
    c.max_output_bytes = 4000;
    let mut s = start(c);
    let t = Instant::now();
    let r = exec(
        &mut s,
        "import sys\nchunk = 'z' * 65536 + '\\n'\nfor i in range(3000):\n    sys.stdout.write(chunk)\nprint('THE END')",
    );
    assert!(r.success());
    assert!(r.stdout.len() < 4200, "{}", r.stdout.len());
    assert!(r.stdout.contains("bytes of output cut"));
    assert!(r.stdout.ends_with("THE END\n"));
    assert!(t.elapsed() < Duration::from_secs(20));
}

#[test]
fn dropping_a_running_execution_kills_the_sandbox_and_its_daemons() {
    let _g = serial();
    let mut s = start(cfg());
    // A daemonised grandchild (double fork, new session) next to a long sleep.
    let code = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(120)\n    os._exit(0)\ntime.sleep(60)";
    let fut = s.execute(code, &NoHostCalls);
    let r = futures_lite::future::block_on(futures_lite::future::or(
        async { Some(fut.await) },
        async {
            // Until the daemon runs: bwrap, its init in the sandbox, the REPL and the daemon.
            let t = Instant::now();
            while support::descendants().len() < 4 && t.elapsed() < Duration::from_secs(10) {
                blocking::unblock(|| std::thread::sleep(Duration::from_millis(20))).await;
            }
            None
        },
    ));
    assert!(r.is_none());
    let before = support::descendants().len();
    assert!(before >= 4, "the daemon was running ({before} processes)");
    let t = Instant::now();
    drop(s);
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "dropping a session does not wait for the sandbox to die ({:?})",
        t.elapsed()
    );
    assert_eq!(wait_no_repl(5), 0, "sandbox processes survived the drop");
}

#[test]
fn context_is_read_only_and_handle_methods_work() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("data.txt");
    let mut text = String::from("héllo wörld\n");
    for i in 2..=1000 {
        text.push_str(&format!("row {i} ÄÖÜ value={}\n", i * i));
    }
    std::fs::write(&p, &text).unwrap();
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let spec_for = |path: &std::path::Path, code: &str| {
        let lc = rlm::Context::file(path);

        // The scripted model answers with a literal: no evidence check.
        rlm::Orchestrator::builder()
            .llm(rlm::llm::ScriptedLlm::replies([code]))
            .setting("RLM_REQUIRE_EVIDENCE", "0")
            .build()
            .unwrap()
            .run_with_context("q", lc)
    };
    let r = spec_for(
        &p,
        "```python\nimport os\ntry:\n    open(ctx.path, 'r+'); print('WRITABLE')\nexcept OSError as e:\n    print('ro', e.errno)\nprint(ctx.size, ctx.line_count())\nprint(repr(ctx.read(1, 2)))\nprint(repr(ctx.head(6)), repr(ctx.tail(8)))\nprint(repr(ctx.lines(2, 3)))\nprint(ctx.search(r'value=9801', max_results=5))\nprint([(h['line'], h['match']) for h in ctx.search(r'value=9801', max_results=5)])\nprint(len(ctx.search('äöü', max_results=3, ignore_case=True)))\nprint(sum(len(c.encode()) for c in ctx.chunks(1000)) == ctx.size)\ntry:\n    ctx.search('(')\nexcept ValueError as e:\n    print('bad regex:', str(e)[:40])\nFINAL('done')\n```",
    );
    assert!(r.success, "{:?}", r.error);
    let out = &r.steps[1].output;
    assert!(!out.contains("WRITABLE"), "{out}");
    assert!(out.contains(&format!("{} 1000", text.len())), "{out}");
    assert!(out.contains("'é'"), "read snaps to whole characters: {out}");
    assert!(
        out.contains("'héllo'") && out.contains("'1000000\\n'"),
        "{out}"
    );
    assert!(
        out.contains("'row 2 ÄÖÜ value=4\\nrow 3 ÄÖÜ value=9\\n'"),
        "{out}"
    );
    assert!(
        out.contains("(99, 'value=9801'), (990, 'value=9801')"),
        "{out}"
    );
    assert!(
        out.contains("{'line': 99, 'text': 'row 99 ÄÖÜ value=9801'}"),
        "a printed hit shows its line and text: {out}"
    );
    assert!(out.contains("\n3\n"), "unicode case folding: {out}");
    assert!(out.contains("True"), "{out}");
    assert!(
        out.contains("bad regex: ctx.search: invalid regular expression"),
        "{out}"
    );
    // open() of the context's own name reads it (read-only); an empty search explains itself.
    let r = spec_for(
        &p,
        "```python\nwith open('data.txt') as f:\n    first = f.readline()\ntry:\n    open('data.txt', 'w')\nexcept PermissionError as e:\n    print('ro:', e)\nprint(first.strip(), ctx.search('no-such-thing'))\nFINAL('done')\n```",
    );
    let out = &r.steps[1].output;
    assert!(out.contains("héllo wörld []"), "{out}");
    assert!(
        out.contains("ro: the context 'data.txt' is read-only"),
        "{out}"
    );
    assert!(
        out.contains("ctx.search('no-such-thing') found no match"),
        "{out}"
    );
    let r = spec_for(
        &empty,
        "```python\nprint(ctx.size, ctx.line_count(), repr(ctx.head()), ctx.search('x'), list(ctx.chunks(10)), repr(ctx.lines(1)))\nFINAL('ok')\n```",
    );
    assert!(r.success);
    assert!(
        r.steps[1].output.contains("0 0 '' [] [] ''"),
        "{}",
        r.steps[1].output
    );
    // The context file is untouched.
    let mut now = String::new();
    std::fs::File::open(&p)
        .unwrap()
        .read_to_string(&mut now)
        .unwrap();
    assert_eq!(now, text);
}

#[test]
fn fails_closed_without_bwrap_and_unsafe_is_explicit() {
    let _g = serial();
    let mut c = cfg();
    c.bwrap = "/nonexistent/bwrap".into();
    let start_err = |c: &SandboxConfig| {
        futures_lite::future::block_on(from_config(c).unwrap().start(SessionSpec::empty()))
            .err()
            .expect("no sandbox without bwrap")
    };
    let err = start_err(&c);
    assert!(matches!(err, Error::Sandbox { .. }));
    assert!(
        err.to_string().contains("apt-get install bubblewrap"),
        "{err}"
    );
    assert!(err.to_string().contains("RLM_SANDBOX"), "{err}");
    // Allowing the unsafe runtime does not turn a missing bwrap into a silent fall-back.
    c.allow_unsafe_runtime = true;
    assert!(matches!(start_err(&c), Error::Sandbox { .. }));
    // The unisolated backend is only there when named and allowed.
    let mut u = cfg();
    u.kind = SandboxKind::Unsafe;
    assert!(from_config(&u).is_err());
    u.allow_unsafe_runtime = true;
    let mut s =
        futures_lite::future::block_on(from_config(&u).unwrap().start(SessionSpec::empty()))
            .unwrap();
    let r = exec(&mut s, "import os\nx = 5\nprint(x, os.geteuid() != 0)");
    assert!(r.unsafe_runtime, "{r:?}");
    assert_eq!(
        r.stdout, "5 True\n",
        "the unsafe runtime never runs code as root"
    );
    drop(s);
    assert_eq!(wait_no_repl(2), 0);
}

#[test]
fn a_crashed_repl_is_restarted_and_nothing_is_left() {
    let _g = serial();
    let mut s = start(cfg());
    exec(&mut s, "kept = 1");
    let r = exec(&mut s, "import os\nos._exit(7)");
    assert!(r.state_lost && r.exit_code == 7, "{r:?}");
    assert!(
        matches!(
            r.lost_because,
            Some(rlm::sandbox::ReplLost::Exited { status: 7, .. })
        ),
        "{r:?}"
    );
    let r = exec(&mut s, "print('kept' in globals())");
    assert!(r.restarted);
    assert_eq!(r.stdout, "False\n");
    let r = exec(
        &mut s,
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
    );
    assert!(r.state_lost, "{r:?}");
    assert_eq!(exec(&mut s, "print(2)").stdout, "2\n");
    drop(s);
    assert_eq!(wait_no_repl(2), 0);
}

/// In-memory contexts are written to private temporary directories; a run whose REPL crashes
/// (and one that is cancelled) leaves none behind.
#[test]
fn runs_leave_no_temporary_files() {
    let _g = serial();
    let tmp = std::env::temp_dir();
    // What the library still removes in the background (earlier tests' sandboxes, this
    // test's) is waited for, as the `rlm` command does before it exits.
    let ours = || {
        assert!(rlm::wait_for_cleanup(Duration::from_secs(10)));
        support::ours_in(&[&tmp])
    };
    let llm = rlm::llm::ScriptedLlm::new(|req| {
        Ok(
            match req
                .messages
                .iter()
                .filter(|m| m.role == rlm::llm::Role::Assistant)
                .count()
            {
                0 => "```python\nprint(len(ctx))\nimport os\nos._exit(3)\n```".into(),
                _ => "```python\nFINAL('after the crash')\n```".into(),
            },
        )
    });
    let o = rlm::Orchestrator::builder().llm(llm).build().unwrap();
    let r = o.run_with_context("q", rlm::Context::documents(["one", "two"]));
    assert_eq!(
        r.final_answer.as_deref(),
        Some("after the crash"),
        "{:?}",
        r.error
    );
    assert!(
        ours().is_empty(),
        "temporary directories left behind: {:?}",
        ours()
    );
    // A run dropped while its code runs.
    let slow =
        rlm::llm::ScriptedLlm::new(|_| Ok("```python\nimport time\ntime.sleep(30)\n```".into()));
    let o = rlm::Orchestrator::builder().llm(slow).build().unwrap();
    let run = o.arun_with_context("q", rlm::Context::text("some text"));
    let r = futures_lite::future::block_on(futures_lite::future::or(
        async { Some(run.await) },
        async {
            let t = Instant::now();
            while support::descendants().is_empty() && t.elapsed() < Duration::from_secs(10) {
                blocking::unblock(|| std::thread::sleep(Duration::from_millis(20))).await;
            }
            blocking::unblock(|| std::thread::sleep(Duration::from_millis(300))).await;
            None
        },
    ));
    assert!(r.is_none());
    assert_eq!(wait_no_repl(2), 0);
    assert!(
        ours().is_empty(),
        "temporary directories left behind: {:?}",
        ours()
    );
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
}

#[test]
fn a_thread_left_by_an_earlier_block_cannot_end_or_talk_for_a_later_one() {
    let _g = serial();
    let mut s = start(cfg());
    // A thread that tries to end the next block with its own answer.
    exec(
        &mut s,
        "import threading, time\ndef later():\n    time.sleep(0.3)\n    FINAL('forged')\nthreading.Thread(target=later).start()",
    );
    let r = exec(&mut s, "import time\ntime.sleep(1)\nprint('block two')");
    assert_eq!(r.final_answer, None, "{r:?}");
    assert!(r.stdout.contains("block two"));
    assert!(
        r.stderr
            .contains("FINAL must be called from the code block itself"),
        "{}",
        r.stderr
    );
    // A thread that makes a host call while no block runs: the next block finds the frame
    // and the REPL is replaced.
    exec(
        &mut s,
        "import threading, time\nkept = 1\ndef later():\n    time.sleep(0.2)\n    llm_query('between blocks')\nthreading.Thread(target=later, daemon=True).start()",
    );
    std::thread::sleep(Duration::from_millis(600));
    let r = exec(&mut s, "print('next')");
    assert!(
        matches!(
            r.lost_because,
            Some(rlm::sandbox::ReplLost::ProtocolViolation { .. })
        ),
        "{r:?}"
    );
    assert!(r.state_lost);
    let r = exec(&mut s, "print('kept' in globals())");
    assert!(r.restarted && r.stdout == "False\n", "{r:?}");
    drop(s);
    assert_eq!(wait_no_repl(5), 0);
}

/// Several processes that each stay under the per-process limit but together exceed the
/// sandbox's memory: the sandbox's cgroup stops them, the block reports the memory limit,
/// and the host (this test process) is unaffected.
#[test]
fn processes_together_over_the_memory_limit_end_as_memory_exceeded() {
    let _g = serial();
    let mut c = cfg();
    c.memory_bytes = 256 << 20;
    let mut s = start(c);
    let r = exec(&mut s, "print('probe')");
    if r.cgroup.is_none() {
        assert!(!is_root(), "a root host must give sandboxes a cgroup");
        eprintln!("SKIPPED: no cgroups for a non-root caller (per-process rlimits only)");
        return;
    }
    assert!(
        r.cgroup
            .as_deref()
            .unwrap()
            .contains("memory 268435456 bytes"),
        "{r:?}"
    );
    let r = exec(
        &mut s,
        "import subprocess, sys\nkids = [subprocess.Popen([sys.executable, '-c', 'x = bytearray(120 << 20)\\nimport time\\ntime.sleep(20)']) for _ in range(4)]\nimport time\ntime.sleep(3)\nprint([k.poll() for k in kids])\nfor k in kids:\n    k.kill()",
    );
    assert!(r.memory_exceeded, "{r:?}");
    // The sandbox still works (restarted if the REPL itself was chosen).
    let r = exec(&mut s, "print(6 * 7)");
    assert_eq!(r.stdout, "42\n", "{r:?}");
    drop(s);
    assert_eq!(wait_no_repl(5), 0);
    // Its cgroups are gone too (removed in the background once the sandbox is reaped).
    let ours = || {
        support::ours_in(&[
            std::path::Path::new("/sys/fs/cgroup/pids"),
            std::path::Path::new("/sys/fs/cgroup/unified"),
        ])
    };
    let t = Instant::now();
    while !ours().is_empty() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ours().is_empty(), "cgroups left behind: {:?}", ours());
}

#[test]
fn dev_is_read_only_and_shm_is_small() {
    let _g = serial();
    let mut s = start(cfg());
    let r = exec(
        &mut s,
        "import os, errno\ntry:\n    open('/dev/evil', 'w')\nexcept OSError as e:\n    print('dev', errno.errorcode[e.errno])\nwith open('/dev/null', 'w') as f:\n    f.write('ok')\ntry:\n    with open('/dev/shm/big', 'wb') as f:\n        f.write(b'x' * (64 << 20))\nexcept OSError as e:\n    print('shm', errno.errorcode[e.errno])\nos.remove('/dev/shm/big')\nimport multiprocessing as mp\nq = mp.Queue(); p = mp.Process(target=q.put, args=(5,)); p.start(); print('mp', q.get()); p.join()",
    );
    assert!(
        r.stdout.contains("dev EROFS")
            && r.stdout.contains("shm ENOSPC")
            && r.stdout.contains("mp 5"),
        "{r:?}"
    );
}

#[test]
fn namespaces_and_risky_syscalls_are_refused() {
    let _g = serial();
    let mut s = start(cfg());
    let r = exec(
        &mut s,
        r#"import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
def call(nr, *args):
    r = libc.syscall(nr, *[ctypes.c_long(a) for a in args])
    return errno.errorcode.get(ctypes.get_errno(), 'ok') if r < 0 else 'ok'
print('unshare', call(272, 0x10000000))
print('clone-newnet', call(56, 0x40000000 | 17, 0, 0, 0, 0))
print('clone3', call(435, 0, 0))
print('memfd_secret', call(447, 0))
print('pidfd_getfd', call(438, 0, 0, 0))
print('modify_ldt', call(154, 0, 0, 0))
import os
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
print('fork ok')"#,
    );
    for want in [
        "unshare EPERM",
        "clone-newnet EPERM",
        "clone3 ENOSYS",
        "memfd_secret EPERM",
        "pidfd_getfd EPERM",
        "modify_ldt EPERM",
        "fork ok",
    ] {
        assert!(r.stdout.contains(want), "{want}: {r:?}");
    }
}

/// CSV with a header and JSON lines read as records: `ctx.records()` gives dicts (CSV numbers
/// converted, ids with leading zeros kept as text), search hits carry their record's fields, a
/// missing field names the real ones, capped searches say how many matches there are in all,
/// and the common standard modules need no import. Plain text has no records.
#[test]
fn records_hits_with_fields_and_search_totals() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("staff.csv");
    let mut text = String::from("id,name,dept,salary\n");
    for i in 0..300 {
        text.push_str(&format!(
            "0{i:04},Person {i},{},{}\n",
            ["Sales", "Legal"][i % 2],
            1000 + i
        ));
    }
    std::fs::write(&csv, &text).unwrap();
    let jsonl = dir.path().join("devices.jsonl");
    std::fs::write(
        &jsonl,
        "{\"device_id\": \"D-1\", \"firmware\": \"3.1.4\"}\n{\"device_id\": \"D-2\", \"firmware\": \"2.0.0\"}\n",
    )
    .unwrap();
    let plain = dir.path().join("notes.txt");
    std::fs::write(&plain, "alpha beta\ngamma delta\n").unwrap();
    let session = |p: &std::path::Path| {
        let spec = SessionSpec::for_file(p, 0).unwrap();
        futures_lite::future::block_on(from_config(&cfg()).unwrap().start(spec)).unwrap()
    };
    let mut s = session(&csv);
    let r = exec(
        &mut s,
        "rows = list(ctx.records())\n\
         print(len(rows), rows[0])\n\
         print(sum(r['salary'] for r in rows if r['dept'] == 'Sales'))\n\
         h = ctx.search(r'Person 7\\b')[0]\n\
         print(h['name'], h['salary'], h['record']['id'], h.dept)\n\
         hits = ctx.search('Sales', max_results=5)\n\
         print(len(hits), hits.total, ctx.count('Sales'))\n\
         try:\n    h['price']\nexcept KeyError as e:\n    print('KeyError', e)\n\
         print(json.dumps({'n': 1}), re.sub('a', 'b', 'a'), collections.Counter('aab').most_common(1))",
    );
    assert!(r.stderr.is_empty(), "{r:?}");
    let out = &r.stdout;
    assert!(
        out.contains("300 {'id': '00000', 'name': 'Person 0', 'dept': 'Sales', 'salary': 1000}"),
        "{out}"
    );
    let sales: i64 = (0..300).filter(|i| i % 2 == 0).map(|i| 1000 + i).sum();
    assert!(out.contains(&format!("\n{sales}\n")), "{out}");
    assert!(out.contains("Person 7 1007 00007 Legal"), "{out}");
    assert!(out.contains("holds 5 of the 150 matches"), "{out}");
    assert!(out.contains("5 150 150"), "{out}");
    assert!(out.contains("the fields id, name, dept, salary"), "{out}");
    assert!(out.contains("{\"n\": 1} b [('a', 2)]"), "{out}");

    // A search holds at most max_results hits (20 by default), built as they are read;
    // its total and the note say how many there are in all; search_all has every one.
    let r = exec(
        &mut s,
        "some = ctx.search('Sales')\n\
         print(len(some), some.total, some[-1]['id'], len(some[15:]), len(list(ctx.search_all('Sales'))))\n\
         print(sum(h['salary'] for h in ctx.search('Sales', max_results=150)))",
    );
    assert!(r.stderr.is_empty(), "{r:?}");
    assert!(r.stdout.contains("20 150 00038 5 150"), "{}", r.stdout);
    assert!(
        r.stdout.contains("holds 20 of the 150 matches"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains(&format!("\n{sales}\n")), "{}", r.stdout);

    // A NameError says what the code probably meant: an assignment that never ran, a
    // method of the context handle, a provided name in another case.
    let r = exec(
        &mut s,
        "for h in ctx.search('Person 1'):\n    if h['dept'] == 'Marketing':\n        found = h\nprint(found)",
    );
    assert!(
        r.stderr
            .contains("Your code assigns found, but that line never ran"),
        "{r:?}"
    );
    let r = exec(&mut s, "print(count('Sales'))");
    assert!(
        r.stderr.contains("count is a method of the context handle"),
        "{r:?}"
    );
    let r = exec(&mut s, "print(Ctx.size)");
    assert!(r.stderr.contains("Did you mean ctx?"), "{r:?}");

    let mut s = session(&jsonl);
    let r = exec(
        &mut s,
        "print([r['firmware'] for r in ctx.records()], ctx.search('D-2')[0]['firmware'])",
    );
    assert!(r.stdout.contains("['3.1.4', '2.0.0'] 2.0.0"), "{r:?}");

    let mut s = session(&plain);
    let r = exec(
        &mut s,
        "print(sorted(ctx.search('gamma')[0]))\ntry:\n    list(ctx.records())\nexcept ValueError as e:\n    print('no records')",
    );
    assert!(
        r.stdout.contains("['line', 'match', 'offset', 'text']") && r.stdout.contains("no records"),
        "{r:?}"
    );
}

/// Seconds since boot, the clock of `/proc/PID/stat` start times.
fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn pooled_sandboxes_start_ahead_get_their_context_and_are_never_reused() {
    use rlm::llm::ScriptedLlm;
    use rlm::{Context, Orchestrator};
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.txt");
    let mut text = String::new();
    for i in 0..5000 {
        text.push_str(&format!("line {i}: status ok\n"));
    }
    text.push_str("line 5000: the secret code is 7731\n");
    std::fs::write(&path, &text).unwrap();
    // Each run reports whether an earlier run's variable is visible, whether its REPL
    // process started before the run did (the query carries the run's start, in seconds
    // since boot), and what it reads of its context.
    const PROBE: &str = "import os, resource\nseen = 'marker' in globals()\nmarker = 1\n\
        nf = resource.getrlimit(resource.RLIMIT_NOFILE)[0]\n\
        t0 = QUERY\n\
        st = int(open('/proc/self/stat').read().rsplit(')', 1)[1].split()[19]) / os.sysconf('SC_CLK_TCK')\n";
    let o = Orchestrator::builder()
        .llm(ScriptedLlm::new(|req| {
            let q = req.messages[1].content.clone();
            let t0 = q.split("t0=").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or("0");
            let probe = PROBE.replace("QUERY", t0);
            Ok(if q.contains("FILE") {
                format!("```python\n{probe}code = ctx.search(r'secret code is (\\d+)')[0]['match'].split()[-1]\nFINAL(f'{{seen}} {{st < t0}} {{nf}} {{code}} {{len(context)}}')\n```")
            } else {
                format!("```python\n{probe}FINAL(f'{{seen}} {{st < t0}} {{nf}} {{len(context)}} {{context[1]}} {{ctx[1].size}}')\n```")
            })
        }))
        .setting("sandbox_pool", "2")
        // Below what a pooled REPL starts with (room for 64 files): each session's REPL
        // must end up with the limit a fresh one would have.
        .setting("open_files_limit", "50")
        // The probe's answer is computed, not seen in an output: no second asking.
        .setting("require_evidence", "0")
        .build()
        .unwrap();
    // The pool fills before any run asks for a sandbox.
    let deadline = Instant::now() + Duration::from_secs(20);
    while support::descendants().len() < 4 {
        assert!(Instant::now() < deadline, "the pool never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    for round in 0..3 {
        let r = o.run_with_context(
            format!("FILE: find the code\nt0={}", uptime()),
            Context::file(&path),
        );
        let answer = r.final_answer.clone().unwrap_or_default();
        let want = format!("False True 50 7731 {}", text.len());
        if round == 0 {
            assert_eq!(
                answer,
                want,
                "{:?} {:?}",
                r.error,
                r.steps
                    .iter()
                    .take(3)
                    .map(|s| (&s.input, &s.output))
                    .collect::<Vec<_>>()
            );
        } else {
            // Later runs may get a fresh sandbox when the pool has not refilled yet.
            assert_eq!(answer.replace(" False ", " True "), want, "{:?}", r.error);
        }
        let r = o.run_with_context(
            format!("DOCS\nt0={}", uptime()),
            Context::documents(["alpha", "beta"]),
        );
        let answer = r.final_answer.clone().unwrap_or_default();
        if round == 0 {
            assert_eq!(answer, "False True 50 2 beta 4", "{:?}", r.error);
        } else {
            assert_eq!(
                answer.replace(" False ", " True "),
                "False True 50 2 beta 4",
                "{:?}",
                r.error
            );
        }
    }
    drop(o);
    assert_eq!(
        wait_no_repl(10),
        0,
        "the pool's sandboxes are gone with the orchestrator"
    );
}
