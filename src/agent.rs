//! The agent loop's decisions, as a pure state machine: fed the model's replies and the
//! results of code blocks, it says what to do next (ask the model, run a block, answer, or
//! stop and why) and keeps the conversation the model sees. No I/O: `run.rs` drives it, and
//! it is unit-tested without a sandbox or a provider.

use std::collections::VecDeque;

use crate::llm::Message;
use crate::parse::{extract_python_code, final_from_text};
use crate::prompt;

/// What the driver does next.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Ask the model, with the conversation [`Agent::messages`]. `temperature` overrides the
    /// configured one (a model that repeated its code is resampled warmer).
    Ask { temperature: Option<f32> },
    /// Run a code block (`index` of `of`, 1-based).
    Run {
        code: String,
        index: usize,
        of: usize,
    },
    /// The run has its answer (still to be filtered and recorded by the driver).
    Answer(String),
    /// The run ends without an answer.
    Stop(Stop),
    /// The conversation reached the compaction threshold: the driver asks for a summary of
    /// `turns` (the older messages, after `question`) and hands it to
    /// [`Agent::on_compacted`].
    Compact {
        question: String,
        turns: Vec<Message>,
    },
}

/// Why a run stopped without an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Too many replies in a row without code or a final answer.
    NoCode { replies: u32 },
    /// The turn limit.
    Iterations { max: u32 },
}

impl Stop {
    /// The message of the error that ends the run.
    pub(crate) fn message(&self) -> String {
        match self {
            Stop::NoCode { replies } => {
                format!("the model replied {replies} times in a row without code or a final answer")
            }
            Stop::Iterations { max } => format!(
                "max iterations ({max}) reached without a final answer (RLM_MAX_ITERATIONS)"
            ),
        }
    }
}

/// What the driver learnt from running one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlockResult {
    /// What the model reads about the block (already filtered), see
    /// [`prompt::observation`].
    pub(crate) observation: String,
    /// A final answer the REPL signalled (`FINAL(...)`, `FINAL_VAR(...)` or a printed
    /// `FINAL(...)` line).
    pub(crate) final_answer: Option<String>,
    /// The [`answer_words`] of `final_answer` that occur nowhere in the context (filled in
    /// by the driver, which can read the context).
    pub(crate) absent: Vec<String>,
}

/// Why a final answer was refused (each rule refuses at most once per run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Typed in, never shown by any output.
    Guessed,
    /// Taken from a search result that holds only some of the matches.
    Capped,
    /// Nothing (0, an empty list) right after a search that matched nothing.
    Empty,
    /// Words found nowhere in the data, the question or an output.
    Ungrounded,
    /// Not of the kind the question asks for.
    WrongKind,
    /// A question about meaning answered without a helper model.
    Unjudged,
    /// A whole sentence where a value was asked for.
    Sentence,
}

/// Refusals of final answers in one run, at most: the model then has its way.
const MAX_REFUSALS: usize = 3;

/// An answer that says "nothing": 0, an empty list, None.
fn is_empty_value(answer: &str) -> bool {
    let a = answer.trim().trim_matches(['"', '\'', '`']).trim();
    matches!(a, "0" | "0.0" | "[]" | "{}" | "()" | "None" | "" | "set()")
}

/// The state of one run's conversation.
#[derive(Debug)]
pub(crate) struct Agent {
    messages: Vec<Message>,
    max_iterations: u32,
    max_no_code: u32,
    iteration: u32,
    no_code: u32,
    /// The blocks of the previous reply with code, to spot a model repeating itself, and
    /// where that reply is in `messages`.
    previous_code: Vec<String>,
    previous_at: Option<usize>,
    repeats: u32,
    repeated: bool,
    /// Every reply's code so far, to spot a model going round in circles.
    history: Vec<Vec<String>>,
    /// The current reply repeats code of an earlier, not the previous, turn.
    circling: bool,
    /// Blocks of the current reply still to run, and how many it had.
    queue: VecDeque<String>,
    blocks: usize,
    observations: Vec<String>,
    /// The block running now.
    current: String,
    /// Every observation of the run so far (what the model has been shown).
    seen: Vec<String>,
    /// A final answer without evidence was already refused once.
    /// The refusal rules that refused a final answer in this run: each refuses at most
    /// once, and at most [`MAX_REFUSALS`] refusals happen in all.
    refused: Vec<Rule>,
    /// The observation of the block whose final answer is pending (see
    /// [`reject_answer`](Self::reject_answer)).
    answered_with: Option<String>,
    /// Final answers must be backed by output or computation (runs over a context).
    require_evidence: bool,
    /// How many characters of conversation the model's window holds (older observations
    /// are shortened beyond it).
    max_chars: usize,
    /// Where this call's first user message (the question) is in `messages`.
    question_at: usize,
    /// Every message of the conversation ever sent (or about to be), none shortened,
    /// dropped or compacted: what the REPL shows as `history`.
    log: Vec<Message>,
    /// How much of `log` the REPL has been given.
    log_sent: usize,
    /// History compaction: the window in tokens and the fraction of it that triggers it.
    compact: Option<(u64, f64)>,
    /// The messages an [`Action::Compact`] asked to summarise.
    pending: Option<std::ops::Range<usize>>,
    /// Blocks of one reply that run; later ones are dropped (see [`max_blocks`](Self::max_blocks)).
    max_blocks: usize,
    /// The note on dropped blocks, shown with the observations of the reply.
    dropped_note: Option<String>,
}

