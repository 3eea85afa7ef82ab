//! The host-side context handle: a read-only memory map of one text file with byte-exact
//! reads, line access, regex search and chunking. Works on empty files and on files larger
//! than RAM (only touched pages are read). This module holds the crate's one `mmap`.

use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};

use regex_automata::meta::Regex;
use regex_automata::util::syntax;

use crate::error::{Error, Result};

/// Bytes of one context document: mapped, or empty (an empty file cannot be mapped).
pub(crate) enum Bytes {
    Mapped(memmap2::Mmap),
    Empty,
}

impl Bytes {
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Empty => &[],
        }
    }
}

/// What identifies the content of a file without reading it: device, inode, size and
/// modification time. A file that is appended to, rewritten or replaced gets another stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl FileStamp {
    pub(crate) fn of(m: &std::fs::Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        }
    }
}

/// Maps `p` read-only and checks that it is text. `name` is the document's name inside the
/// sandbox (default: the sanitized file name).
pub(crate) fn map_file(p: &Path, name: Option<String>) -> Result<ContextHandle> {
    let path = std::fs::canonicalize(p)
        .map_err(|e| Error::context(format!("cannot open context file {}: {e}", p.display())))?;
    let meta = std::fs::metadata(&path)
        .map_err(|e| Error::context(format!("cannot open context file {}: {e}", p.display())))?;
    if !meta.is_file() {
        return Err(Error::context(format!(
            "context {} is not a regular file",
            p.display()
        )));
    }
    let file =
        File::open(&path) // read-only
            .map_err(|e| {
                Error::context(format!("cannot open context file {}: {e}", p.display()))
            })?;
    // The stamp of what is mapped (the open file, not the path, which may change meanwhile).
    let meta = file
        .metadata()
        .map_err(|e| Error::context(format!("cannot open context file {}: {e}", p.display())))?;
    let bytes = if meta.len() == 0 {
        Bytes::Empty
    } else {
        // SAFETY: the map is read-only (PROT_READ of a descriptor opened read-only), so
        // nothing writes through it and the `&[u8]` it hands out is never aliased by a
        // mutable reference in this process. It is a shared mapping: if another process
        // truncates or rewrites the file while it is mapped, reads see the new bytes or fault
        // (SIGBUS) past the new end. Not modifying a context file during a run is the
        // caller's obligation, stated on `ContextHandle`.
        #[allow(unsafe_code)]
        let m = unsafe { memmap2::Mmap::map(&file) }
            .map_err(|e| Error::context(format!("cannot map context file {}: {e}", p.display())))?;
        Bytes::Mapped(m)
    };
    let head = &bytes.as_slice()[..bytes.as_slice().len().min(64 << 10)];
    if memchr::memchr(0, head).is_some() {
        return Err(Error::context(format!(
            "context {} looks binary (NUL bytes in its first 64 KiB); pass a text file",
            p.display()
        )));
    }
    let name = name.unwrap_or_else(|| {
        let base = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        sanitize_name(&base)
    });
    Ok(ContextHandle {
        path,
        name,
        bytes,
        stamp: FileStamp::of(&meta),
        file,
    })
}

/// File names inside the sandbox: keep `[A-Za-z0-9._-]`, replace the rest.
pub(crate) fn sanitize_name(n: &str) -> String {
    let s: String = n
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() {
        "context.txt".into()
    } else {
        s
    }
}

/// A read-only, memory-mapped text file. Offsets are bytes; text returned is widened to
/// whole UTF-8 characters (invalid sequences are replaced, never panicked on).
///
/// **The file must not change while the handle lives.** It is mapped, not copied: if another
/// process truncates the file, reading past the new end kills the process with `SIGBUS`, and
/// rewriting it in place changes what reads return. Give `rlm` a file nobody writes to during
/// the run (or copy it first).
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("rlm-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # let path = dir.join("log.txt");
/// std::fs::write(&path, "ok\nERROR disk full\nok\n").unwrap();
/// let h = rlm::ContextHandle::open(&path)?;
/// let hits = h.search("error", 10, true)?;
/// assert_eq!((hits[0].offset, hits[0].line, hits[0].text.as_str()), (3, 2, "ERROR"));
/// assert_eq!(h.lines(2, 2)?, "ERROR disk full\n");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), rlm::Error>(())
/// ```
pub struct ContextHandle {
    path: PathBuf,
    name: String,
    bytes: Bytes,
    /// The file as it was mapped (and scanned for secrets).
    stamp: FileStamp,
    file: File,
}

impl std::fmt::Debug for ContextHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextHandle")
            .field("name", &self.name)
            .field("size", &self.size())
            .finish()
    }
}

/// One search match.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct SearchHit {
    /// Byte offset of the match.
    pub offset: u64,
    /// 1-based line number.
    pub line: u64,
    /// The matched text.
    pub text: String,
}

fn is_cont(b: u8) -> bool {
    b & 0xC0 == 0x80
}

