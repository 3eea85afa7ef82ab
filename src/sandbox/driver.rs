//! The Python driver that runs inside every sandbox (standard library only), and the names
//! it defines for the model's code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// The driver's source, embedded.
pub(crate) const REPL_DRIVER: &str = include_str!("repl.py");

/// The driver compiled by `python` into a `.pyc` image (its magic number, an empty header and
/// the marshalled code), made once per interpreter and process: a sandbox that runs it skips
/// compiling the driver at every start (about 5 ms of CPU each). `None` when that
/// interpreter cannot make one; the source is used then. Blocking (it runs `python` once).
pub(crate) fn compiled_driver(python: &Path) -> Option<Arc<[u8]>> {
    type Compiled = HashMap<PathBuf, Option<Arc<[u8]>>>;
    static CACHE: OnceLock<Mutex<Compiled>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(python) {
        return hit.clone();
    }
    let made = compile_with(python).map(Arc::from);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(python.to_path_buf(), made.clone());
    made
}

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
    let mut stdin = child.stdin.take()?;
    let written = stdin.write_all(REPL_DRIVER.as_bytes());
    drop(stdin);
    let out = child.wait_with_output().ok()?;
    (written.is_ok() && out.status.success() && out.stdout.len() > 16).then_some(out.stdout)
}

/// Names the REPL defines for the model's code. The system prompt names exactly these (a
/// test checks both against the real REPL).
#[cfg_attr(not(test), allow(dead_code))]
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
