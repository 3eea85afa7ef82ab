//! Contexts: what the user hands a run, and the host-side read-only view of it.
//!
//! A file context is memory-mapped read-only (never opened for writing) and never read whole
//! into memory; in-memory text and documents are written once to a private per-run directory
//! so the sandbox can bind them read-only.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::mask::SecretTable;
use crate::private_dir::PrivateDir;
use crate::secrets;

/// The context of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Context {
    /// A file on disk (memory-mapped, never copied).
    File(PathBuf),
    /// Text held in memory.
    Text(String),
    /// A list of documents; the REPL sees them as a list.
    Documents(Vec<String>),
    /// Several files, seen by the REPL as a list of documents (each memory-mapped).
    Files(Vec<PathBuf>),
}

impl Context {
    /// A file context.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Context::File(path.into())
    }
    /// An in-memory text context.
    pub fn text(text: impl Into<String>) -> Self {
        Context::Text(text.into())
    }
    /// Several files, seen by the REPL as a list of documents.
    pub fn files<I, P>(paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        Context::Files(paths.into_iter().map(Into::into).collect())
    }
    /// A list of documents.
    pub fn documents<I, S>(docs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Context::Documents(docs.into_iter().map(Into::into).collect())
    }
}

impl From<&Path> for Context {
    fn from(p: &Path) -> Self {
        Context::File(p.to_path_buf())
    }
}
impl From<PathBuf> for Context {
    fn from(p: PathBuf) -> Self {
        Context::File(p)
    }
}
impl From<String> for Context {
    fn from(s: String) -> Self {
        Context::Text(s)
    }
}
impl From<&str> for Context {
    fn from(s: &str) -> Self {
        Context::Text(s.to_string())
    }
}
impl From<Vec<String>> for Context {
    fn from(v: Vec<String>) -> Self {
        Context::Documents(v)
    }
}

use crate::handle::{ContextHandle, map_file};

/// A loaded context: documents plus the private directory that holds copies of in-memory
/// text and masked copies of files (removed on drop).
#[derive(Debug)]
pub(crate) struct LoadedContext {
    pub(crate) docs: Vec<ContextHandle>,
    pub(crate) is_list: bool,
    /// Secrets replaced by placeholders, per document.
    pub(crate) masked: Vec<usize>,
    _dir: Option<PrivateDir>,
}

/// Threads used to scan one large document for secrets.
fn scan_threads(len: usize) -> usize {
    if len < (8 << 20) {
        1
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .min(4)
    }
}

impl LoadedContext {
    /// Validates and maps the context as it is (no masking). Blocking file I/O: call it off
    /// the executor.
    pub(crate) fn load(ctx: &Context) -> Result<Arc<LoadedContext>> {
        Self::load_with(ctx, None).map(Arc::new)
    }

    /// Validates and maps the context with every secret replaced by its placeholder in
    /// `table`. A document without secrets is mapped as it is (zero-copy); one with secrets
    /// is written masked to a private file, which is what gets mapped. In-memory text is
    /// masked before it is written anywhere. Blocking: call it off the executor.
    pub(crate) fn load_masked(ctx: &Context, table: &SecretTable) -> Result<Arc<LoadedContext>> {
        Self::load_with(ctx, Some(table)).map(Arc::new)
    }

