//! Host tools: Rust functions the model's code calls from the sandboxed REPL. `stock` is a
//! blocking function (it runs on the library's blocking pool), `price` an async one; both
//! declare their arguments with a JSON Schema, which the host checks before calling them.
//!
//! ```text
//! cargo run --example tools                                  # offline: a scripted model
//! OPENAI_API_KEY=... cargo run --example tools -- --live     # a real model
//! ```

use rlm::{Orchestrator, Tool, llm::ScriptedLlm};

fn main() -> Result<(), rlm::Error> {
    let stock = Tool::new(
        "stock",
        "Units in stock of one product (by its SKU).",
        r#"{"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"], "additionalProperties": false}"#,
        |args| {
            let v: serde_json::Value = serde_json::from_str(args).map_err(|e| e.to_string())?;
            match v["sku"].as_str() {
                Some("A-1") => Ok("12".into()),
                Some("B-2") => Ok("3".into()),
                Some(other) => Err(format!("unknown SKU {other}")),
                None => Err("sku missing".into()),
            }
        },
    )?;
    let price = Tool::new_async(
        "price",
        "Unit price in cents of one product (by its SKU).",
        r#"{"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]}"#,
        |args: String| async move {
            // An async lookup (a database or an HTTP API in real code).
            let v: serde_json::Value = serde_json::from_str(&args).map_err(|e| e.to_string())?;
            Ok(if v["sku"] == "A-1" { "250" } else { "1999" }.to_string())
        },
    )?;
    let builder = Orchestrator::builder().tool(stock).tool(price);
    let orch = if std::env::args().any(|a| a == "--live") {
        builder.env().build()?
    } else {
        builder
            .llm(ScriptedLlm::replies([
                "```python\nskus = ['A-1', 'B-2']\nvalue = sum(int(stock(s)) * int(price(sku=s)) for s in skus)\nprint(value, stock('Z-9'))\n```",
                "```python\nFINAL(value)\n```",
            ]))
            .build()?
    };
    let r = orch.run("What is the stock of A-1 and B-2 worth, in cents?");
    println!(
        "{}",
        r.final_answer
            .unwrap_or_else(|| r.error.unwrap_or_default())
    );
    Ok(())
}
