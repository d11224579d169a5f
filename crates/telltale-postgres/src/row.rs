//! One check result as the tables hold it.

use serde::{Deserialize, Serialize};

/// The frequencies the schema allows, in minutes (`monitor_frequency`).
pub const FREQUENCIES: [i16; 6] = [1, 2, 5, 10, 20, 30];

/// A result of a scheduled check: one `monitor_results` row, with what its `urltargets`
/// row needs. Times are milliseconds; `None` is SQL null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckRow {
    /// telltale's monitor id (`urltargets.monitor_id`).
    pub monitor_id: String,
    /// The URL checked (`urltargets.urltarget`).
    pub url: String,
    /// Minutes between checks (`urltargets.monitor_frequency`), one of [`FREQUENCIES`].
    pub frequency_min: i16,
    /// When the check started, µs since the epoch (`start_time`).
    pub start_us: i64,
    /// The final answer's status (`http_status`).
    pub http_status: Option<i16>,
    /// The whole check (`duration`).
    pub duration_ms: f64,
    /// Name resolution.
    pub dns_ms: Option<f64>,
    /// TCP connect.
    pub connect_ms: Option<f64>,
    /// TLS handshake.
    pub tls_ms: Option<f64>,
    /// Request sent to the first byte of the answer.
    pub ttfb_ms: Option<f64>,
    /// Reading the body.
    pub transfer_ms: Option<f64>,
    /// Redirects followed.
    pub redirects: i32,
    /// Body bytes of the final answer.
    pub body_bytes: Option<i64>,
    /// Days until the certificate expires.
    pub cert_expiry_days: Option<f64>,
    /// Where the redirects led.
    pub final_url: Option<String>,
    /// The error class, `None` when an answer came.
    pub error: Option<String>,
    /// The error in words.
    pub error_message: Option<String>,
    /// Counted as available (2xx/3xx and no error).
    pub up: bool,
}

impl CheckRow {
    /// Minutes for a frequency in seconds, if the schema allows it.
    pub fn frequency_of(every_s: u64) -> Option<i16> {
        let minutes = i16::try_from(every_s / 60).ok()?;
        (every_s.is_multiple_of(60) && FREQUENCIES.contains(&minutes)).then_some(minutes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_schemas_frequencies_map() {
        assert_eq!(CheckRow::frequency_of(300), Some(5));
        assert_eq!(CheckRow::frequency_of(1800), Some(30));
        assert_eq!(CheckRow::frequency_of(180), None);
        assert_eq!(CheckRow::frequency_of(90), None);
    }
}
