//! A session: several questions on one REPL, so variables, contexts (`ctx_0`, `ctx_1`, ...)
//! and the conversation carry over from one call to the next.
//!
//! ```text
//! cargo run --example session                                  # offline: a scripted model
//! OPENAI_API_KEY=... cargo run --example session -- --live     # a real model
//! ```

use rlm::{Context, Orchestrator, llm::ScriptedLlm};

fn main() -> Result<(), rlm::Error> {
    let builder = Orchestrator::builder();
    let orch = if std::env::args().any(|a| a == "--live") {
        builder.env().build()?
    } else {
        builder
            .llm(ScriptedLlm::replies([
                // Question 1: the numbers are kept in a variable.
                "```python\nnums = [int(x) for x in context.split()]\nprint(sum(nums))\n```",
                "```python\nFINAL(sum(nums))\n```",
                // Question 2: the variable is still there, and the new context is ctx_1.
                "```python\nprint(max(nums), len(ctx_1))\n```",
                "```python\nFINAL(max(nums) * int(context_1))\n```",
            ]))
            .build()?
    };
    let session = orch.session();
    let r = session.run_with_context("What is the sum of these numbers?", Context::text("3 9 4"));
    println!(
        "1: {}",
        r.final_answer
            .unwrap_or_else(|| r.error.unwrap_or_default())
    );
    let r = session.run_with_context(
        "Multiply the largest of the earlier numbers by this one.",
        Context::text("7"),
    );
    println!(
        "2: {}",
        r.final_answer
            .unwrap_or_else(|| r.error.unwrap_or_default())
    );
    Ok(())
}
