//! The server's counters and their Prometheus text exposition. Pure: recording and
//! rendering only.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::result::RunResult;

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// A cumulative histogram with fixed buckets.
#[derive(Debug, Clone, Default)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub(crate) fn observe(&mut self, d: Duration) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += s;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str) {
        for (i, b) in BUCKETS.iter().enumerate() {
            let n = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }

    /// Mean in seconds (0 before the first observation).
    pub(crate) fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }
}

#[derive(Debug, Default)]
struct ModelTotals {
    calls: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    cost_usd: f64,
}

#[derive(Debug, Default)]
struct Inner {
    runs: BTreeMap<&'static str, u64>,
    responses: BTreeMap<u16, u64>,
    models: BTreeMap<String, ModelTotals>,
    sandbox_starts: u64,
    run_seconds: Histogram,
    queue_seconds: Histogram,
    request_seconds: Histogram,
}

/// Every counter of one server.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) in_flight: AtomicI64,
    pub(crate) queued: AtomicI64,
    inner: Mutex<Inner>,
}

/// The outcome label of a finished run.
pub(crate) fn outcome(r: &RunResult) -> &'static str {
    match (&r.failure, r.success) {
        (_, true) => "success",
        (Some(crate::Error::Cancelled), _) => "cancelled",
        (Some(crate::Error::Timeout { .. }), _) => "timeout",
        _ => "failed",
    }
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A finished run: its outcome, tokens and cost per model, whether it started a sandbox,
    /// and its duration.
    pub(crate) fn run_finished(&self, r: &RunResult) {
        let mut m = self.lock();
        *m.runs.entry(outcome(r)).or_default() += 1;
        for (model, u) in &r.usage.per_model {
            let t = m.models.entry(model.clone()).or_default();
            t.calls += u.calls;
            t.prompt_tokens += u.prompt_tokens;
            t.completion_tokens += u.completion_tokens;
            t.cost_usd += u.cost_usd.unwrap_or(0.0);
        }
        if r.sandbox.is_some() {
            m.sandbox_starts += 1;
        }
        m.run_seconds.observe(r.duration);
    }

    /// A run that waited `d` for a slot.
    pub(crate) fn queue_wait(&self, d: Duration) {
        self.lock().queue_seconds.observe(d);
    }

    /// An HTTP response with `status`, `d` after its request arrived (for streams: when the
    /// headers were ready).
    pub(crate) fn response(&self, status: u16, d: Duration) {
        let mut m = self.lock();
        *m.responses.entry(status).or_default() += 1;
        m.request_seconds.observe(d);
    }

    /// Mean run duration so far, in seconds.
    pub(crate) fn mean_run_seconds(&self) -> f64 {
        self.lock().run_seconds.mean()
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub(crate) fn render(&self) -> String {
        let m = self.lock();
        let mut s = String::new();
        let head = |s: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(
            &mut s,
            "rlm_runs_total",
            "counter",
            "Finished runs by outcome.",
        );
        for o in ["success", "failed", "timeout", "cancelled"] {
            let n = m.runs.get(o).copied().unwrap_or(0);
            let _ = writeln!(s, "rlm_runs_total{{outcome=\"{o}\"}} {n}");
        }
        head(&mut s, "rlm_runs_in_flight", "gauge", "Runs running now.");
        let _ = writeln!(
            s,
            "rlm_runs_in_flight {}",
            self.in_flight.load(Ordering::SeqCst)
        );
        head(
            &mut s,
            "rlm_runs_queued",
            "gauge",
            "Runs waiting for a slot.",
        );
        let _ = writeln!(s, "rlm_runs_queued {}", self.queued.load(Ordering::SeqCst));
        head(
            &mut s,
            "rlm_http_responses_total",
            "counter",
            "HTTP responses by status code.",
        );
        for (code, n) in &m.responses {
            let _ = writeln!(s, "rlm_http_responses_total{{code=\"{code}\"}} {n}");
        }
        head(
            &mut s,
            "rlm_llm_calls_total",
            "counter",
            "LLM calls by model.",
        );
        for (model, t) in &m.models {
            let _ = writeln!(
                s,
                "rlm_llm_calls_total{{model=\"{}\"}} {}",
                label(model),
                t.calls
            );
        }
        head(
            &mut s,
            "rlm_llm_tokens_total",
            "counter",
            "LLM tokens by model and kind (prompt, completion).",
        );
        for (model, t) in &m.models {
            let l = label(model);
            let _ = writeln!(
                s,
                "rlm_llm_tokens_total{{model=\"{l}\",kind=\"prompt\"}} {}",
                t.prompt_tokens
            );
            let _ = writeln!(
                s,
                "rlm_llm_tokens_total{{model=\"{l}\",kind=\"completion\"}} {}",
                t.completion_tokens
            );
        }
        head(
            &mut s,
            "rlm_llm_cost_usd_total",
            "counter",
            "LLM cost in USD by model (models without a known price count 0).",
        );
        for (model, t) in &m.models {
            let _ = writeln!(
                s,
                "rlm_llm_cost_usd_total{{model=\"{}\"}} {}",
                label(model),
                t.cost_usd
            );
        }
        head(
            &mut s,
            "rlm_sandbox_starts_total",
            "counter",
            "Runs whose code started a sandbox session.",
        );
        let _ = writeln!(s, "rlm_sandbox_starts_total {}", m.sandbox_starts);
        head(
            &mut s,
            "rlm_run_duration_seconds",
            "histogram",
            "Wall-clock time of finished runs.",
        );
        m.run_seconds.render(&mut s, "rlm_run_duration_seconds");
        head(
            &mut s,
            "rlm_queue_wait_seconds",
            "histogram",
            "Time runs waited for a slot.",
        );
        m.queue_seconds.render(&mut s, "rlm_queue_wait_seconds");
        head(
            &mut s,
            "rlm_http_request_duration_seconds",
            "histogram",
            "Time from a request's arrival to its response (streams: to the headers).",
        );
        m.request_seconds
            .render(&mut s, "rlm_http_request_duration_seconds");
        s
    }
}

