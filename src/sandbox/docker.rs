//! The container backend (feature `docker`): the same REPL driver in a container, through
//! the `docker` CLI (which honours `DOCKER_HOST`, so a remote engine can run the sandboxes).
//!
//! Each session is `docker run -i --rm --init` with no network, a read-only root, a
//! size-capped tmpfs as working directory (`/work`, also `HOME` and `TMPDIR`), all
//! capabilities dropped, no new privileges, uid 65534, memory, CPU, process and open-file
//! limits, and the context files mounted read-only. gVisor (`runsc`) is required unless the
//! unsafe runtime is allowed, in which case results are marked `unsafe_runtime`. Images are
//! never pulled implicitly. Only stdin/stdout cross the container boundary, so the driver runs
//! in "mux" mode and forwards the code's output as protocol frames.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::backend::{self, Backend, ChildPlan, Launched, ReadyInfo};
use super::driver::REPL_DRIVER;
use super::session::SessionSpec;
use crate::config::{SandboxConfig, SandboxKind};
use crate::error::{Error, Result};

/// How long `docker kill` may take before its client is killed.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// What the engine offers, checked on the first start and cached after a success.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Engine {
    gvisor: bool,
}

/// The Docker backend.
#[derive(Debug)]
pub(crate) struct Docker {
    cfg: Arc<SandboxConfig>,
    engine: Mutex<Option<Engine>>,
}

impl Docker {
    pub(crate) fn new(cfg: Arc<SandboxConfig>) -> Self {
        Docker {
            cfg,
            engine: Mutex::new(None),
        }
    }

    fn docker(&self) -> &PathBuf {
        &self.cfg.docker
    }

    /// Checks the engine, the runtime and the image (blocking).
    fn engine(&self) -> Result<Engine> {
        if let Some(e) = self
            .engine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Ok(e);
        }
        let cfg = &self.cfg;
        let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "the default socket".into());
        let runtimes = output(self.docker(), &["info", "--format", "{{json .Runtimes}}"])
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
        output(
            self.docker(),
            &["image", "inspect", "--format", "{{.Id}}", "--", &cfg.docker_image],
        )
        .map_err(|_| {
            Error::sandbox(format!(
                "image {} is not present in the engine and rlm never pulls implicitly: run `docker pull {}` (or set \
                 RLM_DOCKER_IMAGE to an image with python3)",
                cfg.docker_image, cfg.docker_image
            ))
        })?;
        let e = Engine { gvisor };
        *self.engine.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
        Ok(e)
    }
}

fn output(docker: &PathBuf, args: &[&str]) -> std::result::Result<String, String> {
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

/// A `--mount` value: a bind of `src` at `dst`, read-only. Fields are CSV-quoted, so paths
/// with `,`, `:` or `=` stay whole.
/// True when `DOCKER_HOST` names an engine reached over the network (its file system is not
/// this machine's).
fn remote_engine() -> bool {
    is_remote(std::env::var("DOCKER_HOST").ok().as_deref())
}

fn is_remote(docker_host: Option<&str>) -> bool {
    docker_host.is_some_and(|h| {
        ["tcp://", "ssh://", "http://", "https://"]
            .iter()
            .any(|p| h.starts_with(p))
    })
}

/// Writes each file to the driver as a frame `{"type":"file","size":N}` and then frames of
/// its bytes (at most 1 MiB each), in the order of the session's names (blocking).
fn ship_files(w: &mut std::fs::File, files: Vec<std::fs::File>) -> std::io::Result<()> {
    use std::io::{Read, Write};
    fn frame(w: &mut std::fs::File, data: &[u8]) -> std::io::Result<()> {
        w.write_all(&(data.len() as u32).to_be_bytes())?;
        w.write_all(data)
    }
    let mut buf = vec![0u8; 1 << 20];
    for mut f in files {
        let size = f.metadata()?.len();
        frame(
            w,
            serde_json::json!({"type": "file", "size": size})
                .to_string()
                .as_bytes(),
        )?;
        let mut left = size;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = f.read(&mut buf[..want])?;
            if n == 0 {
                return Err(std::io::Error::other(
                    "the context file shrank while it was sent",
                ));
            }
            frame(w, &buf[..n])?;
            left -= n as u64;
        }
    }
    Ok(())
}

fn bind_mount(src: &std::path::Path, dst: &str) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    format!(
        "type=bind,{},{},readonly",
        quote(&format!("source={}", src.display())),
        quote(&format!("target={dst}"))
    )
}

impl Backend for Docker {
    fn kind(&self) -> SandboxKind {
        SandboxKind::Docker
    }

