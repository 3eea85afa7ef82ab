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
    /// Blocks of the current reply still to run, and how many it had.
    queue: VecDeque<String>,
    blocks: usize,
    observations: Vec<String>,
}

impl Agent {
    /// A conversation starting with `system` and the first user message.
    pub(crate) fn new(
        system: String,
        first_user: String,
        max_iterations: u32,
        max_no_code: u32,
    ) -> Self {
        Agent {
            messages: vec![Message::system(system), Message::user(first_user)],
            max_iterations: max_iterations.max(1),
            max_no_code: max_no_code.max(1),
            iteration: 0,
            no_code: 0,
            previous_code: Vec::new(),
            previous_at: None,
            repeats: 0,
            repeated: false,
            queue: VecDeque::new(),
            blocks: 0,
            observations: Vec::new(),
        }
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
        self.repeats = if self.repeated { self.repeats + 1 } else { 0 };
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
        self.messages.push(Message::assistant(reply));
        if blocks.is_empty() {
            // A final answer is taken from prose only when the reply has no code: code must
            // run first.
            if let Some(answer) = final_from_text(reply) {
                return Action::Answer(answer);
            }
            self.no_code += 1;
            if self.no_code >= self.max_no_code {
                return Action::Stop(Stop::NoCode {
                    replies: self.no_code,
                });
            }
            self.messages.push(Message::user(prompt::no_code_nudge()));
            return self.next_turn();
        }
        self.no_code = 0;
        self.blocks = blocks.len();
        self.queue = blocks.into();
        self.observations.clear();
        self.next_block()
    }

    /// A block of the current reply ran.
    pub(crate) fn on_block(&mut self, result: BlockResult) -> Action {
        self.observations.push(result.observation);
        if let Some(answer) = result.final_answer {
            self.queue.clear();
            return Action::Answer(answer);
        }
        if !self.queue.is_empty() {
            return self.next_block();
        }
        let next = if self.iteration >= self.max_iterations {
            String::new()
        } else if self.repeated {
            prompt::repeated_code(self.iteration + 1, self.max_iterations)
        } else {
            prompt::next_turn(self.iteration + 1, self.max_iterations)
        };
        let body = format!("{}\n\n{next}", self.observations.join("\n\n"));
        self.messages.push(Message::user(body.trim_end()));
        self.next_turn()
    }

    fn next_block(&mut self) -> Action {
        let code = self.queue.pop_front().expect("a block to run");
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
        }
    }

    fn code(c: &str) -> String {
        format!("```python\n{c}\n```")
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
    fn a_final_answer_ends_the_reply_and_prose_finals_need_no_code() {
        let mut a = agent(5);
        a.start();
        let reply = format!(
            "{}\n{}\nFINAL(99)",
            code("FINAL(1)"),
            code("print('never')")
        );
        assert!(matches!(a.on_reply(&reply), Action::Run { index: 1, .. }));
        let done = a.on_block(BlockResult {
            observation: String::new(),
            final_answer: Some("1".into()),
        });
        assert_eq!(
            done,
            Action::Answer("1".into()),
            "the REPL's answer, not the prose"
        );
        let mut a = agent(5);
        a.start();
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
