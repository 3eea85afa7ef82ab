//! Typed answers: the final answer must match a JSON Schema; the host validates it, sends an
//! invalid one back to the model with the errors, and the result carries the parsed value.
//!
//! ```text
//! cargo run --example typed_answer                                  # offline: a scripted model
//! OPENAI_API_KEY=... cargo run --example typed_answer -- --live     # a real model
//! ```

use rlm::{Context, Orchestrator, Schema, llm::ScriptedLlm};

#[derive(Debug, serde::Deserialize)]
struct Summary {
    errors: u32,
    worst_service: String,
}

fn main() -> Result<(), rlm::Error> {
    let schema = Schema::parse(
        r#"{"type": "object",
            "properties": {"errors": {"type": "integer", "minimum": 0},
                           "worst_service": {"type": "string"}},
            "required": ["errors", "worst_service"], "additionalProperties": false}"#,
    )?;
    let builder = Orchestrator::builder().answer_schema(schema);
    let orch = if std::env::args().any(|a| a == "--live") {
        builder.env().build()?
    } else {
        builder
            .llm(ScriptedLlm::replies([
                "```python\nimport collections\nerr = [l for l in context.splitlines() if ' ERROR ' in l]\nc = collections.Counter(l.split()[2] for l in err)\nprint(len(err), c.most_common(1))\n```",
                // The first answer has the count as text: refused with the schema's errors.
                "```python\nFINAL({'errors': str(len(err)), 'worst_service': c.most_common(1)[0][0]})\n```",
                "```python\nFINAL({'errors': len(err), 'worst_service': c.most_common(1)[0][0]})\n```",
            ]))
            .build()?
    };
    let log =
        "10:00 INFO api ok\n10:01 ERROR db timeout\n10:02 ERROR db timeout\n10:03 ERROR api 500\n";
    let r = orch.run_with_context(
        "How many ERROR lines are there, and which service has the most?",
        Context::text(log),
    );
    match r.answer_as::<Summary>() {
        Some(Ok(s)) => println!("{} errors, most in {}", s.errors, s.worst_service),
        Some(Err(e)) => println!("the answer does not fit: {e}"),
        None => println!("no answer: {}", r.error.unwrap_or_default()),
    }
    Ok(())
}
