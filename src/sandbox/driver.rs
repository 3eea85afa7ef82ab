//! The Python driver that runs inside every sandbox (standard library only), and the names
//! it defines for the model's code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// The driver's source, embedded.
pub(crate) const REPL_DRIVER: &str = include_str!("repl.py");

/// The driver compiled by `python` into a `.pyc` image (its magic number, an empty header and
/// the marshalled code), made once per interpreter (its path and the identity and age of
/// the file it names, so an upgraded interpreter gets a new one) and process: a sandbox that
/// runs it skips compiling the driver at every start (about 5 ms of CPU each). `None` when
/// that interpreter cannot make one in [`COMPILE_TIMEOUT`]; the source is used then.
/// Blocking (it runs `python` once).
pub(crate) fn compiled_driver(python: &Path) -> Option<Arc<[u8]>> {
    use std::os::unix::fs::MetadataExt;
    type Key = (PathBuf, u64, u64, i64, u64);
    type Compiled = HashMap<Key, Option<Arc<[u8]>>>;
    static CACHE: OnceLock<Mutex<Compiled>> = OnceLock::new();
    let m = std::fs::metadata(python).ok()?;
    let key = (python.to_path_buf(), m.dev(), m.ino(), m.mtime(), m.size());
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return hit.clone();
    }
    let made = compile_with(python).map(Arc::from);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, made.clone());
    made
}

/// How long compiling the driver may take.
const COMPILE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn compile_with(python: &Path) -> Option<Vec<u8>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    const COMPILE: &str = "import importlib.util, marshal, sys\n\
        code = compile(sys.stdin.buffer.read(), '/opt/rlm/repl.py', 'exec')\n\
        sys.stdout.buffer.write(importlib.util.MAGIC_NUMBER + bytes(12) + marshal.dumps(code))\n";
    let mut child = Command::new(python)
        .args(["-I", "-S", "-B", "-c", COMPILE])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let pid = child.id();
    let mut stdin = child.stdin.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let written = stdin.write_all(REPL_DRIVER.as_bytes());
        drop(stdin);
        let _ = tx.send((written, child.wait_with_output()));
    });
    match rx.recv_timeout(COMPILE_TIMEOUT) {
        Ok((Ok(()), Ok(out))) if out.status.success() && out.stdout.len() > 16 => Some(out.stdout),
        Ok(_) => None,
        Err(_) => {
            // Stuck: killed (the waiting thread then reaps it and ends).
            let _ = super::sys::kill_one(pid);
            None
        }
    }
}

/// Names the REPL defines for the model's code. The system prompt names exactly these (a
/// test checks both against the real REPL).
pub(crate) const REPL_FUNCTIONS: &[&str] = &[
    "FINAL",
    "final",
    "FINAL_VAR",
    "SHOW_VARS",
    "llm_query",
    "llm_query_batched",
    "rlm_query",
    "rlm_query_batched",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_driver_compiles_once_per_interpreter_into_a_pyc_it_accepts() {
        let python = Path::new("/usr/bin/python3");
        if !python.exists() {
            return;
        }
        let pyc = compiled_driver(python).expect("a pyc image");
        let again = compiled_driver(python).unwrap();
        assert!(Arc::ptr_eq(&pyc, &again), "made once");
        // The interpreter runs it as a script: the driver's code starts (and stops at its
        // protocol descriptor 3, not open here).
        let dir = std::env::temp_dir().join(format!("rlm-pyc-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("repl.pyc");
        std::fs::write(&file, &pyc[..]).unwrap();
        let st = std::process::Command::new(python)
            .args(["-I", "-S", "-B"])
            .arg(&file)
            .env("RLM_CONTEXT_SPEC", "{}")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let err = String::from_utf8_lossy(&st.stderr);
        assert!(err.contains("Bad file descriptor"), "{err}");
        assert!(err.contains("/opt/rlm/repl.py"), "{err}");
    }
}
