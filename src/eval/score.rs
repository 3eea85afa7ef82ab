//! Scoring answers against expected values (pure).
//!
//! Answers are compared after normalisation: surrounding whitespace, quotes, backticks and a
//! final period are dropped, case and runs of spaces are ignored. Numbers are read from the
//! answer (`4,312`, `$1,234.50`, `42.0`, `1.5e3` are numbers; when the answer holds several,
//! the one closest to the expected value counts only if it is the sole number or the answer
//! is that number with a unit or label around it).

use super::suite::Expected;

/// How an answer is compared with the expected value.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Scoring {
    /// The normalised answer equals the normalised expected text (a number compares as a
    /// number).
    Exact,
    /// The normalised answer contains the normalised expected text.
    Contains,
    /// The answer read as a list (JSON, or separated by commas, semicolons, new lines or
    /// "and") equals the expected set, ignoring order and duplicates.
    Set,
    /// The number in the answer is within `tolerance` (absolute) or `relative` (a fraction of
    /// the expected value) of it.
    Number {
        /// Largest absolute difference accepted.
        tolerance: f64,
        /// Largest difference accepted as a fraction of the expected value.
        relative: f64,
    },
}

impl Scoring {
    /// The default for an expected value: exact for text and numbers, set for lists.
    pub(crate) fn default_for(e: &Expected) -> Scoring {
        match e {
            Expected::Set(_) => Scoring::Set,
            Expected::Number(_) => Scoring::Number {
                tolerance: 0.0,
                relative: 0.0,
            },
            Expected::Text(_) => Scoring::Exact,
        }
    }

    pub(crate) fn from_json(v: &serde_json::Value) -> Result<Scoring, String> {
        match v {
            serde_json::Value::String(s) => match s.as_str() {
                "exact" => Ok(Scoring::Exact),
                "contains" => Ok(Scoring::Contains),
                "set" => Ok(Scoring::Set),
                "number" => Ok(Scoring::Number {
                    tolerance: 0.0,
                    relative: 0.0,
                }),
                other => Err(format!(
                    "unknown score {other:?}: use \"exact\", \"contains\", \"set\" or {{\"number\": {{\"tolerance\": T}}}}"
                )),
            },
            serde_json::Value::Object(m) if m.len() == 1 && m.contains_key("number") => {
                let n = &m["number"];
                let get = |k: &str| -> Result<f64, String> {
                    match n.get(k) {
                        None => Ok(0.0),
                        Some(v) => v
                            .as_f64()
                            .filter(|x| *x >= 0.0)
                            .ok_or_else(|| format!("score.number.{k} must be a number >= 0")),
                    }
                };
                if let Some(extra) = n
                    .as_object()
                    .and_then(|o| o.keys().find(|k| *k != "tolerance" && *k != "relative"))
                {
                    return Err(format!(
                        "unknown field score.number.{extra}: use tolerance and relative"
                    ));
                }
                Ok(Scoring::Number {
                    tolerance: get("tolerance")?,
                    relative: get("relative")?,
                })
            }
            other => Err(format!("unknown score {other}")),
        }
    }

    pub(crate) fn to_json(self) -> serde_json::Value {
        match self {
            Scoring::Exact => "exact".into(),
            Scoring::Contains => "contains".into(),
            Scoring::Set => "set".into(),
            Scoring::Number {
                tolerance,
                relative,
            } => serde_json::json!({"number": {"tolerance": tolerance, "relative": relative}}),
        }
    }

    /// Whether this scoring can compare with `e`.
    pub(crate) fn check(&self, e: &Expected) -> Result<(), String> {
        match (self, e) {
            (Scoring::Number { .. }, Expected::Number(_)) => Ok(()),
            (Scoring::Number { .. }, Expected::Text(t)) if parse_number(t).is_some() => Ok(()),
            (Scoring::Number { .. }, _) => Err("score \"number\" expects a numeric answer".into()),
            (Scoring::Set, Expected::Set(_)) => Ok(()),
            (Scoring::Set, _) => Err("score \"set\" expects a list as the answer".into()),
            (_, Expected::Set(_)) => Err("a list answer needs score \"set\"".into()),
            _ => Ok(()),
        }
    }

