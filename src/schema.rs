//! Typed answers (pure): a JSON Schema for the final answer, validated on the host.
//!
//! The common subset of JSON Schema is supported: `type` (one or a list), `properties`,
//! `required`, `additionalProperties` (a boolean or a schema), `items`, `minItems`,
//! `maxItems`, `enum`, `const`, `minimum`, `maximum`, `exclusiveMinimum`,
//! `exclusiveMaximum`, `minLength`, `maxLength`, `anyOf`, `oneOf`, `allOf`. Annotations
//! (`title`, `description`, `$schema`, `default`, `examples`, ...) are ignored; any other
//! keyword (`$ref`, `pattern`, `if`, ...) is refused when the schema is read, so a schema is
//! never silently checked less than it says. Written here rather than taken from a crate: the
//! maintained validators pull in regex engines, URL and date parsers and (optionally) an HTTP
//! client for remote `$ref`s, far beyond what one answer's check needs.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// A JSON Schema for a run's final answer; see [`OrchestratorBuilder::answer_schema`].
///
/// ```
/// let s = rlm::Schema::parse(r#"{"type":"object","required":["n"],"properties":{"n":{"type":"integer"}}}"#)?;
/// assert!(s.check(r#"{"n": 3}"#).is_ok());
/// let errors = s.check(r#"{"n": "three"}"#).unwrap_err();
/// assert_eq!(errors, ["$.n: expected integer, got string \"three\""]);
/// # Ok::<(), rlm::Error>(())
/// ```
///
/// [`OrchestratorBuilder::answer_schema`]: crate::OrchestratorBuilder::answer_schema
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    root: Value,
    text: String,
}

const KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "enum",
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "anyOf",
    "oneOf",
    "allOf",
];
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "title",
    "description",
    "default",
    "examples",
    "format",
    "readOnly",
    "writeOnly",
    "deprecated",
];
const TYPES: &[&str] = &[
    "null", "boolean", "object", "array", "number", "integer", "string",
];

impl Schema {
    /// Reads a schema from its JSON text, checking that it uses only the supported keywords
    /// with values of the right kind.
    pub fn parse(text: &str) -> Result<Schema> {
        let root: Value = serde_json::from_str(text).map_err(|e| {
            Error::config(
                "answer schema",
                format!("not valid JSON ({e}); give a JSON Schema object"),
            )
        })?;
        check_schema(&root, "#").map_err(|m| Error::config("answer schema", m))?;
        Ok(Schema {
            text: root.to_string(),
            root,
        })
    }

