//! Masking at the source (pure code): before anything sees a context, every secret the rules
//! find in it is replaced by a stable placeholder naming its kind and number,
//! `[SECRET:aws_access_key_id#1]`. The sandbox, the system prompt's preview, sub-calls and
//! child runs only ever see the masked view; the values stay in the host's [`SecretTable`],
//! which can put them back into a final answer (only when the user asks for it) and feeds the
//! last check before any byte goes to a provider ([`KnownSecrets`]).

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::{Mutex, MutexGuard};

use aho_corasick::{AhoCorasick, MatchKind};

use crate::secrets::{self, Span};

/// The secrets of one tree of runs and their placeholders. The same value always gets the
/// same placeholder; numbers count per kind from 1.
#[derive(Debug, Default)]
pub(crate) struct SecretTable {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_value: HashMap<Vec<u8>, String>,
    per_kind: HashMap<&'static str, u32>,
    /// (placeholder, value) in the order they were found.
    entries: Vec<(String, Vec<u8>)>,
}

impl SecretTable {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The placeholder of `value` (of kind `kind`), made on first sight.
    fn placeholder(&self, kind: &'static str, value: &[u8]) -> String {
        let mut t = self.lock();
        if let Some(p) = t.by_value.get(value) {
            return p.clone();
        }
        let n = t.per_kind.entry(kind).or_insert(0);
        *n += 1;
        let p = format!("[SECRET:{kind}#{n}]");
        t.by_value.insert(value.to_vec(), p.clone());
        t.entries.push((p.clone(), value.to_vec()));
        p
    }

    /// Writes `text` with the values of `spans` (sorted, non-overlapping, from
    /// [`secrets::find_secrets`]) replaced by placeholders.
    pub(crate) fn write_masked(
        &self,
        text: &[u8],
        spans: &[Span],
        out: &mut impl Write,
    ) -> io::Result<()> {
        let mut last = 0;
        for s in spans {
            if s.value_start < last {
                continue;
            }
            out.write_all(&text[last..s.value_start])?;
            let value = &text[s.value_start..s.value_end];
            out.write_all(self.placeholder(s.rule, value).as_bytes())?;
            last = s.value_end;
        }
        out.write_all(&text[last..])
    }

    /// `text` masked, and how many secrets it held.
    pub(crate) fn mask_str(&self, text: &str) -> (String, usize) {
        let spans = secrets::find_secrets(text.as_bytes(), 1);
        if spans.is_empty() {
            return (text.to_string(), 0);
        }
        let mut out = Vec::with_capacity(text.len());
        self.write_masked(text.as_bytes(), &spans, &mut out)
            .expect("writing to memory cannot fail");
        // Placeholders are ASCII and values are cut on UTF-8 boundaries of valid text.
        (String::from_utf8_lossy(&out).into_owned(), spans.len())
    }

    /// `text` with every placeholder of this table replaced by its value (for a final
    /// answer the user asked to see unmasked).
    pub(crate) fn reveal(&self, text: &str) -> String {
        let t = self.lock();
        let mut out = text.to_string();
        for (p, v) in &t.entries {
            if out.contains(p.as_str()) {
                out = out.replace(p.as_str(), &String::from_utf8_lossy(v));
            }
        }
        out
    }

    /// Every value in the table.
    pub(crate) fn values(&self) -> Vec<Vec<u8>> {
        self.lock().entries.iter().map(|(_, v)| v.clone()).collect()
    }

    /// How many distinct secrets the table holds.
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

/// Writes `text` with every secret the rules find replaced by a `[SECRET:kind#n]` placeholder
/// (numbered per kind, the same value always the same placeholder), exactly as a run's
/// context is masked before the sandbox, the prompt or a sub-call sees it; returns what was
/// masked (rule and byte range of each value in `text`, never the value). Large texts are
/// scanned on up to four threads.
///
/// ```
/// let mut out = Vec::new();
/// let found = rlm::mask_secrets(b"key AKIAIOSFODNN7EXAMPLE, db postgres://app:hunter2pw@db/x", &mut out)?;
/// assert_eq!(
///     String::from_utf8(out).unwrap(),
///     "key [SECRET:aws_access_key_id#1], db postgres://app:[SECRET:url_credentials#1]@db/x"
/// );
/// assert_eq!(found.len(), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn mask_secrets(text: &[u8], out: &mut impl Write) -> io::Result<Vec<crate::Finding>> {
    let threads = if text.len() < (8 << 20) {
        1
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .min(4)
    };
    let spans = secrets::find_secrets(text, threads);
    SecretTable::default().write_masked(text, &spans, out)?;
    Ok(spans
        .iter()
        .map(|s| crate::Finding::new(s.rule, s.value_start, s.value_end))
        .collect())
}

/// Exact values that must never reach a provider, and simple transformations of them
/// (lower/upper case, reversed, hex, base64 and URL-safe base64 at every alignment,
/// %-encoded): the context's secrets, API keys, secret-looking environment variables.
/// Defence in depth behind masking: a value the sandbox never saw cannot be printed, but
/// the user's own query or an error text could still carry one.
#[derive(Debug)]
pub(crate) struct KnownSecrets {
    matcher: Option<AhoCorasick>,
    #[cfg(test)]
    count: usize,
}

/// Values shorter than this are not matched (too many false hits).
const MIN_KNOWN: usize = 8;

