//! The HTTP client every source shares: one GET, with a timeout, polite retries and an honest
//! User-Agent.
//!
//! Use it to fetch the text of one URL from a source's public API. It decides which failures
//! are worth another try (timeouts, dropped connections, 429 and 5xx) and how long to wait, and
//! turns what is left into a [`SourceError`] that names the URL and says what to check.
//!
//! It also sends conditional GETs (`If-None-Match` / `If-Modified-Since`) for sources that keep
//! the validators of their last answer, and spaces requests through a [`RequestSpacing`] for services
//! that ask for it (the arXiv API: one request at a time, 3 s apart).
//!
//! It is not for parsing bodies (each source does that), for storing validators (the fetch job
//! keeps them in `source_state`), or for anything that needs credentials.

use super::SourceError;
use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{
    ETAG, HeaderMap, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, RETRY_AFTER,
};
use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::Url;

/// The validators of an earlier answer, sent back so the server can answer 304 Not Modified.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }

    fn from_headers(headers: &HeaderMap) -> Self {
        let get = |name| {
            headers
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        Validators {
            etag: get(ETAG),
            last_modified: get(LAST_MODIFIED),
        }
    }
}

/// The answer to a conditional GET.
#[derive(Debug)]
pub enum Fetched {
    /// 304: what we had is still current.
    NotModified,
    Body {
        text: String,
        /// To send next time.
        validators: Validators,
    },
}

/// Spaces requests: one at a time, each starting at least `interval` after the one before.
/// Clones share the turn, so one held process-wide spaces the whole process's requests.
#[derive(Clone, Debug)]
pub struct RequestSpacing {
    interval: Duration,
    last_end: Arc<tokio::sync::Mutex<Option<Instant>>>,
}

impl RequestSpacing {
    pub fn new(interval: Duration) -> Self {
        RequestSpacing {
            interval,
            last_end: Arc::default(),
        }
    }

    /// The same turn as `self`, with another interval (the configured one may change on reload).
    pub fn with_interval(&self, interval: Duration) -> Self {
        RequestSpacing {
            interval,
            last_end: self.last_end.clone(),
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits for this caller's turn (the interval after the previous request ended) and holds
    /// it until the guard drops: no other request through this spacing starts meanwhile. The
    /// caller writes the time its request ended into the guard.
    async fn turn(&self) -> tokio::sync::MutexGuard<'_, Option<Instant>> {
        let mut last = self.last_end.lock().await;
        if let Some(at) = *last {
            let ready = at + self.interval;
            let now = Instant::now();
            if ready > now {
                tracing::debug!(
                    wait_ms = (ready - now).as_millis() as u64,
                    "pacing: waiting for the source's request interval"
                );
                tokio::time::sleep_until(ready.into()).await;
            }
        }
        *last = Some(Instant::now());
        last
    }
}

/// No single wait between two attempts is longer than this, whatever the backoff or the server's
/// `Retry-After` asks: a fetch job that sleeps for an hour looks hung to the operator.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// How a source talks HTTP.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// For a whole request: connecting, sending and reading the body.
    pub timeout: Duration,
    /// Extra attempts after the first one, for failures that may pass.
    pub retries: u32,
    /// The wait before the first retry; each later retry waits twice as long as the one before.
    pub backoff: Duration,
    pub user_agent: String,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            timeout: Duration::from_secs(30),
            retries: 3,
            backoff: Duration::from_secs(1),
            user_agent: user_agent(""),
        }
    }
}

/// The User-Agent paperboy sends. Public APIs (arXiv's in particular) ask clients to say who they
/// are and how to reach the operator, so a contact is appended when one is configured.
pub fn user_agent(contact: &str) -> String {
    let base = format!(
        "paperboy/{} (+https://github.com/paperboy-digest/paperboy)",
        env!("CARGO_PKG_VERSION")
    );
    let contact = contact.trim();
    if contact.is_empty() {
        base
    } else {
        format!("{base}; {contact}")
    }
}

/// A cheap-to-clone handle: clones share one connection pool.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

