//! Under tokio: `arun` futures are `Send + 'static`, so they can be awaited or spawned; events
//! stream while the run happens.
//!
//! ```text
//! OPENAI_API_KEY=... cargo run --example tokio -- "What is 17 * 23?"
//! ```

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), rlm::Error> {
    let query = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "What is 17 * 23?".into());
    let agent = rlm::Orchestrator::from_env()?;
    let run = agent.arun_observed(query, None);
    let handle = tokio::spawn(run.result);
    while let Some(event) = run.events.recv().await {
        if let rlm::RunEvent::Step { step, usage, .. } = event {
            eprintln!(
                "[turn {}] {:?} ({} tokens so far)",
                step.iteration,
                step.kind,
                usage.total_tokens()
            );
        }
    }
    let result = handle.await.expect("run task");
    println!(
        "{}",
        result
            .final_answer
            .unwrap_or_else(|| result.error.unwrap_or_default())
    );
    Ok(())
}
