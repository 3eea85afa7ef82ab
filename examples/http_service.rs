//! The guide's web-service section in Rust: a small HTTP service on tokio exposing
//! `POST /execute` with `{"query": ..., "context_path": ...}` and answering
//! `{"answer": ..., "success": ..., "iterations": ...}`. One orchestrator serves all requests
//! concurrently.
//!
//! ```text
//! OPENAI_API_KEY=... cargo run --example http_service -- 127.0.0.1:8000
//! curl -s 127.0.0.1:8000/execute -d '{"query":"What is 2+2?"}'
//! ```

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".into());
    let orchestrator = rlm::Orchestrator::from_env()?;
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("listening on http://{addr}/execute");
    loop {
        let (conn, _) = listener.accept().await?;
        let orch = orchestrator.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(conn, orch).await {
                eprintln!("connection error: {e}");
            }
        });
    }
}

async fn handle(conn: TcpStream, orch: rlm::Orchestrator) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).await?;
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).await? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len.min(1 << 20)];
    reader.read_exact(&mut body).await?;
    let (status, reply) = if !request_line.starts_with("POST /execute ") {
        ("404 Not Found", json!({"detail": "use POST /execute"}))
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(req) if req["query"].is_string() => {
                let query = req["query"].as_str().unwrap_or_default().to_string();
                let result = match req["context_path"].as_str() {
                    Some(p) => orch.arun_with_context(query, rlm::Context::file(p)).await,
                    None => orch.arun(query).await,
                };
                match (&result.failure, result.success) {
                    (Some(rlm::Error::Context { message }), _) => {
                        ("400 Bad Request", json!({"detail": message}))
                    }
                    _ => (
                        "200 OK",
                        json!({
                            "answer": result.final_answer.unwrap_or_default(),
                            "success": result.success,
                            "iterations": result.iterations,
                        }),
                    ),
                }
            }
            _ => (
                "422 Unprocessable Entity",
                json!({"detail": "body must be JSON with a string field \"query\""}),
            ),
        }
    };
    let body = reply.to_string();
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    reader.get_mut().write_all(resp.as_bytes()).await
}