impl ContextHandle {
    /// Maps `path` read-only (the file is never opened for writing). Binary files (NUL bytes
    /// in the first 64 KiB) are rejected.
    pub fn open(path: impl AsRef<Path>) -> Result<ContextHandle> {
        map_file(path.as_ref(), None)
    }

    /// The file's canonical path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The document's name inside the sandbox (`/context/<name>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.as_bytes().len() as u64
    }

    /// The raw bytes (mapped, not copied).
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// The stamp of the file as it was mapped.
    pub(crate) fn stamp(&self) -> FileStamp {
        self.stamp
    }

    /// True when the mapped file has changed since it was mapped (appended to, rewritten,
    /// truncated), or can no longer be examined.
    pub(crate) fn changed(&self) -> bool {
        self.file
            .metadata()
            .map_or(true, |m| FileStamp::of(&m) != self.stamp)
    }

    fn snap_start(&self, mut i: usize) -> usize {
        let b = self.as_bytes();
        while i > 0 && i < b.len() && is_cont(b[i]) {
            i -= 1;
        }
        i
    }

    fn snap_end(&self, mut i: usize) -> usize {
        let b = self.as_bytes();
        while i > 0 && i < b.len() && is_cont(b[i]) {
            i += 1;
        }
        i
    }

    fn text(&self, s: usize, e: usize) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.as_bytes()[s..e])
    }

    /// The text of bytes `[start, start + len)`, widened to whole characters.
    pub fn read(&self, start: u64, len: u64) -> Result<Cow<'_, str>> {
        let size = self.size();
        if start > size {
            return Err(Error::context(format!(
                "read: start {start} is past the end of the context ({size} bytes)"
            )));
        }
        let end = start.saturating_add(len).min(size);
        Ok(self.text(self.snap_start(start as usize), self.snap_end(end as usize)))
    }

    /// The first `n` bytes as text.
    pub fn head(&self, n: u64) -> Cow<'_, str> {
        let e = self.snap_end(n.min(self.size()) as usize);
        self.text(0, e)
    }

    /// The last `n` bytes as text.
    pub fn tail(&self, n: u64) -> Cow<'_, str> {
        let size = self.size();
        let s = self.snap_start((size - n.min(size)) as usize);
        self.text(s, size as usize)
    }

    /// Lines `first..=last` (1-based), with their line endings.
    pub fn lines(&self, first: u64, last: u64) -> Result<Cow<'_, str>> {
        if first == 0 || last < first {
            return Err(Error::context(format!(
                "lines: need 1 <= first <= last, got {first}..{last}"
            )));
        }
        let b = self.as_bytes();
        let mut it = memchr::memchr_iter(b'\n', b);
        let start = if first == 1 {
            0
        } else {
            match it.nth((first - 2) as usize) {
                Some(i) => i + 1,
                None => return Ok(Cow::Borrowed("")),
            }
        };
        let end = match it.nth((last - first) as usize) {
            Some(i) => i + 1,
            None => b.len(),
        };
        Ok(self.text(start.min(b.len()), end))
    }

    /// Number of lines (a final line without newline counts).
    pub fn line_count(&self) -> u64 {
        let b = self.as_bytes();
        memchr::memchr_iter(b'\n', b).count() as u64
            + u64::from(!b.is_empty() && !b.ends_with(b"\n"))
    }

    /// Up to `max_results` matches of the regular expression `pattern` (Rust regex syntax,
    /// linear time, no catastrophic backtracking), with byte offset and line number.
    /// `ignore_case` uses Unicode case folding.
    pub fn search(
        &self,
        pattern: &str,
        max_results: usize,
        ignore_case: bool,
    ) -> Result<Vec<SearchHit>> {
        let re = compile_search(pattern, ignore_case)?;
        let b = self.as_bytes();
        let mut out = Vec::new();
        let (mut line, mut pos) = (1u64, 0usize);
        for m in re.find_iter(b) {
            if out.len() >= max_results {
                break;
            }
            line += memchr::memchr_iter(b'\n', &b[pos..m.start()]).count() as u64;
            pos = m.start();
            out.push(SearchHit {
                offset: m.start() as u64,
                line,
                text: self.text(m.start(), m.end()).into_owned(),
            });
        }
        Ok(out)
    }

    /// The text in chunks of about `size` bytes (cut at character boundaries), consecutive
    /// chunks sharing `overlap` bytes.
    pub fn chunks(&self, size: u64, overlap: u64) -> Result<Chunks<'_>> {
        if size == 0 || overlap >= size {
            return Err(Error::context(format!(
                "chunks: need size > 0 and overlap < size, got {size}, {overlap}"
            )));
        }
        Ok(Chunks {
            h: self,
            start: 0,
            size: size as usize,
            overlap: overlap as usize,
        })
    }
}

