//! The `rlm` command line: finds the subcommand and hands it its arguments. Each subcommand,
//! with its help text, lives in `src/cli/`.

mod cli;

use std::process::ExitCode;

#[cfg(feature = "serve")]
use cli::serve;
use cli::{Command, chat, demo, egress, eval, help, run, sandbox, setup, term, view};

/// Every subcommand: the one place the CLI's commands and their help are listed.
const COMMANDS: &[Command] = &[
    Command {
        name: "run",
        summary: run::SUMMARY,
        help: run::help,
        main: run::main,
    },
    Command {
        name: "chat",
        summary: chat::SUMMARY,
        help: chat::help,
        main: chat::main,
    },
    Command {
        name: "sandbox",
        summary: sandbox::SUMMARY,
        help: sandbox::help,
        main: sandbox::main,
    },
    Command {
        name: "egress",
        summary: egress::SUMMARY,
        help: egress::help,
        main: egress::main,
    },
    Command {
        name: "eval",
        summary: eval::SUMMARY,
        help: eval::help,
        main: eval::main,
    },
    Command {
        name: "view",
        summary: view::SUMMARY,
        help: view::help,
        main: view::main,
    },
    #[cfg(feature = "serve")]
    Command {
        name: "serve",
        summary: serve::SUMMARY,
        help: serve::help,
        main: serve::main,
    },
    Command {
        name: "setup",
        summary: setup::SUMMARY,
        help: setup::help,
        main: setup::main,
    },
    Command {
        name: "demo",
        summary: demo::SUMMARY,
        help: demo::help,
        main: demo::main,
    },
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let find = |n: &str| COMMANDS.iter().find(|c| c.name == n);
    let wants_help = |rest: &[String]| rest.iter().any(|a| a == "--help" || a == "-h");
    match args.first().map(String::as_str) {
        None | Some("help" | "--help" | "-h") => match args.get(1).map(String::as_str) {
            None => print!("{}", help::overview(COMMANDS)),
            Some("settings") => print!("{}", help::settings()),
            Some(n) => match find(n) {
                Some(c) => print!("{}", (c.help)()),
                None => return cli::usage_error("help", format!("unknown command {n:?}")),
            },
        },
        Some("--version" | "-V") => println!("rlm {}", env!("CARGO_PKG_VERSION")),
        Some(name) => match find(name) {
            Some(c) if wants_help(&args[1..]) => print!("{}", (c.help)()),
            Some(c) => {
                let code = (c.main)(&args[1..]);
                // Sandboxes killed in the background (timeouts, cancelled runs) are reaped and
                // their cgroups and uids released before the process exits.
                rlm::wait_for_cleanup(std::time::Duration::from_secs(10));
                return code;
            }
            None => {
                eprintln!(
                    "rlm: unknown command {:?}\n\n{}",
                    term::safe(name),
                    help::overview(COMMANDS)
                );
                return ExitCode::from(2);
            }
        },
    }
    ExitCode::SUCCESS
}
