//! Every text the model reads (pure): the system prompt, built from what the REPL really
//! provides; the description of the context; the first message; the turn messages, nudges and
//! the format of observations; and the texts of failed sub-calls.

use crate::config::PromptMode;
use crate::sandbox::ReplLost;

/// Inputs of the system prompt.
#[derive(Debug, Clone, Default)]
pub(crate) struct PromptInput<'a> {
    pub(crate) mode: PromptMode,
    /// Description of the context (size, preview), or `None` without context.
    pub(crate) context: Option<&'a str>,
    /// The whole context is also available as the string/list `context`.
    pub(crate) inline: bool,
    /// The context is a list of documents.
    pub(crate) is_list: bool,
    pub(crate) max_iterations: u32,
    pub(crate) custom: Option<&'a str>,
    /// `rlm_query` starts child runs (otherwise it is a plain sub-LLM call).
    pub(crate) recursion: bool,
    /// The context holds records (CSV with a header, or JSON lines): see [`record_format`].
    pub(crate) records: bool,
}

/// The system prompt. Every function it names is in `sandbox::REPL_FUNCTIONS` (a
/// test checks this against the real REPL), and every `ctx` method it names exists there.
/// `p.mode` must be resolved ([`PromptMode::resolve`]); `Auto` reads as `Compact`.
pub(crate) fn system_prompt(p: &PromptInput<'_>) -> String {
    let frontier = p.mode == PromptMode::Frontier;
    let mut s = String::new();
    if frontier {
        s.push_str(
            "You are the orchestrator of a recursive language model. You answer the user's question by writing Python code that runs in a persistent, sandboxed Python REPL. \
             The data is NOT in this conversation: it lives in the REPL, and it may be far larger than your context window. You see only what your code prints. \
             Variables, imports and functions persist between your code blocks.\n\n",
        );
    } else {
        s.push_str(
            "You answer the user's question by writing Python code that runs in a persistent, sandboxed Python REPL. \
             Variables, imports and functions persist between your code blocks. You see only what your code prints.\n\n",
        );
    }
    match p.context {
        Some(desc) => {
            let handle = if p.is_list {
                "`ctx` is a list of handles, one per document (`ctx[0]`, `ctx[1]`, ...); `ctx.search`, `ctx.count` and `ctx.search_all` also work on the whole list, and then each hit also has `doc` (the document's index) and `name`"
            } else {
                "`ctx` is a read-only handle to it"
            };
            s.push_str(&format!(
                "## The context\nThe data to work on is NOT in this conversation; it is in the REPL. {handle}:\n{desc}\n"
            ));
            // Per-document methods are on `ctx` itself, or on `ctx[i]` for a list.
            let h = if p.is_list { "ctx[i]" } else { "ctx" };
            s.push_str(&format!(
                "Handle methods (offsets are bytes):\n\
                 - `{h}.size` (bytes), `{h}.line_count()`\n\
                 - `{h}.head(n)`, `{h}.tail(n)`, `{h}.read(start, length)` -> str\n\
                 - `{h}.lines(first, last)` -> str (1-based, inclusive)\n\
                 - `ctx.search(pattern, max_results=20, ignore_case=False)` -> list of dicts: `line` (line number, an int), `text` (that whole line, a str), `match` (the matched part), `offset` (Python regex); `.total` is the number of matches in all\n\
                 - `{h}.chunks(size=100000, overlap=0)` -> iterator of str chunks\n\
                 - `ctx.count(pattern, ignore_case=False)` -> how many lines match (all of them)\n\
                 - `ctx.records()` -> every record as a dict, when the data is CSV with a header (numbers converted) or one JSON object per line; search hits then also carry their record's fields\n\
                 - `ctx.iter_lines()` -> every line as a str; `ctx.search_all(pattern, ignore_case=False)` -> every match (no limit)\n\
                 Patterns are Python regular expressions.\n",
            ));
            if p.inline {
                s.push_str(if p.is_list {
                    "The documents are also available as `context`, a list of str.\n"
                } else {
                    "The whole text is also available as the string `context`.\n"
                });
            } else {
                s.push_str("The context is too large to load whole into one variable: use `ctx` methods.\n");
            }
            s.push('\n');
        }
        None => s.push_str("## The context\nNo context was given; answer from computation.\n\n"),
    }
    s.push_str(
        "## Functions\n\
         These already exist in the REPL: call them directly; never define, import or reimplement them (there is no network and no API key inside the REPL).\n\
         - `FINAL(value)` (or `final(value)`): give your final answer (converted with str). Call it only with a value your code computed or an output showed.\n\
         - `FINAL_VAR(name)`: give the value of the variable called `name` as the final answer.\n",
    );
    if frontier {
        s.push_str(
            "- `llm_query(prompt)` -> str: a sub-model call with its own large context window (it sees only the prompt; about 400000 characters fit). Use it to read and judge text.\n\
             - `llm_query_batched(prompts)` -> list of str: many `llm_query` calls run concurrently; answers in the same order.\n",
        );
    } else {
        s.push_str(
            "- `llm_query(prompt)` -> str: ask a helper language model about a piece of text (keep the prompt under about 20000 characters), e.g. `reply = llm_query(\"Is this review negative? Answer yes or no.\\n\" + text)`.\n\
             - `llm_query_batched(prompts)` -> list of str: many `llm_query` calls at once, answers in the same order.\n",
        );
    }
    s.push_str(if p.recursion {
        "- `rlm_query(prompt, context=None)` -> str: hand a sub-task to a helper that has its own Python REPL (and `context`, a str or list of str, as its data) and returns its final answer.\n\
         - `rlm_query_batched(prompts, contexts=None)` -> list of str: several `rlm_query` at once, answers in order.\n"
    } else {
        "- `rlm_query(prompt, context=None)` -> str and `rlm_query_batched(prompts, contexts=None)`: like `llm_query` here (no deeper helpers are available).\n"
    });
    s.push_str(
        "- `SHOW_VARS()`: list your variables.\n\
         Failed sub-calls return a string starting with `Error:`.\n\n",
    );
    if frontier {
        s.push_str(
            "## How to work\n\
             1. First inspect the data's structure with code (size, a few lines from the start and the middle, the format of its records).\n\
             2. Decompose the question. Anything exact (finding a record, counting, summing, ranking, joining) is done by code over every record: parse the text (csv, json, regular expressions) and compute. Search results are capped: never count them.\n\
             3. Anything that needs understanding (classifying, summarising, judging) goes to sub-calls: split the data into large chunks (about 100000 characters each), send them with `llm_query_batched` (fat prompts, a few dozen per batch at most), and combine the answers in code. Use `rlm_query` for sub-tasks that themselves need code.\n\
             4. Never pull the whole context into this conversation: print counts, samples and short excerpts only (long output is cut).\n\
             5. Check the result (print it, with a little evidence), then call `FINAL(answer)` with the exact answer only: a value, name, number or short phrase, not a sentence.\n",
        );
        s.push_str(&format!(
            "You have at most {} turns; answer before they run out.\n",
            p.max_iterations
        ));
    } else {
        s.push_str(
            "## How to work\n\
             1. Always reply with exactly one short ```python code block. Start by looking at the data with code.\n\
             2. Print what you need to see; output is shortened when long, so print summaries, counts and short excerpts, never the whole context.\n\
             3. Use `ctx.search` with one distinctive word or value from the question to find the relevant lines, and print their `text`. Search again with what you learned (a name, an id) to find related lines. For questions that need reading everything, loop over `ctx.chunks(...)`, call `llm_query_batched` on the chunks, and combine the answers in code.\n\
             4. When the printed output shows the answer, call `FINAL(answer)` in a code block. Never guess: do not call FINAL with a value you have not seen printed.\n\
             5. If code fails, read the error and change the code; never send the same code twice.\n",
        );
        s.push_str(&format!("You have at most {} turns.\n", p.max_iterations));
        if p.context.is_some() {
            s.push_str(
                "\nExample (replace KEYWORD by one distinctive word or value taken from the question):\n```python\nfor h in ctx.search(r\"KEYWORD\", max_results=10, ignore_case=True):\n    print(h[\"line\"], h[\"text\"])\n```\n",
            );
            if p.records {
                s.push_str(
                    "\nThe data is records. To count, add up, compare or rank, go through ALL of them with `ctx.records()` (search results are capped; never count or sum them). Example (use the real field names from the preview):\n```python\nrows = list(ctx.records())\nprint(len(rows), rows[0])\nsel = [r for r in rows if r[\"dept\"] == \"Sales\" and r[\"salary\"] > 50000]\nprint(len(sel), sum(r[\"salary\"] for r in sel))\n```\n",
                );
            }
        }
    }
    if let Some(c) = p.custom.filter(|c| !c.trim().is_empty()) {
        s.push_str("\n## Additional instructions\n");
        s.push_str(c.trim());
        s.push('\n');
    }
    s
}

