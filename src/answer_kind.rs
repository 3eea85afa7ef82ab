//! Whether a final answer is of the kind its question asks for (pure): a count or total
//! asked for and no number given, or names asked for ("which services", "who") and only a
//! number given. Small models often answer with the number they last printed (a count of
//! lines for "name the three services"); such an answer is refused once by the agent. Also
//! whether a question asks about meaning (sentiment, tone, urgency), which a keyword or a
//! field rarely decides: a run that never asked a helper model is asked to, once.

/// What a question asks for, as far as its wording says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A count, total, sum or average: the answer must hold a number.
    Number,
    /// Names or things ("which", "who", "name the ..."): a bare number is not one.
    Names,
}

/// Words after "which"/"what" that make a number a fine answer ("which year", "what
/// port", "which version").
const NUMERIC_NOUNS: &[&str] = &[
    "year",
    "years",
    "number",
    "numbers",
    "port",
    "id",
    "ids",
    "code",
    "codes",
    "version",
    "amount",
    "price",
    "cost",
    "total",
    "count",
    "sum",
    "date",
    "day",
    "month",
    "age",
    "score",
    "rank",
    "size",
    "value",
    "values",
    "percentage",
    "percent",
    "rate",
    "time",
    "hour",
    "minute",
    "budget",
    "salary",
    "quantity",
    "figure",
    "level",
    "zip",
    "phone",
    "temperature",
    "balance",
    "many",
    "much",
    "digit",
    "digits",
    "line",
    "row",
    "page",
];

/// What `question` asks for, or `None` when its wording does not say.
pub(crate) fn asked(question: &str) -> Option<Kind> {
    let q = question.to_lowercase();
    let words: Vec<&str> = q
        .split(|c: char| !c.is_alphanumeric() && c != '-')
        .filter(|w| !w.is_empty())
        .collect();
    let has = |phrase: &[&str]| words.windows(phrase.len()).any(|w| w == phrase);
    let first = *words.first()?;
    if matches!(first, "which" | "who" | "name" | "list") {
        // What is asked for is named right after the question word ("which service has
        // the highest number of errors" asks for a service; "which year", a number).
        let head = &words[1..words.len().min(4)];
        return (!head.iter().any(|w| NUMERIC_NOUNS.contains(w))).then_some(Kind::Names);
    }
    if has(&["how", "many"])
        || has(&["how", "much"])
        || has(&["number", "of"])
        || first == "count"
        || has(&["the", "total"])
        || has(&["the", "sum"])
        || has(&["the", "average"])
    {
        return Some(Kind::Number);
    }
    None
}

/// True when `answer` is not of the kind `question` asks for.
pub(crate) fn mismatch(question: &str, answer: &str) -> Option<Kind> {
    let a = answer.trim();
    if a.is_empty() {
        return None;
    }
    match asked(question)? {
        Kind::Number if !a.chars().any(|c| c.is_ascii_digit()) => {
            // "none" or "zero" says a number in words.
            let l = a.to_lowercase();
            let words = ["none", "zero", "no", "nothing", "one", "two", "three"];
            (!words.iter().any(|w| l.trim_end_matches('.') == *w)).then_some(Kind::Number)
        }
        Kind::Names if is_bare_number(a) => Some(Kind::Names),
        _ => None,
    }
}

/// A number and nothing else ("1517", "-3.5", "1,200").
fn is_bare_number(a: &str) -> bool {
    let t = a.trim_matches(|c: char| c == '"' || c == '\'' || c.is_whitespace());
    !t.is_empty()
        && t.chars().any(|c| c.is_ascii_digit())
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | '-' | '+'))
}

/// True when `answer` is a whole sentence ("Granite Labs bought a footrest in order
/// O-187827.") to a question that asks for a value (which, what, who, how many, name, list):
/// the value alone is what a caller can use.
pub(crate) fn is_sentence_answer(question: &str, answer: &str) -> bool {
    let q = question.trim_start().to_lowercase();
    let asks_value = [
        "which", "what", "who", "how many", "how much", "name", "list", "count",
    ]
    .iter()
    .any(|w| q.starts_with(w));
    let a = answer.trim();
    let words = a.split_whitespace().count();
    asks_value
        && words >= 6
        && a.ends_with('.')
        && a.chars().next().is_some_and(char::is_uppercase)
        && !q.contains("sentence")
        && !q.starts_with("what happened")
        && !q.contains("why")
        && !q.contains("summar")
        && !q.contains("explain")
        && !q.contains("describe")
}

