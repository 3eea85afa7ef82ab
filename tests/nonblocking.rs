//! The library never blocks the caller's executor: a run on a single-threaded executor, next
//! to a task that ticks every millisecond, whose code is killed at its time limit, whose
//! sandbox is torn down and whose trajectory goes to a slow disk. The ticker is never held
//! up for more than 50 ms.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rlm::llm::{Role, ScriptedLlm};
use rlm::{Orchestrator, TrajectoryLog};

/// A disk that takes 100 ms per write and per flush.
struct SlowDisk(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for SlowDisk {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::thread::sleep(Duration::from_millis(100));
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::thread::sleep(Duration::from_millis(100));
        Ok(())
    }
}

#[test]
fn the_callers_executor_is_never_held_up() {
    let llm = ScriptedLlm::new(|req| {
        let turn = req
            .messages
            .iter()
            .filter(|m| m.role == Role::Assistant)
            .count();
        Ok(match turn {
            // Killed at the 1 s limit: the sandbox is torn down and restarted.
            0 => "```python\nimport time\nfor _ in range(100): time.sleep(0.1)\n```".into(),
            1 => "```python\nx = sum(range(10**6))\nprint(x)\n```".into(),
            _ => "```python\nFINAL(x)\n```".into(),
        })
    });
    let written = Arc::new(std::sync::Mutex::new(Vec::new()));
    let o = Orchestrator::builder()
        .llm(llm)
        .execution_timeout(Duration::from_secs(1))
        .trajectory(TrajectoryLog::to_writer(SlowDisk(written.clone())))
        .build()
        .unwrap();
    let done = AtomicBool::new(false);
    let (result, worst) = futures_lite::future::block_on(futures_lite::future::zip(
        async {
            let r = o
                .arun_with_context("q", rlm::Context::text("some context\n"))
                .await;
            done.store(true, Ordering::SeqCst);
            r
        },
        async {
            let mut worst = Duration::ZERO;
            let mut last = Instant::now();
            while !done.load(Ordering::SeqCst) {
                smol::Timer::after(Duration::from_millis(1)).await;
                worst = worst.max(last.elapsed());
                last = Instant::now();
            }
            worst
        },
    ));
    assert_eq!(
        result.final_answer.as_deref(),
        Some("499999500000"),
        "{:?}",
        result.error
    );
    let killed = result
        .steps
        .iter()
        .any(|s| s.error.as_deref() == Some("timed out"));
    assert!(killed, "the first block was killed at its limit");
    let log = String::from_utf8(written.lock().unwrap().clone()).unwrap();
    assert!(
        log.lines().count() >= 8 && log.contains("\"type\":\"run_end\""),
        "the whole trajectory was written before the run returned"
    );
    assert!(
        worst < Duration::from_millis(50),
        "the executor was blocked for {worst:?}"
    );
}
