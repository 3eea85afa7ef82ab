//! The egress filter: every byte that leaves the sandbox for an LLM passes here.
//!
//! Pure code (no I/O). Order of checks: binary output, secret patterns (one pass of a
//! multi-pattern regex), per-token entropy, verbatim context echo, then truncation. Each
//! redaction is replaced by `[REDACTED:<rule>]` and reported as a [`Finding`] with byte
//! offsets into the input; the secret itself is never recorded.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use regex_automata::meta::Regex;

use crate::config::EgressConfig;
use crate::context::LoadedContext;
use crate::error::{Error, Result};
use crate::result::Finding;

/// Secret rules: (name, pattern). Compiled once into one multi-pattern matcher.
const SECRET_RULES: &[(&str, &str)] = &[
    (
        "private_key",
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?s:.)*?(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)",
    ),
    (
        "aws_access_key_id",
        r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",
    ),
    (
        "aws_secret_access_key",
        r#"(?i:aws_?secret(?:_?access)?_?key)["']?\s*[:=]\s*["']?[A-Za-z0-9/+]{40}"#,
    ),
    (
        "github_token",
        r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,255}",
    ),
    ("github_pat", r"\bgithub_pat_[A-Za-z0-9_]{22,255}"),
    ("gitlab_token", r"\bglpat-[A-Za-z0-9_\-]{20,}"),
    ("anthropic_key", r"\bsk-ant-[A-Za-z0-9_\-]{20,}"),
    (
        "openai_key",
        r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
    ),
    ("google_api_key", r"\bAIza[0-9A-Za-z_\-]{35}"),
    (
        "slack_webhook",
        r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_\-]+",
    ),
    ("slack_token", r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),
    ("stripe_key", r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"),
    ("twilio_key", r"\bSK[0-9a-fA-F]{32}\b"),
    (
        "sendgrid_key",
        r"\bSG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}",
    ),
    ("npm_token", r"\bnpm_[A-Za-z0-9]{36}\b"),
    ("pypi_token", r"\bpypi-[A-Za-z0-9_\-]{50,}"),
    ("huggingface_token", r"\bhf_[A-Za-z0-9]{30,}\b"),
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",
    ),
    (
        "url_credentials",
        r"\b[A-Za-z][A-Za-z0-9+.\-]{1,20}://[^\s:/@]{1,256}:[^\s@/]{1,256}@[^\s/]+",
    ),
    ("bearer_token", r"(?i:\bbearer)\s+[A-Za-z0-9\-._~+/]{16,}=*"),
    (
        "secret_assignment",
        r#"(?i:\b(?:password|passwd|pwd|secret|client_secret|api[_\-]?key|access[_\-]?token|auth[_\-]?token|token))["']?\s*[:=]\s*["']?[^\s"',;]{6,}"#,
    ),
];

fn secret_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        let pats: Vec<&str> = SECRET_RULES.iter().map(|(_, p)| *p).collect();
        Regex::new_many(&pats).expect("built-in secret patterns compile")
    })
}

/// Result of filtering one piece of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filtered {
    /// The text that may be shown to an LLM.
    pub text: String,
    /// What was redacted (offsets into the unfiltered input).
    pub findings: Vec<Finding>,
}

/// What the filter protects: which checks apply to a piece of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Output going back to the root LLM: every check, including context echo.
    ToRoot,
    /// A sub-LLM prompt: it legitimately carries context, so secrets and entropy only.
    #[allow(dead_code)]
    ToSubLlm,
}

/// The filter of one run: rules plus the run's context fingerprints.
#[derive(Debug, Clone)]
pub struct EgressFilter {
    cfg: EgressConfig,
    echo: Option<Arc<EchoIndex>>,
}

impl EgressFilter {
    /// A filter without context-echo detection.
    pub fn new(cfg: EgressConfig) -> Self {
        EgressFilter { cfg, echo: None }
    }

    pub(crate) fn with_context(cfg: EgressConfig, ctx: Arc<LoadedContext>) -> Self {
        let echo = EchoIndex::build(ctx, cfg.echo_min_bytes);
        EgressFilter {
            cfg,
            echo: Some(Arc::new(echo)),
        }
    }

