//! HTTP output: NDJSON batches POSTed to the processor's `POST /v1/events`, one batch at a
//! time, retried until delivered.
//!
//! - 2xx: delivered; the `{"accepted","rejected","errors"}` answer is tallied and
//!   rejections are logged at warn.
//! - 429, 408 and 5xx, and connection errors: the same batch is retried after
//!   `Retry-After` seconds when the server sends it (capped at 5 minutes), else after an
//!   exponential backoff with jitter (200 ms doubling, capped at 30 s).
//! - Any other status: the server's message is logged at warn and the batch is dropped
//!   (counted in the summary).
//! - After shutdown is signalled, a batch that fails once more is dropped instead of
//!   retried, and so is every batch after it, so shutdown never waits on a server that
//!   is down.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use rand::Rng;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use crate::error::SimError;
use crate::shutdown::wait_shutdown;

/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Cap of the exponential backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// First backoff step.
const BASE_BACKOFF: Duration = Duration::from_millis(200);

/// Delivery tallies.
#[derive(Debug, Clone, Default)]
pub struct HttpStats {
    /// Batches delivered (2xx).
    pub batches: u64,
    /// Retries made.
    pub retries: u64,
    /// Batches dropped (refused with a 4xx, or undeliverable at shutdown).
    pub dropped_batches: u64,
    /// Lines in those batches.
    pub dropped_lines: u64,
    /// Lines the server accepted.
    pub accepted: u64,
    /// Lines the server rejected.
    pub rejected: u64,
    /// Why delivery stopped for good: the server's TLS certificate is not trusted (no
    /// retry can fix that; the fix is a CA file). What was left is in the dropped counts.
    pub fatal: Option<String>,
}

/// Where and how to POST: the one HTTP output of telltale's line producers (`telltale
/// sim`, `telltale probe`).
#[derive(Debug, Clone)]
pub struct HttpTarget {
    client: reqwest::Client,
    url: Url,
    token: Option<String>,
    gzip: bool,
}

#[derive(Deserialize)]
struct IngestAnswer {
    accepted: u64,
    rejected: u64,
    #[serde(default)]
    errors: Vec<serde_json::Value>,
}

impl HttpTarget {
    /// Checks the URL (`http://` or `https://`; an empty path or `/` becomes
    /// `/v1/events`) and builds the client, https verified against the system's CA
    /// certificates plus `tls`'s.
    pub fn new(
        url: &str,
        token: Option<String>,
        gzip: bool,
        tls: &telltale_core::config::ClientTlsConfig,
    ) -> Result<Self, SimError> {
        let bad = |message: &str| SimError::InvalidUrl {
            url: url.to_owned(),
            message: message.to_owned(),
        };
        let mut parsed = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        match parsed.scheme() {
            "http" | "https" => {}
            _ => {
                return Err(bad(
                    "use an http:// or https:// URL, e.g. http://127.0.0.1:8080/v1/events",
                ));
            }
        }
        if parsed.path().is_empty() || parsed.path() == "/" {
            parsed.set_path("/v1/events");
        }
        let builder = telltale_tls::client_builder()
            .user_agent(concat!("telltale/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60));
        let client = telltale_tls::with_client_tls(builder, tls, "the HTTP output", "--tls-ca")
            .map_err(SimError::Tls)?
            .build()
            .map_err(SimError::HttpClient)?;
        Ok(Self {
            client,
            url: parsed,
            token: token.filter(|t| !t.is_empty()),
            gzip,
        })
    }

    /// Delivers every batch received, in order, until the channel closes.
    pub async fn deliver(
        self,
        mut rx: mpsc::Receiver<Bytes>,
        mut shutdown: watch::Receiver<bool>,
    ) -> HttpStats {
        let mut stats = HttpStats::default();
        let mut give_up = false;
        while let Some(batch) = rx.recv().await {
            if give_up {
                // Shutting down and the server is unreachable: do not wait on it again.
                stats.dropped_batches += 1;
                stats.dropped_lines += batch.iter().filter(|&&b| b == b'\n').count() as u64;
                continue;
            }
            give_up = !self.send_batch(batch, &mut stats, &mut shutdown).await;
        }
        stats
    }

    /// Sends one batch, retrying as the module docs say. False when it was dropped
    /// because it could not be delivered before shutdown.
    async fn send_batch(
        &self,
        batch: Bytes,
        stats: &mut HttpStats,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let lines = batch.iter().filter(|&&b| b == b'\n').count() as u64;
        let body = if self.gzip { gzip(&batch) } else { None };
        let compressed = body.is_some();
        let body = body.unwrap_or(batch);
        let mut attempt: u32 = 0;
        loop {
            let mut req = self
                .client
                .post(self.url.clone())
                .header(CONTENT_TYPE, "application/x-ndjson")
                .body(body.clone());
            if compressed {
                req = req.header(CONTENT_ENCODING, "gzip");
            }
            if let Some(t) = &self.token {
                req = req.header(AUTHORIZATION, format!("Bearer {t}"));
            }
            let wait = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = retry_after(resp.headers());
                    let text = match resp.bytes().await {
                        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                        Err(e) => format!("(could not read the answer: {e})"),
                    };
                    if status.is_success() {
                        stats.batches += 1;
                        self.tally(&text, lines, stats);
                        return true;
                    }
                    if !retryable(status) {
                        warn!(
                            url = %self.url,
                            %status,
                            message = %truncate(&text, 500),
                            lines,
                            "the server refused a batch; dropping it"
                        );
                        stats.dropped_batches += 1;
                        stats.dropped_lines += lines;
                        return true;
                    }
                    let wait = retry_after.unwrap_or_else(|| backoff(attempt));
                    warn!(
                        url = %self.url,
                        %status,
                        message = %truncate(&text, 200),
                        retry_in_ms = wait.as_millis() as u64,
                        attempt = attempt + 1,
                        "the server asked us to retry a batch"
                    );
                    wait
                }
                Err(e) if untrusted_certificate(&e) => {
                    let reason = format!(
                        "the server's TLS certificate is not trusted ({}): pass the CA that \
                         signed it with --tls-ca FILE (or TELLTALE_TLS_CA)",
                        error_chain(&e)
                    );
                    tracing::error!(url = %self.url, lines, "{reason}; not retrying");
                    stats.dropped_batches += 1;
                    stats.dropped_lines += lines;
                    stats.fatal = Some(reason);
                    return false;
                }
                Err(e) => {
                    let wait = backoff(attempt);
                    warn!(
                        url = %self.url,
                        error = %error_chain(&e),
                        retry_in_ms = wait.as_millis() as u64,
                        attempt = attempt + 1,
                        "could not deliver a batch; retrying"
                    );
                    wait
                }
            };
            if *shutdown.borrow() {
                warn!(url = %self.url, lines, "shutting down: dropping a batch that could not be delivered");
                stats.dropped_batches += 1;
                stats.dropped_lines += lines;
                return false;
            }
            attempt = attempt.saturating_add(1);
            stats.retries += 1;
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = wait_shutdown(shutdown) => {}
            }
        }
    }

    fn tally(&self, text: &str, lines: u64, stats: &mut HttpStats) {
        match serde_json::from_str::<IngestAnswer>(text) {
            Ok(a) => {
                stats.accepted += a.accepted;
                stats.rejected += a.rejected;
                if a.rejected > 0 {
                    let first: Vec<String> =
                        a.errors.iter().take(3).map(ToString::to_string).collect();
                    warn!(
                        url = %self.url,
                        rejected = a.rejected,
                        errors = %first.join("; "),
                        "the server rejected lines of a batch"
                    );
                }
            }
            Err(e) => {
                debug!(url = %self.url, error = %e, "answer is not {{accepted, rejected}}: counting the batch as accepted");
                stats.accepted += lines;
            }
        }
    }
}