/// Iterator over `(offset, text)` chunks of a [`ContextHandle`].
#[derive(Debug)]
pub struct Chunks<'a> {
    h: &'a ContextHandle,
    start: usize,
    size: usize,
    overlap: usize,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = (u64, Cow<'a, str>);
    fn next(&mut self) -> Option<Self::Item> {
        let len = self.h.as_bytes().len();
        if self.start >= len {
            return None;
        }
        let start = self.start;
        let end = self.h.snap_end((start + self.size).min(len));
        let next = self.h.snap_start(end.saturating_sub(self.overlap));
        self.start = if end >= len {
            len
        } else if next > start {
            next
        } else {
            end
        };
        Some((start as u64, self.h.text(start, end)))
    }
}

/// Compiles a search pattern with size limits (a hostile pattern cannot exhaust memory).
pub(crate) fn compile_search(pattern: &str, ignore_case: bool) -> Result<Regex> {
    Regex::builder()
        .syntax(
            syntax::Config::new()
                .case_insensitive(ignore_case)
                .multi_line(true)
                .utf8(false),
        )
        .configure(
            Regex::config()
                .nfa_size_limit(Some(16 << 20))
                .hybrid_cache_capacity(4 << 20),
        )
        .build(pattern)
        .map_err(|e| Error::context(format!("invalid search pattern {pattern:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Context, LoadedContext};

    fn handle(text: &str) -> (std::sync::Arc<LoadedContext>, usize) {
        (LoadedContext::load(&Context::text(text)).unwrap(), 0)
    }

    #[test]
    fn reads_snap_to_characters() {
        let (lc, i) = handle("héllo wörld\nsecond line\nthird");
        let h = &lc.docs[i];
        assert_eq!(
            h.read(1, 1).unwrap(),
            "é",
            "a read inside a character is widened"
        );
        assert_eq!(h.read(0, 3).unwrap(), "hé");
        assert_eq!(h.head(2), "hé");
        assert_eq!(h.tail(5), "third");
        assert!(h.read(1000, 1).is_err());
        assert_eq!(h.read(h.size(), 10).unwrap(), "");
        assert_eq!(h.lines(2, 3).unwrap(), "second line\nthird");
        assert_eq!(h.lines(3, 99).unwrap(), "third");
        assert_eq!(h.lines(9, 9).unwrap(), "");
        assert!(h.lines(0, 1).is_err());
        assert_eq!(h.line_count(), 3);
    }

    #[test]
    fn search_lines_and_unicode_folding() {
        let (lc, i) = handle("a\nStraße STRASSE\nÄrger ärger\nend error ERROR");
        let h = &lc.docs[i];
        let hits = h.search("ärger", 10, true).unwrap();
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].line, 3);
        assert_eq!(hits[0].text, "Ärger");
        assert_eq!(h.search("error", 1, true).unwrap().len(), 1);
        let e = h.search("(", 1, false).unwrap_err();
        assert!(e.to_string().contains("invalid search pattern"));
        assert!(
            h.search("x{1000}{1000}{1000}", 1, false).is_err(),
            "size limits hold"
        );
    }

    #[test]
    fn chunks_cover_exactly() {
        let text = "é".repeat(1000) + "tail";
        let (lc, i) = handle(&text);
        let h = &lc.docs[i];
        let chunks: Vec<_> = h.chunks(101, 0).unwrap().collect();
        let joined: String = chunks.iter().map(|(_, c)| c.as_ref()).collect();
        assert_eq!(joined, text);
        let with_overlap: Vec<_> = h.chunks(100, 10).unwrap().collect();
        assert!(
            with_overlap
                .windows(2)
                .all(|w| w[1].0 < w[0].0 + w[0].1.len() as u64)
        );
        assert!(h.chunks(10, 10).is_err());
        let (lc, i) = handle("");
        assert_eq!(lc.docs[i].chunks(10, 0).unwrap().count(), 0);
        assert!(lc.docs[i].search("x", 5, false).unwrap().is_empty());
    }

    #[test]
    fn files_larger_than_ram_are_mapped_not_read() {
        let dir = std::env::temp_dir().join(format!("rlm-huge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("huge.txt");
        let size: u64 = 32 << 30; // larger than the 24 GiB of our machines; sparse on disk
        {
            use std::io::{Seek, SeekFrom, Write};
            let mut f = std::fs::File::create(&p).unwrap();
            f.write_all(b"header line\n").unwrap();
            f.write_all("filler line\n".repeat(8000).as_bytes())
                .unwrap(); // text past the 64 KiB probe
            f.set_len(size).unwrap();
            f.seek(SeekFrom::Start(size - 10)).unwrap();
            f.write_all(b"last line\n").unwrap();
        }
        let h = ContextHandle::open(&p).unwrap();
        assert_eq!(h.size(), size);
        assert_eq!(h.head(11), "header line");
        assert_eq!(h.tail(10), "last line\n");
        assert_eq!(h.read(size - 5, 100).unwrap(), "line\n");
        drop(h);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