/// The first user message.
pub(crate) fn first_user_message(query: &str, has_context: bool) -> String {
    if has_context {
        format!(
            "Question: {query}\n\nWrite your first ```python block now. Do not answer yet: first look at the data: search the context for one distinctive word or value from the question (a date, a name, an id) and print the matching lines."
        )
    } else {
        format!(
            "Question: {query}\n\nWrite your first ```python block now and print what it computes."
        )
    }
}

/// The user turn some providers need before a conversation that starts with the assistant.
pub(crate) const LEADING_USER_TURN: &str = "(continue)";

/// The user turn some providers need after a conversation that ends with the assistant.
pub(crate) const TRAILING_USER_TURN: &str = "Continue.";

/// Hints the REPL prints to the model's code (handed to the driver at start): `{pattern}` is
/// replaced by the searched pattern, `{name}` by the name that exists.
pub(crate) const REPL_HINTS: &[(&str, &str)] = &[
    (
        "empty_search",
        "[ctx.search({pattern}) found no match; try one distinctive word or value from the question, e.g. a date, a name or an id]",
    ),
    ("case", "Did you mean {name}? Names are case-sensitive."),
    (
        "method",
        "{name} is a method of the context handle: call ctx.{name}(...).",
    ),
    (
        "similar",
        "Did you mean {name}? It is already defined in the REPL.",
    ),
    (
        "unassigned",
        "Your code assigns {name}, but that line never ran before {name} was used: the `if` or loop around it found nothing to match. Print what the loop goes over (or search again with a different pattern) to see why.",
    ),
    (
        "final_thread",
        "FINAL must be called from the code block itself, not from a thread it started",
    ),
];

