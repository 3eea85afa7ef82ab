//! Pure parsing of model replies: fenced code blocks and textual final answers.
//!
//! The fence rules follow CommonMark closely enough for model output: an opening fence is at
//! least three backticks or tildes (optionally indented); the block ends at a line holding only
//! a fence of the same character that is at least as long; an unclosed fence runs to the end of
//! the reply. A longer outer fence can therefore contain shorter inner fences ("nested
//! backticks"). CRLF line endings are accepted.

/// One fenced block found in a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeBlock {
    /// The info-string language, lower-cased (empty when untagged).
    pub language: String,
    /// The code, without the fences, with the opening fence's indentation removed.
    pub code: String,
}

/// Languages whose blocks are executed as Python.
const PYTHON_TAGS: [&str; 5] = ["", "python", "py", "python3", "repl"];

/// All fenced blocks of `text`, in order.
pub fn extract_code_blocks(text: &str) -> Vec<CodeBlock> {
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(open) = opening_fence(lines[i]) else {
            i += 1;
            continue;
        };
        let mut body = Vec::new();
        i += 1;
        while i < lines.len() {
            if is_closing_fence(lines[i], open.ch, open.len) {
                break;
            }
            body.push(strip_indent(lines[i], open.indent));
            i += 1;
        }
        i += 1; // skip the closing fence (or run past the end)
        blocks.push(CodeBlock {
            language: open.language,
            code: body.join("\n"),
        });
    }
    blocks
}

/// The Python code blocks of `text` (tags `python`, `py`, `python3`, `repl` or none), trimmed
/// of surrounding blank lines, empty blocks dropped.
pub fn extract_python_code(text: &str) -> Vec<String> {
    extract_code_blocks(text)
        .into_iter()
        .filter(|b| PYTHON_TAGS.contains(&b.language.as_str()))
        .map(|b| trim_blank_lines(&b.code).to_string())
        .filter(|c| !c.trim().is_empty())
        .collect()
}

struct Fence {
    ch: char,
    len: usize,
    indent: usize,
    language: String,
}

fn opening_fence(line: &str) -> Option<Fence> {
    let trimmed = line.trim_start_matches([' ', '\t']);
    let indent = line.len() - trimmed.len();
    let ch = trimmed.chars().next()?;
    if ch != '`' && ch != '~' {
        return None;
    }
    let len = trimmed.chars().take_while(|&c| c == ch).count();
    if len < 3 {
        return None;
    }
    let info = trimmed[len..].trim();
    if ch == '`' && info.contains('`') {
        return None; // an inline code span such as ```foo```
    }
    let language = info
        .split(|c: char| c.is_whitespace() || c == '{' || c == ',')
        .next()
        .unwrap_or("")
        .to_lowercase();
    Some(Fence {
        ch,
        len,
        indent,
        language,
    })
}

fn is_closing_fence(line: &str, ch: char, min_len: usize) -> bool {
    let t = line.trim();
    let n = t.chars().take_while(|&c| c == ch).count();
    n >= min_len && t.chars().skip(n).all(char::is_whitespace)
}

fn strip_indent(line: &str, indent: usize) -> &str {
    let ws = line.len() - line.trim_start_matches([' ', '\t']).len();
    &line[ws.min(indent)..]
}

fn trim_blank_lines(code: &str) -> &str {
    let start = code
        .split_inclusive('\n')
        .take_while(|l| l.trim().is_empty())
        .map(str::len)
        .sum::<usize>();
    code[start..].trim_end()
}

/// A final answer stated in a reply *without code*: a line that is `FINAL(answer)`,
/// `FINAL: answer` or `Final Answer: answer` (case-insensitive). Returns `None` for an empty
/// answer. Never call this on a reply that contains code: code must run first.
pub fn final_from_text(text: &str) -> Option<String> {
    for raw in text.lines() {
        let line = raw.trim().trim_start_matches(['*', '#', '>', ' ']).trim();
        let upper = line.to_ascii_uppercase();
        let answer = if let Some(v) = final_call(line) {
            Some(v)
        } else if upper.starts_with("FINAL:") {
            Some(line["FINAL:".len()..].trim().to_string())
        } else if let Some(rest) = upper.strip_prefix("FINAL ANSWER") {
            let rest_start = line.len() - rest.len();
            let rest = line[rest_start..].trim_start();
            rest.strip_prefix(':').map(|v| v.trim().to_string())
        } else {
            None
        };
        if let Some(a) = answer {
            let a = a.trim().trim_matches('*').trim().to_string();
            if !a.is_empty() {
                return Some(a);
            }
        }
    }
    None
}

