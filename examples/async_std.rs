//! Under async-std (which also runs the library unchanged).
//!
//! ```text
//! OPENAI_API_KEY=... cargo run --example async_std
//! ```

fn main() -> Result<(), rlm::Error> {
    let agent = rlm::Orchestrator::from_env()?;
    async_std::task::block_on(async {
        let r = agent.arun("Calculate fibonacci(20)").await;
        println!(
            "{}",
            r.final_answer
                .unwrap_or_else(|| r.error.unwrap_or_default())
        );
    });
    Ok(())
}
