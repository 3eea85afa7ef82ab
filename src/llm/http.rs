//! The only module that speaks HTTP: one shared `ureq` agent per client, calls run on the
//! blocking pool, retries with backoff shared by all callers of the same client.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::{Completion, CompletionRequest, LanguageModel, anthropic, gemini, openai};
use crate::BoxFuture;
use crate::config::{LlmConfig, Provider};
use crate::error::{Error, Result};
use crate::runtime::{self, Limiter};

/// A provider client: OpenAI chat completions (and every compatible server: vLLM, Ollama,
/// llama.cpp's server, LM Studio, OpenRouter), Anthropic Messages, or Gemini
/// `generateContent`, chosen by [`LlmConfig::provider`].
///
/// Cheap to clone; clones share the connection pool, the in-flight limit and the backoff
/// state, so many concurrent runs hitting a 429 back off together instead of stampeding.
/// The API key is sent only in a header and never appears in errors or `Debug` output.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    agent: ureq::Agent,
    base: String,
    cfg: LlmConfig,
    limiter: Limiter,
    not_before: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("provider", &self.inner.cfg.provider)
            .field("base_url", &self.inner.base)
            .field("model", &self.inner.cfg.model)
            .field(
                "api_key",
                &self.inner.cfg.api_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl HttpClient {
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
        HttpClient {
            inner: Arc::new(Inner {
                agent,
                base: cfg.base_url.trim_end_matches('/').to_string(),
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

impl Inner {
    fn error(&self, status: Option<u16>, retryable: bool, message: String) -> Error {
        Error::Llm {
            provider: self.cfg.provider.as_str().into(),
            status,
            retryable,
            message,
        }
    }

    /// URL and body of a request, per provider.
    fn encode(&self, req: &CompletionRequest) -> (String, Vec<u8>) {
        let c = &self.cfg;
        let model = req.model.as_deref().unwrap_or(&c.model);
        let (url, body) = match c.provider {
            Provider::OpenAi => (
                format!("{}/chat/completions", self.base),
                serde_json::to_vec(&openai::ChatRequest::from_request(
                    req,
                    &c.model,
                    c.temperature,
                    c.max_tokens,
                )),
            ),
            Provider::Anthropic => (
                format!("{}/messages", self.base),
                serde_json::to_vec(&anthropic::request_body(
                    req,
                    &c.model,
                    c.temperature,
                    c.max_tokens,
                    c.prompt_cache,
                )),
            ),
            Provider::Gemini => (
                format!("{}{}", self.base, gemini::path(model)),
                serde_json::to_vec(&gemini::request_body(req, c.temperature, c.max_tokens)),
            ),
        };
        (url, body.expect("request bodies serialize"))
    }

    fn parse(&self, body: &str) -> std::result::Result<Completion, String> {
        match self.cfg.provider {
            Provider::OpenAi => openai::parse_response(body, &self.cfg.model),
            Provider::Anthropic => anthropic::parse_response(body, &self.cfg.model),
            Provider::Gemini => gemini::parse_response(body, &self.cfg.model),
        }
    }

    /// The message of an error response. A server (a gateway, a proxy, a compatible server)
    /// may echo the request's key in it ("invalid key sk-..."): the key is cut out, so it
    /// never reaches an error, a log, a result or a trajectory.
    fn error_message(&self, body: &str) -> String {
        let m = match self.cfg.provider {
            Provider::OpenAi => openai::error_message(body),
            Provider::Anthropic => anthropic::error_message(body),
            Provider::Gemini => gemini::error_message(body),
        };
        match &self.cfg.api_key {
            Some(k) if k.len() >= 4 && m.contains(k.as_str()) => {
                m.replace(k.as_str(), "[REDACTED]")
            }
            _ => m,
        }
    }

    /// One HTTP exchange (blocking).
    fn attempt(&self, url: &str, body: &[u8]) -> Attempt {
        let mut req = self
            .agent
            .post(url)
            .header("Content-Type", "application/json");
        if self.cfg.provider == Provider::Anthropic {
            req = req.header("anthropic-version", anthropic::API_VERSION);
        }
        if let Some(k) = &self.cfg.api_key {
            req = match self.cfg.provider {
                Provider::OpenAi => req.header("Authorization", format!("Bearer {k}")),
                Provider::Anthropic => req.header("x-api-key", k),
                Provider::Gemini => req.header("x-goog-api-key", k),
            };
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
                let message = format!("request to {url} failed: {e}");
                return if retryable {
                    Attempt::Retry {
                        status: None,
                        message,
                        after: None,
                    }
                } else {
                    Attempt::Fail(self.error(None, false, message))
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
            return match self.parse(&text) {
                Ok(c) => Attempt::Done(c),
                Err(m) => Attempt::Fail(self.error(Some(status), false, m)),
            };
        }
        let message = self.error_message(&text);
        // Gemini says how long to wait in the body (`RetryInfo.retryDelay`), not a header.
        let after = after.or_else(|| {
            (self.cfg.provider == Provider::Gemini)
                .then(|| gemini::retry_delay(&text))
                .flatten()
        });
        if matches!(status, 408 | 409 | 429 | 500 | 502 | 503 | 504 | 529) {
            Attempt::Retry {
                status: Some(status),
                message,
                after,
            }
        } else {
            Attempt::Fail(self.error(Some(status), false, message))
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
        // A server cannot make a client wait more than a day (nor panic it with 1e300).
        return (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(86_400.0)));
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
    if hms.len() != 3
        || !(1970..=9999).contains(&year)
        || !(1..=31).contains(&day)
        || hms.iter().any(|x| !(0..=60).contains(x))
    {
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
    Some(Duration::from_secs((epoch - now).clamp(0, 86_400) as u64))
}

impl LanguageModel for HttpClient {
    fn complete(&self, request: CompletionRequest) -> BoxFuture<'static, Result<Completion>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let (url, body) = inner.encode(&request);
            let body = Arc::new((url, body));
            let attempts = inner.cfg.max_attempts.max(1);
            let mut last = None;
            for n in 0..attempts {
                if let Some(w) = inner.wait_time() {
                    runtime::sleep(w).await;
                }
                let outcome = {
                    let _permit = inner.limiter.acquire().await;
                    let (i, b) = (inner.clone(), body.clone());
                    runtime::unblock(move || i.attempt(&b.0, &b.1)).await
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
            Err(inner.error(
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
        // Hostile values neither panic nor stall a client for long.
        assert_eq!(
            parse_retry_after("1e300"),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 99999999999 07:28:00 GMT"),
            None
        );
        assert_eq!(parse_retry_after("Wed, 21 Oct 2999 07:28:99 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
        let j = jitter_fraction();
        assert!((0.0..1.0).contains(&j));
    }
}