/// Words that make a question one about meaning: what a text says or feels, which a
/// helper model judges better than a keyword does.
const JUDGEMENT_WORDS: &[&str] = &[
    "negative",
    "positive",
    "sentiment",
    "complaint",
    "complaints",
    "complain",
    "complains",
    "praise",
    "praises",
    "angry",
    "happy",
    "unhappy",
    "satisfied",
    "dissatisfied",
    "frustrated",
    "disappointed",
    "sarcastic",
    "toxic",
    "rude",
    "polite",
    "urgent",
    "tone",
    "mood",
    "emotion",
    "favourable",
    "favorable",
    "unfavourable",
    "unfavorable",
    "critical",
    "spam",
    "offensive",
    "hostile",
    "friendly",
    "enthusiastic",
    "recommend",
    "recommends",
];

/// The word that makes `question` one about meaning, if any.
pub(crate) fn judgement_word(question: &str) -> Option<&'static str> {
    let q = question.to_lowercase();
    q.split(|c: char| !c.is_alphanumeric())
        .find_map(|w| JUDGEMENT_WORDS.iter().find(|j| **j == w).copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counts_and_totals_want_a_number() {
        for q in [
            "How many of the reviews are negative?",
            "Count the open tickets with priority P1.",
            "What is the total amount of the paid invoices of ACME, in USD?",
            "What is the number of failed logins?",
        ] {
            assert_eq!(asked(q), Some(Kind::Number), "{q}");
        }
        assert_eq!(
            mismatch("How many orders?", "The orders of Kenya"),
            Some(Kind::Number)
        );
        assert_eq!(mismatch("How many orders?", "27"), None);
        assert_eq!(mismatch("How many orders?", "27 orders"), None);
        assert_eq!(mismatch("How many orders?", "none"), None);
    }

    #[test]
    fn which_and_who_want_names_unless_a_number_is_the_thing() {
        assert_eq!(
            mismatch("Name the three services with the most ERROR lines.", "1517"),
            Some(Kind::Names)
        );
        assert_eq!(
            mismatch("Which service logged the most errors?", "\"42\""),
            Some(Kind::Names)
        );
        assert_eq!(
            mismatch("Which service logged the most errors?", "billing"),
            None
        );
        assert_eq!(mismatch("Which year had the most sales?", "2021"), None);
        assert_eq!(
            mismatch(
                "Which service has the highest number of errors in this log?",
                "1493"
            ),
            Some(Kind::Names)
        );
        assert_eq!(mismatch("List the ids of the failed jobs.", "17, 23"), None);
        assert_eq!(mismatch("Which port does the proxy use?", "8080"), None);
        assert_eq!(mismatch("What firmware does D-1 run?", "3.1.4"), None);
        assert_eq!(mismatch("Summarise the log.", "12"), None);
    }

    #[test]
    fn sentences_for_values_are_recognised() {
        assert!(is_sentence_answer(
            "Which product was ordered in order O-187827?",
            "Granite Labs bought a footrest in order O-187827."
        ));
        assert!(!is_sentence_answer(
            "Which product was ordered in order O-187827?",
            "footrest"
        ));
        assert!(!is_sentence_answer(
            "What happened to the server on Monday?",
            "The disk filled up and the database stopped accepting writes."
        ));
        assert!(!is_sentence_answer(
            "Summarise the incident.",
            "The disk filled up and the database stopped accepting writes."
        ));
    }

    #[test]
    fn meaning_questions_are_recognised() {
        assert_eq!(
            judgement_word("How many of the reviews of the Breeze fan are negative?"),
            Some("negative")
        );
        assert_eq!(
            judgement_word("Which tickets sound URGENT?"),
            Some("urgent")
        );
        assert_eq!(judgement_word("How many orders came from Kenya?"), None);
    }

    proptest! {
        #[test]
        fn never_panics(q in "\\PC{0,80}", a in "\\PC{0,40}") {
            let _ = mismatch(&q, &a);
        }
    }
}