    /// True when `answer` is right.
    pub fn is_right(&self, expected: &Expected, answer: &str) -> bool {
        match (self, expected) {
            (
                Scoring::Number {
                    tolerance,
                    relative,
                },
                e,
            ) => {
                let want = match e {
                    Expected::Number(n) => *n,
                    Expected::Text(t) => match parse_number(t) {
                        Some(n) => n,
                        None => return false,
                    },
                    Expected::Set(_) => return false,
                };
                let allowed = tolerance.max(relative * want.abs()).max(1e-9);
                answer_number(answer).is_some_and(|got| (got - want).abs() <= allowed)
            }
            (Scoring::Exact, Expected::Number(n)) => {
                answer_number(answer).is_some_and(|got| (got - n).abs() <= 1e-9)
            }
            (Scoring::Exact, e) => normalize(answer) == normalize(&e.to_string()),
            (Scoring::Contains, e) => normalize(answer).contains(&normalize(&e.to_string())),
            (Scoring::Set, Expected::Set(want)) => {
                let mut want: Vec<String> = want.iter().map(|w| normalize(w)).collect();
                want.sort();
                want.dedup();
                let mut got = split_list(answer);
                got.sort();
                got.dedup();
                got == want
            }
            (Scoring::Set, _) => false,
        }
    }
}