/// The note after a reply with more code blocks than run (see `Agent::max_blocks`).
pub(crate) fn dropped_blocks(ran: usize, of: usize) -> String {
    format!(
        "[Only the first {ran} of the {of} code blocks of your reply ran; the others were dropped. Write one short block per reply and look at its output before the next.]"
    )
}

/// The nudge after a reply without code.
pub(crate) fn no_code_nudge() -> String {
    "Your reply had no ```python block, so nothing ran. Reply with a ```python block: compute the answer and call FINAL(answer) when it is printed.".into()
}

/// A refused answer as quoted back to the model: its first 200 characters.
fn shown(value: &str) -> String {
    value.chars().take(200).collect()
}

/// The answer to a `FINAL` whose value no output has shown and no code computed (asked once).
pub(crate) fn unsupported_final(value: &str) -> String {
    let v = shown(value);
    format!(
        "FINAL({v:?}) was not accepted yet: no output so far shows that value, and your code typed it in rather than computing it. Print the evidence first (the matching lines, or the value computed from the data), then call FINAL again."
    )
}

/// The answer to a `FINAL` with words that occur nowhere in the data, the question or an
/// output (asked once).
pub(crate) fn ungrounded_final(value: &str, words: &[String]) -> String {
    let v = shown(value);
    let w: Vec<String> = words.iter().take(5).map(|w| format!("{w:?}")).collect();
    format!(
        "FINAL({v:?}) was not accepted yet: {} {} nowhere in the data, so the code probably took {} from the wrong place. Print the lines that hold the answer, check which part of them is the value asked for, then call FINAL again.",
        w.join(", "),
        if w.len() == 1 { "occurs" } else { "occur" },
        if w.len() == 1 { "it" } else { "them" },
    )
}

/// The answer to a `FINAL` that is not of the kind the question asks for (asked once).
pub(crate) fn wrong_kind_final(value: &str, kind: crate::answer_kind::Kind) -> String {
    let v = shown(value);
    let what = match kind {
        crate::answer_kind::Kind::Number => {
            "the question asks for a number (a count or a total), and this answer holds none"
        }
        crate::answer_kind::Kind::Names => {
            "the question asks which ones (names or things), and this answer is only a number"
        }
    };
    format!(
        "FINAL({v:?}) was not accepted yet: {what}. Read the question again, compute what it asks for from the data, print it, then call FINAL again."
    )
}

/// The answer to a `FINAL` on a question about meaning when no helper model was asked
/// (asked once).
pub(crate) fn unjudged_final(value: &str, word: &str) -> String {
    let v = shown(value);
    format!(
        "FINAL({v:?}) was not accepted yet: the question is about meaning ({word:?}), and no helper model was asked. A keyword rarely decides that: unless a field of the data states it exactly, ask the helper model about each item with `llm_query_batched` (one prompt per item, e.g. \"Is this review negative? Answer yes or no.\\n\" + text), count its answers in code, print the result, then call FINAL again. If a field does state it exactly, call FINAL again with the same value."
    )
}