    fn load_with(ctx: &Context, table: Option<&SecretTable>) -> Result<LoadedContext> {
        let mask_text = |t: &str| -> (String, usize) {
            match table {
                Some(tb) => tb.mask_str(t),
                None => (t.to_string(), 0),
            }
        };
        let mut lc = match ctx {
            Context::File(p) => LoadedContext {
                docs: vec![map_file(p, None)?],
                is_list: false,
                masked: vec![0],
                _dir: None,
            },
            Context::Text(t) => {
                let dir = PrivateDir::new()?;
                let (text, n) = mask_text(t);
                let path = dir.write("context.txt", text.as_bytes())?;
                LoadedContext {
                    docs: vec![map_file(&path, Some("context.txt".into()))?],
                    is_list: false,
                    masked: vec![n],
                    _dir: Some(dir),
                }
            }
            Context::Files(ps) => {
                let docs = ps
                    .iter()
                    .map(|p| map_file(p, None))
                    .collect::<Result<Vec<_>>>()?;
                let mut seen = std::collections::HashSet::new();
                for d in &docs {
                    if !seen.insert(d.name().to_string()) {
                        return Err(Error::context(format!(
                            "two context files are both named {:?}; rename one so the REPL can tell them apart",
                            d.name()
                        )));
                    }
                }
                LoadedContext {
                    masked: vec![0; docs.len()],
                    docs,
                    is_list: true,
                    _dir: None,
                }
            }
            Context::Documents(ds) => {
                let dir = PrivateDir::new()?;
                let mut docs = Vec::with_capacity(ds.len());
                let mut masked = Vec::with_capacity(ds.len());
                for (i, d) in ds.iter().enumerate() {
                    let name = format!("doc_{i:04}.txt");
                    let (text, n) = mask_text(d);
                    let path = dir.write(&name, text.as_bytes())?;
                    docs.push(map_file(&path, Some(name))?);
                    masked.push(n);
                }
                LoadedContext {
                    docs,
                    is_list: true,
                    masked,
                    _dir: Some(dir),
                }
            }
        };
        if let (Some(table), Context::File(_) | Context::Files(_)) = (table, ctx) {
            for i in 0..lc.docs.len() {
                let bytes = lc.docs[i].as_bytes();
                let spans = secrets::find_secrets(bytes, scan_threads(bytes.len()));
                if spans.is_empty() {
                    continue;
                }
                if lc._dir.is_none() {
                    lc._dir = Some(PrivateDir::new()?);
                }
                let dir = lc._dir.as_ref().expect("just made");
                let name = lc.docs[i].name().to_string();
                let path = dir.path().join(format!("masked-{i:04}-{name}"));
                let write = || -> std::io::Result<()> {
                    let f = File::create(&path)?;
                    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
                    table.write_masked(bytes, &spans, &mut w)?;
                    w.flush()
                };
                write().map_err(|e| {
                    Error::context(format!(
                        "cannot write the masked copy of {name} to {}: {e}",
                        path.display()
                    ))
                })?;
                lc.docs[i] = map_file(&path, Some(name))?;
                lc.masked[i] = spans.len();
            }
        }
        Ok(lc)
    }

    /// An error naming the first document that changed since it was mapped and scanned.
    pub(crate) fn unchanged(&self) -> Result<()> {
        match self.docs.iter().find(|d| d.changed()) {
            Some(d) => Err(crate::sandbox::changed_error(d.name())),
            None => Ok(()),
        }
    }

    /// The `words` that occur in no document (ASCII case ignored), in their order. One pass
    /// over the documents with one automaton, stopping once every word was seen.
    pub(crate) fn absent_words(&self, words: &[String]) -> Vec<String> {
        if words.is_empty() {
            return Vec::new();
        }
        let Ok(ac) = aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(words)
        else {
            return Vec::new();
        };
        let mut found = vec![false; words.len()];
        let mut left = words.len();
        'docs: for d in &self.docs {
            for m in ac.find_overlapping_iter(d.as_bytes()) {
                let i = m.pattern().as_usize();
                if !found[i] {
                    found[i] = true;
                    left -= 1;
                    if left == 0 {
                        break 'docs;
                    }
                }
            }
        }
        words
            .iter()
            .zip(found)
            .filter(|(_, f)| !f)
            .map(|(w, _)| w.clone())
            .collect()
    }

    /// Total size in bytes.
    pub(crate) fn total_bytes(&self) -> u64 {
        self.docs.iter().map(|d| d.as_bytes().len() as u64).sum()
    }

    /// What the system prompt says about each document (size, line count, preview).
    pub(crate) fn summaries(&self, preview_bytes: usize) -> Vec<crate::prompt::DocSummary<'_>> {
        self.docs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let b = d.as_bytes();
                let sample = &b[..b.len().min(1 << 20)];
                let nl = memchr::memchr_iter(b'\n', sample).count() as u64;
                let estimated = b.len() > sample.len();
                let lines = if estimated {
                    nl * b.len() as u64 / sample.len() as u64
                } else {
                    nl + u64::from(!b.is_empty() && !b.ends_with(b"\n"))
                };
                crate::prompt::DocSummary {
                    masked: self.masked.get(i).copied().unwrap_or(0),
                    name: d.name(),
                    bytes: b.len() as u64,
                    lines,
                    lines_estimated: estimated,
                    preview: preview(b, preview_bytes),
                }
            })
            .collect()
    }

    /// The description of the context in the system prompt.
    #[cfg(test)]
    pub(crate) fn describe(&self, preview_bytes: usize) -> String {
        crate::prompt::describe_context(&self.summaries(preview_bytes), self.is_list)
    }
}

