//! Small, fixed rows for tests: of this crate, and (with the `testing` feature) of the
//! crates that read the lake (`telltale-query`).

use std::sync::Arc;

use telltale_core::parse::Rejection;
use telltale_core::{
    FlaggedEvent, HttpCheckEvent, ProbeEvent, ProbeHop, RejectReason, RollupRow, ServiceEvent,
};

use crate::deadletter::{DeadLetter, MAX_RAW_BYTES};

/// 2025-04-30T00:00:00Z in µs.
pub const DAY0: i64 = 1_745_971_200_000_000;

/// A flagged event of `service` at `ts_us`: over 500 ms it is a 503 (an error), over 250 ms
/// slow, over 900 ms it also carries `error: true`.
pub fn event(service: &str, ts_us: i64, latency_ms: f64) -> FlaggedEvent {
    FlaggedEvent {
        event: ServiceEvent {
            service: service.into(),
            timestamp_us: ts_us,
            status_code: if latency_ms > 500.0 { 503 } else { 200 },
            latency_ms,
            error: (latency_ms > 900.0).then_some(true),
            endpoint: Some("/api/cart".into()),
            method: Some("GET".into()),
            region: Some("eu-west-1".into()),
            instance: None,
            trace_id: None,
            attributes: Some(r#"{"build":"abc"}"#.into()),
        },
        team: Arc::from("payments"),
        is_error: latency_ms > 500.0,
        is_slow: latency_ms > 250.0,
    }
}

/// A one-minute rollup row with a quarter errors and half slow.
pub fn rollup(service: &str, start_us: i64, count: u64) -> RollupRow {
    RollupRow {
        service: service.into(),
        team: "payments".into(),
        window_start_us: start_us,
        window_seconds: 60,
        count,
        errors: count / 4,
        slow: count / 2,
        latency_avg_ms: 12.5,
        latency_p50_ms: 10.0,
        latency_p95_ms: 40.0,
        latency_p99_ms: 80.0,
        latency_max_ms: 120.0,
    }
}

/// A probe of `target` with `hops` hops; hop 2 does not answer.
pub fn probe(target: &str, ts_us: i64, hops: usize) -> ProbeEvent {
    ProbeEvent {
        target: target.into(),
        timestamp_us: ts_us,
        rtt_ms: (hops > 0).then_some(20.0),
        loss_pct: 0.0,
        hop_count: hops as u8,
        hops: (1..=hops)
            .map(|i| ProbeHop {
                ttl: i as u8,
                addr: (i != 2).then(|| format!("192.0.2.{i}")),
                rtt_ms: (i != 2).then_some(i as f64),
                loss_pct: if i == 2 { 100.0 } else { 0.0 },
                ..ProbeHop::default()
            })
            .collect(),
        ..ProbeEvent::default()
    }
}

/// A dead letter of `raw` from `http`.
pub fn letter(
    received_at_us: i64,
    line: u64,
    field: Option<&'static str>,
    reason: RejectReason,
    raw: &[u8],
) -> DeadLetter {
    DeadLetter {
        received_at_us,
        source: "http".into(),
        rejection: Rejection {
            line,
            field,
            reason,
            message: format!("{} (test)", reason.as_str()),
        },
        raw: raw.to_vec(),
    }
}

/// 2025-04-30T12:00:00Z
pub const NOON: i64 = 1_746_014_400_000_000;

/// Five dead letters: malformed JSON, a wrong type, invalid UTF-8, control characters, and
/// an over-long line from a file.
pub fn mixed_letters() -> Vec<DeadLetter> {
    let mut long = vec![b'x'; MAX_RAW_BYTES - 1];
    long.extend_from_slice("é and more".as_bytes());
    vec![
        letter(
            NOON,
            1,
            None,
            RejectReason::MalformedJson,
            b"{\"service\": ",
        ),
        letter(
            NOON + 1,
            2,
            Some("latency_ms"),
            RejectReason::WrongType,
            br#"{"latency_ms":"fast"}"#,
        ),
        letter(
            NOON + 2,
            3,
            None,
            RejectReason::InvalidUtf8,
            b"{\"service\":\"caf\xe9\"}",
        ),
        letter(
            NOON + 3,
            4,
            Some("service"),
            RejectReason::EmptyServiceName,
            b"{\"service\":\"\x01\x1b[31m\"}\t",
        ),
        DeadLetter {
            source: "file:/var/log/app.jsonl".into(),
            ..letter(NOON + 4, 5, None, RejectReason::LineTooLong, &long)
        },
    ]
}

/// A check result of monitor `monitor_id`: answered with `status`, or refused when `None`.
pub fn check(monitor_id: &str, ts_us: i64, status: Option<u16>) -> HttpCheckEvent {
    HttpCheckEvent {
        url: format!("https://{monitor_id}.test/health"),
        monitor_id: Some(monitor_id.to_owned()),
        every_s: Some(60),
        timestamp_us: ts_us,
        status_code: status,
        duration_ms: 12.5,
        dns_ms: status.map(|_| 1.5),
        connect_ms: Some(2.0),
        tls_ms: status.map(|_| 4.0),
        ttfb_ms: status.map(|_| 3.0),
        transfer_ms: status.map(|_| 0.5),
        body_bytes: status.map(|_| 17),
        cert_expiry_days: Some(61.25),
        error: status.is_none().then(|| "connect_refused".to_owned()),
        error_message: status.is_none().then(|| "connection refused".to_owned()),
        ..HttpCheckEvent::default()
    }
}
