//! Host ↔ REPL messages (pure code): 4-byte big-endian length + one JSON object, on pipes of
//! their own (never the code's stdout/stderr), and the typed host calls they carry.
//!
//! The REPL side is untrusted: frames are size-limited and validated, host calls are decoded
//! into [`HostCall`] (anything else is refused before the host acts on it), and every frame
//! about a cell must echo that cell's id and fresh token.

use serde::{Deserialize, Serialize};

use crate::context::Context;

/// Largest frame the host accepts from the REPL.
pub(crate) const MAX_FRAME: usize = 16 << 20;

/// Messages the host sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum HostMsg {
    /// Run one cell. `token` is fresh per cell; every frame about the cell echoes it.
    Exec {
        id: u64,
        token: String,
        code: String,
    },
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
        #[serde(default)]
        token: String,
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
        #[serde(default)]
        token: String,
        call_id: u64,
        name: String,
        args: serde_json::Value,
    },
}

/// A request from the model's code to the host, decoded and validated.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum HostCall {
    /// `llm_query(prompt, model=None)`.
    LlmQuery {
        /// The prompt.
        prompt: String,
        /// A model the code asked for (checked against the allowed list by the host).
        model: Option<String>,
    },
    /// `llm_query_batched(prompts, model=None)`.
    LlmQueryBatched {
        /// The prompts, answered in this order.
        prompts: Vec<String>,
        /// A model the code asked for.
        model: Option<String>,
    },
    /// `rlm_query(prompt, context=None)`: a child run.
    RlmQuery {
        /// The child's question.
        prompt: String,
        /// The child's context (text or documents built by the code).
        context: Option<Context>,
    },
    /// `rlm_query_batched(prompts, contexts=None)`.
    RlmQueryBatched {
        /// The children's questions.
        prompts: Vec<String>,
        /// One context per prompt (all `None` when the code gave none).
        contexts: Vec<Option<Context>>,
    },
    /// A host tool: the name the code called (checked against the run's tools by the host)
    /// and its arguments, a JSON object as text (checked against the tool's schema).
    Tool {
        /// The tool's name.
        name: String,
        /// The arguments.
        args: String,
    },
}

impl HostCall {
    /// The REPL function this call came from.
    pub fn name(&self) -> &'static str {
        match self {
            HostCall::LlmQuery { .. } => "llm_query",
            HostCall::LlmQueryBatched { .. } => "llm_query_batched",
            HostCall::RlmQuery { .. } => "rlm_query",
            HostCall::RlmQueryBatched { .. } => "rlm_query_batched",
            HostCall::Tool { .. } => "tool",
        }
    }
}

/// The host's answer to a [`HostCall`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostReply {
    /// One string (a failed sub-call is a string starting with `Error:`).
    Text(String),
    /// One string per prompt, in prompt order.
    Texts(Vec<String>),
    /// Raised in the code as a `RuntimeError` with this message.
    Raise(String),
}

/// Decodes a call frame's `name` and `args` into a [`HostCall`]. Unknown functions and
/// malformed arguments are errors the code sees (raised as exceptions); extra fields are
/// ignored, so nothing in a frame can raise a host-side limit.
pub(crate) fn decode_call(name: &str, args: &serde_json::Value) -> Result<HostCall, String> {
    let model = || -> Result<Option<String>, String> {
        match args.get("model") {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(m)) => Ok(Some(m.clone())),
            Some(_) => Err(format!("{name}: model must be a str or None")),
        }
    };
    match name {
        "llm_query" => Ok(HostCall::LlmQuery {
            prompt: str_arg(args, "prompt", name)?,
            model: model()?,
        }),
        "llm_query_batched" => Ok(HostCall::LlmQueryBatched {
            prompts: str_list(args, "prompts", name)?,
            model: model()?,
        }),
        "rlm_query" => Ok(HostCall::RlmQuery {
            prompt: str_arg(args, "prompt", name)?,
            context: context_arg(args.get("context"), name)?,
        }),
        "rlm_query_batched" => {
            let prompts = str_list(args, "prompts", name)?;
            let contexts = match args.get("contexts") {
                None | Some(serde_json::Value::Null) => vec![None; prompts.len()],
                Some(serde_json::Value::Array(cs)) if cs.len() == prompts.len() => cs
                    .iter()
                    .map(|c| context_arg(Some(c), name))
                    .collect::<Result<_, _>>()?,
                Some(_) => {
                    return Err(format!(
                        "{name}: contexts must be None or a list as long as prompts"
                    ));
                }
            };
            Ok(HostCall::RlmQueryBatched { prompts, contexts })
        }
        "tool" => match args.get("args") {
            Some(a @ serde_json::Value::Object(_)) => Ok(HostCall::Tool {
                name: str_arg(args, "name", name)?,
                args: a.to_string(),
            }),
            _ => Err("tool: args must be a dict".into()),
        },
        other => Err(format!("unknown host function {other:?}")),
    }
}

