//! Host tools: Rust functions (sync or async) the model's code calls from the REPL by name.
//!
//! A [`Tool`] has a name (a Python identifier), a description and a JSON Schema for its
//! arguments (an object schema; its `properties` give the Python parameters, in order). The
//! REPL defines one Python function per tool; a call sends the tool's name and its arguments
//! as JSON to the host, which refuses names that were not registered for that run, checks the
//! arguments against the schema (the JSON Schema subset of [`crate::Schema`], the same as
//! typed answers), and only then calls the function, on the host, under the run's budget and
//! the tool's timeout. The function's text comes back to the code as a `str`; a failure
//! (an `Err`, a panic, a timeout, bad arguments) as a `str` starting with `Error:`.
//!
//! Pure apart from running the handlers: the schema checks and the listing the prompt shows
//! are plain functions.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::BoxFuture;
use crate::error::{Error, Result};

/// What a tool returns: text for the code, or an error message (the code sees
/// `Error: <message>`).
pub type ToolResult = std::result::Result<String, String>;

type Handler = Arc<dyn Fn(String, Running) -> BoxFuture<'static, ToolResult> + Send + Sync>;

/// Calls of one tool that may be running at once, counting those abandoned at their timeout
/// whose thread still runs: code looping over a hanging tool cannot fill the blocking pool
/// every run shares.
pub(crate) const MAX_RUNNING: usize = 64;

/// Counts one running call of a tool until dropped (by the thread or future doing the work).
pub(crate) struct Running(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A Rust function the model's code can call from the REPL. Cheap to clone.
///
/// ```
/// use rlm::Tool;
/// let add = Tool::new(
///     "add",
///     "Adds two integers.",
///     r#"{"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}"#,
///     |args: &str| {
///         let v: serde_json::Value = serde_json::from_str(args).map_err(|e| e.to_string())?;
///         Ok((v["a"].as_i64().unwrap_or(0) + v["b"].as_i64().unwrap_or(0)).to_string())
///     },
/// )?;
/// assert_eq!(add.name(), "add");
/// # Ok::<(), rlm::Error>(())
/// ```
#[derive(Clone)]
pub struct Tool {
    name: String,
    description: String,
    schema: crate::schema::Schema,
    params: Vec<String>,
    timeout: Option<Duration>,
    handler: Handler,
    running: Arc<std::sync::atomic::AtomicUsize>,
}

impl std::fmt::Debug for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tool")
            .field("name", &self.name)
            .field("params", &self.params)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Tool {
    /// A tool backed by a blocking function of the arguments (a JSON object, as text). It runs
    /// on the library's blocking pool, never on the caller's executor. A tool that outlives
    /// its timeout is abandoned (the code gets an `Error:`), but its thread finishes the call.
    ///
    /// Errors when `name` is not a Python identifier, is a name the REPL already defines,
    /// starts with `_`, or when `schema` is not a JSON object schema.
    pub fn new<F>(
        name: impl Into<String>,
        description: impl Into<String>,
        schema: &str,
        f: F,
    ) -> Result<Tool>
    where
        F: Fn(&str) -> ToolResult + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        Tool::build(
            name.into(),
            description.into(),
            schema,
            Arc::new(move |args: String, running: Running| {
                let f = f.clone();
                Box::pin(async move {
                    crate::runtime::unblock(move || {
                        // Counted until the function returns, even after a timeout.
                        let _running = running;
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&args)))
                            .unwrap_or_else(|_| Err("the tool panicked".into()))
                    })
                    .await
                }) as BoxFuture<'static, ToolResult>
            }),
        )
    }

    /// A tool backed by an async function of the arguments (a JSON object, as text). Its
    /// future runs inside the run's own future (on whatever executor drives the run), so it
    /// must not block; a panic in it is an `Error:` for the code.
    pub fn new_async<F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        schema: &str,
        f: F,
    ) -> Result<Tool>
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ToolResult> + Send + 'static,
    {
        use futures_lite::FutureExt;
        let f = Arc::new(f);
        Tool::build(
            name.into(),
            description.into(),
            schema,
            Arc::new(move |args: String, running: Running| {
                let fut = f(args);
                Box::pin(async move {
                    let _running = running;
                    std::panic::AssertUnwindSafe(fut)
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|_| Err("the tool panicked".into()))
                }) as BoxFuture<'static, ToolResult>
            }),
        )
    }

    fn build(name: String, description: String, schema: &str, handler: Handler) -> Result<Tool> {
        check_name(&name).map_err(|m| Error::config(format!("tool {name:?}"), m))?;
        let params = object_params(schema).map_err(|m| {
            Error::config(
                format!("tool {name:?}"),
                format!("bad argument schema: {m}"),
            )
        })?;
        // The same JSON Schema subset as typed answers (unsupported keywords refused here,
        // so nothing is silently left unchecked).
        let schema = crate::schema::Schema::parse(schema).map_err(|e| {
            Error::config(
                format!("tool {name:?}"),
                format!("bad argument schema: {e}"),
            )
        })?;
        Ok(Tool {
            name,
            description,
            schema,
            params,
            timeout: None,
            handler,
            running: Arc::default(),
        })
    }

    /// The longest one call may take (default: the run's `execution_timeout`). A call that
    /// takes longer returns an `Error:` to the code.
    #[must_use]
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// The Python name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the prompt says the tool does.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The arguments' JSON Schema, as compact JSON text.
    pub fn schema(&self) -> String {
        self.schema.as_json().to_string()
    }

    /// The Python parameters, in the order of the schema's `properties`.
    pub fn params(&self) -> &[String] {
        &self.params
    }

    pub(crate) fn limit(&self) -> Option<Duration> {
        self.timeout
    }

    /// Checks `args` (what the code sent) against the schema; the arguments as JSON text.
    pub(crate) fn check_args(&self, args: &str) -> std::result::Result<String, String> {
        let v: Value =
            serde_json::from_str(args).map_err(|e| format!("arguments are not JSON: {e}"))?;
        self.schema
            .validate_json(&v, "arguments")
            .map_err(|errors| errors.join("; "))?;
        Ok(v.to_string())
    }

    /// Runs the tool on checked arguments.
    pub(crate) fn call(&self, args: String) -> BoxFuture<'static, ToolResult> {
        use std::sync::atomic::Ordering;
        if self.running.fetch_add(1, Ordering::SeqCst) >= MAX_RUNNING {
            self.running.fetch_sub(1, Ordering::SeqCst);
            return Box::pin(std::future::ready(Err(format!(
                "{MAX_RUNNING} calls of this tool are still running (some past their timeout); try again later"
            ))));
        }
        (self.handler)(args, Running(self.running.clone()))
    }
}