/// What the REPL prints when a search matched nothing (the start of the `empty_search`
/// hint); a final answer of nothing right after it is refused once ([`empty_final`]).
pub(crate) const EMPTY_SEARCH_MARK: &str = ") found no match";

/// The answer to a `FINAL` of nothing (0, an empty list) right after a search that matched
/// nothing.
pub(crate) fn empty_final(value: &str) -> String {
    let v = shown(value);
    format!(
        "FINAL({v:?}) was not accepted yet: it comes from a search that found no match, which usually means the pattern is not written the way the data writes it (a regular expression is matched literally: 'A and B' looks for that exact text). Print a few lines of the data, search for one value at a time, then call FINAL again."
    )
}

/// The answer to a `FINAL` that is a sentence where the question asks for a value (asked
/// once).
pub(crate) fn sentence_final(value: &str) -> String {
    let v = shown(value);
    format!(
        "FINAL({v:?}) was not accepted yet: the question asks for a value, and this is a whole sentence. Call FINAL again with only the value asked for (a name, a number, an id or a short phrase), taken from what the output showed."
    )
}

/// What the REPL prints when a search result holds only some of the matches; a final
/// answer computed in a block that printed it is refused once ([`capped_final`]).
pub(crate) const CAPPED_MARK: &str = "matches (max_results)";

/// The answer to a `FINAL` computed in a block that used a capped search result.
pub(crate) fn capped_final(value: &str) -> String {
    let v = shown(value);
    format!(
        "FINAL({v:?}) was not accepted yet: it comes from a search result that holds only some of the matches (see the note above), so a count, total or most/least frequent value taken from it is wrong. If the question needs all of them, go through every record or line (`ctx.records()`, `ctx.search_all(pattern)` or `ctx.iter_lines()`), compute and print the result, then call FINAL again. If the answer is one specific line you saw, call FINAL again."
    )
}

/// The system prompt of the call that summarises older turns (history compaction).
pub(crate) const COMPACTION_SYSTEM: &str = "You summarise the earlier turns of an agent that answers a question by writing Python in a persistent REPL. Write a compact summary the agent can continue from: what it tried, what each attempt printed that matters (exact numbers, names, ids, file or record positions, and the names of REPL variables that hold results), what failed and why, and what is still to do. Keep every exact value that may be part of the answer. Do not answer the question yourself and do not write code blocks. Plain text, at most 400 words.";

/// The request of the summary call: the question and the turns to summarise.
pub(crate) fn compaction_request(question: &str, transcript: &str) -> String {
    format!(
        "The question the agent works on:\n{question}\n\nThe earlier turns to summarise:\n\n{transcript}\n\nWrite the summary now."
    )
}

/// The message that replaces `turns` summarised messages of the conversation.
pub(crate) fn compacted_turns(turns: usize, summary: &str) -> String {
    format!(
        "[History compaction: {turns} earlier messages of this conversation were replaced by this summary to save room in the context window. The REPL kept its state: every variable is still defined. The full earlier messages are in the REPL variable `history` (a list of {{'role', 'content'}} dicts, oldest first), e.g. print(history[-3]['content'][:2000]).]\n\nSummary of my earlier turns:\n{}",
        summary.trim()
    )
}

/// An old turn cut to its start and end to fit the model's context window.
pub(crate) fn shortened(text: &str) -> String {
    let cut = |i: usize, up: bool| {
        let mut i = i.min(text.len());
        while !text.is_char_boundary(i) {
            if up { i += 1 } else { i -= 1 }
        }
        i
    };
    let head = cut(400, false);
    let tail = cut(text.len().saturating_sub(300), true).max(head);
    format!(
        "{}\n[... {} characters of this earlier turn left out to fit the context window ...]\n{}",
        &text[..head],
        tail - head,
        &text[tail..]
    )
}

/// Appended to the observations of a turn: what to do in turn `next` of `max`.
pub(crate) fn next_turn(next: u32, max: u32) -> String {
    format!(
        "Turn {next}/{max}: continue with one ```python block; call FINAL(answer) once the answer is printed."
    )
}

/// Appended instead of [`next_turn`] when the model sent the same code as in its previous
/// turn.
pub(crate) fn repeated_code(next: u32, max: u32) -> String {
    format!(
        "Turn {next}/{max}: that was exactly the same code as your previous turn, with the same result. If the output above already shows the answer, call FINAL(answer) now; otherwise write different code that fixes the problem."
    )
}