    /// Filters text about to leave the sandbox for the root LLM. `source` names where it came
    /// from (`stdout`, `stderr`, `final_answer`) for the leak error.
    pub fn filter(&self, input: &[u8], source: &str) -> Result<Filtered> {
        self.filter_dir(input, source, Direction::ToRoot)
    }

    pub(crate) fn filter_dir(
        &self,
        input: &[u8],
        source: &str,
        dir: Direction,
    ) -> Result<Filtered> {
        if let Some(desc) = describe_binary(input) {
            return Ok(Filtered {
                text: desc,
                findings: vec![],
            });
        }
        // Not binary, hence valid UTF-8.
        let text = std::str::from_utf8(input).unwrap_or_default();
        let mut spans: Vec<(usize, usize, &'static str)> = Vec::new();
        for m in secret_regex().find_iter(text) {
            spans.push((m.start(), m.end(), SECRET_RULES[m.pattern().as_usize()].0));
        }
        for (s, e) in
            high_entropy_tokens(text, self.cfg.min_entropy_len, self.cfg.entropy_threshold)
        {
            if !overlaps(&spans, s, e) {
                spans.push((s, e, "high_entropy"));
            }
        }
        if dir == Direction::ToRoot
            && let Some(echo) = &self.echo
        {
            for (s, e) in echo.find(input) {
                spans.push((s, e, "context_echo"));
            }
        }
        spans.sort_unstable();
        let merged = merge(spans);
        if self.cfg.raise_on_leak
            && let Some((_, _, rule)) = merged.first()
        {
            return Err(Error::DataLeak {
                rule: rule.to_string(),
                source_name: source.to_string(),
            });
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        let mut findings = Vec::with_capacity(merged.len());
        for (s, e, rule) in merged {
            out.push_str(&text[last..s]);
            if rule == "context_echo" {
                out.push_str(&format!("[REDACTED:context_echo {} bytes of the context; print summaries or short excerpts, not raw context]", e - s));
            } else {
                out.push_str("[REDACTED:");
                out.push_str(rule);
                out.push(']');
            }
            findings.push(Finding {
                rule: rule.to_string(),
                start: s,
                end: e,
            });
            last = e;
        }
        out.push_str(&text[last..]);
        Ok(Filtered {
            text: truncate(&out, self.cfg.max_output_bytes),
            findings,
        })
    }
}

fn overlaps(spans: &[(usize, usize, &str)], s: usize, e: usize) -> bool {
    spans.iter().any(|&(a, b, _)| a < e && s < b)
}

/// Sorted spans → non-overlapping spans (a later span overlapping an earlier one is joined
/// to it, keeping the first rule's name).
fn merge(spans: Vec<(usize, usize, &'static str)>) -> Vec<(usize, usize, &'static str)> {
    let mut out: Vec<(usize, usize, &'static str)> = Vec::with_capacity(spans.len());
    for (s, e, r) in spans {
        match out.last_mut() {
            Some(last) if s < last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e, r)),
        }
    }
    out
}

/// `Some(description)` when `b` is not text: NUL bytes, invalid UTF-8 or a known file magic.
pub(crate) fn describe_binary(b: &[u8]) -> Option<String> {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"\x89PNG", "PNG image"),
        (b"GIF8", "GIF image"),
        (b"\xff\xd8\xff", "JPEG image"),
        (b"PK\x03\x04", "ZIP archive"),
        (b"\x1f\x8b\x08", "gzip data"),
        (b"\x7fELF", "ELF executable"),
        (b"%PDF-", "PDF document"),
        (b"\xca\xfe\xba\xbe", "Java class or Mach-O"),
    ];
    let kind = MAGIC
        .iter()
        .find(|(m, _)| b.starts_with(m))
        .map(|(_, k)| *k);
    let kind = kind.or_else(|| {
        if memchr::memchr(0, b).is_some() {
            Some("binary data (NUL bytes)")
        } else if std::str::from_utf8(b).is_err() {
            Some("binary data (invalid UTF-8)")
        } else {
            None
        }
    })?;
    Some(format!(
        "[binary output omitted: {} bytes of {kind}; decode or summarise it in code instead]",
        b.len()
    ))
}

fn is_token_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'_' | b'-')
}