/// The first `n` bytes as text, cut at a character boundary.
fn preview(b: &[u8], n: usize) -> String {
    let head = &b[..b.len().min(n)];
    let s = match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or(""),
    };
    let mut s = s.to_string();
    if b.len() > n {
        s.push_str(" [...]");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that changes after it was mapped and scanned is noticed, and a sandbox start
    /// (or restart) refuses to open it.
    #[test]
    fn changes_after_the_scan_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live.log");
        std::fs::write(&path, "one\n").unwrap();
        let lc = LoadedContext::load(&Context::file(&path)).unwrap();
        let spec = crate::sandbox::SessionSpec::for_context(&lc, 0);
        assert!(lc.unchanged().is_ok());
        assert!(spec.files[0].open_unchanged().is_ok());
        std::fs::write(&path, "one\ntwo AKIAIOSFODNN7EXAMPLE\n").unwrap();
        assert!(lc.unchanged().is_err());
        let err = spec.files[0].open_unchanged().unwrap_err().to_string();
        assert!(err.contains("changed after it was scanned"), "{err}");
        // Replaced under the same name: another file.
        let lc = LoadedContext::load(&Context::file(&path)).unwrap();
        let spec = crate::sandbox::SessionSpec::for_context(&lc, 0);
        std::fs::write(dir.path().join("new"), "x\n").unwrap();
        std::fs::rename(dir.path().join("new"), &path).unwrap();
        assert!(spec.files[0].open_unchanged().is_err());
    }

    #[test]
    fn absent_words_are_looked_for_in_every_document() {
        let lc = LoadedContext::load(&Context::documents([
            "inspection of VAN-2731 FAILED",
            "repair for van-9 done",
        ]))
        .unwrap();
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            lc.absent_words(&w(&["VAN-service", "failed", "Van-9", "repair", "EUR"])),
            w(&["VAN-service", "EUR"])
        );
        assert!(lc.absent_words(&[]).is_empty());
    }

    #[test]
    fn text_context_is_mapped_and_cleaned_up() {
        let lc = LoadedContext::load(&Context::text("line one\nline two\n")).unwrap();
        let path = lc.docs[0].path().to_path_buf();
        assert!(path.exists());
        assert_eq!(lc.total_bytes(), 18);
        let d = lc.describe(100);
        assert!(d.contains("18 bytes, 2 lines"), "{d}");
        drop(lc);
        assert!(!path.exists(), "temporary copy must be removed");
        assert!(!path.parent().unwrap().exists());
    }

    #[test]
    fn empty_binary_missing_and_directory() {
        let lc = LoadedContext::load(&Context::text("")).unwrap();
        assert_eq!(lc.total_bytes(), 0);
        let err = LoadedContext::load(&Context::text("a\0b")).unwrap_err();
        assert!(err.to_string().contains("binary"), "{err}");
        let err = LoadedContext::load(&Context::file("/nonexistent/x.txt")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.txt"), "{err}");
        let err = LoadedContext::load(&Context::file("/tmp")).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn documents_and_utf8_preview() {
        let lc = LoadedContext::load(&Context::documents(["héllo wörld", "b"])).unwrap();
        assert!(lc.is_list);
        assert_eq!(lc.docs[1].name(), "doc_0001.txt");
        assert_eq!(preview("héllo".as_bytes(), 2), "h [...]");
        assert_eq!(
            crate::handle::sanitize_name("../my file.txt"),
            "_my_file.txt"
        );
    }
}
