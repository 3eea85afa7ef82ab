//! Text for the operator's terminal: control characters that came from the sandbox or the
//! model (ESC sequences, C1 controls, carriage returns, ...) are shown escaped, never
//! interpreted, so printed output cannot rewrite the screen, set the title or hide lines.

/// `s` with every control character except newline and tab escaped (`\x1b`, `\u{9b}`).
pub(crate) fn safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            c if c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else {
                    out.push_str(&format!("\\u{{{n:x}}}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// [`safe`] for one line: newlines and tabs are escaped too.
pub(crate) fn safe_line(s: &str) -> String {
    safe(s).replace('\n', "\\n").replace('\t', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_terminal_controls() {
        assert_eq!(safe("ok\n\x1b[2J\u{9b}31m\r"), "ok\n\\x1b[2J\\x9b31m\\x0d");
        assert_eq!(safe("é\ttab"), "é\ttab");
        assert_eq!(safe("\u{202e}evil"), "\\u{202e}evil");
        assert_eq!(safe_line("a\nb"), "a\\nb");
    }
}