/// A label value escaped as the text format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_escaped_labels() {
        let m = Metrics::default();
        let r: RunResult = serde_json::from_value(serde_json::json!({
            "final_answer": "4", "success": true, "iterations": 1, "steps": [],
            "usage": {"calls": 2, "prompt_tokens": 200, "completion_tokens": 40, "cost_usd": 0.5,
                      "per_model": {"m\"x": {"calls": 2, "prompt_tokens": 200, "completion_tokens": 40, "cost_usd": 0.5}}},
            "error": null, "run_id": "r", "duration": 1500.0
        }))
        .unwrap();
        m.run_finished(&r);
        m.response(200, Duration::from_millis(3));
        let t = m.render();
        assert!(t.contains("rlm_runs_total{outcome=\"success\"} 1"), "{t}");
        assert!(t.contains("rlm_runs_total{outcome=\"failed\"} 0"), "{t}");
        assert!(
            t.contains("rlm_llm_tokens_total{model=\"m\\\"x\",kind=\"prompt\"} 200"),
            "{t}"
        );
        assert!(
            t.contains("rlm_llm_cost_usd_total{model=\"m\\\"x\"} 0.5"),
            "{t}"
        );
        assert!(
            t.contains("rlm_run_duration_seconds_bucket{le=\"1\"} 0"),
            "{t}"
        );
        assert!(
            t.contains("rlm_run_duration_seconds_bucket{le=\"2.5\"} 1"),
            "{t}"
        );
        assert!(t.contains("rlm_run_duration_seconds_count 1"), "{t}");
        assert!(
            t.contains("rlm_http_responses_total{code=\"200\"} 1"),
            "{t}"
        );
        // Every line is a comment or `name{labels} value`.
        for line in t.lines().filter(|l| !l.starts_with('#')) {
            let v = line.rsplit(' ').next().unwrap();
            assert!(v.parse::<f64>().is_ok(), "{line}");
        }
    }
}