/// Appended instead of [`next_turn`] when the model sent code it already ran in an earlier
/// turn (going round in circles).
pub(crate) fn circling_code(next: u32, max: u32) -> String {
    format!(
        "Turn {next}/{max}: you already ran exactly this code in an earlier turn; its output is above. If those outputs show the answer, call FINAL(answer) now with the values they show; otherwise try something different."
    )
}

/// How one block's run looks to the model: its (filtered) output and what happened to the
/// REPL.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BlockOutcome<'a> {
    /// 1-based block number and the number of blocks in the reply.
    pub(crate) index: usize,
    pub(crate) of: usize,
    pub(crate) stdout: &'a str,
    pub(crate) stderr: &'a str,
    pub(crate) restarted: bool,
    pub(crate) memory_exceeded: bool,
    /// Why the REPL was killed or ended during the block.
    pub(crate) lost_because: Option<&'a ReplLost>,
}

/// What the model sees after a block.
pub(crate) fn observation(b: &BlockOutcome<'_>) -> String {
    let mut s = if b.of > 1 {
        format!("[block {} of {}] ", b.index, b.of)
    } else {
        String::new()
    };
    if b.restarted {
        s.push_str(
            "Note: the REPL had been restarted before this block; earlier variables are gone.\n",
        );
    }
    if let Some(why) = b.lost_because {
        let why = match why {
            ReplLost::TimedOut {
                limit,
                including_subcalls: false,
            } => format!(
                "the block ran longer than {:.1}s and was killed",
                limit.as_secs_f64()
            ),
            ReplLost::TimedOut { limit, .. } => format!(
                "the block and the sub-calls it waited for took longer than {:.0}s and were killed",
                limit.as_secs_f64()
            ),
            ReplLost::Exited { status } => {
                format!("the Python process ended (exit status {status})")
            }
            ReplLost::ProtocolViolation { .. } => {
                "it sent messages that did not belong to this block (threads left running by an earlier block?) and was killed".to_string()
            }
        };
        s.push_str(&format!(
            "The REPL was lost during this block: {why}. The next block starts a fresh REPL (earlier variables are gone).\n"
        ));
    } else if b.memory_exceeded {
        s.push_str("The block hit the memory limit.\n");
    }
    let out = b.stdout.trim_end();
    let err = b.stderr.trim_end();
    if out.is_empty() && err.is_empty() {
        s.push_str("(no output: nothing was printed. If the code looked for something, it found nothing: search for one distinctive word rather than a phrase, and print what matches)");
    }
    if !out.is_empty() {
        s.push_str("Output:\n");
        s.push_str(out);
    }
    if !err.is_empty() {
        if !out.is_empty() {
            s.push('\n');
        }
        s.push_str("Errors:\n");
        s.push_str(err);
    }
    s
}

/// What replaces a verbatim run of the context in output the model reads.
pub(crate) fn echo_redaction(bytes: usize) -> String {
    format!(
        "[REDACTED:context_echo {bytes} bytes of the context; print summaries or short excerpts, not raw context]"
    )
}

/// What replaces binary output.
pub(crate) fn binary_omitted(bytes: usize, kind: &str) -> String {
    format!(
        "[binary output omitted: {bytes} bytes of {kind}; decode or summarise it in code instead]"
    )
}

/// A host call made in a session that answers none (`sandbox exec`).
pub(crate) fn host_call_unavailable(name: &str) -> String {
    format!("{name} is not available in this session")
}

/// The system prompt's addition when the final answer must match a JSON Schema.
pub(crate) fn answer_schema(schema: &str) -> String {
    format!(
        "\n\nThe final answer must be JSON that matches this JSON Schema:\n{schema}\n\
         Build the value in code and end with FINAL(json.dumps(value)) (import json first)."
    )
}

/// A final answer that does not match the answer schema, sent back to the model.
pub(crate) fn invalid_answer(errors: &[String], schema: &str) -> String {
    let list: Vec<String> = errors.iter().take(20).map(|e| format!("- {e}")).collect();
    format!(
        "Your final answer was NOT accepted: it does not match the required JSON Schema.\n{}\n\
         Schema: {schema}\n\
         Fix the value in code and call FINAL(json.dumps(value)) again.",
        list.join("\n")
    )
}

/// The last call of a run a limit ended: the best answer from what was seen, in words.
pub(crate) fn best_effort(reason: &str) -> String {
    format!(
        "STOP: the run has reached a limit ({reason}) and no more code will run. \
         From what you have seen so far, state your best answer to the original question now, \
         in plain text, with no code. If you are unsure, give the most likely answer and say \
         briefly what is uncertain."
    )
}