/// The JSON value / error text a [`HostReply`] travels as.
pub(crate) fn encode_reply(call_id: u64, reply: HostReply) -> HostMsg {
    let (value, error) = match reply {
        HostReply::Text(t) => (Some(serde_json::Value::String(t)), None),
        HostReply::Texts(ts) => (
            Some(serde_json::Value::Array(
                ts.into_iter().map(serde_json::Value::String).collect(),
            )),
            None,
        ),
        HostReply::Raise(e) => (None, Some(e)),
    };
    HostMsg::Reply {
        call_id,
        value,
        error,
    }
}

fn str_arg(args: &serde_json::Value, key: &str, func: &str) -> Result<String, String> {
    args.get(key)
        .and_then(|p| p.as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("{func}: {key} must be a str"))
}

fn str_list(args: &serde_json::Value, key: &str, func: &str) -> Result<Vec<String>, String> {
    args.get(key)
        .and_then(|p| p.as_array())
        .ok_or_else(|| format!("{func}: {key} must be a list of str"))?
        .iter()
        .map(|p| {
            p.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{func}: {key} must be a list of str"))
        })
        .collect()
}

/// A context passed from the REPL: a string, a list of strings, or nothing.
fn context_arg(v: Option<&serde_json::Value>, func: &str) -> Result<Option<Context>, String> {
    let bad = || format!("{func}: context must be a str or a list of str");
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(Context::Text(s.clone()))),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()
            .map(|d| Some(Context::Documents(d))),
        Some(_) => Err(bad()),
    }
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
    use serde_json::json;

    fn frame(json: &str) -> Vec<u8> {
        let mut v = (json.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(json.as_bytes());
        v
    }

    #[test]
    fn decodes_split_frames() {
        let mut d = Decoder::default();
        let f = frame(r#"{"type":"done","id":3,"token":"t","ok":true,"final_answer":"42"}"#);
        d.push(&f[..5]);
        assert_eq!(d.next(), Ok(None));
        d.push(&f[5..]);
        d.push(&frame(r#"{"type":"ready","python":"3.11"}"#));
        assert_eq!(
            d.next(),
            Ok(Some(ReplMsg::Done {
                id: 3,
                token: "t".into(),
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
            token: "abc".into(),
            code: "print(1)".into(),
        });
        let len = u32::from_be_bytes([e[0], e[1], e[2], e[3]]) as usize;
        assert_eq!(len, e.len() - 4);
        let v: serde_json::Value = serde_json::from_slice(&e[4..]).unwrap();
        assert_eq!(
            (v["type"].as_str(), v["token"].as_str()),
            (Some("exec"), Some("abc"))
        );
        let r = encode(&encode_reply(7, HostReply::Texts(vec!["a".into()])));
        let v: serde_json::Value = serde_json::from_slice(&r[4..]).unwrap();
        assert_eq!(v, json!({"type": "reply", "call_id": 7, "value": ["a"]}));
    }

    #[test]
    fn calls_are_decoded_and_validated() {
        assert_eq!(
            decode_call(
                "llm_query",
                &json!({"prompt": "p", "model": null, "depth": -5})
            ),
            Ok(HostCall::LlmQuery {
                prompt: "p".into(),
                model: None
            })
        );
        assert_eq!(
            decode_call("rlm_query", &json!({"prompt": "p", "context": ["a", "b"]})),
            Ok(HostCall::RlmQuery {
                prompt: "p".into(),
                context: Some(Context::Documents(vec!["a".into(), "b".into()]))
            })
        );
        let batched = decode_call(
            "rlm_query_batched",
            &json!({"prompts": ["x", "y"], "contexts": null}),
        )
        .unwrap();
        assert_eq!(
            batched,
            HostCall::RlmQueryBatched {
                prompts: vec!["x".into(), "y".into()],
                contexts: vec![None, None]
            }
        );
        for (name, args) in [
            ("llm_query", json!({})),
            ("llm_query", json!({"prompt": 5})),
            ("llm_query", json!({"prompt": "p", "model": 3})),
            ("llm_query_batched", json!({"prompts": "p"})),
            ("rlm_query", json!({"prompt": "p", "context": {"a": 1}})),
            (
                "rlm_query_batched",
                json!({"prompts": ["a"], "contexts": [null, null]}),
            ),
            ("os_system", json!({"cmd": "ls"})),
            ("tool", json!({"name": "t", "args": [1]})),
            ("tool", json!({"name": 5, "args": {}})),
        ] {
            assert!(decode_call(name, &args).is_err(), "{name} {args}");
        }
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
