//! The out-of-the-box local model: `rlm setup` installs llama.cpp's `llama-server` and a small
//! coding model into the cache directory; `rlm run` without a configured provider starts the
//! server on a free loopback port, waits for health, and stops it when done. Within one
//! process the server is reused (`rlm demo --runs N`, the test tier); separate processes start
//! their own, so one never stops a server another is using.

use std::io::{Read, Seek};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The set-up script, embedded in the binary.
pub const SETUP_SCRIPT: &str = include_str!("../setup/local_model.sh");

/// Model name the local server is addressed with.
pub const MODEL_NAME: &str = "qwen2.5-coder-1.5b-instruct";

/// `$RLM_CACHE_DIR`, else `~/.cache/rlm`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("RLM_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/tmp"));
            home.join(".cache").join("rlm")
        })
}

/// One of the local models `rlm setup` can install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelInfo {
    /// How it is chosen (`RLM_LOCAL_MODEL`, `rlm setup --model`).
    pub key: &'static str,
    /// The name the server is addressed with.
    pub name: &'static str,
    /// Its file in the cache's `models/`.
    pub file: &'static str,
}

/// Every local model, the default first.
pub const MODELS: &[ModelInfo] = &[
    ModelInfo {
        key: "1.5b",
        name: MODEL_NAME,
        file: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    },
    ModelInfo {
        key: "0.5b",
        name: "qwen2.5-coder-0.5b-instruct",
        file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    },
];

/// The model chosen by `key` (the default for an unknown one).
pub fn model_info(key: &str) -> ModelInfo {
    *MODELS.iter().find(|m| m.key == key).unwrap_or(&MODELS[0])
}

/// Paths of the installed server and the default model, when both exist.
pub fn installed() -> Option<(PathBuf, PathBuf)> {
    installed_model(MODELS[0])
}

/// Paths of the installed server and `model`, when both exist.
pub fn installed_model(model: ModelInfo) -> Option<(PathBuf, PathBuf)> {
    let c = cache_dir();
    let server = c.join("bin/llama-server");
    let model = c.join("models").join(model.file);
    (server.is_file() && model.is_file()).then_some((server, model))
}

/// Runs the set-up script for the default model; returns its exit status.
pub fn setup() -> std::io::Result<std::process::ExitStatus> {
    setup_models(&[MODELS[0].key])
}

/// Runs the set-up script for `models` (keys such as `1.5b`); returns its exit status.
pub fn setup_models(models: &[&str]) -> std::io::Result<std::process::ExitStatus> {
    let mut child = Command::new("bash")
        .env("RLM_SETUP_MODELS", models.join(" "))
        .arg("-s")
        .stdin(Stdio::piped())
        .spawn()?;
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(SETUP_SCRIPT.as_bytes())?;
    child.wait()
}

/// A running local server; stops it on drop.
#[derive(Debug)]
pub struct LocalServer {
    pub base_url: String,
    child: Option<Child>,
}

fn healthy(port: u16) -> bool {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .http_status_as_error(false)
        .build()
        .into();
    agent
        .get(&format!("http://127.0.0.1:{port}/health"))
        .call()
        .map(|r| r.status().as_u16() == 200)
        .unwrap_or(false)
}

