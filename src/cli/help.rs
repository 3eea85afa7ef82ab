//! `rlm help`: the overview of every subcommand (from the one table in `main.rs`) and the list
//! of every setting (from the library's settings registry).

use super::Command;

/// The overview: one line per subcommand.
pub(crate) fn overview(commands: &[Command]) -> String {
    let mut s = String::from(
        "rlm: Recursive Language Models with a sandboxed Python REPL\n\nUsage: rlm COMMAND [OPTIONS]\n\n",
    );
    for c in commands {
        s.push_str(&format!("  {:<9} {}\n", c.name, c.summary));
    }
    s.push_str(
        "  help      this text; `rlm help COMMAND` for one command, `rlm help settings` for every setting\n\n\
         Every command takes --help.\n",
    );
    s
}

/// Every setting: its variable, flag, default and meaning, and the provider key variables.
pub(crate) fn settings() -> String {
    let mut s =
        String::from("Settings (environment variables; `rlm run` flags win over them):\n\n");
    for st in rlm::known_settings() {
        let flag = st.flag.map(|f| format!(", {f}")).unwrap_or_default();
        s.push_str(&format!(
            "{}{flag} (default {})\n    {}\n",
            st.name, st.default, st.help
        ));
    }
    let keys: Vec<&str> = [
        rlm::Provider::OpenAi,
        rlm::Provider::Anthropic,
        rlm::Provider::Gemini,
    ]
    .iter()
    .map(|p| p.key_var())
    .collect();
    s.push_str(&format!(
        "{}\n    the selected provider's API key (never a flag: command lines are visible to every user)\n",
        keys.join(", ")
    ));
    s
}

/// One help line per setting that has a command-line flag (`--flag V  help (VAR, default D)`).
pub(crate) fn setting_flags() -> String {
    let mut s = String::new();
    for st in rlm::known_settings() {
        if let Some(flag) = st.flag {
            s.push_str(&format!(
                "  {:<21} {} ({}, default {})\n",
                format!("{flag} V"),
                st.help,
                st.name,
                st.default
            ));
        }
    }
    s
}
