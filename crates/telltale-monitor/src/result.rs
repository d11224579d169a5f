//! What one check found: the result line (`"kind":"http"`), as it is printed by `telltale
//! monitor check` and handed to the pipeline.

use serde::{Deserialize, Serialize};

/// Why a check failed, as a class a dashboard can group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckError {
    /// The URL is not an http(s) URL with a host.
    InvalidUrl,
    /// The host name did not resolve.
    Dns,
    /// Nothing listens on the port (connection refused).
    ConnectRefused,
    /// The connection could not be made otherwise (unreachable, reset).
    Connect,
    /// The TLS handshake failed: an expired, self-signed or untrusted certificate, a
    /// wrong host name, no common protocol.
    Tls,
    /// The check did not finish within its timeout.
    Timeout,
    /// The server's answer was not valid HTTP, or the connection closed mid-answer.
    Http,
    /// More redirects than the limit.
    TooManyRedirects,
}

impl CheckError {
    /// The class as it is written in the result line (`"timeout"`, `"dns"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            CheckError::InvalidUrl => "invalid_url",
            CheckError::Dns => "dns",
            CheckError::ConnectRefused => "connect_refused",
            CheckError::Connect => "connect",
            CheckError::Tls => "tls",
            CheckError::Timeout => "timeout",
            CheckError::Http => "http",
            CheckError::TooManyRedirects => "too_many_redirects",
        }
    }
}

/// One check's result. Times are milliseconds; a phase not reached is absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Always `"http"`.
    pub kind: String,
    /// The URL checked (the first of a redirect chain).
    pub url: String,
    /// The monitor's id, for scheduled checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitor_id: Option<String>,
    /// The monitor's frequency in seconds, for scheduled checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub every_s: Option<u64>,
    /// When the check started (RFC 3339, UTC).
    pub timestamp: String,
    /// The final answer's HTTP status, when one came.
    pub status_code: Option<u16>,
    /// The whole check, redirects included.
    pub duration_ms: f64,
    /// Name resolution (of the last request of a redirect chain, like the phases below).
    pub dns_ms: Option<f64>,
    /// TCP connect.
    pub connect_ms: Option<f64>,
    /// TLS handshake (https only).
    pub tls_ms: Option<f64>,
    /// From the request sent to the first byte of the answer ("processing").
    pub ttfb_ms: Option<f64>,
    /// Reading the body ("transfer").
    pub transfer_ms: Option<f64>,
    /// Redirects followed.
    pub redirects: u32,
    /// Bytes of the final answer's body.
    pub body_bytes: Option<u64>,
    /// Days until the server certificate expires (negative once expired), for every
    /// https target that presented one, trusted or not.
    pub cert_expiry_days: Option<f64>,
    /// The URL the last request went to, when redirects moved it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_url: Option<String>,
    /// Why the check failed; `null` when an answer came (whatever its status).
    pub error: Option<CheckError>,
    /// The failure in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

impl CheckResult {
    /// A check that gave no answer at all: `error` after `duration_ms`, started at
    /// `timestamp` (what the scheduler reports when a check overran its timeout).
    pub fn failed(
        url: &str,
        timestamp: String,
        duration_ms: f64,
        error: CheckError,
        message: String,
    ) -> Self {
        Self {
            kind: "http".to_owned(),
            url: url.to_owned(),
            monitor_id: None,
            every_s: None,
            timestamp,
            status_code: None,
            duration_ms,
            dns_ms: None,
            connect_ms: None,
            tls_ms: None,
            ttfb_ms: None,
            transfer_ms: None,
            redirects: 0,
            body_bytes: None,
            cert_expiry_days: None,
            final_url: None,
            error: Some(error),
            error_message: Some(message),
        }
    }

    /// Whether the check counts as available: an answer with a 2xx or 3xx status and no
    /// error.
    pub fn is_up(&self) -> bool {
        self.error.is_none() && self.status_code.is_some_and(|s| (200..400).contains(&s))
    }
}
