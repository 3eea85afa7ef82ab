//! The egress filter: every byte that leaves the sandbox for an LLM passes here (behind the
//! masking of secrets at the source, it is the second line of defence).
//!
//! Pure code (no I/O). Order of checks: binary output, secret rules (one pass, see
//! [`crate::secrets`]), per-token entropy, verbatim context echo, then truncation. Each
//! redaction is replaced by `[REDACTED:<rule>]` and reported as a [`Finding`] with byte
//! offsets into the input; the secret itself is never recorded.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use crate::config::EgressConfig;
use crate::context::LoadedContext;
use crate::error::{Error, Result};
use crate::result::Finding;
use crate::secrets::{self, CLASS, Extras, Span};

/// Result of filtering one piece of output.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
    /// A sub-LLM prompt or a final answer: it legitimately carries context, so secrets and
    /// entropy only, and it is not truncated.
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

    /// A filter that also cuts verbatim runs of `context` (fingerprints the whole context:
    /// CPU work proportional to its size, so call it off the executor for large files).
    pub fn for_context(cfg: EgressConfig, context: &crate::Context) -> Result<Self> {
        Ok(Self::with_context(cfg, LoadedContext::load(context)?))
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
        let mut out = self.filter_parts(b"", &[(input, source)], dir)?;
        Ok(out.pop().expect("one part in, one out"))
    }

    /// Filters several pieces as one text, so a secret split between them (half on stdout,
    /// half on stderr; the end of the previous block's output and the start of this one's)
    /// is still found: each piece loses its part of it. `carry` is text that already left
    /// (it is scanned, never returned).
    ///
    /// A piece far longer than the output cap is only scanned where its output can come from:
    /// the head and the tail that survive truncation, each with a wide margin (no secret, key
    /// block or context echo that reaches into what is kept starts further out). The middle
    /// is cut anyway.
    pub(crate) fn filter_parts(
        &self,
        carry: &[u8],
        parts: &[(&[u8], &str)],
        dir: Direction,
    ) -> Result<Vec<Filtered>> {
        self.filter_parts_with(carry, parts, dir, false)
    }

    fn filter_parts_with(
        &self,
        carry: &[u8],
        parts: &[(&[u8], &str)],
        dir: Direction,
        whole: bool,
    ) -> Result<Vec<Filtered>> {
        // Observations are capped; sub-call prompts and final answers are not (a prompt too
        // large for the sub-model is the provider's error, which the code sees).
        let limit = match dir {
            Direction::ToRoot => self.cfg.max_output_bytes,
            Direction::ToSubLlm => usize::MAX / 4,
        };
        // Pieces as text (binary ones are described, not scanned), and what of each is
        // scanned: all of it, or a head and a tail window.
        let texts: Vec<std::result::Result<&str, String>> =
            parts.iter().map(|(p, _)| as_text(p)).collect();
        let window = limit.saturating_mul(2).saturating_add(WINDOW_MARGIN);
        let mut segments: Vec<Segment> = Vec::new();
        for (k, t) in texts.iter().enumerate() {
            let Ok(t) = t else { continue };
            let n = t.len();
            if whole || n <= window.saturating_mul(2) {
                segments.push(Segment {
                    part: k,
                    lo: 0,
                    hi: n,
                });
            } else {
                segments.push(Segment {
                    part: k,
                    lo: 0,
                    hi: floor_boundary(t, window),
                });
                segments.push(Segment {
                    part: k,
                    lo: ceil_boundary(t, n - window),
                    hi: n,
                });
            }
        }
        // One text to scan: the carry, then the segments, with a NUL (never part of a word,
        // a token or the context) wherever two segments are not contiguous text.
        let carry_text = as_text(carry).unwrap_or("");
        let mut joined = Vec::with_capacity(
            carry_text.len() + segments.iter().map(|s| s.hi - s.lo + 1).sum::<usize>(),
        );
        joined.extend_from_slice(carry_text.as_bytes());
        let mut starts = Vec::with_capacity(segments.len());
        for (i, sg) in segments.iter().enumerate() {
            if i > 0 {
                let prev = segments[i - 1];
                let same_part_gap = prev.part == sg.part && prev.hi != sg.lo;
                if same_part_gap {
                    joined.push(0);
                }
            }
            starts.push(joined.len());
            let t = texts[sg.part].as_ref().expect("only text is segmented");
            joined.extend_from_slice(&t.as_bytes()[sg.lo..sg.hi]);
        }
        let echo = self.echo.as_deref().filter(|_| dir == Direction::ToRoot);
        let benign = |t: &[u8]| is_benign(t, self.cfg.allow_digests);
        let probe = |t: &[u8], i: usize, until: &mut usize, out: &mut Vec<Span>| {
            if let Some(e) = echo {
                e.probe(t, i, until, out)
            }
        };
        let extras = Extras {
            entropy: Some((
                self.cfg.min_entropy_len,
                self.cfg.entropy_threshold,
                &benign,
            )),
            on_run: echo.map(|_| &probe as secrets::RunHook<'_>),
        };
        // Large texts are cut at whitespace (no word or token spans a cut) and the pieces
        // scanned on two threads; matches may extend past their piece.
        let threads = if joined.len() >= PARALLEL_BYTES { 2 } else { 1 };
        let cuts = secrets::cut_points(&joined, threads);
        let mut spans = if cuts.len() <= 2 {
            secrets::scan(&joined, 0, joined.len(), &extras)
        } else {
            std::thread::scope(|sc| {
                let (j, x, mid, end) = (&joined, &extras, cuts[1], cuts[2]);
                let h = sc.spawn(move || secrets::scan(j, mid, end, x));
                let mut v = secrets::scan(j, 0, cuts[1], x);
                v.extend(h.join().expect("egress scan thread panicked"));
                v
            })
        };
        spans.sort_unstable();
        let merged = merge(spans);
        // Spans back in each piece's coordinates.
        let mut per_part: Vec<Vec<(usize, usize, &'static str)>> = vec![Vec::new(); parts.len()];
        for (sg, &st) in segments.iter().zip(&starts) {
            let (jlo, jhi) = (st, st + (sg.hi - sg.lo));
            for sp in merged.iter().filter(|sp| sp.start < jhi && sp.end > jlo) {
                per_part[sg.part].push((
                    sp.start.max(jlo) - jlo + sg.lo,
                    sp.end.min(jhi) - jlo + sg.lo,
                    sp.rule,
                ));
            }
        }
        let mut out = Vec::with_capacity(parts.len());
        for (k, (_, source)) in parts.iter().enumerate() {
            let text = match &texts[k] {
                Ok(t) => *t,
                Err(desc) => {
                    out.push(Filtered {
                        text: desc.clone(),
                        findings: vec![],
                    });
                    continue;
                }
            };
            let mine = &mut per_part[k];
            mine.sort_unstable();
            if self.cfg.raise_on_leak
                && let Some((_, _, rule)) = mine.first()
            {
                return Err(Error::DataLeak {
                    rule: rule.to_string(),
                    source_name: source.to_string(),
                });
            }
            let windowed = segments.iter().filter(|s| s.part == k).count() == 2;
            if !windowed {
                let (t, findings, _) = render(text, 0, text.len(), mine);
                out.push(Filtered {
                    text: truncate(&t, limit),
                    findings,
                });
                continue;
            }
            match self.render_windows(text, mine, window, limit) {
                Some(f) => out.push(f),
                // What is kept would reach past a window (huge redactions near the ends):
                // scan everything instead.
                None => return self.filter_parts_with(carry, parts, dir, true),
            }
        }
        Ok(out)
    }

    /// The head and tail of a long piece (as [`truncate`] keeps them), rendered from its two
    /// scanned windows; `None` when what is kept would reach past a window.
    fn render_windows(
        &self,
        text: &str,
        spans: &[(usize, usize, &'static str)],
        window: usize,
        limit: usize,
    ) -> Option<Filtered> {
        let n = text.len();
        let (head_budget, tail_budget) = truncation_budgets(limit);
        let hw = floor_boundary(text, window);
        let tw = ceil_boundary(text, n - window);
        let (head, mut findings, head_marks) = render(text, 0, hw, spans);
        let (tail, tail_findings, tail_marks) = render(text, tw, n, spans);
        findings.extend(tail_findings);
        if head.len() < head_budget || tail.len() < tail_budget {
            return None;
        }
        let head_cut = floor_boundary(&head, head_budget);
        let tail_cut = ceil_boundary(&tail, tail.len() - tail_budget);
        // What is kept must stay a full margin of input inside its window, or a secret that
        // starts outside the window could reach into it: otherwise scan everything.
        if input_at(&head_marks, 0, head_cut) + WINDOW_MARGIN > hw
            || input_at(&tail_marks, tw, tail_cut) < tw + WINDOW_MARGIN
        {
            return None;
        }
        // What is left out, counted in rendered text for the windows and in input bytes for
        // the unscanned middle.
        let cut = (head.len() - head_cut) + (tw - hw) + tail_cut;
        Some(Filtered {
            text: format!(
                "{}\n[... {cut} bytes truncated ...]\n{}",
                &head[..head_cut],
                &tail[tail_cut..]
            ),
            findings,
        })
    }
}

/// Outputs at least this large are scanned on two threads.
const PARALLEL_BYTES: usize = 256 << 10;

/// How far beyond what truncation keeps a long piece is scanned (longer than any secret or
/// key block that could reach into what is kept).
const WINDOW_MARGIN: usize = 64 << 10;

/// A scanned range of one piece.
#[derive(Debug, Clone, Copy)]
struct Segment {
    part: usize,
    lo: usize,
    hi: usize,
}

/// `b` as text, or the description that replaces binary output.
fn as_text(b: &[u8]) -> std::result::Result<&str, String> {
    match describe_binary(b) {
        Some(desc) => Err(desc),
        None => std::str::from_utf8(b).map_err(|_| String::new()),
    }
}

/// A redaction in rendered text: its rendered range and the input range it replaced.
#[derive(Debug, Clone, Copy)]
struct Mark {
    rendered: (usize, usize),
    input: (usize, usize),
}

/// The input offset that rendered offset `at` of a text rendered from `lo` corresponds to (a
/// position inside a marker counts the whole redacted span).
fn input_at(marks: &[Mark], lo: usize, at: usize) -> usize {
    match marks.iter().rev().find(|m| m.rendered.0 <= at) {
        None => lo + at,
        Some(m) if at < m.rendered.1 => m.input.1,
        Some(m) => m.input.1 + (at - m.rendered.1),
    }
}

/// `text[lo..hi]` with the spans that fall in it replaced by redaction markers, the findings
/// (offsets into `text`), and where each marker is.
fn render(
    text: &str,
    lo: usize,
    hi: usize,
    spans: &[(usize, usize, &'static str)],
) -> (String, Vec<Finding>, Vec<Mark>) {
    let mut out = String::with_capacity(hi - lo);
    let mut last = lo;
    let mut findings = Vec::new();
    let mut marks = Vec::new();
    for &(s, e, rule) in spans {
        if e <= lo || s >= hi {
            continue;
        }
        // Spans cut at a piece or window boundary inside a character are widened.
        let s = floor_boundary(text, s.max(last));
        let e = ceil_boundary(text, e.min(hi));
        if s < last || e <= s {
            continue;
        }
        out.push_str(&text[last..s]);
        let at = out.len();
        if rule == "context_echo" {
            out.push_str(&crate::prompt::echo_redaction(e - s));
        } else {
            out.push_str("[REDACTED:");
            out.push_str(rule);
            out.push(']');
        }
        marks.push(Mark {
            rendered: (at, out.len()),
            input: (s, e),
        });
        findings.push(Finding::new(rule, s, e));
        last = e;
    }
    out.push_str(&text[last..hi.max(last)]);
    (out, findings, marks)
}

/// The bytes of head and of tail [`truncate`] keeps of a text cut to `max`.
fn truncation_budgets(max: usize) -> (usize, usize) {
    let keep = max.saturating_sub(80);
    (keep * 2 / 5, keep - keep * 2 / 5)
}

/// Which name a merged span keeps: a specific secret rule beats the generic ones.
fn rank(rule: &str) -> u8 {
    match rule {
        "high_entropy" => 1,
        "context_echo" => 2,
        _ => 0,
    }
}

/// Sorted spans → non-overlapping spans (overlapping spans are joined; the joined span is
/// named after its most specific rule).
fn merge(spans: Vec<Span>) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for sp in spans {
        match out.last_mut() {
            Some(last) if sp.start < last.end => {
                last.end = last.end.max(sp.end);
                if rank(sp.rule) < rank(last.rule) {
                    last.rule = sp.rule;
                }
            }
            _ => out.push(sp),
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
    Some(crate::prompt::binary_omitted(b.len(), kind))
}

fn is_benign(tok: &[u8], allow_digests: bool) -> bool {
    if allow_digests {
        let all_hex = tok.iter().all(u8::is_ascii_hexdigit);
        if all_hex && matches!(tok.len(), 32 | 40 | 64 | 128) {
            return true; // MD5, git SHA-1, SHA-256, SHA-512
        }
        let uuid_shape = tok.len() == 36
            && tok.iter().enumerate().all(|(i, c)| {
                if matches!(i, 8 | 13 | 18 | 23) {
                    *c == b'-'
                } else {
                    c.is_ascii_hexdigit()
                }
            });
        if uuid_shape {
            return true;
        }
    }
    // Paths and identifiers made of words: mostly letters with separators.
    let letters = tok.iter().filter(|c| c.is_ascii_alphabetic()).count();
    let seps = tok
        .iter()
        .filter(|c| matches!(c, b'/' | b'_' | b'-'))
        .count();
    letters + seps == tok.len() && seps * 8 >= tok.len()
}

/// Cuts `s` to at most `max` bytes, keeping head and tail around a marker that says how much
/// was cut. The marker counts toward `max`.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let (head, tail) = truncation_budgets(max);
    let head_len = floor_boundary(s, head);
    let tail_start = ceil_boundary(s, s.len() - tail);
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

/// Fingerprints of the whole context, chosen by content: the start of a run of word bytes
/// is an anchor when a hash of its first 8 bytes has its top `bits` bits clear; its key hashes
/// the 32 bytes from there. Identical text has identical anchors wherever it appears, so the
/// output scan applies the same test at its own run starts and looks up only anchors; a hit is
/// verified byte by byte and extended both ways. With `bits = 2` (contexts up to about
/// 96 MiB) a 256-byte echo of prose holds ~40 run starts, so it is missed with probability
/// about (3/4)^40 ≈ 1e-5. Larger contexts raise `bits` to keep the index at most 4 Mi
/// entries, so short echoes may pass there; long runs without separators (one huge token)
/// have no anchors and are left to the entropy rule.
struct EchoIndex {
    ctx: Arc<LoadedContext>,
    shift: u32,
    min_run: usize,
    table: HashMap<u64, (u32, u64), BuildHasherDefault<KeyIsHash>>,
}

/// The table's keys are already hashes: use them as they are.
#[derive(Default)]
struct KeyIsHash(u64);

impl std::hash::Hasher for KeyIsHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

impl std::fmt::Debug for EchoIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoIndex")
            .field("shift", &self.shift)
            .field("entries", &self.table.len())
            .finish()
    }
}

/// Bytes hashed into an anchor's key (and verified before extending).
const KEY_SPAN: usize = 32;
const MAX_ENTRIES: usize = 4 << 20;

#[inline(always)]
fn load(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"))
}

/// The key of position `i` when it is an anchor.
#[inline(always)]
fn anchor_key(b: &[u8], i: usize, shift: u32) -> Option<u64> {
    if i + KEY_SPAN > b.len() || load(b, i).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift != 0 {
        return None;
    }
    let k = load(b, i + 8).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ load(b, i + 16)
            .rotate_left(21)
            .wrapping_mul(0x1656_67B1_9E37_79F9)
        ^ load(b, i + 24).rotate_left(42)
        ^ load(b, i);
    Some(k.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

impl EchoIndex {
    fn build(ctx: Arc<LoadedContext>, min_run: usize) -> Self {
        let total = ctx.total_bytes() as usize;
        let mut bits = 2u32;
        // About one run start per 6 bytes of text.
        while (total / 6) >> bits > MAX_ENTRIES && bits < 40 {
            bits += 1;
        }
        let shift = 64 - bits;
        let mut table: HashMap<u64, (u32, u64), BuildHasherDefault<KeyIsHash>> =
            HashMap::with_capacity_and_hasher(
                ((total / 6) >> bits).min(MAX_ENTRIES),
                Default::default(),
            );
        for (di, d) in ctx.docs.iter().enumerate() {
            let b = d.as_bytes();
            let mut prev = 0u8;
            for (i, &byte) in b.iter().enumerate() {
                let k = CLASS[byte as usize];
                if k != 0
                    && prev == 0
                    && let Some(key) = anchor_key(b, i, shift)
                {
                    table.entry(key).or_insert((di as u32, i as u64));
                }
                prev = k;
            }
        }
        EchoIndex {
            ctx,
            shift,
            min_run: min_run.max(KEY_SPAN),
            table,
        }
    }

    /// Tests the run start `i` of `out`; records a verbatim context run of at least
    /// `min_run` bytes through it. `compared_until` skips anchors inside a region already
    /// compared, so each output byte is compared forwards at most once.
    fn probe(&self, out: &[u8], i: usize, compared_until: &mut usize, spans: &mut Vec<Span>) {
        if i < *compared_until {
            return;
        }
        let Some(key) = anchor_key(out, i, self.shift) else {
            return;
        };
        let Some(&(di, p)) = self.table.get(&key) else {
            return;
        };
        let c = self.ctx.docs[di as usize].as_bytes();
        let p = p as usize;
        let fwd = (0..)
            .take_while(|&k| i + k < out.len() && p + k < c.len() && out[i + k] == c[p + k])
            .count();
        if fwd < KEY_SPAN {
            return; // hash collision
        }
        let back = (1..=i.min(p))
            .take_while(|&k| out[i - k] == c[p - k])
            .count();
        let (mut s, mut e) = (i - back, i + fwd);
        *compared_until = e;
        if e - s >= self.min_run {
            // Whole UTF-8 characters only.
            while s > 0 && out[s] & 0xC0 == 0x80 {
                s -= 1;
            }
            while e < out.len() && out[e] & 0xC0 == 0x80 {
                e += 1;
            }
            spans.push(Span::whole(s, e, "context_echo"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;
    use proptest::prelude::*;

    fn f() -> EgressFilter {
        EgressFilter::new(EgressConfig::defaults())
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
        ("sk-abcdefGHIJklmnopqrstuvwx12", "openai_key"),
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
            ..EgressConfig::defaults()
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
        let filt = EgressFilter::with_context(EgressConfig::defaults(), lc);
        // A slice from the middle of the context, framed by other text.
        let slice = &ctx[100_000..106_000];
        let out = filt
            .filter(format!("summary: {slice} end").as_bytes(), "stdout")
            .unwrap();
        assert!(!out.text.contains(&slice[100..400]), "echo must be cut");
        assert_eq!(out.findings.len(), 1);
        assert_eq!(out.findings[0].rule, "context_echo");
        // Excerpts below the threshold (4 KiB by default) are fine.
        for short in [&ctx[50_000..50_100], &ctx[60_000..63_000]] {
            let out = filt.filter(short.as_bytes(), "stdout").unwrap();
            assert_eq!(out.text, short);
        }
        // The threshold is a setting.
        let lc = LoadedContext::load(&Context::text(ctx.clone())).unwrap();
        let strict = EgressFilter::with_context(
            EgressConfig {
                echo_min_bytes: 256,
                ..EgressConfig::defaults()
            },
            lc,
        );
        let out = strict
            .filter(&ctx.as_bytes()[60_000..61_000], "stdout")
            .unwrap();
        assert_eq!(out.findings.len(), 1);
        // Sub-LLM prompts legitimately carry context.
        let out = filt
            .filter_dir(slice.as_bytes(), "llm_query", Direction::ToSubLlm)
            .unwrap();
        assert_eq!(out.text, slice);
    }

    #[test]
    fn digest_allowlist_is_configurable() {
        let sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let strict = EgressConfig {
            entropy_threshold: 3.0,
            allow_digests: false,
            ..EgressConfig::defaults()
        };
        let out = EgressFilter::new(strict)
            .filter(sha.as_bytes(), "stdout")
            .unwrap();
        assert_eq!(
            out.findings.len(),
            1,
            "with the allowlist off a digest above the threshold is cut"
        );
        let relaxed = EgressConfig {
            entropy_threshold: 3.0,
            ..EgressConfig::defaults()
        };
        let out = EgressFilter::new(relaxed)
            .filter(sha.as_bytes(), "stdout")
            .unwrap();
        assert!(out.findings.is_empty());
    }

    /// The text of a filtered piece with the count of truncated bytes blanked (the windowed
    /// path counts the unscanned middle in input bytes).
    fn without_count(t: &str) -> String {
        let Some(a) = t.find("\n[... ") else {
            return t.to_string();
        };
        let b = t[a..].find(" bytes truncated").expect("count line") + a;
        format!("{}{}", &t[..a], &t[b..])
    }

    /// A piece far longer than the output cap, secrets at the edges of what is kept and of
    /// the scanned windows: the windowed path keeps exactly what a scan of everything keeps.
    #[test]
    fn long_output_windows_match_a_whole_scan() {
        let filt = f();
        let limit = EgressConfig::defaults().max_output_bytes;
        let window = limit * 2 + WINDOW_MARGIN;
        let (head, tail) = truncation_budgets(limit);
        let n = window * 3;
        let secret = "ghp_1234567890abcdefghijklmnopqrstuvwxyzAB";
        for at in [
            0,
            head - 10,
            head + 5,
            window - 20,
            n - window - 20,
            n - tail - 20,
            n - 60,
        ] {
            let mut text = "lorem ipsum dolor sit amet\n".repeat(n / 27 + 1);
            text.truncate(n);
            text.replace_range(at..at + secret.len(), secret);
            let w = filt
                .filter_parts_with(
                    b"",
                    &[(text.as_bytes(), "stdout")],
                    Direction::ToRoot,
                    false,
                )
                .unwrap();
            let whole = filt
                .filter_parts_with(b"", &[(text.as_bytes(), "stdout")], Direction::ToRoot, true)
                .unwrap();
            assert!(!w[0].text.contains(secret), "secret at {at} kept");
            assert_eq!(
                without_count(&w[0].text),
                without_count(&whole[0].text),
                "at {at}"
            );
            assert!(w[0].text.len() <= limit, "{}", w[0].text.len());
            // A secret inside what is kept is reported; one in the cut middle need not be.
            if at < head || at > n - tail - 60 {
                assert_eq!(w[0].findings.len(), 1, "at {at}");
            }
        }
    }

    /// `n` pseudo-random base64 characters (one high-entropy token).
    fn random_token(n: usize) -> String {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                alphabet[(x % 64) as usize] as char
            })
            .collect()
    }

    /// Redactions so large near an end that what is kept would reach past a window: the
    /// filter scans everything instead, and nothing secret survives.
    #[test]
    fn long_output_with_huge_redactions_falls_back_to_a_whole_scan() {
        let filt = f();
        let limit = EgressConfig::defaults().max_output_bytes;
        let window = limit * 2 + WINDOW_MARGIN;
        // One high-entropy token longer than the head window: rendered, the window shrinks
        // to a single marker, far below what is kept.
        let blob = random_token(window + 1000);
        let mut text = blob.clone();
        text.push('\n');
        text.push_str(&"plain words here\n".repeat(window * 2 / 17));
        text.push_str("the end\n");
        let out = filt.filter(text.as_bytes(), "stdout").unwrap();
        let whole = filt
            .filter_parts_with(b"", &[(text.as_bytes(), "stdout")], Direction::ToRoot, true)
            .unwrap();
        assert_eq!(out.text, whole[0].text);
        assert!(!out.text.contains(&blob[window..window + 40]));
        assert!(out.text.starts_with("[REDACTED:high_entropy]\nplain words"));
        assert!(out.text.ends_with("the end\n"));
        assert!(out.text.len() <= limit, "{}", out.text.len());
    }

    /// The kept tail reaches, in input bytes, close to where its window starts (markers
    /// longer than their secrets inflate the window's rendering, a huge token shrinks the
    /// kept part's): a full margin is not left, so everything is scanned. The output is then
    /// exactly a whole scan's, truncation count included.
    #[test]
    fn windows_keep_a_full_margin_of_input() {
        let filt = f();
        let limit = EgressConfig::defaults().max_output_bytes;
        let window = limit * 2 + WINDOW_MARGIN;
        let token = random_token(window - 16_000);
        let mut tail = "plain words\n".repeat(2000 / 12);
        tail.push_str(&"password=abcdef ".repeat(10_000 / 16));
        tail.push('\n');
        tail.push_str(&token);
        tail.push('\n');
        while tail.len() < window {
            tail.push_str("end words\n");
        }
        // The middle, never kept, holds a secret: its redaction changes the count of cut
        // bytes a whole scan reports.
        let mut text = "plain words\n".repeat(window / 12);
        text.push_str("AKIAIOSFODNN7EXAMPLE\n");
        text.push_str(&"plain words\n".repeat(window / 12));
        text.push_str(&tail);
        let w = filt.filter(text.as_bytes(), "stdout").unwrap();
        let whole = filt
            .filter_parts_with(b"", &[(text.as_bytes(), "stdout")], Direction::ToRoot, true)
            .unwrap();
        assert_eq!(w.text, whole[0].text);
        assert!(w.text.contains("[REDACTED:high_entropy]"));
    }

    /// Random secrets of each shape, embedded in random text: never in the output.
    fn random_secret() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Z0-9]{16}".prop_map(|b| format!("AKIA{b}")),
            "[A-Za-z0-9]{36}".prop_map(|b| format!("ghp_{b}")),
            "[A-Za-z0-9_]{40}".prop_map(|b| format!("github_pat_{b}")),
            "[A-Za-z0-9_-]{20,60}".prop_map(|b| format!("sk-proj-{b}")),
            "[A-Za-z0-9_-]{30,60}".prop_map(|b| format!("sk-ant-api03-{b}")),
            "[A-Za-z0-9-]{10,40}".prop_map(|b| format!("xoxb-{b}")),
            "[A-Za-z0-9_-]{20,40}".prop_map(|b| format!("glpat-{b}")),
            "[A-Za-z0-9]{34,40}".prop_map(|b| format!("hf_{b}")),
            "[A-Za-z0-9]{36}".prop_map(|b| format!("npm_{b}")),
            "[A-Za-z0-9_-]{35}".prop_map(|b| format!("AIza{b}")),
            (
                "[A-Za-z0-9_-]{10,40}",
                "[A-Za-z0-9_-]{10,40}",
                "[A-Za-z0-9_-]{10,60}"
            )
                .prop_map(|(a, b, c)| format!("eyJ{a}.eyJ{b}.{c}")),
            ("[a-z]{3,8}", "[a-zA-Z0-9]{6,20}")
                .prop_map(|(u, p)| format!("postgres://{u}:{p}@db.example:5432/x")),
            "[A-Za-z0-9!#%]{8,30}".prop_map(|p| format!("password={p}")),
        ]
    }

    proptest! {
        #[test]
        fn output_never_contains_a_generated_secret(
            pre in "[a-zA-Z0-9 ,.:=\n]{0,200}",
            post in "[a-zA-Z0-9 ,.:=\n]{0,200}",
            secret in random_secret(),
        ) {
            let input = format!("{pre} {secret}\n{post}");
            let out = f().filter(input.as_bytes(), "stdout").unwrap();
            prop_assert!(!out.text.contains(&secret), "{}", out.text);
            prop_assert!(!out.findings.is_empty());
        }

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

#[cfg(test)]
mod timing {
    /// Component timings on 1 MiB (run with --ignored --nocapture in release).
    #[test]
    #[ignore]
    fn timing() {
        let mut s = String::new();
        let mut i = 0u64;
        while s.len() < 1 << 20 {
            i += 1;
            s.push_str(&format!("2026-11-25T09:00:{:02}Z INFO request id={} status=200 took={}ms\nThe quarterly report shows revenue growth across all regions.\n{{\"user\": \"u{}\", \"total\": {}}}\n", i % 60, i * 7919 % 100000, i % 900, i, i * 31));
        }
        let cfg = crate::EgressConfig::defaults();
        let time = |label: &str, f: &dyn Fn()| {
            let t = std::time::Instant::now();
            for _ in 0..20 {
                f();
            }
            eprintln!("{label}: {:?}", t.elapsed() / 20);
        };
        time("secret scan, single thread", &|| {
            drop(std::hint::black_box(crate::secrets::scan(
                s.as_bytes(),
                0,
                s.len(),
                &crate::secrets::Extras::NONE,
            )))
        });
        time("describe_binary", &|| {
            drop(std::hint::black_box(super::describe_binary(s.as_bytes())))
        });
        let f = super::EgressFilter::new(cfg.clone());
        time("whole filter", &|| {
            drop(std::hint::black_box(f.filter(s.as_bytes(), "x").unwrap()))
        });
        time("thread spawn", &|| {
            std::hint::black_box(std::thread::scope(|sc| sc.spawn(|| 1).join().unwrap()));
        });
    }
}