    /// Reads a schema from a file.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Schema> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(
                "answer schema",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        Schema::parse(&text).map_err(|e| match e {
            Error::Config { message, .. } => {
                Error::config("answer schema", format!("{}: {message}", path.display()))
            }
            e => e,
        })
    }

    /// The schema as compact JSON text.
    pub fn as_json(&self) -> &str {
        &self.text
    }

    /// Checks an answer: read as JSON (or, failing that, as a Python literal such as
    /// `{'a': True}`, or as a plain string when the schema accepts one) and validated.
    /// Returns the value as compact JSON, or every validation error (with its JSON path).
    pub fn check(&self, answer: &str) -> std::result::Result<String, Vec<String>> {
        self.check_value(answer).map(|v| v.to_string())
    }

    /// Validates a JSON value as it is (no other reading of it); every error, with its
    /// path from `at`.
    pub(crate) fn validate_json(
        &self,
        v: &Value,
        at: &str,
    ) -> std::result::Result<(), Vec<String>> {
        let mut errors = Vec::new();
        validate(&self.root, v, at, &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    pub(crate) fn check_value(&self, answer: &str) -> std::result::Result<Value, Vec<String>> {
        let t = answer.trim();
        let candidates = [
            serde_json::from_str::<Value>(t).ok(),
            python_literal(t),
            Some(Value::String(answer.to_string())),
        ];
        let mut first_errors = None;
        for v in candidates.into_iter().flatten() {
            let mut errors = Vec::new();
            validate(&self.root, &v, "$", &mut errors);
            if errors.is_empty() {
                return Ok(v);
            }
            first_errors.get_or_insert(errors);
        }
        Err(first_errors.unwrap_or_default())
    }
}

fn check_schema(s: &Value, at: &str) -> std::result::Result<(), String> {
    let Value::Object(m) = s else {
        return match s {
            Value::Bool(_) => Ok(()),
            _ => Err(format!("{at}: a schema must be an object or a boolean")),
        };
    };
    for (k, v) in m {
        let here = format!("{at}/{k}");
        if ANNOTATIONS.contains(&k.as_str()) || k.starts_with("x-") {
            continue;
        }
        if !KEYWORDS.contains(&k.as_str()) {
            return Err(format!(
                "{here}: the keyword {k:?} is not supported; supported: {}",
                KEYWORDS.join(", ")
            ));
        }
        let ok = match k.as_str() {
            "type" => match v {
                Value::String(t) => TYPES.contains(&t.as_str()),
                Value::Array(ts) => ts
                    .iter()
                    .all(|t| t.as_str().is_some_and(|t| TYPES.contains(&t))),
                _ => false,
            },
            "properties" => match v {
                Value::Object(p) => {
                    for (name, sub) in p {
                        check_schema(sub, &format!("{here}/{name}"))?;
                    }
                    true
                }
                _ => false,
            },
            "required" => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            "additionalProperties" | "items" => {
                check_schema(v, &here)?;
                true
            }
            "minItems" | "maxItems" | "minLength" | "maxLength" => v.as_u64().is_some(),
            "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => v.is_number(),
            "enum" => v.is_array(),
            "const" => true,
            _ => match v {
                // anyOf, oneOf, allOf
                Value::Array(subs) if !subs.is_empty() => {
                    for (i, sub) in subs.iter().enumerate() {
                        check_schema(sub, &format!("{here}/{i}"))?;
                    }
                    true
                }
                _ => false,
            },
        };
        if !ok {
            return Err(format!("{here}: invalid value {v}"));
        }
    }
    Ok(())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_type(v: &Value, t: &str) -> bool {
    match t {
        "integer" => match v {
            Value::Number(n) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        },
        "number" => v.is_number(),
        t => type_name(v) == t,
    }
}

/// A short rendering of a value for an error message.
fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

fn validate(s: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let m: &Map<String, Value> = match s {
        Value::Bool(true) => return,
        Value::Bool(false) => {
            errors.push(format!("{at}: no value is allowed here"));
            return;
        }
        Value::Object(m) => m,
        _ => return,
    };
    if let Some(t) = m.get("type") {
        let types: Vec<&str> = match t {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.iter().any(|t| is_type(v, t)) {
            errors.push(format!(
                "{at}: expected {}, got {} {}",
                types.join(" or "),
                type_name(v),
                show(v)
            ));
            return;
        }
    }
    if let Some(c) = m.get("const")
        && !json_eq(c, v)
    {
        errors.push(format!("{at}: must be {}, got {}", show(c), show(v)));
    }
    if let Some(Value::Array(options)) = m.get("enum")
        && !options.iter().any(|o| json_eq(o, v))
    {
        let list: Vec<String> = options.iter().map(show).collect();
        errors.push(format!(
            "{at}: must be one of {}, got {}",
            list.join(", "),
            show(v)
        ));
    }
    if let Some(x) = v.as_f64() {
        let bound = |k: &str| m.get(k).and_then(Value::as_f64);
        if let Some(b) = bound("minimum").filter(|b| x < *b) {
            errors.push(format!("{at}: must be at least {b}, got {x}"));
        }
        if let Some(b) = bound("maximum").filter(|b| x > *b) {
            errors.push(format!("{at}: must be at most {b}, got {x}"));
        }
        if let Some(b) = bound("exclusiveMinimum").filter(|b| x <= *b) {
            errors.push(format!("{at}: must be greater than {b}, got {x}"));
        }
        if let Some(b) = bound("exclusiveMaximum").filter(|b| x >= *b) {
            errors.push(format!("{at}: must be less than {b}, got {x}"));
        }
    }
    let count = |k: &str| m.get(k).and_then(Value::as_u64);
    if let Value::String(text) = v {
        let n = text.chars().count() as u64;
        if let Some(b) = count("minLength").filter(|b| n < *b) {
            errors.push(format!("{at}: must have at least {b} characters, has {n}"));
        }
        if let Some(b) = count("maxLength").filter(|b| n > *b) {
            errors.push(format!("{at}: must have at most {b} characters, has {n}"));
        }
    }
    if let Value::Array(items) = v {
        let n = items.len() as u64;
        if let Some(b) = count("minItems").filter(|b| n < *b) {
            errors.push(format!("{at}: must have at least {b} items, has {n}"));
        }
        if let Some(b) = count("maxItems").filter(|b| n > *b) {
            errors.push(format!("{at}: must have at most {b} items, has {n}"));
        }
        if let Some(item) = m.get("items") {
            for (i, x) in items.iter().enumerate() {
                validate(item, x, &format!("{at}[{i}]"), errors);
            }
        }
    }
    if let Value::Object(obj) = v {
        let props = m.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(req)) = m.get("required") {
            for r in req.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    errors.push(format!("{at}: missing required property {r:?}"));
                }
            }
        }
        for (k, x) in obj {
            let here = format!("{at}.{k}");
            match props.and_then(|p| p.get(k)) {
                Some(sub) => validate(sub, x, &here, errors),
                None => match m.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        let known: Vec<&str> = props
                            .map(|p| p.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        errors.push(format!(
                            "{at}: unexpected property {k:?} (allowed: {})",
                            known.join(", ")
                        ));
                    }
                    Some(sub) => validate(sub, x, &here, errors),
                    None => {}
                },
            }
        }
    }
    let passes = |sub: &Value| {
        let mut e = Vec::new();
        validate(sub, v, at, &mut e);
        e
    };
    if let Some(Value::Array(subs)) = m.get("allOf") {
        for sub in subs {
            errors.extend(passes(sub));
        }
    }
    if let Some(Value::Array(subs)) = m.get("anyOf") {
        let results: Vec<Vec<String>> = subs.iter().map(passes).collect();
        if !results.iter().any(Vec::is_empty) {
            errors.push(format!(
                "{at}: matches none of anyOf ({})",
                results
                    .iter()
                    .map(|e| e.join("; "))
                    .collect::<Vec<_>>()
                    .join(" | ")
            ));
        }
    }
    if let Some(Value::Array(subs)) = m.get("oneOf") {
        let results: Vec<Vec<String>> = subs.iter().map(passes).collect();
        let n = results.iter().filter(|e| e.is_empty()).count();
        if n != 1 {
            errors.push(if n == 0 {
                format!(
                    "{at}: matches none of oneOf ({})",
                    results
                        .iter()
                        .map(|e| e.join("; "))
                        .collect::<Vec<_>>()
                        .join(" | ")
                )
            } else {
                format!("{at}: matches {n} of oneOf, exactly one expected")
            });
        }
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, a)| y.get(k).is_some_and(|b| json_eq(a, b)))
        }
        _ => a == b,
    }
}

