//! `rlm chat`: an interactive loop of questions on one session (one REPL, its variables and
//! contexts, and the conversation carry over from one question to the next).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use rlm::{Context, RunResult};

use super::{Args, progress, signals, term, usage_error};

pub(crate) const SUMMARY: &str =
    "ask questions one after the other on one session (REPL variables and contexts carry over)";

/// Flags of `rlm chat` that are not settings.
const OWN_VALUES: &[&str] = &["--context", "--log"];
const SWITCHES: &[&str] = &["--json", "--quiet", "-q"];

/// The commands a line can hold instead of a question.
const LINE_COMMANDS: &str = "  :context FILE   give FILE with the next question (it becomes ctx_N/context_N and ctx)\n\
     \x20 :help           this list\n\
     \x20 :quit           end the chat (as does end of input, Ctrl-D)\n";

pub(crate) fn help() -> String {
    let mut s = String::from(
        "rlm chat [OPTIONS]\n\n\
         Reads questions from stdin, one per line, and answers each on one session: the REPL\n\
         (its variables), every context given so far (`ctx_0`/`context_0`, `ctx_1`, ...; `ctx`\n\
         and `context` are the latest) and the conversation carry over. The orchestrator is\n\
         built as for `rlm run` (the same settings flags and variables; the local model of\n\
         `rlm setup` when no provider is configured). The --context files go with the first\n\
         question. A line starting with `:` is a command:\n",
    );
    s.push_str(LINE_COMMANDS);
    s.push_str(
        "\nAnswers go to stdout, one per question. On a terminal there is a prompt (`> `) and\n\
         progress on stderr; with piped input only the answers are printed, one per question\n\
         (an empty line for a question without one; errors go to stderr), so a chat can be\n\
         scripted.\n\n\
         Ctrl-C cancels the question in progress and the chat goes on, but the REPL is lost:\n\
         the next question starts a fresh one (variables and contexts are gone, the\n\
         conversation stays). Ctrl-C at the prompt, or a second Ctrl-C before the first took\n\
         effect, ends the chat. SIGTERM and SIGHUP end it: the sandbox is killed first.\n\n\
         Options:\n\
         \x20 --context FILE        context file for the first question (repeat for a list)\n\
         \x20 --log FILE            write the trajectory (JSON Lines) of every question to FILE\n\
         \x20 --json                print each question's whole result as one line of JSON\n\
         \x20 --quiet, -q           no progress on stderr\n",
    );
    s.push_str(&super::help::setting_flags());
    s.push_str(
        "\nEvery other setting is an environment variable (`rlm help settings` lists them); a flag\n\
         wins over its variable. Exit codes: 0 end of input or :quit (whatever the answers),\n\
         2 usage or configuration error, 128 + N stopped by signal N.\n",
    );
    s
}

fn setting_flags() -> Vec<&'static str> {
    rlm::known_settings()
        .iter()
        .filter_map(|s| s.flag)
        .collect()
}

/// A context file that exists, or an error naming it.
fn context_file(path: &str) -> Result<PathBuf, String> {
    if path.is_empty() {
        return Err("a context needs a FILE".into());
    }
    match std::fs::metadata(path) {
        Ok(_) => Ok(PathBuf::from(path)),
        Err(e) => Err(format!("context file {path}: {e}")),
    }
}

/// One read from stdin.
enum Input {
    Line(String),
    End,
    Failed(String),
}

/// Reads stdin on its own thread, so the chat can notice signals while it waits.
fn read_lines() -> mpsc::Receiver<Input> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        loop {
            let mut line = String::new();
            let msg = match lock.read_line(&mut line) {
                Ok(0) => Input::End,
                Ok(_) => Input::Line(line),
                Err(e) => Input::Failed(e.to_string()),
            };
            let last = !matches!(msg, Input::Line(_));
            if tx.send(msg).is_err() || last {
                return;
            }
        }
    });
    rx
}

/// How the wait for the next line ended.
enum Next {
    Input(Input),
    Interrupted,
    Signal(i32),
}

fn next_input(rx: &mpsc::Receiver<Input>) -> Next {
    loop {
        if let Some(sig) = signals::received() {
            return Next::Signal(sig);
        }
        if signals::take_interrupt() {
            return Next::Interrupted;
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(i) => return Next::Input(i),
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Next::Input(Input::End),
        }
    }
}