/// Spans of tokens at least `min_len` long whose Shannon entropy exceeds `threshold`,
/// except benign shapes (UUIDs, pure hex digests).
fn high_entropy_tokens(text: &str, min_len: usize, threshold: f64) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !is_token_byte(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_token_byte(b[i]) {
            i += 1;
        }
        let tok = &b[start..i];
        if tok.len() >= min_len && !is_benign(tok) && shannon_entropy(tok) > threshold {
            out.push((start, i));
        }
    }
    out
}

fn is_benign(tok: &[u8]) -> bool {
    let all_hex = tok.iter().all(u8::is_ascii_hexdigit);
    // git SHAs and sha256/sha512 digests printed on purpose; hex cannot exceed 4 bits/char
    // anyway, so this only matters for low thresholds.
    if all_hex && matches!(tok.len(), 32 | 40 | 64 | 128) {
        return true;
    }
    // Paths and identifiers made of words: mostly letters with separators.
    let letters = tok.iter().filter(|c| c.is_ascii_alphabetic()).count();
    let seps = tok
        .iter()
        .filter(|c| matches!(c, b'/' | b'_' | b'-'))
        .count();
    letters + seps == tok.len() && seps * 8 >= tok.len()
}

/// Shannon entropy in bits per byte.
pub(crate) fn shannon_entropy(b: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &c in b {
        counts[c as usize] += 1;
    }
    let n = b.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// Cuts `s` to at most `max` bytes, keeping head and tail around a marker that says how much
/// was cut. The marker counts toward `max`.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let marker_room = 80;
    let keep = max.saturating_sub(marker_room);
    let head_len = floor_boundary(s, keep * 2 / 5);
    let tail_start = ceil_boundary(s, s.len() - (keep - keep * 2 / 5));
    let cut = tail_start - head_len;
    format!(
        "{}\n[... {cut} bytes truncated ...]\n{}",
        &s[..head_len],
        &s[tail_start..]
    )
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Fingerprints of the whole context: hashes of `WINDOW`-byte windows taken every `stride`
/// bytes. Any verbatim run of at least `WINDOW + stride - 1` bytes contains one of them; a hit
/// is verified byte by byte and extended in both directions.
struct EchoIndex {
    ctx: Arc<LoadedContext>,
    stride: usize,
    min_run: usize,
    table: HashMap<u64, Vec<(u32, u64)>>,
}

impl std::fmt::Debug for EchoIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoIndex")
            .field("stride", &self.stride)
            .field("entries", &self.table.len())
            .finish()
    }
}

const WINDOW: usize = 64;
const MAX_ENTRIES: usize = 4 << 20;
const BASE: u64 = 1_000_003;

fn window_hash(w: &[u8]) -> u64 {
    w.iter().fold(0u64, |h, &c| {
        h.wrapping_mul(BASE).wrapping_add(c as u64 + 1)
    })
}

impl EchoIndex {
    fn build(ctx: Arc<LoadedContext>, min_run: usize) -> Self {
        let total = ctx.total_bytes() as usize;
        let min_run = min_run.max(WINDOW);
        let stride = (min_run - WINDOW + 1)
            .max(total.div_ceil(MAX_ENTRIES))
            .max(1);
        let mut table: HashMap<u64, Vec<(u32, u64)>> = HashMap::new();
        for (di, d) in ctx.docs.iter().enumerate() {
            let b = d.as_bytes();
            let mut p = 0;
            while p + WINDOW <= b.len() {
                table
                    .entry(window_hash(&b[p..p + WINDOW]))
                    .or_default()
                    .push((di as u32, p as u64));
                p += stride;
            }
        }
        EchoIndex {
            ctx,
            stride,
            min_run,
            table,
        }
    }