impl Agent {
    /// A conversation starting with `system` and the first user message.
    pub(crate) fn new(
        system: String,
        first_user: String,
        max_iterations: u32,
        max_no_code: u32,
    ) -> Self {
        let messages = vec![Message::system(system), Message::user(first_user)];
        Agent {
            log: messages.clone(),
            messages,
            max_iterations: max_iterations.max(1),
            max_no_code: max_no_code.max(1),
            iteration: 0,
            no_code: 0,
            previous_code: Vec::new(),
            previous_at: None,
            repeats: 0,
            repeated: false,
            history: Vec::new(),
            circling: false,
            queue: VecDeque::new(),
            blocks: 0,
            observations: Vec::new(),
            current: String::new(),
            seen: Vec::new(),
            refused: Vec::new(),
            answered_with: None,
            require_evidence: true,
            max_chars: usize::MAX,
            question_at: 1,
            log_sent: 0,
            compact: None,
            pending: None,
            max_blocks: usize::MAX,
            dropped_note: None,
        }
    }

    /// Continues a conversation: `earlier` (user and assistant turns of previous calls of a
    /// session) go between the system prompt and this call's first message.
    pub(crate) fn with_earlier(mut self, earlier: &[Message]) -> Self {
        let at = 1.min(self.messages.len());
        self.messages.splice(at..at, earlier.iter().cloned());
        self.log.splice(at..at, earlier.iter().cloned());
        self.question_at += earlier.len();
        self
    }

    /// Keeps the conversation within about `chars` characters: beyond it, the oldest
    /// observations (then replies) are shortened to their start and end, the latest two
    /// observations never.
    pub(crate) fn window_chars(mut self, chars: usize) -> Self {
        self.max_chars = chars.max(4000);
        self
    }

    /// Compacts the history when the conversation reaches `fraction` of a `window` of
    /// tokens (`None`: never; old turns are only shortened, see
    /// [`window_chars`](Self::window_chars)).
    pub(crate) fn compact_at(mut self, window: u64, fraction: Option<f64>) -> Self {
        self.compact = fraction.map(|f| (window, f));
        self
    }

    /// Runs at most `n` code blocks of a reply: a small model that writes dozens of blocks
    /// in one reply (a runaway) has only the first `n` run and kept in the conversation,
    /// and is told so.
    pub(crate) fn max_blocks(mut self, n: usize) -> Self {
        self.max_blocks = n.max(1);
        self
    }

    /// Every message of the conversation so far that the REPL was not given yet (see
    /// [`history_sent`](Self::history_sent)).
    pub(crate) fn history_unsent(&self) -> &[Message] {
        &self.log[self.log_sent.min(self.log.len())..]
    }

    /// The REPL now holds the whole history.
    pub(crate) fn history_sent(&mut self) {
        self.log_sent = self.log.len();
    }

    /// How many messages the REPL should hold already.
    pub(crate) fn history_held(&self) -> usize {
        self.log_sent.min(self.log.len())
    }

    /// Every message sent so far (what a restarted REPL gets again).
    pub(crate) fn history_all(&self) -> &[Message] {
        &self.log
    }

    /// The summary of the turns an [`Action::Compact`] named (`None`: the call failed or
    /// was not allowed): they are replaced by one message holding it, or, without one,
    /// shortened as before. Then the next turn starts.
    pub(crate) fn on_compacted(&mut self, summary: Option<String>) -> Action {
        if let (Some(range), Some(summary)) = (self.pending.take(), summary)
            && range.end <= self.messages.len()
        {
            let n = range.len();
            self.messages.splice(
                range,
                [Message::assistant(prompt::compacted_turns(n, &summary))],
            );
            // Indices into the conversation moved.
            self.previous_at = None;
        }
        self.fit();
        self.next_turn()
    }

    fn push(&mut self, m: Message) {
        self.log.push(m.clone());
        self.messages.push(m);
    }

    /// Shortens old turns until the conversation fits [`window_chars`](Self::window_chars).
    fn fit(&mut self) {
        let total = |m: &[Message]| m.iter().map(|x| x.content.len()).sum::<usize>();
        if total(&self.messages) <= self.max_chars {
            return;
        }
        let users: Vec<usize> = (2..self.messages.len())
            .filter(|&i| self.messages[i].role == crate::llm::Role::User)
            .collect();
        let keep_from = users.len().saturating_sub(2);
        let mut candidates: Vec<usize> = users[..keep_from].to_vec();
        // Then the model's older replies.
        candidates.extend(
            (2..self.messages.len())
                .filter(|&i| self.messages[i].role == crate::llm::Role::Assistant)
                .take(self.messages.len().saturating_sub(4)),
        );
        for i in candidates {
            if total(&self.messages) <= self.max_chars {
                break;
            }
            let m = &mut self.messages[i];
            if m.content.len() > 900 {
                m.content = prompt::shortened(&m.content);
            }
        }
    }

    /// Whether a final answer typed in without evidence is refused once (on by default;
    /// runs without a context answer from knowledge or computation and turn it off).
    pub(crate) fn require_evidence(mut self, on: bool) -> Self {
        self.require_evidence = on;
        self
    }

    /// The first action: ask the model.
    pub(crate) fn start(&mut self) -> Action {
        self.iteration = 1;
        Action::Ask { temperature: None }
    }

    /// The conversation to send with the next [`Action::Ask`].
    pub(crate) fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The current turn (1-based; 0 before [`start`](Self::start)).
    pub(crate) fn iteration(&self) -> u32 {
        self.iteration
    }

