//! The PostgreSQL sink: URL monitor results (`"kind":"http"` lines, as the writer applies
//! them) into `monitor_results` (docs/postgres.md). Delivery — batching, the spool,
//! exactly-once inserts, migrations, TLS — is `telltale-postgres`'s [`PostgresSink`]; this
//! adapts it to the processor's [`Sink`]. Results without a monitor (a one-off `telltale
//! monitor check`) or with a frequency the schema does not allow have no `urltargets` row
//! to belong to: they are counted (`telltale_postgres_results_skipped_total`), not written.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use telltale_core::HttpCheckEvent;
use telltale_postgres::{CheckRow, PostgresSink};

use super::sink::Sink;

/// [`PostgresSink`] as a processor sink.
#[derive(Debug, Clone)]
pub struct PostgresOutput {
    sink: PostgresSink,
    skipped: Arc<AtomicU64>,
}

impl PostgresOutput {
    /// Wraps `sink`; `skipped` counts the results it cannot store.
    pub fn new(sink: PostgresSink, skipped: Arc<AtomicU64>) -> Self {
        Self { sink, skipped }
    }
}

/// The row of a scheduled check, or `None` for a one-off one.
pub fn row(c: &HttpCheckEvent) -> Option<CheckRow> {
    let monitor_id = c.monitor_id.clone()?;
    let frequency_min = CheckRow::frequency_of(c.every_s?)?;
    Some(CheckRow {
        monitor_id,
        url: c.url.clone(),
        frequency_min,
        start_us: c.timestamp_us,
        http_status: c.status_code.and_then(|s| i16::try_from(s).ok()),
        duration_ms: c.duration_ms,
        dns_ms: c.dns_ms,
        connect_ms: c.connect_ms,
        tls_ms: c.tls_ms,
        ttfb_ms: c.ttfb_ms,
        transfer_ms: c.transfer_ms,
        redirects: i32::try_from(c.redirects).unwrap_or(i32::MAX),
        body_bytes: c.body_bytes.and_then(|b| i64::try_from(b).ok()),
        cert_expiry_days: c.cert_expiry_days,
        final_url: c.final_url.clone(),
        error: c.error.clone(),
        error_message: c.error_message.clone(),
        up: c.is_up(),
    })
}

impl Sink for PostgresOutput {
    fn on_checks(&mut self, checks: &[HttpCheckEvent]) {
        let rows: Vec<CheckRow> = checks.iter().filter_map(row).collect();
        let skipped = checks.len() - rows.len();
        if skipped > 0 {
            self.skipped.fetch_add(skipped as u64, Ordering::Relaxed);
        }
        self.sink.send(rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(monitor: Option<&str>, every_s: Option<u64>) -> HttpCheckEvent {
        HttpCheckEvent {
            url: "https://a.example/".into(),
            monitor_id: monitor.map(str::to_owned),
            every_s,
            timestamp_us: 1_764_000_000_000_000,
            status_code: Some(503),
            duration_ms: 12.0,
            dns_ms: None,
            connect_ms: Some(1.0),
            tls_ms: None,
            ttfb_ms: Some(3.0),
            transfer_ms: None,
            redirects: 2,
            body_bytes: Some(5),
            cert_expiry_days: None,
            final_url: Some("https://a.example/x".into()),
            error: None,
            error_message: None,
        }
    }

    #[test]
    fn scheduled_checks_become_rows_and_one_off_checks_do_not() {
        let r = row(&check(Some("00000000000000ab"), Some(300))).unwrap();
        assert_eq!(
            (r.frequency_min, r.http_status, r.redirects, r.up),
            (5, Some(503), 2, false)
        );
        assert!(row(&check(None, Some(300))).is_none());
        assert!(row(&check(Some("x"), None)).is_none());
        assert!(
            row(&check(Some("x"), Some(180))).is_none(),
            "3 minutes is not allowed"
        );
    }
}