/// `name` on `PATH`.
fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl LocalServer {
    /// Starts the server and waits until it answers `/health` (loading the model takes a few
    /// seconds). Its log is a file with no name (created in the cache directory and unlinked
    /// at once): its tail is shown if the server fails to start, and nothing is left behind
    /// however `rlm` ends.
    pub fn start(server: &PathBuf, model: &PathBuf, progress: bool) -> Result<LocalServer, String> {
        let port = free_port().map_err(|e| format!("no free loopback port: {e}"))?;
        if progress {
            eprintln!("starting the local model server on 127.0.0.1:{port} ...");
        }
        let log = anonymous_log().map_err(|e| format!("cannot create the server's log: {e}"))?;
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .to_string();
        // Tied to this process with a death signal (util-linux `setpriv`, where present): even
        // SIGKILL of rlm then stops the server. This runs on the main thread, which lives as
        // long as the process.
        let mut cmd = match which("setpriv") {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--"]).arg(server);
                c
            }
            None => Command::new(server),
        };
        let mut child = cmd
            .args(["-m"])
            .arg(model)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "-t",
                &threads,
                "-c",
                "16384",
                "-np",
                "1",
            ])
            .args(["--alias", MODEL_NAME])
            // A process group of its own: Ctrl-C at the terminal goes to rlm (which may only
            // cancel a question, in `rlm chat`), not to the server.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log.try_clone().map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", server.display()))?;
        let t = Instant::now();
        while !healthy(port) {
            if super::signals::received().is_some() {
                let _ = child.kill();
                let _ = child.wait();
                return Err("interrupted while the local model server was starting".into());
            }
            if let Ok(Some(st)) = child.try_wait() {
                let mut tail = String::new();
                let _ = (&log)
                    .seek(std::io::SeekFrom::Start(0))
                    .and_then(|_| (&log).read_to_string(&mut tail));
                let tail: String = tail
                    .lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                return Err(format!("the local model server exited ({st}):\n{tail}"));
            }
            if t.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the local model server did not become healthy within 120 s".into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(LocalServer {
            base_url: format!("http://127.0.0.1:{port}/v1"),
            child: Some(child),
        })
    }
}

/// A read-write file in the cache directory whose name is removed at once.
fn anonymous_log() -> std::io::Result<std::fs::File> {
    let dir = cache_dir();
    std::fs::create_dir_all(&dir)?;
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!(".server-{}-{n}.log", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(f)
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Builds the orchestrator; when no provider is configured, first points the builder at the
/// local model (see [`configure`]). The server, if one was started, must outlive the runs.
/// Builds `builder`, starting the local model first when no provider is configured.
pub fn build(
    builder: rlm::OrchestratorBuilder,
    quiet: bool,
) -> Result<(rlm::Orchestrator, Option<LocalServer>), String> {
    let (builder, local) = configure(builder, quiet)?;
    let orch = builder.build().map_err(|e| e.to_string())?;
    Ok((orch, local))
}

/// When no provider is configured (no key for the selected provider and no base URL), points
/// the builder at the local model installed by `rlm setup`, started for this process.
fn configure(
    builder: rlm::OrchestratorBuilder,
    quiet: bool,
) -> Result<(rlm::OrchestratorBuilder, Option<LocalServer>), String> {
    let config = builder.resolve().map_err(|e| e.to_string())?;
    if config.llm.api_key.is_some() || config.origin("RLM_LLM_BASE_URL").is_some() {
        return Ok((builder, None));
    }
    if config.origin("RLM_LLM_PROVIDER").is_some() {
        // A provider was chosen explicitly: its missing key is an error (from `build`), not a
        // reason to answer with another model.
        return Ok((builder, None));
    }
    let which = model_info(&config.local_model);
    let Some((server, model)) = installed_model(which) else {
        let var = config.llm.provider.key_var();
        return Err(format!(
            "no LLM provider is configured and the local model ({}) is not installed; set {var} \
             (or RLM_LLM_BASE_URL for an OpenAI-compatible server), or run `rlm setup{}` to \
             install it",
            which.key,
            if which.key == "1.5b" {
                ""
            } else {
                " --model 0.5b"
            }
        ));
    };
    let local = LocalServer::start(&server, &model, !quiet)?;
    // The local server speaks OpenAI's wire format.
    let mut builder = builder
        .setting_from("RLM_LLM_PROVIDER", "openai", "local model")
        .setting_from("RLM_LLM_BASE_URL", local.base_url.clone(), "local model");
    if config.origin("RLM_LLM_MODEL").is_none() {
        builder = builder.setting_from("RLM_LLM_MODEL", which.name, "local model");
    }
    Ok((builder, Some(local)))
}