    /// The model answered.
    pub(crate) fn on_reply(&mut self, reply: &str) -> Action {
        let blocks = extract_python_code(reply);
        self.repeated = !blocks.is_empty() && blocks == self.previous_code;
        self.circling = !blocks.is_empty() && !self.repeated && self.history.contains(&blocks);
        self.repeats = if self.repeated || self.circling {
            self.repeats + 1
        } else {
            0
        };
        if !blocks.is_empty() {
            self.history.push(blocks.clone());
        }
        if self.repeated
            && let Some(at) = self.previous_at
            && at + 2 <= self.messages.len()
        {
            // Keep one copy of the repeated attempt in view, not a growing wall of them: drop
            // the earlier identical reply and its observation (whatever came after them stays).
            self.messages.drain(at..at + 2);
        }
        if !blocks.is_empty() {
            self.previous_code = blocks.clone();
            self.previous_at = Some(self.messages.len());
        }
        let mut blocks = blocks;
        self.dropped_note = None;
        if blocks.len() > self.max_blocks {
            self.dropped_note = Some(prompt::dropped_blocks(self.max_blocks, blocks.len()));
            blocks.truncate(self.max_blocks);
            let kept: Vec<String> = blocks
                .iter()
                .map(|b| format!("```python\n{b}\n```"))
                .collect();
            self.push(Message::assistant(kept.join("\n\n")));
        } else {
            self.push(Message::assistant(reply));
        }
        if blocks.is_empty() {
            // A final answer is taken from prose only when the reply has no code: code must
            // run first.
            if let Some(answer) = final_from_text(reply) {
                if self.guessed(&answer, reply, "") {
                    self.refused.push(Rule::Guessed);
                    self.push(Message::user(prompt::unsupported_final(&answer)));
                    return self.next_turn();
                }
                return Action::Answer(answer);
            }
            self.no_code += 1;
            if self.no_code >= self.max_no_code {
                return Action::Stop(Stop::NoCode {
                    replies: self.no_code,
                });
            }
            self.push(Message::user(prompt::no_code_nudge()));
            return self.next_turn();
        }
        self.no_code = 0;
        self.blocks = blocks.len();
        self.queue = blocks.into();
        self.observations.clear();
        self.next_block()
    }

    /// The driver refused the answer of the last [`Action::Answer`] (it does not match the
    /// answer schema): `text` goes back to the model, with the observation of the block
    /// that gave the answer, and the next turn starts (or the turn limit stops the run).
    pub(crate) fn reject_answer(&mut self, text: String) -> Action {
        match self.answered_with.take() {
            Some(observation) => {
                self.seen.push(observation.clone());
                self.observations.push(observation);
                self.observations.push(text);
                self.end_of_reply()
            }
            None => {
                self.push(Message::user(text));
                self.next_turn()
            }
        }
    }

    /// A block of the current reply ran.
    pub(crate) fn on_block(&mut self, result: BlockResult) -> Action {
        let code = std::mem::take(&mut self.current);
        if let Some(answer) = result.final_answer {
            let refusal = if self.guessed(&answer, &code, &result.observation) {
                // Typed in and never shown: the model is asked for the evidence.
                Some((Rule::Guessed, prompt::unsupported_final(&answer)))
            } else if self.may_refuse(Rule::Capped)
                && (result.observation.contains(prompt::CAPPED_MARK)
                    || (self.typed(&answer, &code) && self.last_seen_has(prompt::CAPPED_MARK)))
            {
                // Computed from a search result that holds only some of the matches, or typed
                // in right after one was printed.
                Some((Rule::Capped, prompt::capped_final(&answer)))
            } else if self.may_refuse(Rule::Empty)
                && is_empty_value(&answer)
                && (result.observation.contains(prompt::EMPTY_SEARCH_MARK)
                    || self.last_seen_has(prompt::EMPTY_SEARCH_MARK))
            {
                // Nothing (0, an empty list) from a search that matched nothing: the pattern
                // was probably wrong, not the data empty.
                Some((Rule::Empty, prompt::empty_final(&answer)))
            } else if let Some(words) = self.ungrounded(&result.absent) {
                // Words that are nowhere in the data, the question or an earlier output:
                // most likely parsed out of the wrong place.
                Some((Rule::Ungrounded, prompt::ungrounded_final(&answer, &words)))
            } else if self.may_refuse(Rule::Sentence)
                && crate::answer_kind::is_sentence_answer(self.question(), &answer)
            {
                // A sentence where a value was asked for.
                Some((Rule::Sentence, prompt::sentence_final(&answer)))
            } else if let Some(kind) = self.wrong_kind(&answer) {
                // A number for "which services", no number for "how many".
                Some((Rule::WrongKind, prompt::wrong_kind_final(&answer, kind)))
            } else {
                // A question about meaning answered without asking a helper model.
                self.unjudged()
                    .map(|word| (Rule::Unjudged, prompt::unjudged_final(&answer, word)))
            };
            self.queue.clear();
            if let Some((rule, text)) = refusal {
                self.refused.push(rule);
                self.observations.push(result.observation.clone());
                self.seen.push(result.observation);
                self.observations.push(text);
                return self.end_of_reply();
            }
            self.answered_with = Some(result.observation);
            return Action::Answer(answer);
        }
        self.seen.push(result.observation.clone());
        self.observations.push(result.observation);
        if !self.queue.is_empty() {
            return self.next_block();
        }
        self.end_of_reply()
    }

    /// Every block of the reply ran: the observations go back to the model.
    fn end_of_reply(&mut self) -> Action {
        let next = if self.iteration >= self.max_iterations {
            String::new()
        } else if self.repeated {
            prompt::repeated_code(self.iteration + 1, self.max_iterations)
        } else if self.circling {
            prompt::circling_code(self.iteration + 1, self.max_iterations)
        } else {
            prompt::next_turn(self.iteration + 1, self.max_iterations)
        };
        if let Some(note) = self.dropped_note.take() {
            self.observations.push(note);
        }
        let body = format!("{}\n\n{next}", self.observations.join("\n\n"));
        self.push(Message::user(body.trim_end()));
        if self.iteration < self.max_iterations
            && let Some((window, fraction)) = self.compact
            && let Some(range) =
                crate::compaction::plan(&self.messages, self.question_at, window, fraction)
        {
            let turns = self.messages[range.clone()].to_vec();
            self.pending = Some(range);
            return Action::Compact {
                question: self.messages[self.question_at].content.clone(),
                turns,
            };
        }
        self.fit();
        self.next_turn()
    }

