//! The Python driver that runs inside every sandbox (standard library only), and the names
//! it defines for the model's code.

/// The driver's source, embedded.
pub(crate) const REPL_DRIVER: &str = include_str!("repl.py");

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