/// Names the REPL itself defines (or that the driver needs); no tool may take them.
const RESERVED: &[&str] = &[
    "ctx", "context", "history", "print", "open", "exec", "eval", "input", "globals", "locals",
];

const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield", "match", "case", "type",
];

fn check_name(name: &str) -> std::result::Result<(), String> {
    let mut chars = name.chars();
    let ident = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64;
    if !ident {
        return Err("a tool's name must be an ASCII Python identifier (letters, digits and _, starting with a letter, at most 64 characters)".into());
    }
    if KEYWORDS.contains(&name)
        || RESERVED.contains(&name)
        || crate::sandbox::driver::REPL_FUNCTIONS.contains(&name)
        || (name.starts_with("context_") || name.starts_with("ctx_"))
    {
        return Err(format!(
            "{name:?} is a name the REPL already uses; pick another"
        ));
    }
    Ok(())
}

/// The `properties` of an object schema, in the order they are written.
fn object_params(schema: &str) -> std::result::Result<Vec<String>, String> {
    #[derive(serde::Deserialize)]
    struct Top {
        #[serde(rename = "type")]
        kind: Option<Value>,
        #[serde(default)]
        properties: Option<OrderedKeys>,
    }
    let top: Top = serde_json::from_str(schema).map_err(|e| e.to_string())?;
    if top.kind.as_ref().and_then(Value::as_str) != Some("object") {
        return Err("the top level must be {\"type\": \"object\", ...}".into());
    }
    let params = top.properties.map(|p| p.0).unwrap_or_default();
    if let Some(bad) = params.iter().find(|p| !is_plain(p)) {
        return Err(format!("property {bad:?} is not a Python identifier"));
    }
    Ok(params)
}

fn is_plain(p: &str) -> bool {
    let mut c = p.chars();
    c.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&p)
}

/// Map keys in document order (`serde_json`'s map is sorted).
struct OrderedKeys(Vec<String>);

