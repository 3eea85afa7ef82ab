//! Trajectory events (pure): one JSON object per line, versioned, written as a run happens.
//!
//! Schema version 1. Every line has `v` (schema version), `type`, `ts` (Unix time in
//! milliseconds), `run_id`, `parent_id` (`null` for the root run) and `depth` (0 for the
//! root). Types:
//! - `run_start`: `query`, `model`, `max_iterations`, `max_depth`, `context` (a short
//!   description, or `null`);
//! - `step`: `step`, a [`Step`] (LLM calls carry `model`, tokens and `cost_usd`; sub-queries
//!   carry `child_run_id`);
//! - `run_end`: `success`, `final_answer`, `error`, `iterations`, `usage` (for the root: the
//!   whole tree), `duration` (ms).

use serde::{Deserialize, Serialize};

use crate::result::{Step, Usage};

/// The schema version written in every event's `v` field.
pub const SCHEMA_VERSION: u32 = 1;

/// Where an event belongs in the tree of runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunRef {
    /// Schema version.
    pub v: u32,
    /// Unix time in milliseconds.
    pub ts: f64,
    /// The run.
    pub run_id: String,
    /// Its parent run (`None` for the root).
    pub parent_id: Option<String>,
    /// 0 for the root, 1 for its children, ...
    pub depth: u32,
}

/// One line of a trajectory file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TrajectoryEvent {
    /// A run (root or child) started.
    #[non_exhaustive]
    RunStart {
        /// Ids and time.
        #[serde(flatten)]
        at: RunRef,
        /// The query.
        query: String,
        /// The default model.
        model: String,
        /// Iteration limit of this run.
        max_iterations: u32,
        /// Depth limit of the tree.
        max_depth: u32,
        /// A short description of the context.
        context: Option<String>,
    },
    /// A step finished.
    #[non_exhaustive]
    Step {
        /// Ids and time.
        #[serde(flatten)]
        at: RunRef,
        /// The step.
        step: Step,
    },
    /// A run ended.
    #[non_exhaustive]
    RunEnd {
        /// Ids and time.
        #[serde(flatten)]
        at: RunRef,
        /// Whether it produced an answer.
        success: bool,
        /// The answer.
        final_answer: Option<String>,
        /// Why it failed.
        error: Option<String>,
        /// LLM turns.
        iterations: u32,
        /// Tokens and cost (the whole tree for the root).
        usage: Usage,
        /// Wall-clock time.
        #[serde(with = "crate::result::duration_ms")]
        duration: std::time::Duration,
    },
}

impl TrajectoryEvent {
    /// The event's place in the tree.
    pub fn at(&self) -> &RunRef {
        match self {
            TrajectoryEvent::RunStart { at, .. }
            | TrajectoryEvent::Step { at, .. }
            | TrajectoryEvent::RunEnd { at, .. } => at,
        }
    }

    /// One line of JSON, newline-terminated.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("events serialize");
        s.push('\n');
        s
    }
}

/// Reads a trajectory (JSON Lines); a truncated last line (a crash mid-write) is ignored.
pub fn parse_trajectory(text: &str) -> Result<Vec<TrajectoryEvent>, String> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    for (i, l) in lines.iter().enumerate() {
        match serde_json::from_str(l) {
            Ok(e) => out.push(e),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => return Err(format!("line {}: {e}", i + 1)),
        }
    }
    Ok(out)
}

pub(crate) fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_prefixes_parse() {
        let at = RunRef {
            v: SCHEMA_VERSION,
            ts: 1.0,
            run_id: "r1".into(),
            parent_id: None,
            depth: 0,
        };
        let e = TrajectoryEvent::RunStart {
            at: at.clone(),
            query: "q".into(),
            model: "m".into(),
            max_iterations: 3,
            max_depth: 1,
            context: None,
        };
        let line = e.to_line();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            (v["type"].as_str(), v["v"].as_u64(), v["run_id"].as_str()),
            (Some("run_start"), Some(1), Some("r1"))
        );
        let two = format!("{line}{}", &line[..line.len() / 2]);
        assert_eq!(
            parse_trajectory(&two).unwrap(),
            vec![e.clone()],
            "a crash leaves a valid prefix"
        );
        assert!(parse_trajectory("{\"type\":\"nope\"}\n{}\n").is_err());
    }
}
