//! History compaction, the pure part: when a conversation reaches a set fraction of the
//! model's context window, which of its older turns are summarised (by one LLM call that
//! `run.rs` makes), and the transcript that call reads. No I/O; unit-tested here.

use std::ops::Range;

use crate::llm::{Message, Role};
use crate::prompt;

/// How many of the latest observations (with the replies between them) stay whole.
pub(crate) const KEEP_OBSERVATIONS: usize = 2;

/// The estimated tokens of a conversation: about 3 characters per token, as elsewhere in
/// the crate.
pub(crate) fn estimated_tokens(messages: &[Message]) -> u64 {
    messages.iter().map(|m| m.content.len() as u64).sum::<u64>() / 3
}

/// Over `fraction` of a `window` of tokens?
pub(crate) fn over(messages: &[Message], window: u64, fraction: f64) -> bool {
    estimated_tokens(messages) as f64 > window as f64 * fraction
}

/// The messages to summarise when `messages` is over `fraction` of `window`: the turns after
/// the question (at `question_at`) up to the latest [`KEEP_OBSERVATIONS`] observations.
/// The system prompt, whatever precedes the question (a session's earlier calls) and the
/// question itself are kept. `None` when under the threshold or with nothing worth
/// summarising (fewer than one whole reply and its observation).
///
/// The range starts at a reply and ends before an observation, so replacing it with one
/// assistant message keeps the roles alternating.
pub(crate) fn plan(
    messages: &[Message],
    question_at: usize,
    window: u64,
    fraction: f64,
) -> Option<Range<usize>> {
    if !over(messages, window, fraction) {
        return None;
    }
    let start = question_at + 1;
    let users: Vec<usize> = (start..messages.len())
        .filter(|&i| messages[i].role == Role::User)
        .collect();
    let end = *users.get(users.len().checked_sub(KEEP_OBSERVATIONS)?)?;
    let ok = end >= start + 2
        && messages.get(start)?.role == Role::Assistant
        && messages[end - 1].role == Role::Assistant;
    ok.then_some(start..end)
}

/// The turns to summarise as one text of at most about `max_chars` characters: long turns
/// are shortened to their start and end first, then only the latest part is kept.
pub(crate) fn transcript(turns: &[Message], max_chars: usize) -> String {
    let render = |shorten: bool| {
        turns
            .iter()
            .map(|m| {
                let who = match m.role {
                    Role::Assistant => "assistant (code and reasoning)",
                    Role::User => "user (REPL output and instructions)",
                    Role::System => "system",
                };
                let text = if shorten && m.content.len() > 2000 {
                    prompt::shortened(&m.content)
                } else {
                    m.content.clone()
                };
                format!("[{who}]\n{text}")
            })
            .collect::<Vec<_>>()
            .join("\n\n")
    };
    let full = render(false);
    if full.len() <= max_chars {
        return full;
    }
    let short = render(true);
    if short.len() <= max_chars {
        return short;
    }
    let mut cut = short.len() - max_chars;
    while !short.is_char_boundary(cut) {
        cut += 1;
    }
    format!("[... earlier part left out ...]\n{}", &short[cut..])
}

/// Parses the `RLM_COMPACT_AT` setting: a fraction of the window between 0.1 and 0.9, or
/// `off` (also `0`, `false`, `no`, `none`).
pub(crate) fn parse_fraction(v: &str) -> Result<Option<f64>, String> {
    let v = v.trim();
    if ["off", "0", "false", "no", "none"]
        .iter()
        .any(|o| v.eq_ignore_ascii_case(o))
    {
        return Ok(None);
    }
    match v.parse::<f64>() {
        Ok(f) if (0.1..=0.9).contains(&f) => Ok(Some(f)),
        _ => Err(format!(
            "must be a fraction of the context window between 0.1 and 0.9, or off; got {v:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convo(turns: usize, size: usize) -> Vec<Message> {
        let mut m = vec![Message::system("sys"), Message::user("Question: q")];
        for i in 0..turns {
            m.push(Message::assistant(format!("reply {i}")));
            m.push(Message::user(format!("obs {i} {}", "x".repeat(size))));
        }
        m
    }

    #[test]
    fn under_the_threshold_nothing_is_compacted() {
        let m = convo(4, 100);
        assert_eq!(plan(&m, 1, 10_000, 0.8), None);
        assert!(!over(&m, 10_000, 0.8));
    }

    #[test]
    fn older_turns_are_chosen_and_the_latest_two_observations_kept() {
        // 6 turns of ~3000 chars: ~6000 tokens, over 0.8 of 4000.
        let m = convo(6, 3000);
        let r = plan(&m, 1, 4000, 0.8).expect("a plan");
        // Kept: system, question; summarised: reply 0 .. reply 4; kept: obs 4, reply 5, obs 5.
        assert_eq!(r, 2..11);
        assert_eq!(m[r.start].content, "reply 0");
        assert_eq!(m[r.end - 1].content, "reply 4");
        assert!(m[r.end].content.starts_with("obs 4"));
        // A higher threshold: not yet.
        assert_eq!(plan(&m, 1, 4000, 1.9), None);
    }

    #[test]
    fn too_few_turns_or_a_session_prefix_are_left_alone() {
        // Two turns only: both observations are the kept ones.
        let m = convo(2, 30_000);
        assert_eq!(plan(&m, 1, 4000, 0.5), None);
        // A session's earlier turns before the question stay (not in the range).
        let mut m = vec![Message::system("s")];
        m.push(Message::user("earlier q"));
        m.push(Message::assistant("earlier a"));
        m.extend(convo(4, 3000).into_iter().skip(1));
        let r = plan(&m, 3, 3000, 0.8).unwrap();
        assert_eq!(r.start, 4);
        assert_eq!(m[r.start].content, "reply 0");
    }

    #[test]
    fn the_transcript_fits_its_bound() {
        let m = convo(6, 3000);
        let full = transcript(&m[2..6], 100_000);
        assert!(full.contains("[assistant (code and reasoning)]\nreply 0"));
        let short = transcript(&m[2..12], 5000);
        assert!(short.len() <= 5000 + 40, "{}", short.len());
        assert!(short.contains("reply 4"), "the latest part is kept");
    }

    #[test]
    fn the_setting_parses() {
        assert_eq!(parse_fraction("0.8"), Ok(Some(0.8)));
        assert_eq!(parse_fraction("off"), Ok(None));
        assert_eq!(parse_fraction("0"), Ok(None));
        assert!(parse_fraction("1.5").is_err());
        assert!(parse_fraction("x").is_err());
    }
}
