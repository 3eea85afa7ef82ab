//! rlm (placeholder crate docs; replaced below)
#![warn(missing_docs, rust_2018_idioms, missing_debug_implementations)]
#![deny(unsafe_code)]

mod config;
mod context;
mod egress;
mod error;
mod events;
pub mod llm;
mod orchestrator;
mod parse;
mod prompt;
mod result;
mod run;
mod runtime;
pub mod sandbox;

pub use config::*;
pub use context::Context;
pub use egress::{EgressFilter, Filtered};
pub use error::{Error, Result};
pub use events::RunEvent;
pub use orchestrator::{ObservedRun, Orchestrator, OrchestratorBuilder};
pub use parse::{
    CodeBlock, extract_code_blocks, extract_python_code, final_from_stdout, final_from_text,
};
pub use result::*;