/// `n` without a needless fraction (`3` rather than `3.0`).
pub(crate) fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// Lower case, single spaces, no surrounding quotes, backticks, brackets or final period.
pub(crate) fn normalize(s: &str) -> String {
    let mut t = s.trim();
    loop {
        let before = t;
        t = t.trim();
        t = t.trim_end_matches(['.', '!']);
        for (a, b) in [
            ("\"", "\""),
            ("'", "'"),
            ("`", "`"),
            ("**", "**"),
            ("(", ")"),
            ("[", "]"),
        ] {
            if t.len() >= a.len() + b.len() && t.starts_with(a) && t.ends_with(b) {
                t = &t[a.len()..t.len() - b.len()];
            }
        }
        if t == before {
            break;
        }
    }
    t.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The items of a list answer, normalised.
fn split_list(answer: &str) -> Vec<String> {
    if let Ok(serde_json::Value::Array(items)) =
        serde_json::from_str::<serde_json::Value>(answer.trim())
    {
        return items
            .iter()
            .map(|v| match v {
                serde_json::Value::String(s) => normalize(s),
                other => normalize(&other.to_string()),
            })
            .collect();
    }
    let mut s = answer.trim().to_string();
    for (a, b) in [("[", "]"), ("(", ")"), ("{", "}")] {
        if s.starts_with(a) && s.ends_with(b) {
            s = s[1..s.len() - 1].to_string();
        }
    }
    s.replace(" and ", ",")
        .split([',', ';', '\n'])
        .map(|item| {
            // List markers: `- x`, `* x`, `1. x`, `2) x`.
            let item = item.trim().trim_start_matches(['-', '*', '•']).trim_start();
            let digits = item.bytes().take_while(u8::is_ascii_digit).count();
            let item = match item[digits..].strip_prefix(['.', ')']) {
                Some(rest) if digits > 0 => rest,
                _ => item,
            };
            normalize(item)
        })
        .filter(|x| !x.is_empty())
        .collect()
}

/// A number written alone (`4,312`, `$1,234.50`, `-3`, `1.5e3`, `42%`).
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    let t = normalize(s);
    let t = t
        .trim_start_matches(['$', '€', '£'])
        .trim_end_matches(['%', '$', '€', '£'])
        .replace(['_', ','], "");
    let t = t.trim();
    if t.is_empty() {
        return None;
    }
    t.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// The number an answer gives: the whole answer as a number, or the only number in it
/// (`"There are 42 matching rows"`, `"Total: $1,234.50"`).
pub(crate) fn answer_number(answer: &str) -> Option<f64> {
    if let Some(n) = parse_number(answer) {
        return Some(n);
    }
    let nums = numbers_in(answer);
    match nums.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// Every number written in `s` (thousands separators and decimals understood).
fn numbers_in(s: &str) -> Vec<f64> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts = b[i].is_ascii_digit()
            || (b[i] == b'-'
                && b.get(i + 1).is_some_and(u8::is_ascii_digit)
                && (i == 0 || !b[i - 1].is_ascii_alphanumeric()));
        // Digits inside an identifier (`v2`, `D-4821`, `3.14.2`'s later parts) are no quantity.
        let glued = i > 0
            && (b[i - 1].is_ascii_alphanumeric()
                || b[i - 1] == b'.'
                || (b[i - 1] == b'-' && i > 1 && b[i - 2].is_ascii_alphanumeric()));
        if !starts {
            i += 1;
            continue;
        }
        if glued {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            continue;
        }
        let st = i;
        i += 1;
        while i < b.len()
            && (b[i].is_ascii_digit()
                || (matches!(b[i], b',' | b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit)))
        {
            i += 1;
        }
        // A number glued to letters is an identifier (`D-4821`, `v2`), not a quantity.
        if i < b.len() && (b[i].is_ascii_alphabetic() || b[i] == b'_') {
            while i < b.len() && b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            continue;
        }
        if let Ok(x) = s[st..i].replace(',', "").parse::<f64>() {
            out.push(x);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(t: f64) -> Scoring {
        Scoring::Number {
            tolerance: t,
            relative: 0.0,
        }
    }

    #[test]
    fn exact_ignores_case_quotes_and_a_final_period() {
        let e = Expected::Text("3.14.2".into());
        for a in ["3.14.2", " \"3.14.2\" ", "`3.14.2`.", "**3.14.2**"] {
            assert!(Scoring::Exact.is_right(&e, a), "{a}");
        }
        assert!(!Scoring::Exact.is_right(&e, "3.14.20"));
        assert!(!Scoring::Exact.is_right(&e, "version 3.14.2 or 3.14.1"));
        let e = Expected::Text("Billing".into());
        assert!(Scoring::Exact.is_right(&e, "billing"));
    }

    #[test]
    fn numbers_are_read_from_answers() {
        let e = Expected::Number(4312.0);
        for a in [
            "4312",
            "4,312",
            "There are 4,312 rows.",
            "4312.0",
            "  4312 \n",
        ] {
            assert!(num(0.0).is_right(&e, a), "{a}");
        }
        for a in ["4313", "10", "4312 or 4313", "", "many"] {
            assert!(!num(0.0).is_right(&e, a), "{a}");
        }
        let e = Expected::Number(1234.5);
        assert!(num(0.01).is_right(&e, "$1,234.50"));
        assert!(num(0.01).is_right(&e, "Total: 1234.501"));
        assert!(!num(0.01).is_right(&e, "1234.6"));
        let rel = Scoring::Number {
            tolerance: 0.0,
            relative: 0.01,
        };
        assert!(rel.is_right(&Expected::Number(1000.0), "1009"));
        assert!(!rel.is_right(&Expected::Number(1000.0), "1011"));
        // Identifiers are not quantities.
        assert_eq!(answer_number("device D-4821 has 3 faults"), Some(3.0));
        assert!(Scoring::Exact.is_right(&Expected::Number(7.0), "7"));
    }

    #[test]
    fn sets_ignore_order_and_format() {
        let e = Expected::Set(vec!["auth".into(), "billing".into(), "search".into()]);
        for a in [
            "auth, billing, search",
            "[\"search\", \"auth\", \"billing\"]",
            "billing; search; auth",
            "auth, billing and search",
            "- auth\n- billing\n- search",
            "1. auth\n2. billing\n3. search",
        ] {
            assert!(Scoring::Set.is_right(&e, a), "{a}");
        }
        assert!(!Scoring::Set.is_right(&e, "auth, billing"));
        assert!(!Scoring::Set.is_right(&e, "auth, billing, search, cache"));
    }

    proptest::proptest! {
        #[test]
        fn reading_numbers_never_panics_or_hangs(s in "[0-9a-z.,$%-]{0,40}") {
            let _ = answer_number(&s);
            let _ = Scoring::Set.is_right(&Expected::Set(vec!["a".into()]), &s);
        }
    }

    #[test]
    fn contains() {
        let e = Expected::Text("E-5531".into());
        assert!(Scoring::Contains.is_right(&e, "The job failed with code e-5531."));
        assert!(!Scoring::Contains.is_right(&e, "E-553"));
    }
}
