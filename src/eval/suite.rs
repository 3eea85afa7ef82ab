//! The suite format (pure): one task per JSON line.
//!
//! ```text
//! {"id": "needle-1", "family": "needle", "tags": ["jsonl"],
//!  "question": "Which firmware version does device D-4821 run?",
//!  "context": {"file": "data/devices.jsonl"},
//!  "answer": "3.14.2", "score": "exact"}
//! ```
//!
//! `context` is `{"file": PATH}`, `{"files": [PATH, ...]}` (paths relative to the suite
//! file), `{"text": "..."}` or `{"documents": ["...", ...]}`, or absent. `answer` is a string,
//! a number or a list. `score` is `"exact"`, `"contains"`, `"set"` or
//! `{"number": {"tolerance": T, "relative": R}}` (default: `"exact"` for text, a number
//! compared exactly for numbers, `"set"` for lists).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::error::{Error, Result};

use super::score::Scoring;

/// A suite of tasks, read from a JSON Lines file.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Suite {
    /// The tasks, in file order.
    pub tasks: Vec<Task>,
}

/// One question with its context and expected answer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Task {
    /// Unique within the suite.
    pub id: String,
    /// The task family (for the per-family table), `"default"` when absent.
    pub family: String,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// What the model is asked.
    pub question: String,
    /// What the question is about.
    pub context: TaskContext,
    /// The right answer.
    pub expected: Expected,
    /// How an answer is compared with [`expected`](Self::expected).
    pub scoring: Scoring,
}

/// A task's context.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TaskContext {
    /// No context.
    None,
    /// One file (absolute, or resolved against the suite's directory).
    File(PathBuf),
    /// Several files.
    Files(Vec<PathBuf>),
    /// Inline text.
    Text(String),
    /// Inline documents.
    Documents(Vec<String>),
}

impl TaskContext {
    /// The run's [`Context`], if any.
    pub fn to_context(&self) -> Option<Context> {
        match self {
            TaskContext::None => None,
            TaskContext::File(p) => Some(Context::file(p)),
            TaskContext::Files(ps) => Some(Context::files(ps.iter().cloned())),
            TaskContext::Text(t) => Some(Context::text(t.clone())),
            TaskContext::Documents(d) => Some(Context::documents(d.iter().cloned())),
        }
    }
}

/// An expected answer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Expected {
    /// A text.
    Text(String),
    /// A number.
    Number(f64),
    /// A set of texts (order does not matter).
    Set(Vec<String>),
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expected::Text(t) => f.write_str(t),
            Expected::Number(n) => write!(f, "{}", super::score::format_number(*n)),
            Expected::Set(s) => f.write_str(&s.join(", ")),
        }
    }
}

/// The wire form of one line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    family: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    question: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    context: Option<LineContext>,
    answer: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    score: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum LineContext {
    File(String),
    Files(Vec<String>),
    Text(String),
    Documents(Vec<String>),
}

