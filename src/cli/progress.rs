//! The progress renderer: one line per event on stderr (rewritten in place on a terminal),
//! then a summary. Everything shown is terminal-safe.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use rlm::{EventStream, RunEvent, StepKind};

use super::term::safe_line;

/// Shows the events of one run until it ends (blocking; run it on its own thread). With
/// `quiet`, the events are drained without printing.
pub(crate) fn show(events: EventStream, quiet: bool) {
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let (mut tokens, mut cost) = (0u64, None::<f64>);
    let mut err = std::io::stderr();
    while let Some(ev) = events.recv_blocking() {
        if quiet {
            continue;
        }
        let line = match ev {
            RunEvent::Iteration { iteration, .. } => format!("turn {iteration}: asking the model"),
            RunEvent::Executing {
                iteration, code, ..
            } => {
                let first = code
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim();
                let first: String = first.chars().take(60).collect();
                format!("turn {iteration}: running code: {}", safe_line(&first))
            }
            RunEvent::Step { step, usage, .. } => {
                tokens = usage.total_tokens();
                cost = usage.cost_usd;
                match step.kind {
                    StepKind::SubQuery => format!("turn {}: sub-query done", step.iteration),
                    StepKind::CodeExecution if !step.success => format!(
                        "turn {}: code failed: {}",
                        step.iteration,
                        safe_line(&step.error.unwrap_or_default())
                    ),
                    _ => continue,
                }
            }
            RunEvent::ChildStarted { depth, query, .. } => format!(
                "{}child run (depth {depth}): {}",
                indent(depth),
                safe_line(&query.chars().take(60).collect::<String>())
            ),
            RunEvent::ChildIteration {
                depth, iteration, ..
            } => format!("{}turn {iteration}: asking the model", indent(depth)),
            RunEvent::SubCallFinished { depth, success, .. } if depth > 0 => format!(
                "{}sub-query {}",
                indent(depth),
                if success { "done" } else { "failed" }
            ),
            RunEvent::ChildFinished {
                depth,
                success,
                error,
                ..
            } => match error {
                Some(e) if !success => format!(
                    "{}child run stopped: {}",
                    indent(depth),
                    safe_line(&e.chars().take(80).collect::<String>())
                ),
                _ => format!("{}child run done", indent(depth)),
            },
            RunEvent::Finished { success, .. } => {
                if tty {
                    let _ = write!(err, "\r\x1b[K");
                }
                let _ = writeln!(
                    err,
                    "{} in {:.1}s, {tokens} tokens{}",
                    if success { "done" } else { "stopped" },
                    start.elapsed().as_secs_f64(),
                    cost.map(|c| format!(", ${c:.4}")).unwrap_or_default()
                );
                continue;
            }
            _ => continue,
        };
        let stats = format!(
            " [{tokens} tokens{}, {:.1}s]",
            cost.map(|c| format!(", ${c:.4}")).unwrap_or_default(),
            start.elapsed().as_secs_f64()
        );
        if tty {
            let _ = write!(err, "\r\x1b[K{line}{stats}");
            let _ = err.flush();
        } else {
            let _ = writeln!(err, "{line}{stats}");
        }
    }
}

/// Two spaces per level of the tree of runs.
fn indent(depth: u32) -> String {
    "  ".repeat(depth as usize)
}