/// A stdout line of the form `FINAL(answer)` (the guide's convention for code that prints
/// its answer). The last such line wins. Nested parentheses inside the answer are kept.
pub fn final_from_stdout(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .rev()
        .find_map(|l| final_call(l.trim()))
        .filter(|a| !a.is_empty())
}

/// `FINAL(x)` spanning one whole line: everything between the first `(` and the last `)`.
fn final_call(line: &str) -> Option<String> {
    let rest = line.strip_prefix("FINAL")?;
    let rest = rest.trim_start().strip_prefix('(')?;
    let inner = rest.strip_suffix(')')?;
    let inner = inner.trim();
    // Strip one level of matching quotes: FINAL("x") -> x.
    let unq = ['"', '\'']
        .iter()
        .find_map(|q| inner.strip_prefix(*q).and_then(|s| s.strip_suffix(*q)))
        .unwrap_or(inner);
    Some(unq.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tagged_and_untagged_blocks() {
        let t = "Plan:\n```python\nx = 1\n```\ntext\n```\nprint(x)\n```\n```bash\nls\n```\n~~~py\ny=2\n~~~\n";
        assert_eq!(extract_python_code(t), vec!["x = 1", "print(x)", "y=2"]);
    }

    #[test]
    fn crlf_unclosed_and_nested() {
        assert_eq!(
            extract_python_code("```python\r\na = 1\r\nb = 2\r\n```\r\n"),
            vec!["a = 1\nb = 2"]
        );
        assert_eq!(
            extract_python_code("```python\nprint('open')\n"),
            vec!["print('open')"]
        );
        let nested = "````python\ns = '''\n```\ninner\n```\n'''\nprint(s)\n````\n";
        assert_eq!(
            extract_python_code(nested),
            vec!["s = '''\n```\ninner\n```\n'''\nprint(s)"]
        );
    }

    #[test]
    fn indented_fence_in_list_and_info_string() {
        let t = "1. step\n   ```Python title=x\n   for i in range(2):\n       print(i)\n   ```\n";
        assert_eq!(
            extract_python_code(t),
            vec!["for i in range(2):\n    print(i)"]
        );
        // R-markdown style `{python}` is treated as untagged, hence Python.
        assert_eq!(extract_python_code("```{python}\nx\n```"), vec!["x"]);
        assert!(extract_python_code("```ipython\nx\n```").is_empty());
        assert!(extract_python_code("inline ```x``` only").is_empty());
        assert!(extract_python_code("```python\n\n   \n```").is_empty());
    }

    #[test]
    fn text_finals() {
        assert_eq!(
            final_from_text("done\nFINAL(f(x) = 3)\n"),
            Some("f(x) = 3".into())
        );
        assert_eq!(final_from_text("FINAL: 42\nmore"), Some("42".into()));
        assert_eq!(
            final_from_text("**Final Answer:** Paris"),
            Some("Paris".into())
        );
        assert_eq!(final_from_text("final answer: x"), Some("x".into()));
        assert_eq!(final_from_text("In the final (and best) step we win"), None);
        assert_eq!(final_from_text("The final: configuration is ready"), None);
        assert_eq!(final_from_text("FINAL()"), None);
        assert_eq!(final_from_text("FINAL(\"quoted\")"), Some("quoted".into()));
    }

    #[test]
    fn stdout_finals() {
        assert_eq!(final_from_stdout("x\nFINAL(7)\n"), Some("7".into()));
        assert_eq!(final_from_stdout("FINAL(a)\nFINAL(b)"), Some("b".into()));
        assert_eq!(final_from_stdout("the FINAL(7) inside"), None);
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = extract_code_blocks(&s);
            let _ = final_from_text(&s);
            let _ = final_from_stdout(&s);
        }

        #[test]
        fn fenced_code_round_trips(code in "[a-z0-9 =+()\n]{1,200}", tag in prop::sample::select(vec!["python", "py", "python3", ""]), crlf in any::<bool>()) {
            prop_assume!(!code.trim().is_empty());
            let nl = if crlf { "\r\n" } else { "\n" };
            let body = code.replace('\n', nl);
            let text = format!("intro{nl}```{tag}{nl}{body}{nl}```{nl}outro");
            let got = extract_python_code(&text);
            prop_assert_eq!(got.len(), 1);
            prop_assert_eq!(got[0].clone(), trim_blank_lines(&code).to_string());
        }
    }
}