impl KnownSecrets {
    pub(crate) fn new(values: &[Vec<u8>]) -> Self {
        let mut forms: Vec<Vec<u8>> = Vec::new();
        for v in values.iter().filter(|v| v.len() >= MIN_KNOWN) {
            forms.extend(variants(v));
        }
        forms.sort();
        forms.dedup();
        #[cfg(test)]
        let count = forms.len();
        // One automaton over every form: memory grows with their total length, whatever
        // their number (thousands of context secrets, a dozen forms each).
        let matcher = (!forms.is_empty()).then(|| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&forms)
                .expect("literal forms always build")
        });
        KnownSecrets {
            matcher,
            #[cfg(test)]
            count,
        }
    }

    /// How many forms are matched.
    #[cfg(test)]
    pub(crate) fn forms(&self) -> usize {
        self.count
    }

    /// `text` with every known form replaced, and the byte ranges that were.
    pub(crate) fn redact(&self, text: &str) -> (String, Vec<(usize, usize)>) {
        let Some(ac) = &self.matcher else {
            return (text.to_string(), vec![]);
        };
        let mut out = String::with_capacity(text.len());
        let mut hits = Vec::new();
        let mut last = 0;
        for m in ac.find_iter(text.as_bytes()) {
            let (mut s, mut e) = (m.start(), m.end());
            while s > 0 && !text.is_char_boundary(s) {
                s -= 1;
            }
            while e < text.len() && !text.is_char_boundary(e) {
                e += 1;
            }
            if s < last {
                continue;
            }
            out.push_str(&text[last..s]);
            out.push_str("[REDACTED:known_secret]");
            hits.push((s, e));
            last = e;
        }
        out.push_str(&text[last..]);
        (out, hits)
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(data: &[u8], url: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for k in 0..=c.len() {
            let mut ch = B64[(n >> (18 - 6 * k) & 63) as usize];
            if url {
                ch = match ch {
                    b'+' => b'-',
                    b'/' => b'_',
                    x => x,
                };
            }
            out.push(ch);
        }
    }
    out
}

/// The forms of `v` to look for.
fn variants(v: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![
        v.to_vec(),
        v.to_ascii_lowercase(),
        v.to_ascii_uppercase(),
        v.iter().rev().copied().collect(),
        v.iter()
            .flat_map(|b| format!("{b:02x}").into_bytes())
            .collect(),
        v.iter()
            .flat_map(|b| format!("{b:02X}").into_bytes())
            .collect(),
    ];
    if v.iter().any(|b| !b.is_ascii_alphanumeric()) {
        out.push(
            v.iter()
                .flat_map(|&b| {
                    if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                        vec![b]
                    } else {
                        format!("%{b:02X}").into_bytes()
                    }
                })
                .collect(),
        );
    }
    // Base64 of `v` inside a longer text: at each of the three alignments, the characters
    // that depend on `v`'s bytes only.
    for url in [false, true] {
        for k in 0..3usize {
            let mut padded = vec![0u8; k];
            padded.extend_from_slice(v);
            let enc = base64(&padded, url);
            let start = if k == 0 { 0 } else { 4 };
            let end = 4 * ((k + v.len()) / 3);
            if end > start + 11 {
                out.push(enc[start..end].to_vec());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_stable_per_value_and_numbered_per_kind() {
        let t = SecretTable::default();
        let (m, n) = t.mask_str(
            "a AKIAIOSFODNN7EXAMPLE b AKIAIOSFODNN7EXAMPLE c AKIAABCDEFGHIJKLMNOP password=hunter2hunter2",
        );
        assert_eq!(n, 4);
        assert_eq!(
            m,
            "a [SECRET:aws_access_key_id#1] b [SECRET:aws_access_key_id#1] c [SECRET:aws_access_key_id#2] password=[SECRET:secret_assignment#1]"
        );
        assert_eq!(t.len(), 3);
        // Masking masked text changes nothing.
        assert_eq!(t.mask_str(&m), (m.clone(), 0));
        assert_eq!(
            t.reveal("key [SECRET:aws_access_key_id#2]!"),
            "key AKIAABCDEFGHIJKLMNOP!"
        );
    }

    /// Thousands of known values (a context full of secrets): the matcher builds quickly and
    /// in little memory, and finds every one of them.
    #[test]
    fn thousands_of_known_values() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let values: Vec<Vec<u8>> = (0..3000)
            .map(|_| {
                (0..32)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                            [(x % 62) as usize]
                    })
                    .collect()
            })
            .collect();
        let t = std::time::Instant::now();
        let k = KnownSecrets::new(&values);
        assert!(k.forms() > 20_000, "{}", k.forms());
        let text: String = values
            .iter()
            .step_by(100)
            .map(|v| format!("value {} here\n", String::from_utf8_lossy(v)))
            .collect();
        let (out, hits) = k.redact(&text);
        assert_eq!(hits.len(), 30);
        assert!(!out.contains(&*String::from_utf8_lossy(&values[0])));
        assert!(
            t.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn known_forms_are_redacted() {
        let secret = b"ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".to_vec();
        let k = KnownSecrets::new(std::slice::from_ref(&secret));
        assert!(k.forms() >= 8, "{}", k.forms());
        let s = String::from_utf8(secret.clone()).unwrap();
        let b64 = String::from_utf8(base64(format!("x{s}y").as_bytes(), false)).unwrap();
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let rev: String = s.chars().rev().collect();
        for form in [s.clone(), s.to_lowercase(), b64, hex, rev] {
            let (out, hits) = k.redact(&format!("leak: {form} end"));
            assert!(!hits.is_empty(), "{form} not found");
            assert!(!out.contains(&form[..form.len().min(20)]), "{out}");
        }
        let (out, hits) = k.redact("nothing here");
        assert!(hits.is_empty() && out == "nothing here");
    }

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b"hello world", false), b"aGVsbG8gd29ybGQ");
        assert_eq!(base64(b"\xfb\xff", true), b"-_8");
    }
}