pub(crate) fn main(args: &[String]) -> ExitCode {
    signals::install();
    signals::chat_mode();
    let err = |m: String| usage_error("chat", m);
    let mut with_value: Vec<&str> = OWN_VALUES.to_vec();
    with_value.extend(setting_flags());
    let a = match Args::parse(args, &with_value, SWITCHES) {
        Ok(a) => a,
        Err(e) => return err(e),
    };
    if let Some(w) = a.positional.first() {
        return err(format!(
            "unexpected argument {w:?}: rlm chat reads its questions from stdin"
        ));
    }
    let mut pending = Vec::new();
    for (_, v) in a.values.iter().filter(|(f, _)| f == "--context") {
        match context_file(v) {
            Ok(p) => pending.push(p),
            Err(e) => return err(e),
        }
    }
    let interactive = std::io::stdin().is_terminal();
    let json = a.has("--json");
    let quiet = a.has("--quiet") || a.has("-q") || !interactive;
    // Keeps the local server (if this chat started one) alive until the chat ends; declared
    // before the session, so the session (and its sandbox) goes first.
    let (orch, _local) = match super::orchestrator_from_flags(&a, OWN_VALUES, quiet) {
        Ok(x) => x,
        Err(e) => return err(e),
    };
    let session = orch.session();
    let lines = read_lines();
    if interactive {
        eprintln!(
            "rlm chat: one question per line; Ctrl-C cancels a question, :help lists the commands, :quit or Ctrl-D ends."
        );
    }
    loop {
        if interactive {
            eprint!("> ");
            let _ = std::io::stderr().flush();
        }
        let line = match next_input(&lines) {
            Next::Input(Input::Line(l)) => l,
            Next::Input(Input::End) => {
                if interactive {
                    eprintln!();
                }
                break;
            }
            Next::Input(Input::Failed(e)) => {
                eprintln!("rlm: cannot read stdin: {}", term::safe(&e));
                return ExitCode::from(1);
            }
            Next::Interrupted => {
                eprintln!();
                return ExitCode::from(130);
            }
            Next::Signal(sig) => return stopped(sig),
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(cmd) = line.strip_prefix(':') {
            let (name, rest) = cmd.split_once(char::is_whitespace).unwrap_or((cmd, ""));
            match name {
                "quit" | "q" | "exit" => break,
                "context" => match context_file(rest.trim()) {
                    Ok(p) => {
                        if interactive {
                            eprintln!(
                                "context {} goes with the next question",
                                term::safe_line(&p.display().to_string())
                            );
                        }
                        pending.push(p);
                    }
                    Err(e) => eprintln!("rlm: {}", term::safe(&e)),
                },
                "help" => eprint!("{LINE_COMMANDS}"),
                _ => eprintln!(
                    "rlm: unknown command :{} (:help lists them)",
                    term::safe_line(name)
                ),
            }
            continue;
        }
        let context = match pending.len() {
            0 => None,
            1 => Some(Context::file(pending.remove(0))),
            _ => Some(Context::Files(std::mem::take(&mut pending))),
        };
        let run = session.arun_observed(line, context);
        signals::watch(run.cancel.clone());
        let events = run.events;
        let shown = std::thread::spawn(move || progress::show(events, quiet));
        let result = futures_lite::future::block_on(run.result);
        let _ = shown.join();
        signals::forget();
        let cancelled = signals::take_interrupt();
        print_result(&result, json, interactive, cancelled);
        if let Some(sig) = signals::received() {
            return stopped(sig);
        }
    }
    ExitCode::SUCCESS
}

fn stopped(sig: i32) -> ExitCode {
    eprintln!("rlm: stopped by signal {sig}");
    ExitCode::from((128 + sig) as u8)
}

/// The answer on stdout (or the whole result as one JSON line; with piped input, an empty
/// line when there is no answer); what went wrong on stderr.
fn print_result(result: &RunResult, json: bool, interactive: bool, cancelled: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string(result).expect("results serialize")
        );
    } else if let Some(answer) = &result.final_answer {
        println!("{}", term::safe(answer));
    } else if !interactive {
        // An empty line for a question without an answer: one entry per question.
        println!();
    }
    let _ = std::io::stdout().flush();
    if result.success {
        return;
    }
    if cancelled {
        eprintln!(
            "rlm: question cancelled; the next one starts a fresh REPL (the conversation stays)"
        );
    } else if !json {
        eprintln!(
            "rlm: no answer: {}",
            term::safe(result.error.as_deref().unwrap_or("unknown"))
        );
    }
    if let (false, Some(p)) = (json, &result.partial_answer) {
        eprintln!("rlm: best partial answer (not final): {}", term::safe(p));
    }
}