/// What went wrong with one attempt, before deciding whether to try again.
#[derive(Debug)]
enum Failure {
    Status {
        status: StatusCode,
        retry_after: Option<Duration>,
    },
    Timeout,
    /// The connection could not be made, or broke before the whole answer arrived.
    Network(String),
    /// The answer arrived but could not be decoded (a broken gzip stream, say): asking again
    /// would most likely get the same bytes.
    Undecodable(String),
    /// The request could not even be built; nothing to retry.
    Request(String),
}

impl Failure {
    fn is_retryable(&self) -> bool {
        match self {
            Failure::Status { status, .. } => {
                *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
            }
            Failure::Timeout | Failure::Network(_) => true,
            Failure::Undecodable(_) | Failure::Request(_) => false,
        }
    }

    fn into_error(self, url: &Url, attempts: u32, timeout: Duration) -> SourceError {
        let url = url.to_string();
        match self {
            Failure::Status { status, .. } => SourceError::Status {
                url,
                status: status.as_u16(),
                attempts,
                hint: status_hint(status).to_string(),
            },
            Failure::Timeout => SourceError::Timeout {
                url,
                // Rounded up so that a sub-second timeout does not read "within 0 s".
                timeout_secs: timeout.as_millis().div_ceil(1000) as u64,
                attempts,
            },
            Failure::Network(detail) => SourceError::Connect {
                url,
                attempts,
                detail,
            },
            Failure::Undecodable(detail) => SourceError::Malformed {
                url,
                detail: format!("the answer could not be decoded ({detail})"),
            },
            Failure::Request(detail) => SourceError::Config(format!(
                "cannot request {url}: {detail}; check the source's `base_url`"
            )),
        }
    }
}

/// What the reader of a `Status` error should check, by status. Starts with "; " because the
/// error message appends it right after the attempt count.
fn status_hint(status: StatusCode) -> &'static str {
    match status.as_u16() {
        404 | 410 => {
            "; nothing is published at this address, so the source's `base_url` (or its path \
             prefix) may be wrong"
        }
        429 => {
            "; the source is rate limiting paperboy: fetch less often (`schedule.fetch`) or try \
             again later"
        }
        401 | 403 => {
            "; the source refused access: it may be blocking this network or this User-Agent"
        }
        400 | 422 => {
            "; the source did not understand the request: check the source's `base_url` and \
             that the date is valid"
        }
        500..=599 => "; the source is failing on its side: this usually passes, try again later",
        _ => "; check the source's `base_url`",
    }
}

/// The wait before retry number `retry` (0 for the first retry): `backoff * 2^retry` plus up to
/// half of that again at random, so that several instances that failed together do not come back
/// in lockstep. Capped at [`MAX_DELAY`].
fn backoff_delay(backoff: Duration, retry: u32) -> Duration {
    let factor = 2u32.saturating_pow(retry.min(20));
    let base = backoff.saturating_mul(factor).min(MAX_DELAY);
    let half_ms = (base.as_millis() / 2) as u64;
    let jitter_ms = if half_ms == 0 {
        0
    } else {
        rand::thread_rng().gen_range(0..=half_ms)
    };
    (base + Duration::from_millis(jitter_ms)).min(MAX_DELAY)
}

/// `Retry-After` in its seconds form. The HTTP-date form is ignored (the backoff applies
/// instead): servers that rate limit APIs send seconds in practice, and trusting a remote clock
/// to compute a wait is asking for trouble.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: u64 = value.parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_DELAY))
}

