//! Capped capture of one output stream (pure): the first and last `cap / 2` bytes are kept,
//! with a marker saying how much was cut in between.

/// Output of one stream, capped.
#[derive(Debug, Default)]
pub(crate) struct Capture {
    head: Vec<u8>,
    tail: Vec<u8>,
    total: u64,
    cap: usize,
}

impl Capture {
    pub(crate) fn new(cap: usize) -> Self {
        Capture {
            cap,
            ..Default::default()
        }
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        let half = self.cap / 2;
        let room = half.saturating_sub(self.head.len());
        let (h, t) = data.split_at(room.min(data.len()));
        self.head.extend_from_slice(h);
        if !t.is_empty() {
            self.tail.extend_from_slice(t);
            if self.tail.len() > 2 * half.max(1) {
                let cut = self.tail.len() - half;
                self.tail.drain(..cut);
            }
        }
    }

    /// The captured text (lossy UTF-8), and a reset for the next cell.
    pub(crate) fn finish(&mut self) -> String {
        let half = self.cap / 2;
        if self.tail.len() > half {
            let cut = self.tail.len() - half;
            self.tail.drain(..cut);
        }
        let kept = (self.head.len() + self.tail.len()) as u64;
        let mut out = String::from_utf8_lossy(&self.head).into_owned();
        if self.total > kept {
            out.push_str(&format!(
                "\n[... {} bytes of output cut (limit {} bytes per stream) ...]\n",
                self.total - kept,
                self.cap
            ));
        }
        out.push_str(&String::from_utf8_lossy(&self.tail));
        self.head.clear();
        self.tail.clear();
        self.total = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_head_and_tail() {
        let mut c = Capture::new(10);
        for _ in 0..1000 {
            c.push(b"0123456789");
        }
        let s = c.finish();
        assert!(s.starts_with("01234"));
        assert!(s.ends_with("56789"));
        assert!(s.contains("9990 bytes of output cut"), "{s}");
        c.push(b"abc");
        assert_eq!(c.finish(), "abc");
    }
}
