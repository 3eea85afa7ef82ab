//! What an evaluation found (pure): one outcome per task run, totals per family, the table
//! `rlm eval` prints and the machine-readable report.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// One task run, scored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TaskOutcome {
    /// The task id (`id#k` for the k-th of repeated runs).
    pub id: String,
    /// The task's family.
    pub family: String,
    /// The answer was right.
    pub right: bool,
    /// The final answer, if the run gave one.
    pub answer: Option<String>,
    /// The expected answer, as text.
    pub expected: String,
    /// Why the run ended without an answer.
    pub error: Option<String>,
    /// Turns of the root run.
    pub iterations: u32,
    /// Prompt plus completion tokens of the whole tree.
    pub tokens: u64,
    /// LLM calls of the whole tree.
    pub llm_calls: u64,
    /// Cost in USD, when every model's price is known.
    pub cost_usd: Option<f64>,
    /// Wall time of the run.
    pub duration_ms: u64,
    /// The trajectory file, if one was written.
    pub trajectory: Option<PathBuf>,
}

/// Totals over a set of outcomes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FamilyStats {
    /// The family (`all` for the total).
    pub family: String,
    /// Runs with the right answer.
    pub right: usize,
    /// Runs.
    pub total: usize,
    /// Mean turns per run.
    pub mean_iterations: f64,
    /// Tokens of all runs.
    pub tokens: u64,
    /// Cost of all runs, when known for every run.
    pub cost_usd: Option<f64>,
    /// Sum of the runs' wall times.
    pub run_ms: u64,
}

impl FamilyStats {
    fn of(family: &str, outs: &[&TaskOutcome]) -> FamilyStats {
        let n = outs.len();
        FamilyStats {
            family: family.to_string(),
            right: outs.iter().filter(|o| o.right).count(),
            total: n,
            mean_iterations: if n == 0 {
                0.0
            } else {
                outs.iter().map(|o| o.iterations as f64).sum::<f64>() / n as f64
            },
            tokens: outs.iter().map(|o| o.tokens).sum(),
            cost_usd: outs.iter().map(|o| o.cost_usd).sum::<Option<f64>>(),
            run_ms: outs.iter().map(|o| o.duration_ms).sum(),
        }
    }

    /// Right answers as a fraction (0 for no runs).
    pub fn accuracy(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.right as f64 / self.total as f64
        }
    }
}

/// The result of running a suite.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct EvalReport {
    /// The model of the root runs.
    pub model: String,
    /// Every run, in suite order.
    pub outcomes: Vec<TaskOutcome>,
    /// Per family, in order of first appearance.
    pub families: Vec<FamilyStats>,
    /// Over all runs.
    pub total: FamilyStats,
    /// Wall time of the whole evaluation.
    pub wall_ms: u64,
}

impl EvalReport {
    /// A report over `outcomes` (e.g. those that finished before an evaluation was stopped).
    pub fn new(model: String, outcomes: Vec<TaskOutcome>, wall: Duration) -> EvalReport {
        let mut names: Vec<&str> = Vec::new();
        for o in &outcomes {
            if !names.contains(&o.family.as_str()) {
                names.push(&o.family);
            }
        }
        let families = names
            .iter()
            .map(|f| {
                let outs: Vec<&TaskOutcome> = outcomes.iter().filter(|o| o.family == *f).collect();
                FamilyStats::of(f, &outs)
            })
            .collect();
        let all: Vec<&TaskOutcome> = outcomes.iter().collect();
        let total = FamilyStats::of("all", &all);
        EvalReport {
            model,
            families,
            total,
            outcomes,
            wall_ms: wall.as_millis() as u64,
        }
    }

    /// The table `rlm eval` prints: one row per family and a total.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<12} {:>9} {:>7} {:>10} {:>10} {:>10} {:>11}\n",
            "family", "right", "acc", "mean iter", "tokens", "cost $", "run time s"
        );
        let row = |f: &FamilyStats| {
            format!(
                "{:<12} {:>9} {:>6.0}% {:>10.1} {:>10} {:>10} {:>11.1}\n",
                f.family,
                format!("{}/{}", f.right, f.total),
                f.accuracy() * 100.0,
                f.mean_iterations,
                f.tokens,
                f.cost_usd.map_or("?".to_string(), |c| format!("{c:.4}")),
                f.run_ms as f64 / 1000.0
            )
        };
        for f in &self.families {
            s.push_str(&row(f));
        }
        s.push_str(&row(&self.total));
        s.push_str(&format!(
            "model {}; wall time {:.1} s\n",
            self.model,
            self.wall_ms as f64 / 1000.0
        ));
        s
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(id: &str, family: &str, right: bool, it: u32, cost: Option<f64>) -> TaskOutcome {
        TaskOutcome {
            id: id.into(),
            family: family.into(),
            right,
            answer: Some("x".into()),
            expected: "x".into(),
            error: None,
            iterations: it,
            tokens: 100,
            llm_calls: it as u64,
            cost_usd: cost,
            duration_ms: 1500,
            trajectory: None,
        }
    }

    #[test]
    fn totals_per_family_and_overall() {
        let r = EvalReport::new(
            "m".into(),
            vec![
                out("a", "needle", true, 2, Some(0.01)),
                out("b", "count", false, 4, None),
                out("c", "needle", false, 3, Some(0.02)),
            ],
            Duration::from_secs(3),
        );
        assert_eq!(r.families.len(), 2);
        assert_eq!(r.families[0].family, "needle");
        assert_eq!((r.families[0].right, r.families[0].total), (1, 2));
        assert_eq!(r.families[0].mean_iterations, 2.5);
        assert_eq!(r.families[0].cost_usd, Some(0.03));
        assert_eq!(r.families[1].cost_usd, None);
        assert_eq!((r.total.right, r.total.total), (1, 3));
        let t = r.table();
        assert!(
            t.contains("needle") && t.contains("1/2") && t.contains("50%"),
            "{t}"
        );
        assert!(t.contains("all") && t.contains("1/3"), "{t}");
        let j: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(j["total"]["right"], 1);
        assert_eq!(j["outcomes"][1]["family"], "count");
    }
}
