//! The guide's "gather": several queries at once on ONE orchestrator, under smol.
//!
//! ```text
//! OPENAI_API_KEY=... cargo run --example concurrent
//! ```

fn main() -> Result<(), rlm::Error> {
    let agent = rlm::Orchestrator::from_env()?;
    let queries = ["What is 2 + 2?", "What is 10 * 10?", "What is sqrt(144)?"];
    smol::block_on(async {
        let tasks: Vec<_> = queries
            .iter()
            .map(|q| smol::spawn(agent.arun(*q)))
            .collect();
        for (q, t) in queries.iter().zip(tasks) {
            let r = t.await;
            println!(
                "{q} -> {}",
                r.final_answer
                    .unwrap_or_else(|| format!("(failed: {})", r.error.unwrap_or_default()))
            );
        }
    });
    Ok(())
}