/// A sub-call asked for a model that is not allowed.
pub(crate) fn model_not_allowed(model: &str, allowed: &[&str]) -> String {
    format!(
        "Error: model {model:?} is not allowed; allowed: {}",
        allowed.join(", ")
    )
}

/// The start of a session call's first message: what the REPL still holds. `contexts` is
/// how many contexts the session has now (this call's included).
pub(crate) fn session_note(contexts: usize, new_context: bool) -> String {
    let mut s = String::from(
        "This is a new question in the same session: the REPL still holds every variable from the earlier questions above.",
    );
    if contexts > 0 {
        let names: Vec<String> = (0..contexts).map(|i| format!("ctx_{i}")).collect();
        s.push_str(&format!(
            " The contexts given so far are {} (and context_0, context_1, ... as text); `ctx` and `context` are the {}.",
            names.join(", "),
            if new_context { "one given with this question" } else { "latest one" }
        ));
    }
    s.push_str("\n\n");
    s
}

/// The code called a tool that this run does not have.
pub(crate) fn unknown_tool(name: &str, known: &[&str]) -> String {
    if known.is_empty() {
        format!("Error: there is no tool named {name:?}; this run has no host tools")
    } else {
        format!(
            "Error: there is no tool named {name:?}; tools: {}",
            known.join(", ")
        )
    }
}

/// A sub-call failed (an LLM error, a limit).
pub(crate) fn sub_call_failed(error: &dyn std::fmt::Display) -> String {
    format!("Error: {error}")
}

/// A child run ended without an answer.
pub(crate) fn child_failed(error: Option<&dyn std::fmt::Display>) -> String {
    format!(
        "Error: the child run ended without an answer: {}",
        error
            .map(|e| e.to_string())
            .unwrap_or_else(|| "unknown".into())
    )
}

/// The description of a context in the system prompt: kind, size, line count and a preview
/// of each document (at most five are listed).
pub(crate) fn describe_context(docs: &[DocSummary<'_>], is_list: bool) -> String {
    let mut out = String::new();
    if is_list {
        let total: u64 = docs.iter().map(|d| d.bytes).sum();
        out.push_str(&format!(
            "The context is a list of {} documents, {total} bytes in total.\n",
            docs.len(),
        ));
    }
    for d in docs.iter().take(5) {
        let first: String = d
            .preview
            .lines()
            .take(4)
            .map(|l| format!("    | {}\n", l.chars().take(160).collect::<String>()))
            .collect();
        let masked = match d.masked {
            0 => String::new(),
            n => format!(
                " {n} secret value(s) in it are replaced by placeholders such as [SECRET:aws_access_key_id#1] (the real values are not available to you or your code; refer to them by placeholder)."
            ),
        };
        let format = match record_format(&d.preview) {
            Some(f) => format!(" {f}"),
            None => String::new(),
        };
        out.push_str(&format!(
            "- `{}`: {} bytes, {}{} lines.{format}{masked} Its first lines (a preview only; the data is already loaded, do not paste it into code):\n{}",
            d.name,
            d.bytes,
            if d.lines_estimated { "about " } else { "" },
            d.lines,
            first
        ));
    }
    if docs.len() > 5 {
        out.push_str(&format!("- ... and {} more documents\n", docs.len() - 5));
    }
    out
}

/// What kind of records a document holds, from its first lines, as the REPL sees them:
/// JSON objects one per line (their fields), or CSV with a header (its columns).
pub(crate) fn record_format(preview: &str) -> Option<String> {
    let lines: Vec<&str> = preview
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(6)
        .collect();
    // The last line of a preview may be cut.
    let whole = if lines.len() > 2 {
        &lines[..lines.len() - 1]
    } else {
        &lines[..]
    };
    if whole.is_empty() {
        return None;
    }
    let objects: Vec<serde_json::Map<String, serde_json::Value>> = whole
        .iter()
        .take(3)
        .filter_map(|l| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(serde_json::Value::Object(m)) => Some(m),
            _ => None,
        })
        .collect();
    if objects.len() == whole.len().min(3) {
        let fields: Vec<&str> = objects[0].keys().map(String::as_str).take(20).collect();
        return Some(format!(
            "One JSON object per line, with the fields {}: `ctx.records()` gives each as a dict, and search hits carry them.",
            fields.join(", ")
        ));
    }
    if whole.len() < 2 {
        return None;
    }
    for d in [',', '\t', ';', '|'] {
        let counts: Vec<usize> = whole.iter().map(|l| l.split(d).count()).collect();
        if counts[0] >= 2 && counts.iter().all(|&c| c == counts[0]) {
            let header: Vec<&str> = whole[0].split(d).map(str::trim).collect();
            let named = header.iter().all(|h| {
                !h.is_empty()
                    && !h
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
            });
            if named {
                return Some(format!(
                    "CSV with the columns {}: `ctx.records()` gives each row as a dict (numbers converted), and search hits carry the columns.",
                    header.join(", ")
                ));
            }
        }
    }
    None
}