/// Statuses worth retrying: overload, timeouts and server errors.
fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

/// `Retry-After` in whole seconds (the HTTP-date form is not used by the processor).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// Exponential backoff with jitter: 200 ms × 2^attempt, capped at 30 s, then a random
/// point in its upper half.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let full = BASE_BACKOFF
        .saturating_mul(1u32 << attempt.min(16))
        .min(MAX_BACKOFF);
    full.mul_f64(rand::rng().random_range(0.5..=1.0))
}

fn gzip(data: &[u8]) -> Option<Bytes> {
    let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 4), Compression::fast());
    match enc.write_all(data).and_then(|()| enc.finish()) {
        Ok(v) => Some(Bytes::from(v)),
        Err(e) => {
            warn!(error = %e, "could not gzip a batch; sending it uncompressed");
            None
        }
    }
}

/// Whether `e` is rustls refusing the server's certificate (unknown issuer, expired,
/// another host's): a retry would meet the same certificate.
fn untrusted_certificate(e: &reqwest::Error) -> bool {
    e.is_connect() && error_chain(e).contains("invalid peer certificate")
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_then_caps_with_jitter() {
        for attempt in 0..40 {
            let full = BASE_BACKOFF
                .saturating_mul(1u32 << attempt.min(16))
                .min(MAX_BACKOFF);
            let d = backoff(attempt);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
        assert!(backoff(30) <= MAX_BACKOFF);
    }

    #[test]
    fn retry_after_is_whole_seconds_and_capped() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, "0".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, " 7 ".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, "86400".parse().unwrap());
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn urls_are_checked_and_default_to_the_ingest_path() {
        let t = HttpTarget::new("http://127.0.0.1:8080", None, false, &Default::default()).unwrap();
        assert_eq!(t.url.as_str(), "http://127.0.0.1:8080/v1/events");
        let t =
            HttpTarget::new("http://h:1/custom/path", None, false, &Default::default()).unwrap();
        assert_eq!(t.url.path(), "/custom/path");
        let e = HttpTarget::new("ftp://h/v1/events", None, false, &Default::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("http:// or https://"), "{e}");
        let t = HttpTarget::new("https://h/v1/events", None, false, &Default::default()).unwrap();
        assert_eq!(t.url.scheme(), "https");
        let e = HttpTarget::new("localhost:8080", None, false, &Default::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("invalid output URL \"localhost:8080\""),
            "{e}"
        );
    }

    #[test]
    fn statuses_to_retry() {
        for s in [429u16, 408, 500, 502, 503, 504] {
            assert!(retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400u16, 401, 403, 404, 413, 422] {
            assert!(!retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }
}