/// A Python literal as the REPL's `str()` prints it (`{'a': [1, 2.5, True, None]}`,
/// tuples as arrays), as JSON; `None` for anything else.
fn python_literal(text: &str) -> Option<Value> {
    let mut p = Py {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value(0)?;
    p.ws();
    (p.i == p.s.len()).then_some(v)
}

struct Py<'a> {
    s: &'a [u8],
    i: usize,
}

impl Py<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > 64 {
            return None;
        }
        self.ws();
        let c = *self.s.get(self.i)?;
        match c {
            b'{' => {
                self.i += 1;
                let mut m = Map::new();
                if self.eat(b'}') {
                    return Some(Value::Object(m));
                }
                loop {
                    let Value::String(k) = self.value(depth + 1)? else {
                        return None;
                    };
                    if !self.eat(b':') {
                        return None;
                    }
                    m.insert(k, self.value(depth + 1)?);
                    if self.eat(b'}') {
                        return Some(Value::Object(m));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                    if self.eat(b'}') {
                        return Some(Value::Object(m));
                    }
                }
            }
            b'[' | b'(' => {
                let close = if c == b'[' { b']' } else { b')' };
                self.i += 1;
                let mut a = Vec::new();
                if self.eat(close) {
                    return Some(Value::Array(a));
                }
                loop {
                    a.push(self.value(depth + 1)?);
                    if self.eat(close) {
                        return Some(Value::Array(a));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                    if self.eat(close) {
                        return Some(Value::Array(a));
                    }
                }
            }
            b'\'' | b'"' => self.string(c),
            _ => {
                let start = self.i;
                while self.s.get(self.i).is_some_and(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+' | b'_')
                }) {
                    self.i += 1;
                }
                let word = std::str::from_utf8(&self.s[start..self.i]).ok()?;
                match word {
                    "True" => Some(Value::Bool(true)),
                    "False" => Some(Value::Bool(false)),
                    "None" => Some(Value::Null),
                    w => serde_json::from_str::<serde_json::Number>(w)
                        .ok()
                        .map(Value::Number),
                }
            }
        }
    }

    fn string(&mut self, quote: u8) -> Option<Value> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let c = *self.s.get(self.i)?;
            self.i += 1;
            match c {
                b'\\' => {
                    let e = *self.s.get(self.i)?;
                    self.i += 1;
                    out.extend_from_slice(match e {
                        b'n' => b"\n",
                        b't' => b"\t",
                        b'r' => b"\r",
                        b'\\' => b"\\",
                        b'\'' => b"'",
                        b'"' => b"\"",
                        // \x.., \u.... and the rest: not worth guessing.
                        _ => return None,
                    });
                }
                c if c == quote => break,
                c => out.push(c),
            }
        }
        String::from_utf8(out).ok().map(Value::String)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Schema {
        Schema::parse(text).unwrap()
    }

    #[test]
    fn the_subset_validates() {
        let sc = s(
            r#"{"type":"object","required":["name","n","tags"],"additionalProperties":false,
            "properties":{"name":{"type":"string","minLength":2,"maxLength":5},
              "n":{"type":"integer","minimum":0,"exclusiveMaximum":10},
              "tags":{"type":"array","items":{"enum":["a","b"]},"minItems":1,"maxItems":2},
              "kind":{"const":"x"},
              "v":{"anyOf":[{"type":"string"},{"type":"null"}]},
              "w":{"oneOf":[{"type":"integer"},{"type":"number","minimum":5}]}}}"#,
        );
        assert_eq!(
            sc.check(r#"{"name":"bob","n":3,"tags":["a"]}"#).unwrap(),
            r#"{"n":3,"name":"bob","tags":["a"]}"#
        );
        let e = sc
            .check(r#"{"name":"b","n":10,"tags":["c","a","b"],"kind":"y","extra":1,"v":3,"w":7}"#)
            .unwrap_err();
        let all = e.join("\n");
        for want in [
            "$.name: must have at least 2 characters, has 1",
            "$.n: must be less than 10, got 10",
            "$.tags: must have at most 2 items, has 3",
            "$.tags[0]: must be one of \"a\", \"b\", got \"c\"",
            "$.kind: must be \"x\", got \"y\"",
            "$: unexpected property \"extra\"",
            "$.v: matches none of anyOf",
            "$.w: matches 2 of oneOf",
        ] {
            assert!(all.contains(want), "missing {want:?} in\n{all}");
        }
        let e = sc.check(r#"{"n":-1.5}"#).unwrap_err().join("\n");
        assert!(e.contains("missing required property \"name\""), "{e}");
        assert!(e.contains("$.n: expected integer, got number -1.5"), "{e}");
        assert!(sc.check("not json").is_err());
    }

    #[test]
    fn python_literals_and_plain_strings() {
        let sc = s(
            r#"{"type":"object","properties":{"ok":{"type":"boolean"},"xs":{"type":"array"},"s":{"type":"string"}}}"#,
        );
        assert_eq!(
            sc.check("{'ok': True, 'xs': (1, 2.5, None), 's': 'it\\'s'}")
                .unwrap(),
            r#"{"ok":true,"s":"it's","xs":[1,2.5,null]}"#
        );
        // A string schema takes the answer as it is.
        assert_eq!(
            s(r#"{"type":"string","maxLength":20}"#)
                .check("Paris")
                .unwrap(),
            "\"Paris\""
        );
        // A number typed as text is a number.
        assert_eq!(s(r#"{"type":"integer"}"#).check(" 42 ").unwrap(), "42");
        assert!(s(r#"{"type":"integer"}"#).check("forty").is_err());
    }

    #[test]
    fn bad_schemas_say_what_is_wrong() {
        for (text, want) in [
            ("{", "not valid JSON"),
            ("[1]", "must be an object"),
            (r##"{"$ref":"#/defs/x"}"##, "\"$ref\" is not supported"),
            (r#"{"type":"text"}"#, "#/type: invalid value"),
            (
                r#"{"properties":{"a":{"pattern":"x"}}}"#,
                "#/properties/a/pattern",
            ),
            (r#"{"anyOf":[]}"#, "#/anyOf"),
        ] {
            let e = Schema::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        assert!(Schema::parse(r#"{"title":"t","description":"d","type":"null"}"#).is_ok());
    }
}
