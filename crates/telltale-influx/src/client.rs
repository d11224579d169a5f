//! One write request to the server, and what its answer means for the batch: done,
//! retry later (429, 5xx, no connection: the batch is fine, the server is not), or
//! refused (any other 4xx: the batch itself is wrong, and sending it again cannot help).

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use telltale_core::config::{InfluxApi, InfluxConfig, Secret};

use crate::error::InfluxError;

/// The most of an error body kept for logs and dead letters.
const MAX_ERROR_BODY: usize = 4096;

/// Where and how batches are written.
pub(crate) struct Target {
    client: reqwest::Client,
    url: Url,
    auth: Auth,
    gzip: bool,
    api: InfluxApi,
}

enum Auth {
    None,
    Basic {
        user: String,
        password: Option<Secret>,
    },
    Header(HeaderValue),
}

/// What became of one attempt.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// 2xx: the server has the batch.
    Written,
    /// Worth retrying: 429, 5xx or a transport error. `after` is the server's
    /// `Retry-After`, when it sent one.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Any other status: the batch is refused as it is.
    Refused { status: StatusCode, message: String },
}

impl Target {
    /// Builds the write URL and credentials for `cfg` (already validated).
    pub fn new(cfg: &InfluxConfig, token: Option<Secret>) -> Result<Self, InfluxError> {
        let url_err = |reason: String| InfluxError::Url {
            url: cfg.url.clone(),
            reason,
        };
        let mut url = Url::parse(cfg.url.trim()).map_err(|e| url_err(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(url_err(
                "use an http:// or https:// URL, e.g. `INFLUX_URL=http://127.0.0.1:8086`".into(),
            ));
        }
        // Keep a path prefix (a proxy, VictoriaMetrics cluster's /insert/0/influx).
        let base = url.path().trim_end_matches('/').to_owned();
        let (path, params): (&str, Vec<(&str, &str)>) = match cfg.api {
            InfluxApi::V1 => {
                let mut p = vec![("db", cfg.database.as_str())];
                if !cfg.retention_policy.is_empty() {
                    p.push(("rp", cfg.retention_policy.as_str()));
                }
                p.push(("precision", "ms"));
                ("/write", p)
            }
            InfluxApi::V2 => (
                "/api/v2/write",
                vec![
                    ("org", cfg.org.as_str()),
                    ("bucket", cfg.bucket.as_str()),
                    ("precision", "ms"),
                ],
            ),
            InfluxApi::V3 => (
                "/api/v3/write_lp",
                // The long spelling is the one every 3.x release accepts.
                vec![("db", cfg.database.as_str()), ("precision", "millisecond")],
            ),
        };
        url.set_path(&format!("{base}{path}"));
        url.query_pairs_mut().clear().extend_pairs(params);

        let auth = if !cfg.username.is_empty() {
            Auth::Basic {
                user: cfg.username.clone(),
                password: cfg.password.clone(),
            }
        } else if let Some(token) = token {
            // 1.x-compatible endpoints of 2.x/3.x take `Token` too; 3.x's own takes Bearer.
            let scheme = if cfg.api == InfluxApi::V3 {
                "Bearer"
            } else {
                "Token"
            };
            let mut value = HeaderValue::from_str(&format!("{scheme} {}", token.expose()))
                .map_err(|_| {
                    url_err("the token contains characters not allowed in an HTTP header".into())
                })?;
            // Keeps it out of HTTP/2 header compression tables and reqwest's Debug.
            value.set_sensitive(true);
            Auth::Header(value)
        } else {
            Auth::None
        };

        let builder = telltale_tls::client_builder()
            .timeout(cfg.request_timeout)
            .connect_timeout(cfg.request_timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("telltale-influx/", env!("CARGO_PKG_VERSION")));
        let client =
            telltale_tls::with_client_tls(builder, &cfg.tls, "the InfluxDB client", "influx.tls")
                .map_err(InfluxError::Tls)?
                .build()
                .map_err(InfluxError::Client)?;
        Ok(Self {
            client,
            url,
            auth,
            gzip: cfg.gzip,
            api: cfg.api,
        })
    }

    /// The API and write URL, for logs and dead letters (no credentials: those are in
    /// headers only).
    pub fn describe(&self) -> String {
        format!("{} {}", self.api.as_str(), self.url)
    }

    /// Whether bodies are gzipped.
    pub fn gzip(&self) -> bool {
        self.gzip
    }

    /// Sends one batch (`body` already compressed when [`gzip`](Self::gzip)).
    pub async fn post(&self, body: Bytes) -> Attempt {
        let mut req = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(body);
        if self.gzip {
            req = req.header(CONTENT_ENCODING, "gzip");
        }
        req = match &self.auth {
            Auth::None => req,
            Auth::Basic { user, password } => {
                req.basic_auth(user, password.as_ref().map(Secret::expose))
            }
            Auth::Header(v) => req.header(AUTHORIZATION, v.clone()),
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Retry {
                    // The URL is in our own logs already; keep the error short.
                    reason: error_chain(&e.without_url()),
                    after: None,
                };
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Attempt::Written;
        }
        let after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let message = match resp.bytes().await {
            Ok(b) => String::from_utf8_lossy(&b[..b.len().min(MAX_ERROR_BODY)]).into_owned(),
            Err(e) => format!("(no body: {})", error_chain(&e.without_url())),
        };
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Attempt::Retry {
                reason: format!("{status}: {}", message.trim()),
                after,
            }
        } else {
            Attempt::Refused { status, message }
        }
    }
}

