//! The `rlm` command line: finds the subcommand and hands it its arguments. Each subcommand,
//! with its help text, lives in `src/cli/`.

mod cli;

use std::process::ExitCode;

use cli::{Command, demo, egress, run, sandbox, setup, term, view};

const COMMANDS: &[Command] = &[
    Command {
        name: "run",
        summary: run::SUMMARY,
        help: run::help,
        main: run::main,
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
        name: "view",
        summary: view::SUMMARY,
        help: view::help,
        main: view::main,
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

fn overview() -> String {
    let mut s = String::from(
        "rlm: Recursive Language Models with a sandboxed Python REPL\n\nUsage: rlm COMMAND [OPTIONS]\n\n",
    );
    for c in COMMANDS {
        s.push_str(&format!("  {:<9} {}\n", c.name, c.summary));
    }
    s.push_str("  help      this text; `rlm help COMMAND` for one command, `rlm help settings` for every setting\n\nEvery command takes --help.\n");
    s
}

fn settings() -> String {
    let mut s =
        String::from("Settings (environment variables; `rlm run` flags win over them):\n\n");
    for st in rlm::known_settings() {
        let flag = st.flag.map(|f| format!(", {f}")).unwrap_or_default();
        s.push_str(&format!(
            "{}{flag} (default {})\n    {}\n",
            st.name, st.default, st.help
        ));
    }
    s.push_str(
        "OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY\n    the selected provider's key\n",
    );
    s
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let find = |n: &str| COMMANDS.iter().find(|c| c.name == n);
    match args.first().map(String::as_str) {
        None | Some("help" | "--help" | "-h") => match args.get(1).map(String::as_str) {
            Some("settings") => print!("{}", settings()),
            Some(n) if find(n).is_some() => print!("{}", (find(n).expect("found").help)()),
            Some(n) => return cli::usage_error("help", format!("unknown command {n:?}")),
            None => print!("{}", overview()),
        },
        Some("--version" | "-V") => println!("rlm {}", env!("CARGO_PKG_VERSION")),
        Some(name) => match find(name) {
            Some(c) if args[1..].iter().any(|a| a == "--help" || a == "-h") => {
                print!("{}", (c.help)())
            }
            Some(c) => return (c.main)(&args[1..]),
            None => {
                eprintln!(
                    "rlm: unknown command {:?}\n\n{}",
                    term::safe(name),
                    overview()
                );
                return ExitCode::from(2);
            }
        },
    }
    ExitCode::SUCCESS
}