    /// Spans of `out` that reproduce at least `min_run` verbatim bytes of the context.
    fn find(&self, out: &[u8]) -> Vec<(usize, usize)> {
        let mut spans: Vec<(usize, usize)> = Vec::new();
        if out.len() < WINDOW || self.table.is_empty() {
            return spans;
        }
        let mut pow = 1u64;
        for _ in 0..WINDOW - 1 {
            pow = pow.wrapping_mul(BASE);
        }
        let mut h = window_hash(&out[..WINDOW]);
        let mut i = 0;
        loop {
            if spans.last().is_none_or(|&(_, e)| i >= e)
                && let Some(cands) = self.table.get(&h)
            {
                for &(di, p) in cands {
                    let c = self.ctx.docs[di as usize].as_bytes();
                    let p = p as usize;
                    if c[p..p + WINDOW] != out[i..i + WINDOW] {
                        continue;
                    }
                    let back = (1..=i.min(p))
                        .take_while(|k| out[i - k] == c[p - k])
                        .count();
                    let fwd = (WINDOW..)
                        .take_while(|k| {
                            i + k < out.len() && p + k < c.len() && out[i + k] == c[p + k]
                        })
                        .count();
                    let (s, e) = (i - back, i + WINDOW + fwd);
                    if e - s >= self.min_run {
                        spans.push((s, e));
                        break;
                    }
                }
            }
            if i + WINDOW >= out.len() {
                break;
            }
            h = h
                .wrapping_sub((out[i] as u64 + 1).wrapping_mul(pow))
                .wrapping_mul(BASE)
                .wrapping_add(out[i + WINDOW] as u64 + 1);
            i += 1;
        }
        // Snap to UTF-8 boundaries so redaction never splits a character.
        let text = std::str::from_utf8(out).ok();
        spans
            .into_iter()
            .map(|(s, e)| match text {
                Some(t) => (floor_boundary(t, s), ceil_boundary(t, e)),
                None => (s, e),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;
    use proptest::prelude::*;

    fn f() -> EgressFilter {
        EgressFilter::new(EgressConfig::default())
    }

    const SECRETS: &[(&str, &str)] = &[
        ("AKIAIOSFODNN7EXAMPLE", "aws_access_key_id"),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key",
        ),
        ("ghp_1234567890abcdefghijklmnopqrstuvwxyzAB", "github_token"),
        (
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
            "github_pat",
        ),
        ("glpat-abcdefghij0123456789", "gitlab_token"),
        (
            "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789",
            "anthropic_key",
        ),
        ("sk-proj-abcdefghijklmnopqrstuvwxyz0123456789", "openai_key"),
        ("sk-abcdefghijklmnopqrstuvwx", "openai_key"),
        ("AIzaSyA1234567890abcdefghijklmnopqrstuv", "google_api_key"),
        ("xoxb-123456789012-abcdefghijkl", "slack_token"),
        (
            "https://hooks.slack.com/services/T000/B000/XXXXXXXX",
            "slack_webhook",
        ),
        ("sk_live_abcdefghijklmnop1234", "stripe_key"),
        ("SK0123456789abcdef0123456789abcdef", "twilio_key"),
        (
            "SG.abcdefghijklmnopqrstuv.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
            "sendgrid_key",
        ),
        ("npm_abcdefghijklmnopqrstuvwxyz0123456789", "npm_token"),
        (
            "pypi-AgEIcHlwaS5vcmcCJGFiY2RlZmdoLWlqa2wtbW5vcC1xcnN0LXV2d3h5ejAxMjM0NTY3",
            "pypi_token",
        ),
        ("hf_abcdefghijklmnopqrstuvwxyz01234567", "huggingface_token"),
        (
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "jwt",
        ),
        (
            "postgres://admin:hunter2pass@db.internal:5432/app",
            "url_credentials",
        ),
        (
            "Authorization: Bearer abcdefghijklmnop0123456789",
            "bearer_token",
        ),
        ("password=correcthorsebattery", "secret_assignment"),
        ("API_KEY: \"abc123def456\"", "secret_assignment"),
    ];

    #[test]
    fn every_rule_redacts_whole_secret() {
        for (secret, rule) in SECRETS {
            let input = format!("before {secret} after");
            let out = f().filter(input.as_bytes(), "stdout").unwrap();
            assert!(!out.text.contains(secret), "{rule}: {}", out.text);
            assert!(
                out.text.starts_with("before ") && out.text.ends_with(" after"),
                "{rule}: {}",
                out.text
            );
            assert_eq!(out.findings.len(), 1, "{rule}: {:?}", out.findings);
            assert_eq!(out.findings[0].rule, *rule, "{secret}");
        }
    }

    #[test]
    fn pem_block_removed_whole_and_benign_text_kept() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nabc\n-----END PRIVATE KEY-----";
        let out = f()
            .filter(format!("x\n{pem}\ny").as_bytes(), "stdout")
            .unwrap();
        assert_eq!(out.text, "x\n[REDACTED:private_key]\ny");
        for benign in [
            "the bearer of bad news",
            "uuid 123e4567-e89b-12d3-a456-426614174000",
            "sha e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "akiaiosfodnn7example",
            "/usr/lib/python3/dist-packages/some_module/sub_package/file_name",
            "The quick brown fox jumps over the lazy dog 1234567890 times.",
        ] {
            let out = f().filter(benign.as_bytes(), "stdout").unwrap();
            assert_eq!(out.text, benign);
            assert!(out.findings.is_empty());
        }
    }

    #[test]
    fn entropy_is_per_token() {
        let key = "q8Zr3XvN1pLm7TbY2wKc9HdF4sGj6AeU0oRi5nQx";
        let prose = "word ".repeat(200);
        let out = f()
            .filter(format!("{prose}{key} {prose}").as_bytes(), "stdout")
            .unwrap();
        assert!(!out.text.contains(key));
        assert_eq!(out.findings[0].rule, "high_entropy");
        assert!(out.text.contains("word word"), "only the token is redacted");
    }

    #[test]
    fn binary_and_truncation() {
        let out = f().filter(b"\x89PNG\r\n\x1a\n....", "stdout").unwrap();
        assert!(out.text.contains("PNG image"));
        let out = f().filter(b"ab\xffcd", "stdout").unwrap();
        assert!(out.text.contains("invalid UTF-8"));
        let long = "é".repeat(20_000);
        let t = truncate(&long, 1000);
        assert!(t.len() <= 1000, "{}", t.len());
        assert!(t.contains("bytes truncated"));
        assert_eq!(truncate("short", 1000), "short");
    }

    #[test]
    fn raise_on_leak_is_typed() {
        let cfg = EgressConfig {
            raise_on_leak: true,
            ..EgressConfig::default()
        };
        let err = EgressFilter::new(cfg)
            .filter(b"AKIAIOSFODNN7EXAMPLE", "stderr")
            .unwrap_err();
        assert_eq!(
            err,
            Error::DataLeak {
                rule: "aws_access_key_id".into(),
                source_name: "stderr".into()
            }
        );
        let msg = err.to_string();
        assert!(!msg.contains("AKIA"));
    }

    #[test]
    fn context_echo_anywhere_in_context() {
        let mut ctx = String::new();
        for i in 0..5000 {
            ctx.push_str(&format!(
                "Record {i}: the value of item {i} is {}.\n",
                i * 7 % 13
            ));
        }
        let lc = LoadedContext::load(&Context::text(ctx.clone())).unwrap();
        let filt = EgressFilter::with_context(EgressConfig::default(), lc);
        // A slice from the middle of the context, framed by other text.
        let slice = &ctx[100_000..101_000];
        let out = filt
            .filter(format!("summary: {slice} end").as_bytes(), "stdout")
            .unwrap();
        assert!(!out.text.contains(&slice[100..400]), "echo must be cut");
        assert_eq!(out.findings.len(), 1);
        assert_eq!(out.findings[0].rule, "context_echo");
        // Short excerpts are fine.
        let short = &ctx[50_000..50_100];
        let out = filt.filter(short.as_bytes(), "stdout").unwrap();
        assert_eq!(out.text, short);
        // Sub-LLM prompts legitimately carry context.
        let out = filt
            .filter_dir(slice.as_bytes(), "llm_query", Direction::ToSubLlm)
            .unwrap();
        assert_eq!(out.text, slice);
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(b in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = f().filter(&b, "stdout");
        }

        #[test]
        fn embedded_secret_always_removed(
            pre in "[a-zA-Z ,.\n]{0,300}",
            post in "[a-zA-Z ,.\n]{0,300}",
            idx in 0..SECRETS.len(),
        ) {
            let (secret, _) = SECRETS[idx];
            let input = format!("{pre} {secret} {post}");
            let out = f().filter(input.as_bytes(), "stdout").unwrap();
            prop_assert!(!out.text.contains(secret));
            prop_assert!(!out.findings.is_empty());
        }
    }
}
