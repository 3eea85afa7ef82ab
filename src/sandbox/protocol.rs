//! Host ↔ REPL messages (pure code): 4-byte big-endian length + one JSON object, on pipes of
//! their own (never the user's stdout/stderr).
//!
//! The REPL side is untrusted: frames are size-limited and validated; anything malformed ends
//! the session.

use serde::{Deserialize, Serialize};

/// Largest frame the host accepts from the REPL.
pub(crate) const MAX_FRAME: usize = 16 << 20;

/// Messages the host sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum HostMsg {
    /// Run one cell.
    Exec { id: u64, code: String },
    /// The answer to a [`ReplMsg::Call`].
    Reply {
        call_id: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        value: Option<serde_json::Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// Messages the REPL sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ReplMsg {
    /// The driver is up.
    Ready {
        python: String,
        /// The kernel release the REPL sees (gVisor reports its own, `4.4.0`).
        #[serde(default)]
        kernel: String,
    },
    /// A cell finished.
    Done {
        id: u64,
        ok: bool,
        #[serde(default)]
        final_answer: Option<String>,
        #[serde(default)]
        memory_error: bool,
    },
    /// Output of the cell (container mode only, where stdout/stderr are multiplexed onto the
    /// protocol channel); `data` holds one byte per character (Latin-1).
    Output { stream: String, data: String },
    /// A request from code in the cell to the host (e.g. `llm_query`), answered with
    /// [`HostMsg::Reply`].
    Call {
        id: u64,
        call_id: u64,
        name: String,
        args: serde_json::Value,
    },
}

/// Encodes one frame.
pub(crate) fn encode(msg: &HostMsg) -> Vec<u8> {
    let body = serde_json::to_vec(msg).expect("host messages serialize");
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Incremental frame decoder.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub(crate) fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete message, `Ok(None)` when more bytes are needed, or an error for an
    /// oversized or malformed frame.
    pub(crate) fn next(&mut self) -> Result<Option<ReplMsg>, String> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > MAX_FRAME {
            return Err(format!("REPL sent a {len}-byte frame (limit {MAX_FRAME})"));
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let msg = serde_json::from_slice::<ReplMsg>(&self.buf[4..4 + len])
            .map_err(|e| format!("REPL sent a malformed message: {e}"));
        self.buf.drain(..4 + len);
        msg.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(json: &str) -> Vec<u8> {
        let mut v = (json.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(json.as_bytes());
        v
    }

    #[test]
    fn decodes_split_frames() {
        let mut d = Decoder::default();
        let f = frame(r#"{"type":"done","id":3,"ok":true,"final_answer":"42"}"#);
        d.push(&f[..5]);
        assert_eq!(d.next(), Ok(None));
        d.push(&f[5..]);
        d.push(&frame(r#"{"type":"ready","python":"3.11"}"#));
        assert_eq!(
            d.next(),
            Ok(Some(ReplMsg::Done {
                id: 3,
                ok: true,
                final_answer: Some("42".into()),
                memory_error: false
            }))
        );
        assert_eq!(
            d.next(),
            Ok(Some(ReplMsg::Ready {
                python: "3.11".into(),
                kernel: String::new()
            }))
        );
        assert_eq!(d.next(), Ok(None));
    }

    #[test]
    fn rejects_oversized_and_malformed() {
        let mut d = Decoder::default();
        d.push(&u32::MAX.to_be_bytes());
        assert!(d.next().unwrap_err().contains("frame"));
        let mut d = Decoder::default();
        d.push(&frame(r#"{"type":"exec","id":1}"#));
        assert!(d.next().unwrap_err().contains("malformed"));
    }

    #[test]
    fn host_messages_round_trip() {
        let e = encode(&HostMsg::Exec {
            id: 1,
            code: "print(1)".into(),
        });
        let len = u32::from_be_bytes([e[0], e[1], e[2], e[3]]) as usize;
        assert_eq!(len, e.len() - 4);
        let v: serde_json::Value = serde_json::from_slice(&e[4..]).unwrap();
        assert_eq!(v["type"], "exec");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let mut d = Decoder::default();
            for c in chunks {
                d.push(&c);
                while let Ok(Some(_)) = d.next() {}
            }
        }
    }
}