    /// True when `answer` looks made up: typed into the code (or the reply) as a literal,
    /// and never shown by any output of the run, this block's included. Such an answer is
    /// refused once; a value the code computed, or one an output showed, is accepted.
    fn typed(&self, answer: &str, code: &str) -> bool {
        let a = answer.trim().trim_matches(['"', '\'', '`']).trim();
        !a.is_empty() && contains_loosely(code, a)
    }

    /// Whether the observation before this block's holds `mark` (a note of the REPL).
    fn last_seen_has(&self, mark: &str) -> bool {
        self.seen.last().is_some_and(|o| o.contains(mark))
    }

    /// Whether `rule` may still refuse a final answer in this run.
    fn may_refuse(&self, rule: Rule) -> bool {
        self.require_evidence && !self.refused.contains(&rule) && self.refused.len() < MAX_REFUSALS
    }

    fn guessed(&self, answer: &str, code: &str, this_block: &str) -> bool {
        if !self.may_refuse(Rule::Guessed) {
            return false;
        }
        let a = answer.trim().trim_matches(['"', '\'', '`']).trim();
        if a.is_empty() || !contains_loosely(code, a) {
            return false;
        }
        let outputs: Vec<&str> = self
            .seen
            .iter()
            .map(String::as_str)
            .chain([this_block])
            .collect();
        !shown_in(a, &outputs)
    }

    /// The word that makes the question one about meaning, when no code of the run asked a
    /// helper model (`llm_query`, `rlm_query` and their batched forms); once per run.
    fn unjudged(&self) -> Option<&'static str> {
        if !self.may_refuse(Rule::Unjudged) {
            return None;
        }
        let asked = self
            .history
            .iter()
            .flatten()
            .any(|code| code.contains("llm_query") || code.contains("rlm_query"));
        if asked {
            return None;
        }
        crate::answer_kind::judgement_word(self.question())
    }

    /// This call's question, as the user asked it.
    fn question(&self) -> &str {
        let first = self
            .messages
            .get(self.question_at)
            .map_or("", |m| m.content.as_str());
        let question = first.split_once("Question: ").map_or(first, |(_, q)| q);
        question.split("\n\n").next().unwrap_or(question)
    }

    /// The kind of answer the question asks for, when `answer` is not of it (checked once
    /// per run, like the other refusals; see [`crate::answer_kind`]).
    fn wrong_kind(&self, answer: &str) -> Option<crate::answer_kind::Kind> {
        if !self.may_refuse(Rule::WrongKind) {
            return None;
        }
        crate::answer_kind::mismatch(self.question(), answer)
    }

    /// The words of the answer found nowhere: not in the context (`absent`, from the
    /// driver), the question, or any earlier output. `None` when the answer is grounded or
    /// the check does not apply.
    fn ungrounded(&self, absent: &[String]) -> Option<Vec<String>> {
        if !self.may_refuse(Rule::Ungrounded) || absent.is_empty() {
            return None;
        }
        let question = self.messages.get(1).map(|m| m.content.as_str());
        let words: Vec<String> = absent
            .iter()
            .filter(|w| {
                !question.is_some_and(|q| contains_loosely(q, w))
                    && !self.seen.iter().any(|o| contains_loosely(o, w))
            })
            .cloned()
            .collect();
        (!words.is_empty()).then_some(words)
    }

    fn next_block(&mut self) -> Action {
        let code = self.queue.pop_front().expect("a block to run");
        self.current = code.clone();
        Action::Run {
            code,
            index: self.blocks - self.queue.len(),
            of: self.blocks,
        }
    }

    fn next_turn(&mut self) -> Action {
        if self.iteration >= self.max_iterations {
            return Action::Stop(Stop::Iterations {
                max: self.max_iterations,
            });
        }
        self.iteration += 1;
        Action::Ask {
            temperature: (self.repeats > 0).then(|| 0.3 + 0.2 * self.repeats.min(3) as f32),
        }
    }
}

