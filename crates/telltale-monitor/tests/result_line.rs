//! The result line is the contract between the checker and the pipeline: every
//! [`CheckResult`] the checker can print, serialized as `telltale monitor check` prints
//! it, parses in telltale-core into the same values (`"kind":"http"` →
//! `Record::HttpCheck`), with the same idea of "up".

use telltale_core::event::{ADHOC_MONITOR_ID, CHECK_ERRORS};
use telltale_core::parse::{Limits, parse_line};
use telltale_core::{HttpCheckEvent, Record};
use telltale_monitor::{CheckError, CheckResult};

const ERRORS: [CheckError; 8] = [
    CheckError::InvalidUrl,
    CheckError::Dns,
    CheckError::ConnectRefused,
    CheckError::Connect,
    CheckError::Tls,
    CheckError::Timeout,
    CheckError::Http,
    CheckError::TooManyRedirects,
];

/// A result of every shape: answered (each status class) or failed (each error class),
/// scheduled or one-off, phases reached or not.
fn results() -> Vec<CheckResult> {
    let base = CheckResult {
        kind: "http".into(),
        url: "https://example.com/health?x=1".into(),
        monitor_id: Some("m-1".into()),
        every_s: Some(60),
        timestamp: "2026-12-03T15:50:00.123456Z".into(),
        status_code: Some(200),
        duration_ms: 84.2,
        dns_ms: Some(3.1),
        connect_ms: Some(20.4),
        tls_ms: Some(31.0),
        ttfb_ms: Some(27.9),
        transfer_ms: Some(0.4),
        redirects: 2,
        body_bytes: Some(17),
        cert_expiry_days: Some(-1.5),
        final_url: Some("https://example.com/health/".into()),
        error: None,
        error_message: None,
    };
    let mut out = Vec::new();
    for status in [200, 204, 301, 404, 503] {
        out.push(CheckResult {
            status_code: Some(status),
            ..base.clone()
        });
    }
    for error in ERRORS {
        for scheduled in [true, false] {
            out.push(CheckResult {
                monitor_id: scheduled.then(|| "m-2".into()),
                every_s: scheduled.then_some(300),
                status_code: None,
                dns_ms: Some(0.2),
                connect_ms: None,
                tls_ms: None,
                ttfb_ms: None,
                transfer_ms: None,
                redirects: 0,
                body_bytes: None,
                cert_expiry_days: (error == CheckError::Tls).then_some(-3.0),
                final_url: None,
                error: Some(error),
                error_message: Some("it failed: \"quoted\"\n".into()),
                ..base.clone()
            });
        }
    }
    out
}

#[test]
fn every_result_the_checker_prints_parses_into_the_same_values() {
    let limits = Limits::default();
    let now_us = 1_900_000_000_000_000; // after the results' timestamp
    for r in results() {
        let line = serde_json::to_string(&r).unwrap();
        let parsed = parse_line(line.as_bytes(), 1, now_us, &limits)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        let Record::HttpCheck(c) = parsed else {
            panic!("{line}: not a check result: {parsed:?}");
        };
        let error = r.error.map(|e| {
            let v = serde_json::to_value(e).unwrap();
            v.as_str().unwrap().to_owned()
        });
        let expected = HttpCheckEvent {
            url: r.url.clone(),
            monitor_id: r.monitor_id.clone(),
            every_s: r.every_s,
            timestamp_us: 1_796_313_000_123_456,
            status_code: r.status_code,
            duration_ms: r.duration_ms,
            dns_ms: r.dns_ms,
            connect_ms: r.connect_ms,
            tls_ms: r.tls_ms,
            ttfb_ms: r.ttfb_ms,
            transfer_ms: r.transfer_ms,
            redirects: r.redirects,
            body_bytes: r.body_bytes,
            cert_expiry_days: r.cert_expiry_days,
            final_url: r.final_url.clone(),
            error,
            error_message: r.error_message.clone(),
        };
        assert_eq!(c, expected, "{line}");
        assert_eq!(c.is_up(), r.is_up(), "{line}");
        if r.monitor_id.is_none() {
            assert_eq!(c.partition_key(), ADHOC_MONITOR_ID);
        }
    }
}

/// telltale-core's list of error classes is the checker's, spelled the same.
#[test]
fn the_error_classes_are_the_checkers() {
    let printed: Vec<String> = ERRORS
        .iter()
        .map(|e| {
            serde_json::to_value(e)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(printed, CHECK_ERRORS);
}