impl Suite {
    /// Reads a suite file; relative context paths are resolved against its directory.
    pub fn load(path: impl AsRef<Path>) -> Result<Suite> {
        let path = path.as_ref();
        let where_ = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(&where_, format!("cannot read the suite: {e}")))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Suite::parse(&text, base).map_err(|e| Error::config(&where_, config_text(&e)))
    }

    /// Parses suite text; relative paths are resolved against `base`. Errors name the line
    /// and the field.
    pub fn parse(text: &str, base: &Path) -> Result<Suite> {
        let mut tasks: Vec<Task> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let raw = raw.trim();
            if raw.is_empty() || raw.starts_with('#') {
                continue;
            }
            let line: Line = serde_json::from_str(raw)
                .map_err(|e| Error::config("suite", format!("line {n}: {e}")))?;
            let bad =
                |m: String| Error::config("suite", format!("line {n} (task {:?}): {m}", line.id));
            if line.id.trim().is_empty() {
                return Err(Error::config("suite", format!("line {n}: `id` is empty")));
            }
            if tasks.iter().any(|t| t.id == line.id) {
                return Err(bad("`id` is used twice; ids must be unique".into()));
            }
            if line.question.trim().is_empty() {
                return Err(bad("`question` is empty".into()));
            }
            let resolve = |p: &str| {
                let p = Path::new(p);
                if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    base.join(p)
                }
            };
            let context = match &line.context {
                None => TaskContext::None,
                Some(LineContext::File(p)) => TaskContext::File(resolve(p)),
                Some(LineContext::Files(ps)) if ps.is_empty() => {
                    return Err(bad("`context.files` is empty".into()));
                }
                Some(LineContext::Files(ps)) => {
                    TaskContext::Files(ps.iter().map(|p| resolve(p)).collect())
                }
                Some(LineContext::Text(t)) => TaskContext::Text(t.clone()),
                Some(LineContext::Documents(d)) => TaskContext::Documents(d.clone()),
            };
            let expected = match &line.answer {
                serde_json::Value::String(s) => Expected::Text(s.clone()),
                serde_json::Value::Number(x) => Expected::Number(x.as_f64().unwrap_or(f64::NAN)),
                serde_json::Value::Array(items) => Expected::Set(
                    items
                        .iter()
                        .map(|v| match v {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect(),
                ),
                other => {
                    return Err(bad(format!(
                        "`answer` must be a string, a number or a list (got {other})"
                    )));
                }
            };
            let scoring = match &line.score {
                None => Scoring::default_for(&expected),
                Some(v) => Scoring::from_json(v).map_err(bad)?,
            };
            scoring.check(&expected).map_err(bad)?;
            tasks.push(Task {
                id: line.id.clone(),
                family: line.family.clone().unwrap_or_else(|| "default".into()),
                tags: line.tags.clone(),
                question: line.question.clone(),
                context,
                expected,
                scoring,
            });
        }
        if tasks.is_empty() {
            return Err(Error::config("suite", "the suite has no tasks"));
        }
        Ok(Suite { tasks })
    }

    /// The suite as JSON Lines; context paths under `base` are written relative to it.
    pub fn to_jsonl(&self, base: &Path) -> String {
        let rel = |p: &PathBuf| {
            p.strip_prefix(base)
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned()
        };
        let mut out = String::new();
        for t in &self.tasks {
            let line = Line {
                id: t.id.clone(),
                family: Some(t.family.clone()),
                tags: t.tags.clone(),
                question: t.question.clone(),
                context: match &t.context {
                    TaskContext::None => None,
                    TaskContext::File(p) => Some(LineContext::File(rel(p))),
                    TaskContext::Files(ps) => {
                        Some(LineContext::Files(ps.iter().map(rel).collect()))
                    }
                    TaskContext::Text(s) => Some(LineContext::Text(s.clone())),
                    TaskContext::Documents(d) => Some(LineContext::Documents(d.clone())),
                },
                answer: match &t.expected {
                    Expected::Text(s) => serde_json::Value::String(s.clone()),
                    Expected::Number(n) => serde_json::json!(n),
                    Expected::Set(s) => serde_json::json!(s),
                },
                score: Some(t.scoring.to_json()),
            };
            out.push_str(&serde_json::to_string(&line).expect("a suite line serializes"));
            out.push('\n');
        }
        out
    }
}

/// The message of a configuration error without its prefix.
fn config_text(e: &Error) -> String {
    match e {
        Error::Config { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_shape_and_resolves_paths() {
        let text = r#"
# a comment
{"id": "a", "family": "needle", "tags": ["jsonl"], "question": "Which?", "context": {"file": "data/x.jsonl"}, "answer": "3.14.2"}
{"id": "b", "question": "How many?", "context": {"text": "1 2 3"}, "answer": 3, "score": {"number": {"tolerance": 0.5}}}
{"id": "c", "question": "Which ones?", "context": {"documents": ["x", "y"]}, "answer": ["x", "y"]}
{"id": "d", "question": "Where?", "context": {"files": ["/abs/a.txt", "b.txt"]}, "answer": "here", "score": "contains"}
"#;
        let s = Suite::parse(text, Path::new("/suites")).unwrap();
        assert_eq!(s.tasks.len(), 4);
        assert_eq!(
            s.tasks[0].context,
            TaskContext::File("/suites/data/x.jsonl".into())
        );
        assert_eq!(s.tasks[1].family, "default");
        assert_eq!(s.tasks[1].expected, Expected::Number(3.0));
        assert!(matches!(s.tasks[2].scoring, Scoring::Set));
        assert_eq!(
            s.tasks[3].context,
            TaskContext::Files(vec!["/abs/a.txt".into(), "/suites/b.txt".into()])
        );
        // Written and read back: the same suite.
        let again = Suite::parse(&s.to_jsonl(Path::new("/suites")), Path::new("/suites")).unwrap();
        assert_eq!(again, s);
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let cases = [
            (
                r#"{"id": "a", "question": "q"}"#,
                "line 1: missing field `answer`",
            ),
            (
                r#"{"id": "a", "question": "q", "answer": "x", "colour": 1}"#,
                "unknown field `colour`",
            ),
            (
                r#"{"id": "a", "question": "q", "answer": "x", "score": "fuzzy"}"#,
                "line 1 (task \"a\"): unknown score \"fuzzy\"",
            ),
            (
                r#"{"id": "a", "question": "q", "answer": "x", "score": {"number": {}}}"#,
                "expects a numeric answer",
            ),
            (
                "{\"id\": \"a\", \"question\": \"q\", \"answer\": 1}\n{\"id\": \"a\", \"question\": \"q\", \"answer\": 2}",
                "line 2 (task \"a\"): `id` is used twice",
            ),
            (
                r#"{"id": "a", "question": " ", "answer": 1}"#,
                "`question` is empty",
            ),
            (
                r#"{"id": "a", "question": "q", "answer": null}"#,
                "`answer` must be",
            ),
            ("", "no tasks"),
        ];
        for (text, want) in cases {
            let err = Suite::parse(text, Path::new(".")).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