/// What [`describe_context`] says about one document.
#[derive(Debug, Clone)]
pub(crate) struct DocSummary<'a> {
    pub(crate) name: &'a str,
    pub(crate) bytes: u64,
    pub(crate) lines: u64,
    pub(crate) lines_estimated: bool,
    /// The start of the document (text, cut at a character boundary).
    pub(crate) preview: String,
    /// Secrets replaced by placeholders in it.
    pub(crate) masked: usize,
}

/// All `name(` identifiers used as calls in `text` that are not methods (`.name(`).
/// The system prompt's list of host tools: `(name, parameters, description, schema)`.
pub(crate) fn tools_section(tools: &[(&str, &[String], &str, String)]) -> String {
    let mut s = String::from(
        "\n\nHost tools: Python functions already defined in the REPL that run outside the sandbox. \
         Call them with keyword arguments (or positionally, in the order shown); each returns a str \
         (parse it with json.loads if it holds JSON); a failure returns a str starting with 'Error:'.\n",
    );
    for (name, params, description, schema) in tools {
        s.push_str(&format!(
            "- `{name}({})`: {description} Arguments (JSON Schema): {schema}\n",
            params.join(", ")
        ));
    }
    s
}

#[cfg(test)]
pub(crate) fn called_names(text: &str) -> std::collections::BTreeSet<String> {
    let b = text.as_bytes();
    let mut out = std::collections::BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphabetic() || b[i] == b'_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let preceded_by_dot = s > 0 && b[s - 1] == b'.';
            if i < b.len() && b[i] == b'(' && !preceded_by_dot {
                out.insert(text[s..i].to_string());
            }
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_modes_and_context() {
        let full = system_prompt(&PromptInput {
            context: Some("- `a.txt`: 10 bytes"),
            inline: true,
            max_iterations: 5,
            ..Default::default()
        });
        assert!(
            full.contains("a.txt")
                && full.contains("`context`")
                && full.contains("at most 5 turns")
        );
        let simple = system_prompt(&PromptInput {
            mode: PromptMode::Frontier,
            custom: Some("Be terse."),
            ..Default::default()
        });
        assert!(
            simple.contains("No context was given")
                && simple.contains("Be terse.")
                && simple.contains("FINAL(")
        );
        assert!(!simple.contains("ctx.search"));
    }

    #[test]
    fn record_formats_are_named() {
        let csv = "id,name,price\n1,lamp,3.5\n2,desk,40\n3,ch";
        assert!(
            record_format(csv)
                .unwrap()
                .contains("CSV with the columns id, name, price")
        );
        let jl = "{\"a\": 1, \"b\": \"x\"}\n{\"a\": 2, \"b\": \"y\"}\n{\"a\": 3";
        assert!(record_format(jl).unwrap().contains("fields a, b"));
        assert_eq!(
            record_format("2025-01-01 app started\n2025-01-01 ok\n"),
            None
        );
        assert_eq!(record_format("1,2,3\n4,5,6\n7,8,9\n"), None, "no header");
    }

    #[test]
    fn called_names_are_found() {
        let n = called_names("use `FINAL(x)` and ctx.read(1) and print(2)");
        assert!(n.contains("FINAL") && n.contains("print") && !n.contains("read"));
    }

    /// Every function any prompt mode names exists in the real REPL, and every function the
    /// REPL provides is named in every prompt.
    #[test]
    fn prompt_names_exactly_the_repl_functions() {
        use crate::sandbox::{NoHostCalls, REPL_FUNCTIONS, SessionSpec};
        let mut names = std::collections::BTreeSet::new();
        for mode in [PromptMode::Compact, PromptMode::Frontier] {
            for (context, recursion) in [
                (None, false),
                (Some("- `a.txt`: 3 bytes"), true),
                (None, true),
            ] {
                let p = system_prompt(&PromptInput {
                    recursion,
                    mode,
                    context,
                    inline: true,
                    max_iterations: 3,
                    ..Default::default()
                });
                for f in REPL_FUNCTIONS {
                    assert!(
                        p.contains(&format!("{f}(")),
                        "{f} missing from the {mode:?} prompt"
                    );
                }
                names.extend(called_names(&p));
                names.extend(called_names(&first_user_message("q", true)));
                names.extend(called_names(&first_user_message("q", false)));
                names.extend(called_names(&no_code_nudge()));
            }
        }
        let sb =
            crate::sandbox::from_config(&crate::config::SandboxConfig::defaults()).expect("bwrap");
        let mut s =
            futures_lite::future::block_on(sb.start(SessionSpec::empty())).expect("sandbox");
        let list = format!("{:?}", names.iter().collect::<Vec<_>>());
        let code = format!(
            "import builtins\nmissing = [n for n in {list} if not callable(globals().get(n, getattr(builtins, n, None)))]\nprint('missing', missing)\nimport types\nprint('user', sorted(k for k in globals() if not k.startswith('_') and k not in ('builtins', 'missing', 'types') and not isinstance(globals()[k], types.ModuleType)))"
        );
        let r = futures_lite::future::block_on(s.execute(&code, &NoHostCalls)).unwrap();
        assert!(
            r.stdout.contains("missing []"),
            "prompt names functions the REPL lacks: {}",
            r.stdout
        );
        let mut expected: Vec<&str> = REPL_FUNCTIONS.to_vec();
        expected.sort();
        let py_list = expected
            .iter()
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(", ");
        assert!(
            r.stdout.contains(&format!("user [{py_list}]")),
            "REPL functions not in REPL_FUNCTIONS: {} (expected {py_list})",
            r.stdout
        );
    }

    /// Every `ctx.<method>(` a prompt names exists on the REPL's handle, for one document and
    /// for a list of them.
    #[test]
    fn prompt_names_only_real_ctx_methods() {
        use crate::context::{Context, LoadedContext};
        use crate::sandbox::{NoHostCalls, SessionSpec};
        let sb =
            crate::sandbox::from_config(&crate::config::SandboxConfig::defaults()).expect("bwrap");
        for (is_list, ctx) in [
            (false, Context::text("a,b\n1,2\n")),
            (true, Context::documents(["x 1\n", "y 2\n"])),
        ] {
            // `ctx.<name>` for the whole context, `ctx[i].<name>` for one of a list.
            let (mut whole, mut each) = (
                std::collections::BTreeSet::new(),
                std::collections::BTreeSet::new(),
            );
            for mode in [PromptMode::Compact, PromptMode::Frontier] {
                let p = system_prompt(&PromptInput {
                    mode,
                    context: Some("- `a.txt`: 3 bytes"),
                    is_list,
                    max_iterations: 3,
                    records: true,
                    ..Default::default()
                });
                for (prefix, one) in [("ctx.", false), ("ctx[i].", true), ("ctx[0].", true)] {
                    let set = if one { &mut each } else { &mut whole };
                    let mut rest = p.as_str();
                    while let Some(i) = rest.find(prefix) {
                        if i > 0 && rest.as_bytes()[i - 1].is_ascii_alphanumeric() {
                            rest = &rest[i + prefix.len()..];
                            continue;
                        }
                        rest = &rest[i + prefix.len()..];
                        let name: String = rest
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        set.insert(name);
                    }
                }
            }
            assert!(
                whole.contains("count") && whole.contains("iter_lines"),
                "{whole:?}"
            );
            if is_list {
                assert!(each.contains("head"), "{each:?}");
            }
            let lc = LoadedContext::load(&ctx).unwrap();
            let spec = SessionSpec::for_context(&lc, 0);
            let mut s = futures_lite::future::block_on(sb.start(spec)).expect("sandbox");
            let code = format!(
                "one = ctx[0] if isinstance(ctx, list) else ctx\n\
                 print('missing', [m for m in {whole:?} if not hasattr(ctx, m)], [m for m in {each:?} if not hasattr(one, m)])\n\
                 print(ctx.count('1'), ctx.search('[12]').total, len(list(ctx.search_all('[0-9]'))))\n\
                 capped = ctx.search('[0-9]', max_results=1)"
            );
            let code = code.replace('"', "'");
            let r = futures_lite::future::block_on(s.execute(&code, &NoHostCalls)).unwrap();
            assert!(r.stdout.contains("missing [] []"), "{ctx:?}: {r:?}");
            assert!(r.stdout.contains("1 2 2"), "{ctx:?}: {r:?}");
            // The agent recognises the REPL's note on a capped result.
            assert!(r.stdout.contains(CAPPED_MARK), "{ctx:?}: {r:?}");
        }
    }
}