/// An error with its causes, `a: b: c` (reqwest's own `Display` stops at the top).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s += ": ";
        s += &c.to_string();
        cur = c.source();
    }
    s
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let at = SystemTime::from(at.with_timezone(&chrono::Utc));
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Exponential backoff with jitter: attempt 0 waits about `initial`, doubling up to
/// `max`; the wait is uniform in [half, all] of that, so many senders recovering from the
/// same outage do not retry in lockstep.
pub(crate) fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let base = initial.saturating_mul(1u32 << attempt.min(20)).min(max);
    base.mul_f64(0.5 + 0.5 * rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(api: InfluxApi, url: &str) -> InfluxConfig {
        InfluxConfig {
            url: url.into(),
            api,
            org: "my org".into(),
            bucket: "telemetry".into(),
            database: "tele&metry".into(),
            ..InfluxConfig::default()
        }
    }

    #[test]
    fn write_urls_per_api_with_explicit_precision() {
        let t = Target::new(&cfg(InfluxApi::V2, "http://h:8086"), None).unwrap();
        assert_eq!(
            t.url.as_str(),
            "http://h:8086/api/v2/write?org=my+org&bucket=telemetry&precision=ms"
        );
        let mut c1 = cfg(InfluxApi::V1, "http://h:8086/");
        c1.retention_policy = "autogen".into();
        let t = Target::new(&c1, None).unwrap();
        assert_eq!(
            t.url.as_str(),
            "http://h:8086/write?db=tele%26metry&rp=autogen&precision=ms"
        );
        let t = Target::new(&cfg(InfluxApi::V3, "http://h:8181/proxy/"), None).unwrap();
        assert_eq!(
            t.url.as_str(),
            "http://h:8181/proxy/api/v3/write_lp?db=tele%26metry&precision=millisecond"
        );
    }

    #[test]
    fn https_is_taken_and_other_schemes_are_refused() {
        let t = Target::new(&cfg(InfluxApi::V2, "https://h:8086"), None).unwrap();
        assert_eq!(t.url.scheme(), "https");
        // `validate` refuses it first; this is the second line of defence.
        let err = Target::new(&cfg(InfluxApi::V2, "ftp://h:8086"), None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("http:// or https://"), "{err}");
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 2015-10-21T07:28:00Z
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let (i, m) = (Duration::from_millis(200), Duration::from_secs(30));
        for _ in 0..100 {
            let d0 = backoff(0, i, m);
            assert!(d0 >= Duration::from_millis(100) && d0 <= i, "{d0:?}");
            let d3 = backoff(3, i, m);
            assert!(d3 >= Duration::from_millis(800) && d3 <= Duration::from_millis(1600));
            let d = backoff(40, i, m);
            assert!(d >= m / 2 && d <= m, "{d:?}");
        }
    }
}