impl<'de> serde::Deserialize<'de> for OrderedKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OrderedKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<OrderedKeys, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    m.next_value::<serde::de::IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(OrderedKeys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

/// The tools of an orchestrator: those of the root run, and those of child runs (the same
/// unless given separately).
#[derive(Debug, Clone, Default)]
pub(crate) struct Toolbox {
    pub(crate) root: Vec<Tool>,
    pub(crate) children: Option<Vec<Tool>>,
}

impl Toolbox {
    /// The tools a run at `depth` gets.
    pub(crate) fn at(&self, depth: u32) -> &[Tool] {
        match (&self.children, depth) {
            (Some(c), d) if d > 0 => c,
            _ => &self.root,
        }
    }

    /// Errors on two tools with one name in a set.
    pub(crate) fn check(&self) -> Result<()> {
        for set in std::iter::once(&self.root).chain(self.children.as_ref()) {
            for (i, t) in set.iter().enumerate() {
                if set[..i].iter().any(|o| o.name == t.name) {
                    return Err(Error::config(
                        format!("tool {:?}", t.name),
                        "two tools have this name",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// What the REPL needs to define `tools` (name, parameters, description), as the JSON text
/// its `_define_tools` reads.
pub(crate) fn repl_spec(tools: &[Tool]) -> String {
    Value::Array(
        tools
            .iter()
            .map(|t| {
                serde_json::json!({
                    "name": t.name,
                    "params": t.params,
                    "doc": t.description,
                })
            })
            .collect(),
    )
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(schema: &str) -> Result<Tool> {
        Tool::new("t", "d", schema, |_| Ok(String::new()))
    }

    #[test]
    fn names_and_schemas_are_checked_at_registration() {
        let s = r#"{"type":"object","properties":{"zeta":{"type":"string"},"alpha":{"type":"integer"}}}"#;
        assert_eq!(
            tool(s).unwrap().params(),
            ["zeta", "alpha"],
            "written order"
        );
        for bad in [
            "llm_query",
            "FINAL",
            "ctx",
            "context_0",
            "_x",
            "1a",
            "a-b",
            "import",
            "",
        ] {
            assert!(
                Tool::new(bad, "d", s, |_| Ok(String::new())).is_err(),
                "{bad:?}"
            );
        }
        for bad in [
            "[]",
            "{\"type\":\"string\"}",
            "not json",
            r#"{"type":"object","properties":{"a b":{}}}"#,
        ] {
            assert!(tool(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arguments_are_checked_against_the_schema() {
        let t = tool(
            r#"{"type":"object","properties":{"n":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"}},"mode":{"enum":["a","b"]}},"required":["n"],"additionalProperties":false}"#,
        )
        .unwrap();
        assert!(
            t.check_args(r#"{"n": 3, "tags": ["x"], "mode": "a"}"#)
                .is_ok()
        );
        for (bad, says) in [
            (json!({}), "missing required property \"n\""),
            (
                json!({"n": "3"}),
                "arguments.n: expected integer, got string",
            ),
            (json!({"n": 1.5}), "expected integer, got number"),
            (
                json!({"n": 1, "tags": ["x", 2]}),
                "arguments.tags[1]: expected string",
            ),
            (json!({"n": 1, "mode": "c"}), "must be one of"),
            (
                json!({"n": 1, "extra": true}),
                "unexpected property \"extra\"",
            ),
            (json!([1]), "expected object"),
        ] {
            let e = t.check_args(&bad.to_string()).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn calls_still_running_are_capped_per_tool() {
        let _one = crate::runtime::MANY_THREADS
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let gate = Arc::new(std::sync::Barrier::new(MAX_RUNNING + 1));
        let g = gate.clone();
        let t = Tool::new("slow", "Waits.", r#"{"type":"object"}"#, move |_| {
            g.wait();
            Ok("done".into())
        })
        .unwrap();
        // MAX_RUNNING calls in progress, each waiting at the gate on its own thread.
        let running: Vec<_> = (0..MAX_RUNNING)
            .map(|_| {
                let call = t.call("{}".into());
                std::thread::spawn(move || futures_lite::future::block_on(call))
            })
            .collect();
        let refused = futures_lite::future::block_on(t.call("{}".into()));
        assert!(refused.unwrap_err().contains("still running"));
        gate.wait();
        for r in running {
            assert_eq!(r.join().unwrap().unwrap(), "done");
        }
        // The count went down with them.
        assert_eq!(t.running.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[test]
    fn duplicate_names_are_refused() {
        let s = r#"{"type":"object"}"#;
        let b = Toolbox {
            root: vec![tool(s).unwrap(), tool(s).unwrap()],
            children: None,
        };
        assert!(b.check().is_err());
        let b = Toolbox {
            root: vec![tool(s).unwrap()],
            children: Some(vec![]),
        };
        assert!(b.check().is_ok());
        assert_eq!(b.at(0).len(), 1);
        assert!(b.at(1).is_empty(), "children get their own set");
    }
}