/// The words of a short answer worth finding in the data: pieces (split at anything but
/// letters, digits, `-`, `_` and `.`) of three characters or more with a letter in them.
/// Numbers are left out (a computed count or sum need not occur in the data), and so are
/// long answers (prose), for which the check says nothing.
pub(crate) fn answer_words(answer: &str) -> Vec<String> {
    let pieces: Vec<&str> = answer
        .split(|c: char| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .map(|p| p.trim_matches(['.', '-', '_']))
        .filter(|p| !p.is_empty())
        .collect();
    if pieces.len() > 12 {
        return Vec::new();
    }
    let mut words: Vec<String> = Vec::new();
    for p in pieces {
        if p.chars().count() >= 3
            && p.chars().any(char::is_alphabetic)
            && !words.iter().any(|w| w.eq_ignore_ascii_case(p))
        {
            words.push(p.to_string());
        }
    }
    words
}

#[cfg(test)]
mod words_tests {
    use super::answer_words;

    #[test]
    fn answer_words_are_the_named_pieces_of_short_answers() {
        assert_eq!(answer_words("VAN-service., in EUR"), ["VAN-service", "EUR"]);
        assert_eq!(answer_words("VAN-2731, 1840 EUR"), ["VAN-2731", "EUR"]);
        assert_eq!(answer_words("42"), Vec::<String>::new());
        assert_eq!(answer_words("3.1.4"), Vec::<String>::new());
        assert_eq!(answer_words("['Alice', 'alice', 'Bob']"), ["Alice", "Bob"]);
        // Prose says nothing.
        assert!(
            answer_words("the quick brown fox jumps over the lazy dog and then runs far away")
                .is_empty()
        );
    }
}

/// True when the outputs show `answer`: whole, or part by part. An answer made of pieces
/// (`VAN-2731, 1840 EUR`) counts as shown when every piece with a digit in it appears in some
/// output, or, for an answer without digits, every word of three letters or more.
fn shown_in(answer: &str, outputs: &[&str]) -> bool {
    if outputs.iter().any(|o| contains_loosely(o, answer)) {
        return true;
    }
    let pieces: Vec<&str> = answer
        .split(|c: char| !(c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | ',')))
        .map(|p| p.trim_matches(['.', ',', '-', '_']))
        .filter(|p| !p.is_empty())
        .collect();
    let numeric: Vec<&str> = pieces
        .iter()
        .copied()
        .filter(|p| p.chars().any(|c| c.is_ascii_digit()))
        .collect();
    let needed: Vec<&str> = if numeric.is_empty() {
        pieces
            .into_iter()
            .filter(|p| p.chars().count() >= 3)
            .collect()
    } else {
        numeric
    };
    !needed.is_empty()
        && needed
            .iter()
            .all(|p| outputs.iter().any(|o| contains_loosely(o, p)))
}