/// reqwest's top-level message is vague ("error sending request"); the cause chain says what
/// actually happened (connection refused, DNS failure, reset).
fn describe(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

impl HttpClient {
    pub fn new(settings: &HttpSettings) -> Result<Self, SourceError> {
        if settings.timeout.is_zero() {
            return Err(SourceError::Config(
                "the source timeout is 0: every request would fail at once; set \
                 `sources.timeout_secs` to a few seconds or more"
                    .to_string(),
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(settings.user_agent.as_str())
            .build()
            .map_err(|e| {
                SourceError::Config(format!(
                    "cannot set up the HTTP client for sources ({}); check that the contact in \
                     the User-Agent `{}` is plain text on one line",
                    describe(e),
                    settings.user_agent
                ))
            })?;
        Ok(HttpClient {
            client,
            timeout: settings.timeout,
            retries: settings.retries,
            backoff: settings.backoff,
        })
    }

    /// GETs `url` and returns its body as text, retrying what may pass.
    pub async fn get_text(&self, url: &Url) -> Result<String, SourceError> {
        match self.get(url, None, None).await? {
            Fetched::Body { text, .. } => Ok(text),
            // Only a conditional request can be answered 304; a server that does anyway sent
            // nothing to read.
            Fetched::NotModified => Err(SourceError::Malformed {
                url: url.to_string(),
                detail: "304 Not Modified to a request that was not conditional".into(),
            }),
        }
    }

    /// As [`HttpClient::get_text`], each attempt (retries too) waiting for its turn at `spacing`.
    pub async fn get_text_paced(
        &self,
        url: &Url,
        spacing: &RequestSpacing,
    ) -> Result<String, SourceError> {
        match self.get(url, None, Some(spacing)).await? {
            Fetched::Body { text, .. } => Ok(text),
            Fetched::NotModified => Err(SourceError::Malformed {
                url: url.to_string(),
                detail: "304 Not Modified to a request that was not conditional".into(),
            }),
        }
    }

    /// A conditional GET: sends `validators` back and returns [`Fetched::NotModified`] on 304.
    pub async fn get_conditional(
        &self,
        url: &Url,
        validators: &Validators,
    ) -> Result<Fetched, SourceError> {
        self.get(url, Some(validators), None).await
    }

    async fn get(
        &self,
        url: &Url,
        validators: Option<&Validators>,
        spacing: Option<&RequestSpacing>,
    ) -> Result<Fetched, SourceError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SourceError::Config(format!(
                "cannot request {url}: paperboy fetches sources over http:// or https:// only; \
                 check the source's `base_url`"
            )));
        }
        let attempts_allowed = self.retries.saturating_add(1);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            tracing::debug!(url = %url, attempt, "GET");
            let attempted = match spacing {
                Some(p) => {
                    let mut turn = p.turn().await;
                    let attempted = self.attempt(url, validators).await;
                    // The interval counts from the end of this request: counted from its start,
                    // a request that reached the server late (a busy network or machine) left
                    // less than the interval before the next one arrived.
                    *turn = Some(Instant::now());
                    attempted
                }
                None => self.attempt(url, validators).await,
            };
            let failure = match attempted {
                Ok(fetched) => return Ok(fetched),
                Err(failure) => failure,
            };
            if !failure.is_retryable() || attempt >= attempts_allowed {
                return Err(failure.into_error(url, attempt, self.timeout));
            }
            let backoff = backoff_delay(self.backoff, attempt - 1);
            let delay = match &failure {
                // The server said when it will be ready; waiting longer than our own backoff
                // would have is fine, coming back sooner than it asked is not.
                Failure::Status {
                    retry_after: Some(asked),
                    ..
                } => (*asked).max(backoff),
                _ => backoff,
            };
            let delay_ms = delay.as_millis() as u64;
            match &failure {
                Failure::Status { status, .. } => tracing::warn!(
                    url = %url,
                    status = status.as_u16(),
                    attempt,
                    delay_ms,
                    "source answered with an error status; retrying"
                ),
                Failure::Timeout => tracing::warn!(
                    url = %url,
                    err = "timeout",
                    timeout_ms = self.timeout.as_millis() as u64,
                    attempt,
                    delay_ms,
                    "source did not answer in time; retrying"
                ),
                Failure::Network(detail) => tracing::warn!(
                    url = %url,
                    err = %detail,
                    attempt,
                    delay_ms,
                    "request to source failed; retrying"
                ),
                Failure::Undecodable(_) | Failure::Request(_) => {}
            }
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(
        &self,
        url: &Url,
        validators: Option<&Validators>,
    ) -> Result<Fetched, Failure> {
        let mut request = self.client.get(url.clone());
        if let Some(v) = validators {
            if let Some(etag) = &v.etag {
                request = request.header(IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &v.last_modified {
                request = request.header(IF_MODIFIED_SINCE, lm);
            }
        }
        let response = request.send().await.map_err(classify)?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED && validators.is_some_and(|v| !v.is_empty()) {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            let retry_after = match status {
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                    retry_after(response.headers())
                }
                _ => None,
            };
            // The body of an error answer is not read: it is not needed, and it is not logged.
            return Err(Failure::Status {
                status,
                retry_after,
            });
        }
        let validators = Validators::from_headers(response.headers());
        let text = response.text().await.map_err(classify)?;
        Ok(Fetched::Body { text, validators })
    }
}

fn classify(err: reqwest::Error) -> Failure {
    if err.is_timeout() {
        Failure::Timeout
    } else if err.is_builder() {
        Failure::Request(describe(err))
    } else if err.is_decode() {
        Failure::Undecodable(describe(err))
    } else {
        Failure::Network(describe(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn user_agent_names_paperboy_and_the_contact() {
        let bare = user_agent("");
        assert_eq!(
            bare,
            format!(
                "paperboy/{} (+https://github.com/paperboy-digest/paperboy)",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(user_agent("   "), bare);
        assert_eq!(
            user_agent("ops@example.org"),
            format!("{bare}; ops@example.org")
        );
    }

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        let base = Duration::from_millis(100);
        for retry in 0..4 {
            let expected = base * 2u32.pow(retry);
            for _ in 0..50 {
                let d = backoff_delay(base, retry);
                assert!(d >= expected, "retry {retry}: {d:?} < {expected:?}");
                assert!(
                    d <= expected + expected / 2,
                    "retry {retry}: {d:?} too long"
                );
            }
        }
        assert_eq!(backoff_delay(Duration::ZERO, 3), Duration::ZERO);
        assert_eq!(backoff_delay(Duration::from_secs(10), 30), MAX_DELAY);
    }

    #[test]
    fn retry_after_in_seconds_only_and_capped() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(1)));
        h.insert(RETRY_AFTER, HeaderValue::from_static(" 3600 "));
        assert_eq!(retry_after(&h), Some(MAX_DELAY));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("-5"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn only_passing_failures_are_retried() {
        let status = |code: u16| Failure::Status {
            status: StatusCode::from_u16(code).unwrap(),
            retry_after: None,
        };
        for code in [429, 500, 502, 503, 504] {
            assert!(status(code).is_retryable(), "{code}");
        }
        for code in [400, 401, 403, 404, 410, 422] {
            assert!(!status(code).is_retryable(), "{code}");
        }
        assert!(Failure::Timeout.is_retryable());
        assert!(Failure::Network("reset".into()).is_retryable());
        assert!(!Failure::Undecodable("gzip".into()).is_retryable());
    }

    #[test]
    fn status_errors_say_what_to_check() {
        let url = Url::parse("https://huggingface.co/api/daily_papers?date=2024-10-25").unwrap();
        let err = Failure::Status {
            status: StatusCode::NOT_FOUND,
            retry_after: None,
        }
        .into_error(&url, 1, Duration::from_secs(30));
        let text = err.to_string();
        assert!(text.contains(url.as_str()), "{text}");
        assert!(text.contains("404"), "{text}");
        assert!(text.contains("base_url"), "{text}");

        let err = Failure::Status {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: None,
        }
        .into_error(&url, 4, Duration::from_secs(30));
        let text = err.to_string();
        assert!(text.contains("rate limiting"), "{text}");
        assert!(text.contains("4 attempt(s)"), "{text}");
    }

    #[test]
    fn sub_second_timeouts_do_not_read_as_zero() {
        let url = Url::parse("http://127.0.0.1:1/").unwrap();
        match Failure::Timeout.into_error(&url, 2, Duration::from_millis(300)) {
            SourceError::Timeout {
                timeout_secs,
                attempts,
                ..
            } => {
                assert_eq!(timeout_secs, 1);
                assert_eq!(attempts, 2);
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
    }

    #[test]
    fn refuses_a_zero_timeout_and_odd_schemes() {
        let settings = HttpSettings {
            timeout: Duration::ZERO,
            ..HttpSettings::default()
        };
        assert!(matches!(
            HttpClient::new(&settings),
            Err(SourceError::Config(_))
        ));
        let client = HttpClient::new(&HttpSettings::default()).unwrap();
        let url = Url::parse("ftp://example.org/papers").unwrap();
        let err = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(client.get_text(&url))
            .unwrap_err();
        assert!(matches!(err, SourceError::Config(_)), "{err}");
        assert!(err.to_string().contains("ftp://example.org/papers"));
    }
}
