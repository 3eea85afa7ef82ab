//! The blocking API: one query, optionally over a context file.
//!
//! ```text
//! OPENAI_API_KEY=... cargo run --example sync -- "How many lines mention ERROR?" app.log
//! RLM_LLM_BASE_URL=http://127.0.0.1:8080/v1 cargo run --example sync -- "What is fibonacci(20)?"
//! ```

fn main() {
    let mut args = std::env::args().skip(1);
    let query = args
        .next()
        .unwrap_or_else(|| "Calculate fibonacci(20)".into());
    let orch = match rlm::Orchestrator::from_env() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let result = match args.next() {
        Some(path) => orch.run_with_context(query, rlm::Context::file(path)),
        None => orch.run(query),
    };
    match result.final_answer {
        Some(a) => println!("{a}"),
        None => {
            eprintln!("no answer: {}", result.error.unwrap_or_default());
            std::process::exit(1);
        }
    }
}
