//! Feature `docker`: the same REPL driver and session model in a container, through the
//! `docker` CLI (which honours `DOCKER_HOST`, so a remote engine can run the sandboxes).
//!
//! Each session is `docker run -i --rm` with no network, a read-only root, a size-capped
//! tmpfs as working directory (`/work`, also `HOME` and `TMPDIR`), all capabilities dropped, no new privileges, uid 65534, memory, CPU, process
//! and open-file limits, and the context files bound read-only. gVisor (`runsc`) is required
//! unless the unsafe runtime is allowed, in which case results are marked `unsafe_runtime`.
//! Images are never pulled implicitly. Only stdin/stdout cross the container boundary, so the
//! driver runs in "mux" mode and forwards the code's output as protocol frames.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::process::{Io, Mode, Proc, ProcessSession, spawn_on_spawner};
use super::{BoxFuture, REPL_DRIVER, Sandbox, SandboxSession, SessionSpec};
use crate::config::SandboxConfig;
use crate::error::{Error, Result};
use crate::runtime;

/// What every session of a [`DockerSandbox`] runs with (decided once per start).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) docker: PathBuf,
    pub(crate) image: String,
    pub(crate) gvisor: bool,
}

/// The container backend (feature `docker`).
#[derive(Debug, Clone)]
pub struct DockerSandbox {
    cfg: Arc<SandboxConfig>,
}

impl DockerSandbox {
    /// A container sandbox with these limits; the image is `cfg.docker_image`.
    pub fn new(cfg: SandboxConfig) -> Self {
        DockerSandbox { cfg: Arc::new(cfg) }
    }
}

fn docker_output(docker: &PathBuf, args: &[&str]) -> std::result::Result<String, String> {
    let out = Command::new(docker)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!(
                "cannot run {}: {e} (install the docker CLI)",
                docker.display()
            )
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Checks the engine, the runtime and the image (blocking).
pub(crate) fn plan(cfg: &SandboxConfig) -> Result<Plan> {
    let docker = cfg.docker.clone();
    let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "the default socket".into());
    let runtimes = docker_output(&docker, &["info", "--format", "{{json .Runtimes}}"])
        .map_err(|e| Error::sandbox(format!("no Docker engine answers at {host}: {e}")))?;
    let gvisor = serde_json::from_str::<serde_json::Value>(runtimes.trim())
        .ok()
        .and_then(|v| v.as_object().map(|o| o.contains_key("runsc")))
        .unwrap_or(false);
    if !gvisor && !cfg.allow_unsafe_runtime {
        // (A listed runsc is verified again from inside the first container.)
        return Err(Error::sandbox(format!(
            "the Docker engine at {host} has no gVisor runtime (runsc); install gVisor in the engine, or set \
             RLM_ALLOW_UNSAFE_RUNTIME=1 to run containers with the engine's default runtime (results are marked unsafe)"
        )));
    }
    docker_output(&docker, &["image", "inspect", "--format", "{{.Id}}", &cfg.docker_image]).map_err(|_| {
        Error::sandbox(format!(
            "image {} is not present in the engine and rlm never pulls implicitly: run `docker pull {}` (or set \
             RLM_DOCKER_IMAGE to an image with python3)",
            cfg.docker_image, cfg.docker_image
        ))
    })?;
    Ok(Plan {
        docker,
        image: cfg.docker_image.clone(),
        gvisor,
    })
}

impl Sandbox for DockerSandbox {
    fn start(&self, spec: SessionSpec) -> BoxFuture<'static, Result<Box<dyn SandboxSession>>> {
        let cfg = self.cfg.clone();
        Box::pin(async move {
            let c = cfg.clone();
            let plan = runtime::unblock(move || plan(&c)).await?;
            ProcessSession::start(cfg, spec, Mode::Docker(Arc::new(plan)))
                .await
                .map(|s| Box::new(s) as Box<dyn SandboxSession>)
        })
    }
    fn backend(&self) -> &'static str {
        "docker"
    }
}

/// Starts one container session (blocking).
pub(crate) fn launch(cfg: &SandboxConfig, spec: &SessionSpec, plan: &Plan) -> Result<Proc> {
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "rlm-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let ctx_spec = serde_json::json!({
        "list": spec.is_list,
        "inline": spec.inline,
        "names": spec.files.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
        "fds": [],
    })
    .to_string();
    let mut cmd = Command::new(&plan.docker);
    cmd.args([
        "run",
        "-i",
        "--rm",
        "--pull",
        "never",
        "--name",
        &name,
        "--network",
        "none",
        "--read-only",
    ])
    .args([
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--user",
        "65534:65534",
        "--ipc",
        "none",
    ])
    // The writable scratch space is its own tmpfs (the working directory, HOME and TMPDIR):
    // podman re-mounts /tmp itself and ignores the requested mode there.
    .arg("--tmpfs")
    .arg(format!(
        "/work:rw,nosuid,nodev,size={},mode=1777",
        cfg.tmpfs_bytes
    ))
    .arg("--tmpfs")
    .arg(format!(
        "/tmp:rw,nosuid,nodev,size={},mode=1777",
        cfg.tmpfs_bytes
    ))
    .arg(format!("--memory={}", cfg.memory_bytes.max(6 << 20)))
    .arg(format!("--memory-swap={}", cfg.memory_bytes.max(6 << 20)))
    .arg(format!("--pids-limit={}", cfg.pids))
    .arg("--cpus=1")
    .arg(format!("--ulimit=nofile={0}:{0}", cfg.open_files))
    .arg(format!("--ulimit=cpu={0}:{0}", cfg.cpu_seconds))
    .arg(format!("--ulimit=fsize={0}:{0}", cfg.file_size_bytes))
    // Given any --ulimit, engines drop their default list; without an explicit nproc the
    // runtime tries to raise it, which fails where CAP_SYS_RESOURCE is missing. The process
    // count itself is capped by --pids-limit.
    .arg("--ulimit=nproc=1024:1024")
    .args([
        "--workdir",
        "/work",
        "-e",
        "HOME=/work",
        "-e",
        "TMPDIR=/work",
        "-e",
        "LANG=C.UTF-8",
        "-e",
        "RLM_MUX=1",
    ])
    .arg("-e")
    .arg(format!("RLM_CONTEXT_SPEC={ctx_spec}"));
    if plan.gvisor {
        cmd.args(["--runtime", "runsc"]);
    }
    for f in &spec.files {
        cmd.arg("--volume")
            .arg(format!("{}:/context/{}:ro", f.path.display(), f.name));
    }
    cmd.arg(&plan.image)
        .args(["python3", "-I", "-B", "-u", "-c", REPL_DRIVER]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn_on_spawner(cmd)
        .map_err(|e| Error::sandbox(format!("cannot run {}: {e}", plan.docker.display())))?;
    let cmd_w: OwnedFd = child.stdin.take().expect("piped").into();
    let msg_r: OwnedFd = child.stdout.take().expect("piped").into();
    let err: OwnedFd = child.stderr.take().expect("piped").into();
    let io = Io::new(None, Some(err), msg_r, cmd_w, cfg.max_output_bytes);
    Ok(Proc {
        child,
        io: Some(io),
        _uid: None,
        container: Some((plan.docker.clone(), name)),
        unsafe_runtime: !plan.gvisor,
    })
}
