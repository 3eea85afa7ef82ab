//! `rlm view`: a trajectory rendered as one self-contained HTML page (pure: no assets, no
//! scripts, works offline). Runs nest as a tree: a sub-query that started a child run holds
//! the child's steps.

use std::collections::HashMap;
use std::fmt::Write;

use crate::result::{Step, StepKind};
use crate::trajectory::TrajectoryEvent;

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

#[derive(Default)]
struct RunView<'a> {
    query: &'a str,
    model: &'a str,
    depth: u32,
    parent: Option<&'a str>,
    steps: Vec<&'a Step>,
    end: Option<&'a TrajectoryEvent>,
}

const CSS: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d2430;background:#f6f7f9}\
h1{font-size:20px}.run{border-left:3px solid #4a6fa5;padding:4px 0 4px 14px;margin:10px 0;background:#fff}\
.run.child{border-color:#9b59b6;margin-left:18px}.meta{color:#5b6573;font-size:12px}\
.step{margin:8px 0;padding:6px 10px;border:1px solid #dde2e8;border-radius:6px}\
.step.fail{border-color:#e0a3a3;background:#fff6f6}.kind{font-weight:600}\
pre{white-space:pre-wrap;word-break:break-word;background:#f0f2f5;padding:8px;border-radius:4px;margin:6px 0;max-height:480px;overflow:auto}\
.final{font-size:16px;padding:10px;background:#eaf7ea;border:1px solid #9cd39c;border-radius:6px}\
.finding{color:#a4262c;font-size:12px}.err{color:#a4262c}summary{cursor:pointer}";

/// Renders `events` as a standalone HTML document.
pub fn render_html(events: &[TrajectoryEvent]) -> String {
    let mut runs: HashMap<&str, RunView<'_>> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for e in events {
        let at = e.at();
        let r = runs.entry(at.run_id.as_str()).or_insert_with(|| {
            order.push(at.run_id.as_str());
            RunView {
                depth: at.depth,
                parent: at.parent_id.as_deref(),
                ..Default::default()
            }
        });
        match e {
            TrajectoryEvent::RunStart { query, model, .. } => {
                r.query = query;
                r.model = model;
            }
            TrajectoryEvent::Step { step, .. } => r.steps.push(step),
            TrajectoryEvent::RunEnd { .. } => r.end = Some(e),
        }
    }
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>rlm trajectory</title><style>{CSS}</style></head><body><h1>rlm trajectory</h1>"
    );
    let roots: Vec<&str> = order
        .iter()
        .copied()
        .filter(|id| runs[id].parent.is_none_or(|p| !runs.contains_key(p)))
        .collect();
    if roots.is_empty() {
        html.push_str("<p>This trajectory has no runs.</p>");
    }
    for id in roots {
        render_run(&mut html, id, &runs);
    }
    html.push_str("</body></html>\n");
    html
}

fn render_run(html: &mut String, id: &str, runs: &HashMap<&str, RunView<'_>>) {
    let r = &runs[id];
    let class = if r.depth > 0 { "run child" } else { "run" };
    let _ = write!(
        html,
        "<section class=\"{class}\" id=\"{}\"><div><b>{}</b> {}</div><div class=\"meta\">run {} · depth {} · model {}</div>",
        esc(id),
        if r.depth == 0 { "Query:" } else { "Sub-task:" },
        esc(r.query),
        esc(id),
        r.depth,
        esc(r.model)
    );
    for s in &r.steps {
        render_step(html, s, runs);
    }
    if let Some(TrajectoryEvent::RunEnd {
        success,
        final_answer,
        error,
        iterations,
        usage,
        duration,
        ..
    }) = r.end
    {
        let cost = usage
            .cost_usd
            .map(|c| format!("${c:.4}"))
            .unwrap_or_else(|| "cost unknown".into());
        let _ = write!(
            html,
            "<div class=\"meta\">{} after {iterations} iteration(s), {:.1}s, {} LLM call(s), {} tokens, {cost}</div>",
            if *success { "finished" } else { "stopped" },
            duration.as_secs_f64(),
            usage.calls,
            usage.total_tokens()
        );
        match (final_answer, error) {
            (Some(a), _) => {
                let _ = write!(
                    html,
                    "<div class=\"final\"><b>Final answer:</b> {}</div>",
                    esc(a)
                );
            }
            (None, Some(e)) => {
                let _ = write!(
                    html,
                    "<div class=\"final err\"><b>No answer:</b> {}</div>",
                    esc(e)
                );
            }
            _ => {}
        }
    } else {
        html.push_str("<div class=\"meta err\">(the run did not finish: the log ends here)</div>");
    }
    html.push_str("</section>");
}

fn render_step(html: &mut String, s: &Step, runs: &HashMap<&str, RunView<'_>>) {
    let kind = match s.kind {
        StepKind::LlmCall => "LLM reply",
        StepKind::CodeExecution => "Code",
        StepKind::SubQuery => "Sub-query",
        StepKind::FinalAnswer => "Final answer",
        StepKind::PartialAnswer => "Partial answer (not final)",
        StepKind::ToolCall => "Tool call",
        StepKind::Compaction => "History compaction",
    };
    let mut meta = format!(
        "iteration {} · {:.0} ms",
        s.iteration,
        s.duration.as_secs_f64() * 1000.0
    );
    if let (Some(p), Some(c)) = (s.prompt_tokens, s.completion_tokens) {
        let _ = write!(meta, " · {p}+{c} tokens");
    }
    if let Some(c) = s.cost_usd {
        let _ = write!(meta, " · ${c:.5}");
    }
    if let Some(m) = &s.model {
        let _ = write!(meta, " · {}", esc(m));
    }
    let _ = write!(
        html,
        "<div class=\"step{}\"><span class=\"kind\">{kind}</span> <span class=\"meta\">{meta}</span>",
        if s.success { "" } else { " fail" }
    );
    match s.kind {
        StepKind::LlmCall => {
            let _ = write!(html, "<pre>{}</pre>", esc(&s.output));
        }
        StepKind::CodeExecution => {
            let _ = write!(
                html,
                "<pre>{}</pre><div class=\"meta\">output</div><pre>{}</pre>",
                esc(&s.input),
                esc(&s.output)
            );
        }
        StepKind::SubQuery => {
            let _ = write!(
                html,
                "<details><summary>prompt</summary><pre>{}</pre></details><div class=\"meta\">answer</div><pre>{}</pre>",
                esc(&s.input),
                esc(&s.output)
            );
        }
        _ => {
            let _ = write!(html, "<pre>{}</pre>", esc(&s.output));
        }
    }
    if let Some(e) = &s.error {
        let _ = write!(html, "<div class=\"err\">error: {}</div>", esc(e));
    }
    for f in &s.findings {
        let _ = write!(
            html,
            "<div class=\"finding\">redacted: {} (bytes {}..{})</div>",
            esc(&f.rule),
            f.start,
            f.end
        );
    }
    if let Some(child) = s.child_run_id.as_deref().filter(|c| runs.contains_key(c)) {
        render_run(html, child, runs);
    }
    html.push_str("</div>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trajectory::{RunRef, SCHEMA_VERSION};

    fn at(id: &str, parent: Option<&str>, depth: u32) -> RunRef {
        RunRef {
            v: SCHEMA_VERSION,
            ts: 1.0,
            run_id: id.into(),
            parent_id: parent.map(Into::into),
            depth,
        }
    }

    #[test]
    fn escapes_and_nests() {
        let mut step = Step {
            iteration: 1,
            kind: StepKind::SubQuery,
            input: "<script>alert(1)</script>".into(),
            output: "child answer".into(),
            success: true,
            error: None,
            started: Default::default(),
            duration: Default::default(),
            findings: vec![],
            model: None,
            prompt_tokens: None,
            completion_tokens: None,
            cost_usd: None,
            child_run_id: Some("c".into()),
        };
        let events = vec![
            TrajectoryEvent::RunStart {
                at: at("r", None, 0),
                query: "q & a".into(),
                model: "m".into(),
                max_iterations: 3,
                max_depth: 2,
                context: None,
            },
            TrajectoryEvent::RunStart {
                at: at("c", Some("r"), 1),
                query: "sub".into(),
                model: "m".into(),
                max_iterations: 3,
                max_depth: 2,
                context: None,
            },
            TrajectoryEvent::Step {
                at: at("r", None, 0),
                step: step.clone(),
            },
        ];
        step.child_run_id = None;
        let html = render_html(&events);
        assert!(
            html.contains("q &amp; a")
                && html.contains("&lt;script&gt;")
                && !html.contains("<script>")
        );
        let root_at = html.find("id=\"r\"").unwrap();
        let child_at = html.find("id=\"c\"").unwrap();
        assert!(
            child_at > root_at,
            "the child is rendered inside the root's sub-query"
        );
        assert!(html.contains("did not finish"));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external assets"
        );
    }
}