/// `needle` occurs in `hay`, ignoring case, and for numbers also with thousands separators
/// (`4312` in `4,312`).
fn contains_loosely(hay: &str, needle: &str) -> bool {
    let h = hay.to_lowercase();
    let n = needle.to_lowercase();
    if h.contains(&n) {
        return true;
    }
    let digits = |s: &str| s.replace([',', '_'], "");
    n.chars().any(|c| c.is_ascii_digit()) && digits(&h).contains(&digits(&n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Role;

    fn agent(max: u32) -> Agent {
        Agent::new("sys".into(), "Question: q".into(), max, 3)
    }

    fn ran(obs: &str) -> BlockResult {
        BlockResult {
            observation: obs.into(),
            final_answer: None,
            absent: Vec::new(),
        }
    }

    fn code(c: &str) -> String {
        format!("```python\n{c}\n```")
    }

    fn finished(obs: &str, answer: &str) -> BlockResult {
        BlockResult {
            observation: obs.into(),
            final_answer: Some(answer.into()),
            absent: Vec::new(),
        }
    }

    /// A number for "which ones", no number for "how many", and a meaning question answered
    /// without a helper model are each refused once; the same answer again is taken.
    #[test]
    fn answers_of_the_wrong_kind_are_refused_once() {
        let ask = |q: &str, block: &str, answer: &str| {
            let mut a = Agent::new("sys".into(), format!("Question: {q}\n\nLook first."), 6, 3);
            a.start();
            a.on_reply(&code(block));
            let first = a.on_block(finished("[final answer recorded]", answer));
            let text = a.messages().last().unwrap().content.clone();
            a.on_reply(&code(block));
            let second = a.on_block(finished("[final answer recorded]", answer));
            (first, text, second)
        };
        let (first, text, second) = ask(
            "Name the three services with the most ERROR lines.",
            "n = ctx.count('ERROR')\nFINAL(n)",
            "1517",
        );
        assert_eq!(first, Action::Ask { temperature: None });
        assert!(text.contains("asks which ones"), "{text}");
        assert_eq!(second, Action::Answer("1517".into()));
        let (first, text, _) = ask(
            "How many of the reviews of the Breeze fan are negative?",
            "n = len([h for h in ctx.search('Breeze') if 'bad' in h['text']])\nFINAL(n)",
            "4",
        );
        assert_eq!(first, Action::Ask { temperature: None });
        assert!(text.contains("about meaning (\"negative\")"), "{text}");
        // Asked a helper model: taken at once.
        let (first, ..) = ask(
            "How many of the reviews of the Breeze fan are negative?",
            "a = llm_query_batched(ps)\nFINAL(sum(x.startswith('yes') for x in a))",
            "4",
        );
        assert_eq!(first, Action::Answer("4".into()));
        let (first, text, second) = ask(
            "Which product was ordered in order O-187827?",
            "FINAL(h['text'])",
            "Granite Labs bought a footrest in order O-187827.",
        );
        assert_eq!(first, Action::Ask { temperature: None });
        assert!(text.contains("whole sentence"), "{text}");
        assert!(matches!(second, Action::Answer(_)));
        let (first, ..) = ask(
            "Which service logged the most ERROR lines?",
            "FINAL(c.most_common(1)[0][0])",
            "billing",
        );
        assert_eq!(first, Action::Answer("billing".into()));
    }

    /// Each rule refuses once: a meaning question answered with a word is refused for its
    /// kind, then, as a number still without a helper model, for that; nothing from a search
    /// that matched nothing is refused; three refusals at most.
    #[test]
    fn each_rule_refuses_once_and_three_at_most() {
        let mut a = Agent::new(
            "sys".into(),
            "Question: How many of the reviews are negative?\n\nGo.".into(),
            9,
            3,
        );
        a.start();
        a.on_reply(&code(
            "n = len(ctx.search('bad'))\nFINAL(ctx.search('bad')[0]['label'])",
        ));
        let r = a.on_block(finished("[final answer recorded]", "negative"));
        assert_eq!(r, Action::Ask { temperature: None });
        assert!(
            a.messages()
                .last()
                .unwrap()
                .content
                .contains("asks for a number")
        );
        a.on_reply(&code("FINAL(n)"));
        let r = a.on_block(finished("[final answer recorded]", "22"));
        assert_eq!(r, Action::Ask { temperature: None });
        assert!(
            a.messages()
                .last()
                .unwrap()
                .content
                .contains("about meaning")
        );
        let empty = format!(
            "[ctx.search('bad and sad'{} ...]",
            prompt::EMPTY_SEARCH_MARK
        );
        a.on_reply(&code("n = len(ctx.search('bad and sad'))\nFINAL(n)"));
        let r = a.on_block(finished(&empty, "0"));
        assert_eq!(r, Action::Ask { temperature: None });
        assert!(
            a.messages()
                .last()
                .unwrap()
                .content
                .contains("found no match")
        );
        // Three refusals: the next answer is taken whatever it is.
        a.on_reply(&code("FINAL('negative')"));
        assert_eq!(
            a.on_block(finished("[final answer recorded]", "negative")),
            Action::Answer("negative".into())
        );
        // The REPL's hint carries the mark the rule looks for.
        let hint = empty_search_hint();
        assert!(hint.contains(prompt::EMPTY_SEARCH_MARK), "{hint}");
    }

    fn empty_search_hint() -> String {
        let (_, text) = prompt::REPL_HINTS
            .iter()
            .find(|(k, _)| *k == "empty_search")
            .unwrap();
        text.replace("{pattern}", "'x'")
    }

    /// A value typed into FINAL that no output showed is refused once with a request for
    /// evidence; computed or shown values are accepted at once.
    #[test]
    fn a_final_answer_without_evidence_is_refused_once() {
        let mut a = agent(6);
        a.start();
        a.on_reply(&code("print(ctx.search('D-4821')[0]['text'])"));
        assert_eq!(
            a.on_block(ran("{\"device_id\": \"D-4821\", \"firmware\": \"3.1.4\"}")),
            Action::Ask { temperature: None }
        );
        // Made up: 3.7.1 was never printed.
        a.on_reply(&code("FINAL('3.7.1')"));
        let next = a.on_block(finished("[final answer recorded]", "3.7.1"));
        assert_eq!(next, Action::Ask { temperature: None });
        assert!(
            a.messages()
                .last()
                .unwrap()
                .content
                .contains("was not accepted yet"),
            "{:?}",
            a.messages().last()
        );
        // Asked once only: the same answer again is taken.
        a.on_reply(&code("FINAL('3.7.1')"));
        assert_eq!(
            a.on_block(finished("[final answer recorded]", "3.7.1")),
            Action::Answer("3.7.1".into())
        );

        // A value that an output showed, typed in: accepted.
        let mut a = agent(6);
        a.start();
        a.on_reply(&code("print(rows[3])"));
        a.on_block(ran("O-1,2025-01-02,Kenya,desk lamp,4,312"));
        a.on_reply(&code("FINAL('desk lamp')"));
        assert_eq!(
            a.on_block(finished("[final answer recorded]", "desk lamp")),
            Action::Answer("desk lamp".into())
        );

        // Computed by the code, even if never printed: accepted at once (asking the small
        // model to confirm a computed value made it abandon right answers).
        let mut a = agent(6);
        a.start();
        a.on_reply(&code(
            "n = sum(1 for r in rows if r[2] == 'Kenya')\nFINAL(n)",
        ));
        assert_eq!(
            a.on_block(finished("[final answer recorded]", "27")),
            Action::Answer("27".into())
        );
        // Computed, but with words found nowhere in the data, the question or an earlier
        // output: refused once, naming them.
        let mut a = agent(6);
        a.start();
        a.on_reply(&code("print(ctx.search('FAILED')[0])"));
        a.on_block(ran("2025-06-14 Kiel: inspection of VAN-2731 FAILED"));
        a.on_reply(&code("v = h.split()[-1]\nFINAL(f'VAN-{v}')"));
        let mut done = finished("VAN-service.", "VAN-service.");
        done.absent = vec!["VAN-service".into()];
        assert_eq!(a.on_block(done), Action::Ask { temperature: None });
        let last = &a.messages().last().unwrap().content;
        assert!(
            last.contains("\"VAN-service\" occurs nowhere in the data"),
            "{last}"
        );
        // Words of the question or of an earlier output count as found.
        let mut a = agent(6);
        a.start();
        a.on_reply(&code("print(llm_query('label?'))"));
        a.on_block(ran("negative"));
        a.on_reply(&code("FINAL(label)"));
        let mut done = finished("", "negative");
        done.absent = vec!["negative".into()];
        assert_eq!(a.on_block(done), Action::Answer("negative".into()));
        // Computed in a block that printed the capped-search note: refused once.
        let mut a = agent(6);
        a.start();
        a.on_reply(&code(
            "FINAL(sum(h['amount'] for h in ctx.search('ACME', max_results=10)))",
        ));
        let done = finished(
            &format!(
                "[ctx.search('ACME'): this result holds 10 of the 44 {}. ...]",
                prompt::CAPPED_MARK
            ),
            "2157.5",
        );
        assert_eq!(a.on_block(done), Action::Ask { temperature: None });
        assert!(
            a.messages()
                .last()
                .unwrap()
                .content
                .contains("only some of the matches")
        );
        // Typed in right after a capped result was printed: refused once too.
        let mut a = agent(6);
        a.start();
        a.on_reply(&code("print(ctx.search('ERROR', max_results=10))"));
        a.on_block(ran(&format!(
            "[ctx.search('ERROR'): this result holds 10 of the 45 {}] ... [search] timeout",
            prompt::CAPPED_MARK
        )));
        a.on_reply(&code("FINAL('search')"));
        assert_eq!(
            a.on_block(finished("", "search")),
            Action::Ask { temperature: None }
        );
        // Without a context (knowledge, computation) answers are taken as they come.
        let mut a = agent(6).require_evidence(false);
        a.start();
        a.on_reply(&code("FINAL('Paris')"));
        assert_eq!(
            a.on_block(finished("[final answer recorded]", "Paris")),
            Action::Answer("Paris".into())
        );

        // An answer put together from pieces that outputs showed: accepted.
        let mut a = agent(6);
        a.start();
        a.on_reply(&code("print(hits)"));
        a.on_block(ran("17352 inspection of VAN-2731 FAILED\n38903 REPAIR COMPLETED for VAN-2731: total cost 1840 EUR"));
        a.on_reply(&code("FINAL('VAN-2731, 1840 EUR')"));
        assert_eq!(
            a.on_block(finished("[final answer recorded]", "VAN-2731, 1840 EUR")),
            Action::Answer("VAN-2731, 1840 EUR".into())
        );

        // A number shown with a thousands separator counts as shown.
        let mut a = agent(6);
        a.start();
        a.on_reply(&code("print(total)"));
        a.on_block(ran("4,312"));
        a.on_reply(&code("FINAL(4312)"));
        assert_eq!(
            a.on_block(finished("[final answer recorded]", "4312")),
            Action::Answer("4312".into())
        );

        // In prose, before any output: refused once too.
        let mut a = agent(6);
        a.start();
        assert_eq!(
            a.on_reply("The answer:\nFINAL(42)"),
            Action::Ask { temperature: None }
        );
        assert!(
            a.messages()
                .last()
                .unwrap()
                .content
                .contains("was not accepted yet")
        );
        assert_eq!(a.on_reply("FINAL(42)"), Action::Answer("42".into()));
    }

    /// A conversation outgrowing the window keeps its system prompt, question and latest two
    /// observations whole, and shortens the older ones.
    #[test]
    fn old_turns_are_shortened_to_fit_the_window() {
        let mut a = agent(20).window_chars(30_000);
        a.start();
        for i in 0..8 {
            a.on_reply(&code(&format!("print({i})")));
            a.on_block(ran(&format!("turn {i} {}", "x".repeat(9_000))));
        }
        let total: usize = a.messages().iter().map(|m| m.content.len()).sum();
        assert!(total <= 30_000, "{total}");
        let users: Vec<&Message> = a
            .messages()
            .iter()
            .filter(|m| m.role == Role::User)
            .collect();
        assert_eq!(users[0].content, "Question: q");
        let n = users.len();
        assert!(users[n - 1].content.len() > 9_000 && users[n - 2].content.len() > 9_000);
        assert!(
            users[1]
                .content
                .contains("left out to fit the context window")
        );
        assert!(users[1].content.starts_with("turn 0"));
    }

    /// Over the threshold, the older turns are handed out for a summary, which then
    /// replaces them as one reply; the log keeps every message. Without a summary the old
    /// shortening applies.
    #[test]
    fn older_turns_are_compacted_into_a_summary() {
        let mut a = agent(20).window_chars(30_000).compact_at(10_000, Some(0.8));
        a.start();
        let mut compacted = None;
        for i in 0..8 {
            a.on_reply(&code(&format!("print({i})")));
            match a.on_block(ran(&format!("turn {i} {}", "x".repeat(5_000)))) {
                Action::Compact { question, turns } => {
                    assert_eq!(question, "Question: q");
                    assert!(turns[0].content.contains("print(0)"), "{:?}", turns[0]);
                    compacted = Some(turns.len());
                    assert_eq!(
                        a.on_compacted(Some("x is 0, printed 0".into())),
                        Action::Ask { temperature: None }
                    );
                    break;
                }
                Action::Ask { .. } => {}
                other => panic!("{other:?}"),
            }
        }
        let n = compacted.expect("a compaction");
        let m = a.messages();
        assert_eq!(m[1].content, "Question: q");
        assert_eq!(m[2].role, Role::Assistant);
        assert!(m[2].content.contains("x is 0, printed 0") && m[2].content.contains("`history`"));
        assert_eq!(m[3].role, Role::User);
        assert!(crate::compaction::estimated_tokens(m) < 8_000);
        // The log holds everything, the compacted turns included.
        assert_eq!(a.history_unsent().len(), m.len() + n - 1);
        a.history_sent();
        assert!(a.history_unsent().is_empty());

        // The summary call failed: old turns are shortened instead.
        let mut a = agent(20).window_chars(30_000).compact_at(10_000, Some(0.8));
        a.start();
        for i in 0..8 {
            a.on_reply(&code(&format!("print({i})")));
            if let Action::Compact { .. } =
                a.on_block(ran(&format!("turn {i} {}", "x".repeat(9_000))))
            {
                a.on_compacted(None);
            }
        }
        let total: usize = a.messages().iter().map(|m| m.content.len()).sum();
        assert!(total <= 30_000, "{total}");
        assert!(
            a.messages()[3]
                .content
                .contains("left out to fit the context window")
        );

        // Off: never asked.
        let mut a = agent(20).window_chars(30_000).compact_at(10_000, None);
        a.start();
        for i in 0..8 {
            a.on_reply(&code(&format!("print({i})")));
            assert!(matches!(
                a.on_block(ran(&"x".repeat(9_000))),
                Action::Ask { .. }
            ));
        }
    }

    #[test]
    fn blocks_run_in_order_then_the_observations_go_back() {
        let mut a = agent(5);
        assert_eq!(a.start(), Action::Ask { temperature: None });
        let reply = format!("{}\ntext\n{}", code("x = 1"), code("print(x)"));
        assert_eq!(
            a.on_reply(&reply),
            Action::Run {
                code: "x = 1".into(),
                index: 1,
                of: 2
            }
        );
        assert_eq!(
            a.on_block(ran("first")),
            Action::Run {
                code: "print(x)".into(),
                index: 2,
                of: 2
            }
        );
        assert_eq!(a.on_block(ran("second")), Action::Ask { temperature: None });
        assert_eq!(a.iteration(), 2);
        let last = a.messages().last().unwrap();
        assert_eq!(last.role, Role::User);
        assert!(
            last.content.starts_with("first\n\nsecond\n\nTurn 2/5"),
            "{}",
            last.content
        );
    }

    #[test]
    fn a_runaway_reply_runs_only_its_first_blocks_and_is_told() {
        let mut a = agent(5).max_blocks(2);
        a.start();
        let reply: Vec<String> = (0..9).map(|i| code(&format!("print({i})"))).collect();
        assert_eq!(
            a.on_reply(&reply.join("\n")),
            Action::Run {
                code: "print(0)".into(),
                index: 1,
                of: 2
            }
        );
        assert!(matches!(
            a.on_block(ran("0")),
            Action::Run {
                index: 2,
                of: 2,
                ..
            }
        ));
        assert_eq!(a.on_block(ran("1")), Action::Ask { temperature: None });
        let n = a.messages().len();
        let kept = &a.messages()[n - 2];
        assert_eq!(kept.role, Role::Assistant);
        assert!(kept.content.contains("print(1)") && !kept.content.contains("print(2)"));
        assert!(
            a.messages()[n - 1]
                .content
                .contains("Only the first 2 of the 9 code blocks"),
            "{}",
            a.messages()[n - 1].content
        );
    }

    #[test]
    fn a_final_answer_ends_the_reply_and_prose_finals_need_no_code() {
        let mut a = agent(5).require_evidence(false);
        a.start();
        let reply = format!(
            "{}\n{}\nFINAL(99)",
            code("FINAL(1)"),
            code("print('never')")
        );
        assert!(matches!(a.on_reply(&reply), Action::Run { index: 1, .. }));
        let done = a.on_block(BlockResult {
            observation: "1".into(),
            final_answer: Some("1".into()),
            absent: Vec::new(),
        });
        assert_eq!(
            done,
            Action::Answer("1".into()),
            "the REPL's answer, not the prose"
        );
        let mut a = agent(5);
        a.start();
        a.on_reply(&code("print(6 * 7)"));
        a.on_block(ran("42"));
        assert_eq!(a.on_reply("FINAL(42)"), Action::Answer("42".into()));
    }

    #[test]
    fn prose_is_nudged_then_stops() {
        let mut a = agent(10);
        a.start();
        assert!(matches!(a.on_reply("I think so."), Action::Ask { .. }));
        assert!(
            a.messages()
                .last()
                .unwrap()
                .content
                .contains("no ```python block")
        );
        assert!(matches!(a.on_reply("Maybe."), Action::Ask { .. }));
        assert_eq!(
            a.on_reply("Still prose."),
            Action::Stop(Stop::NoCode { replies: 3 })
        );
        // Code in between resets the count.
        let mut a = agent(10);
        a.start();
        a.on_reply("prose");
        a.on_reply("prose");
        a.on_reply(&code("print(1)"));
        assert!(matches!(a.on_block(ran("1")), Action::Ask { .. }));
        assert!(matches!(a.on_reply("prose"), Action::Ask { .. }));
    }

    #[test]
    fn the_turn_limit_stops_after_the_last_block() {
        let mut a = agent(2);
        a.start();
        a.on_reply(&code("print(1)"));
        assert!(matches!(a.on_block(ran("1")), Action::Ask { .. }));
        a.on_reply(&code("print(2)"));
        assert_eq!(
            a.on_block(ran("2")),
            Action::Stop(Stop::Iterations { max: 2 })
        );
        assert!(
            Stop::Iterations { max: 2 }
                .message()
                .contains("RLM_MAX_ITERATIONS")
        );
    }

    #[test]
    fn repeated_code_is_flagged_dropped_and_resampled_warmer() {
        let mut a = agent(10);
        a.start();
        a.on_reply(&code("print(ctx.search('x'))"));
        a.on_block(ran("[]"));
        let before = a.messages().len();
        a.on_reply(&code("print(ctx.search('x'))"));
        // The earlier identical reply and its observation were dropped, the new reply added.
        assert_eq!(a.messages().len(), before - 1);
        let next = a.on_block(ran("[]"));
        assert_eq!(
            next,
            Action::Ask {
                temperature: Some(0.5)
            }
        );
        assert!(
            a.messages()
                .last()
                .unwrap()
                .content
                .contains("exactly the same code")
        );
        a.on_reply(&code("print(ctx.search('x'))"));
        match a.on_block(ran("[]")) {
            Action::Ask {
                temperature: Some(t),
            } => assert!((t - 0.7).abs() < 1e-6, "{t}"),
            other => panic!("{other:?}"),
        }
        a.on_reply(&code("print('new')"));
        assert_eq!(a.on_block(ran("new")), Action::Ask { temperature: None });
    }

    #[test]
    fn a_repeat_after_prose_drops_the_earlier_attempt_not_the_prose() {
        let mut a = agent(10);
        a.start();
        a.on_reply(&code("print(1)"));
        a.on_block(ran("1"));
        a.on_reply("Let me think.");
        a.on_reply(&code("print(1)"));
        let texts: Vec<&str> = a.messages().iter().map(|m| m.content.as_str()).collect();
        assert_eq!(
            texts.iter().filter(|t| t.contains("print(1)")).count(),
            1,
            "one copy of the repeated code: {texts:?}"
        );
        assert!(texts.contains(&"Let me think."), "{texts:?}");
        assert_eq!(a.messages()[0].role, Role::System);
        assert_eq!(a.messages()[1].role, Role::User);
    }
}