    fn launch(&self, spec: &SessionSpec) -> Result<Launched> {
        static N: AtomicU64 = AtomicU64::new(0);
        let engine = self.engine()?;
        let cfg = &self.cfg;
        let name = format!(
            "rlm-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut cmd = Command::new(self.docker());
        cmd.args([
            "run",
            "-i",
            "--rm",
            "--init",
            "--pull",
            "never",
            "--name",
            &name,
            "--network",
            "none",
            "--read-only",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--user",
            "65534:65534",
            "--ipc",
            "none",
        ])
        // The writable scratch space is its own tmpfs (the working directory, HOME and
        // TMPDIR): podman re-mounts /tmp itself and ignores the requested mode there.
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
        .arg(format!(
            "--ulimit=cpu={0}:{0}",
            cfg.cpu_time.as_secs().max(1)
        ))
        .arg(format!("--ulimit=fsize={0}:{0}", cfg.file_size_bytes))
        // Given any --ulimit, engines drop their default list; without an explicit nproc the
        // runtime tries to raise it, which fails where CAP_SYS_RESOURCE is missing. The
        // process count itself is capped by --pids-limit.
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
        .arg(format!(
            "RLM_CONTEXT_SPEC={}",
            backend::context_spec(spec, &[])
        ));
        if engine.gvisor {
            cmd.args(["--runtime", "runsc"]);
        }
        let ship = cfg.docker_ship_context.unwrap_or_else(remote_engine);
        let mut shipped = Vec::new();
        if ship && !spec.files.is_empty() {
            // An engine on another machine cannot bind this machine's files: they travel
            // over the container's stdin into a tmpfs of their own (counted in the
            // container's memory), sized to fit them.
            let mut total = 0u64;
            for f in &spec.files {
                let file = f.open_unchanged()?;
                total += file.metadata().map(|m| m.len()).unwrap_or(0);
                shipped.push(file);
            }
            cmd.arg("--tmpfs")
                .arg(format!(
                    "/ctx:rw,nosuid,nodev,noexec,size={},mode=1777",
                    total + (1 << 20)
                ))
                .args(["-e", "RLM_SHIP=1"]);
        } else {
            for f in &spec.files {
                // The engine binds by path: the file there must still be the one scanned.
                drop(f.open_unchanged()?);
                cmd.arg("--mount")
                    .arg(bind_mount(&f.path, &format!("/context/{}", f.name)));
            }
        }
        cmd.arg("--")
            .arg(&cfg.docker_image)
            .args(["python3", "-I", "-B", "-u", "-c", REPL_DRIVER]);
        let mut child = ChildPlan::default()
            .spawn(cmd, true, true)
            .map_err(|e| Error::sandbox(format!("cannot run {}: {e}", self.docker().display())))?;
        // Only stdin/stdout cross the boundary: commands go to stdin, frames come on stdout.
        let mut cmd_w: OwnedFd = child.stdin.take().expect("piped");
        let msg_r: OwnedFd = child.stdout.take().expect("piped");
        if !shipped.is_empty() {
            // A container that did not start closes its stdin: the engine's wait for the
            // ready report then says why, so a failed write is not an error of its own.
            let mut w = std::fs::File::from(cmd_w);
            let _ = ship_files(&mut w, shipped);
            cmd_w = OwnedFd::from(w);
        }
        let mut l = backend::launched(child, msg_r, cmd_w, cfg, None, None)?;
        l.name = Some(name);
        l.unsafe_runtime = !engine.gvisor;
        Ok(l)
    }

    /// podman's Docker API lists runsc but may silently run runc: check what the container
    /// really runs on (gVisor reports kernel 4.4.0, never the host's release).
    fn verify(&self, ready: &ReadyInfo, launched: &mut Launched) -> Result<()> {
        if launched.unsafe_runtime {
            return Ok(());
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let gvisor_kernel = ready.kernel != host.trim() && ready.kernel.starts_with("4.4.0");
        if gvisor_kernel {
            return Ok(());
        }
        launched.unsafe_runtime = true;
        if self.cfg.allow_unsafe_runtime {
            return Ok(());
        }
        Err(Error::sandbox(format!(
            "the engine was asked for gVisor (runsc) but the container runs on kernel {}, not gVisor's: \
             the engine ignored the runtime (podman's Docker API does). Fix the engine, or set \
             RLM_ALLOW_UNSAFE_RUNTIME=1 to accept its default runtime (results are marked unsafe)",
            ready.kernel
        )))
    }

    /// The container is killed through the engine (its client dying does not stop it), with
    /// a bound on how long the engine may take; then the client is killed and reaped.
    fn kill(&self, launched: &mut Launched) {
        if let Some(name) = &launched.name
            && let Ok(mut k) = Command::new(self.docker())
                .args(["kill", "--signal", "KILL", name])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        {
            let t = Instant::now();
            loop {
                match k.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if t.elapsed() > KILL_TIMEOUT => {
                        let _ = k.kill();
                        let _ = k.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
        launched.kill_and_reap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_reached_over_the_network_get_their_contexts_shipped() {
        assert!(!is_remote(None));
        assert!(!is_remote(Some("unix:///run/podman/podman.sock")));
        assert!(is_remote(Some("tcp://10.0.0.5:2376")));
        assert!(is_remote(Some("ssh://sandbox-host")));
    }

    #[test]
    fn mounts_quote_awkward_paths() {
        assert_eq!(
            bind_mount(std::path::Path::new("/data/a,b:c=d.txt"), "/context/x.txt"),
            "type=bind,\"source=/data/a,b:c=d.txt\",\"target=/context/x.txt\",readonly"
        );
    }
}
