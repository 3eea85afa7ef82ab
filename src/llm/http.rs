//! The only module that speaks HTTP: one shared `ureq` agent, calls run on the blocking pool,
//! retries with backoff shared by all callers of the same client.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::openai;
use super::{Completion, CompletionRequest, LanguageModel};
use crate::config::LlmConfig;
use crate::error::{Error, Result};
use crate::runtime::{self, Limiter};
use crate::sandbox::BoxFuture;

/// An OpenAI chat-completions client (also for vLLM, Ollama, llama.cpp's server, LM Studio,
/// OpenRouter: anything that speaks the format at a configurable base URL).
///
/// Cheap to clone; clones share the connection pool, the in-flight limit and the backoff
/// state, so many concurrent runs hitting a 429 back off together instead of stampeding.
#[derive(Clone)]
pub struct OpenAiClient {
    inner: Arc<Inner>,
}

struct Inner {
    agent: ureq::Agent,
    url: String,
    auth: Option<String>,
    cfg: LlmConfig,
    limiter: Limiter,
    not_before: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for OpenAiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiClient")
            .field("url", &self.inner.url)
            .field("model", &self.inner.cfg.model)
            .field("api_key", &self.inner.auth.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl OpenAiClient {
    /// A client for `cfg`. A missing API key is accepted (local servers need none).
    pub fn new(cfg: &LlmConfig) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(cfg.request_timeout))
            .timeout_global(Some(cfg.request_timeout + Duration::from_secs(30)))
            .max_idle_connections(cfg.max_in_flight.max(10))
            .max_idle_connections_per_host(cfg.max_in_flight.max(3))
            .max_idle_age(Duration::from_secs(10))
            .build()
            .into();
        OpenAiClient {
            inner: Arc::new(Inner {
                agent,
                url: format!("{}/chat/completions", cfg.base_url.trim_end_matches('/')),
                auth: cfg.api_key.as_ref().map(|k| format!("Bearer {k}")),
                cfg: cfg.clone(),
                limiter: Limiter::new(cfg.max_in_flight),
                not_before: Mutex::new(None),
            }),
        }
    }
}

enum Attempt {
    Done(Completion),
    Retry {
        status: Option<u16>,
        message: String,
        after: Option<Duration>,
    },
    Fail(Error),
}

fn llm_error(status: Option<u16>, retryable: bool, message: String) -> Error {
    Error::Llm {
        provider: "openai".into(),
        status,
        retryable,
        message,
    }
}

impl Inner {
    /// One HTTP exchange (blocking).
    fn attempt(&self, body: &[u8]) -> Attempt {
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let mut resp = match req.send(body) {
            Ok(r) => r,
            Err(e) => {
                let retryable = matches!(
                    e,
                    ureq::Error::Timeout(_)
                        | ureq::Error::Io(_)
                        | ureq::Error::ConnectionFailed
                        | ureq::Error::HostNotFound
                );
                // ureq errors never include request headers, so the key cannot leak here.
                let message = format!("request to {} failed: {e}", self.url);
                return if retryable {
                    Attempt::Retry {
                        status: None,
                        message,
                        after: None,
                    }
                } else {
                    Attempt::Fail(llm_error(None, false, message))
                };
            }
        };
        let status = resp.status().as_u16();
        let after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = match resp
            .body_mut()
            .with_config()
            .limit(32 << 20)
            .read_to_string()
        {
            Ok(t) => t,
            Err(e) => {
                return Attempt::Retry {
                    status: Some(status),
                    message: format!("reading the response failed: {e}"),
                    after,
                };
            }
        };
        if (200..300).contains(&status) {
            return match openai::parse_response(&text, &self.cfg.model) {
                Ok(c) => Attempt::Done(c),
                Err(m) => Attempt::Fail(llm_error(Some(status), false, m)),
            };
        }
        let message = openai::error_message(&text);
        if matches!(status, 408 | 409 | 429 | 500 | 502 | 503 | 504 | 529) {
            Attempt::Retry {
                status: Some(status),
                message,
                after,
            }
        } else {
            Attempt::Fail(llm_error(Some(status), false, message))
        }
    }

    fn backoff(&self, attempt: u32, after: Option<Duration>) -> Duration {
        let base = Duration::from_millis(500).saturating_mul(1 << attempt.min(6));
        let jitter = jitter_fraction();
        let d = after
            .unwrap_or(base.mul_f64(0.5 + jitter))
            .min(Duration::from_secs(120));
        let until = Instant::now() + d;
        let mut nb = self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        *nb = Some(nb.map_or(until, |x| x.max(until)));
        d
    }

    fn wait_time(&self) -> Option<Duration> {
        let nb = *self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        nb.and_then(|t| t.checked_duration_since(Instant::now()))
    }
}

/// A pseudo-random number in [0, 1) (no RNG dependency needed for jitter).
fn jitter_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// `Retry-After`: delta seconds or an HTTP date.
pub(crate) fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<f64>() {
        return (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s));
    }
    // IMF-fixdate: "Wed, 21 Oct 2015 07:28:00 GMT"
    let parts: Vec<&str> = v.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: i64 = parts[1].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as i64
        + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<i64> = parts[4]
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if hms.len() != 3 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let epoch = days * 86400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?
        .as_secs() as i64;
    Some(Duration::from_secs((epoch - now).max(0) as u64))
}

impl LanguageModel for OpenAiClient {
    fn complete(&self, request: CompletionRequest) -> BoxFuture<'static, Result<Completion>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let body = serde_json::to_vec(&openai::ChatRequest::from_request(
                &request,
                &inner.cfg.model,
                inner.cfg.temperature,
                inner.cfg.max_tokens,
            ))
            .map_err(|e| llm_error(None, false, format!("cannot encode request: {e}")))?;
            let body = Arc::new(body);
            let attempts = inner.cfg.max_attempts.max(1);
            let mut last = None;
            for n in 0..attempts {
                if let Some(w) = inner.wait_time() {
                    runtime::sleep(w).await;
                }
                let outcome = {
                    let _permit = inner.limiter.acquire().await;
                    let (i, b) = (inner.clone(), body.clone());
                    runtime::unblock(move || i.attempt(&b)).await
                };
                match outcome {
                    Attempt::Done(c) => return Ok(c),
                    Attempt::Fail(e) => return Err(e),
                    Attempt::Retry {
                        status,
                        message,
                        after,
                    } => {
                        last = Some((status, message));
                        if n + 1 < attempts {
                            let d = inner.backoff(n, after);
                            runtime::sleep(d).await;
                        }
                    }
                }
            }
            let (status, message) = last.unwrap_or((None, "no attempt made".into()));
            Err(llm_error(
                status,
                true,
                format!("{message} (gave up after {attempts} attempts)"),
            ))
        })
    }

    fn model(&self) -> &str {
        &self.inner.cfg.model
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
        let j = jitter_fraction();
        assert!((0.0..1.0).contains(&j));
    }
}
