//! Unit tests of the OTLP mapping: each rule of docs/otlp.md, and the lines the
//! validator then accepts (or rejects, for the dead letter).

use super::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use telltale_core::{Limits, Record, ServiceEvent, parse_line};

const T0: u64 = 1_745_999_999_000_000_000;

fn kv(k: &str, v: Value) -> KeyValue {
    KeyValue {
        key: k.to_owned(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.to_owned())
}

fn resource(attrs: Vec<KeyValue>) -> Option<Resource> {
    Some(Resource {
        attributes: attrs,
        ..Default::default()
    })
}

fn span(name: &str, kind: SpanKind, ms: u64, attrs: Vec<KeyValue>, error: bool) -> Span {
    Span {
        trace_id: (1..=16).collect(),
        span_id: (1..=8).collect(),
        name: name.to_owned(),
        kind: kind as i32,
        start_time_unix_nano: T0,
        end_time_unix_nano: T0 + ms * 1_000_000 + 500_000,
        attributes: attrs,
        status: error.then(|| Status {
            code: SpanStatus::Error as i32,
            message: "boom".into(),
        }),
        ..Default::default()
    }
}

fn traces(res: Vec<KeyValue>, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(res),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn checkout() -> Vec<KeyValue> {
    vec![
        kv("service.name", s("checkout")),
        kv("service.instance.id", s("pod-7")),
        kv("cloud.region", s("eu-west-1")),
        kv("deployment.environment.name", s("prod")),
    ]
}

/// The lines as the validator reads them.
fn parsed(m: &Mapped) -> Vec<Result<ServiceEvent, String>> {
    telltale_core::parse::lines(&m.lines)
        .map(
            |(n, l)| match parse_line(l, n, i64::MAX / 2, &Limits::default()) {
                Ok(Record::Service(e)) => Ok(e),
                Ok(other) => Err(format!("not a service event: {other:?}")),
                Err(r) => Err(format!(
                    "{}: {}",
                    r.field.unwrap_or_default(),
                    r.reason.as_str()
                )),
            },
        )
        .collect()
}

#[test]
fn a_server_span_is_one_request_event() {
    let req = traces(
        checkout(),
        vec![span(
            "GET /cart/{id}",
            SpanKind::Server,
            250,
            vec![
                kv("http.request.method", s("GET")),
                kv("http.route", s("/cart/{id}")),
                kv("http.response.status_code", Value::IntValue(503)),
                kv("user.tier", s("gold")),
                kv("retries", Value::IntValue(2)),
                kv("timestamp", s("an attribute, not the event time")),
            ],
            true,
        )],
    );
    let m = spans(&req);
    insta::assert_snapshot!(String::from_utf8(m.lines.clone()).unwrap());
    let e = parsed(&m).remove(0).unwrap();
    assert_eq!(e.service, "checkout");
    assert_eq!(e.timestamp_us, (T0 / 1000) as i64);
    assert_eq!(e.latency_ms, 250.5);
    assert_eq!(e.status_code, 503);
    assert_eq!(e.error, Some(true));
    assert_eq!(e.endpoint.as_deref(), Some("/cart/{id}"));
    assert_eq!(e.method.as_deref(), Some("GET"));
    assert_eq!(e.instance.as_deref(), Some("pod-7"));
    assert_eq!(e.region.as_deref(), Some("eu-west-1"));
    assert_eq!(
        e.trace_id.as_deref(),
        Some("0102030405060708090a0b0c0d0e0f10")
    );
    let attrs: serde_json::Value = serde_json::from_str(e.attributes.as_deref().unwrap()).unwrap();
    assert_eq!(attrs["user.tier"], "gold");
    assert_eq!(attrs["retries"], 2);
    assert_eq!(attrs["otel.timestamp"], "an attribute, not the event time");
    assert_eq!(attrs["span.kind"], "server");
    assert_eq!(attrs["deployment.environment.name"], "prod");
    assert!(
        attrs.get("http.route").is_none(),
        "mapped attributes are not repeated"
    );
}

#[test]
fn only_server_and_consumer_spans_are_requests() {
    let kinds = [
        SpanKind::Server,
        SpanKind::Client,
        SpanKind::Internal,
        SpanKind::Producer,
        SpanKind::Consumer,
        SpanKind::Unspecified,
        SpanKind::Client,
    ];
    let all = kinds
        .iter()
        .map(|k| span("x", *k, 1, vec![], false))
        .collect();
    let m = spans(&traces(checkout(), all));
    assert_eq!(m.len(), 2);
    // client, internal, producer, unspecified
    assert_eq!(m.skipped_spans, [2, 1, 1, 1]);
    assert!(parsed(&m).iter().all(Result::is_ok));
}

#[test]
fn status_codes_old_names_grpc_and_the_span_status() {
    let cases = [
        (
            vec![kv("http.status_code", Value::IntValue(404))],
            false,
            404,
        ),
        (vec![kv("http.response.status_code", s("201"))], false, 201),
        (
            vec![
                kv("http.response.status_code", Value::IntValue(200)),
                kv("http.status_code", Value::IntValue(500)),
            ],
            false,
            200,
        ),
        (
            vec![kv("rpc.grpc.status_code", Value::IntValue(0))],
            false,
            200,
        ),
        (
            vec![kv("rpc.grpc.status_code", Value::IntValue(5))],
            false,
            404,
        ),
        (
            vec![kv("rpc.grpc.status_code", Value::IntValue(14))],
            true,
            503,
        ),
        (
            vec![kv("rpc.grpc.status_code", Value::IntValue(4))],
            true,
            504,
        ),
        (vec![], true, 500),
        (vec![], false, 200),
    ];
    for (attrs, error, want) in cases {
        let m = spans(&traces(
            checkout(),
            vec![span("x", SpanKind::Server, 1, attrs.clone(), error)],
        ));
        let e = parsed(&m).remove(0).unwrap();
        assert_eq!(e.status_code, want, "{attrs:?}");
        assert_eq!(e.error, error.then_some(true), "{attrs:?}");
    }
    for (code, http) in [
        (0, 200),
        (3, 400),
        (7, 403),
        (8, 429),
        (12, 501),
        (13, 500),
        (16, 401),
        (99, 500),
    ] {
        assert_eq!(grpc_to_http(code), http);
    }
}

#[test]
fn spans_that_cannot_be_events_are_rejected_with_a_reason() {
    let mut backwards = span("backwards", SpanKind::Server, 1, vec![], false);
    backwards.end_time_unix_nano = T0 - 1_000_000;
    let mut unstarted = span("unstarted", SpanKind::Server, 1, vec![], false);
    unstarted.start_time_unix_nano = 0;
    let m = spans(&traces(checkout(), vec![backwards, unstarted]));
    let got = parsed(&m);
    assert_eq!(got[0], Err("latency_ms: out_of_range".to_owned()));
    assert_eq!(got[1], Err("timestamp: missing_field".to_owned()));
    let nameless = spans(&traces(
        vec![],
        vec![span("x", SpanKind::Server, 1, vec![], false)],
    ));
    assert_eq!(
        parsed(&nameless)[0],
        Err("service: missing_field".to_owned())
    );
}

#[test]
fn attribute_values_become_json() {
    let attrs = vec![
        kv("b", Value::BoolValue(true)),
        kv("d", Value::DoubleValue(1.5)),
        kv("nan", Value::DoubleValue(f64::NAN)),
        kv("bytes", Value::BytesValue(vec![0xde, 0xad])),
        kv(
            "arr",
            Value::ArrayValue(ArrayValue {
                values: vec![AnyValue {
                    value: Some(s("q\"uote")),
                }],
            }),
        ),
    ];
    let m = spans(&traces(
        checkout(),
        vec![span("x", SpanKind::Consumer, 1, attrs, false)],
    ));
    let e = parsed(&m).remove(0).unwrap();
    let a: serde_json::Value = serde_json::from_str(e.attributes.as_deref().unwrap()).unwrap();
    assert_eq!(a["b"], true);
    assert_eq!(a["d"], 1.5);
    assert_eq!(a["nan"], "NaN");
    assert_eq!(a["bytes"], "dead");
    assert_eq!(a["arr"][0], "q\"uote");
    assert_eq!(a["span.kind"], "consumer");
}

fn log(attrs: Vec<KeyValue>, severity: i32) -> LogRecord {
    LogRecord {
        time_unix_nano: T0,
        severity_number: severity,
        attributes: attrs,
        trace_id: vec![0xab; 16],
        ..Default::default()
    }
}

fn logs_req(res: Vec<KeyValue>, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(res),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn log_records_map_by_the_configured_names() {
    let cfg = OtlpLogsConfig::default();
    let req = logs_req(
        checkout(),
        vec![
            log(
                vec![
                    kv("http.response.status_code", Value::IntValue(502)),
                    kv("http.server.request.duration", Value::DoubleValue(0.125)),
                    kv("http.request.method", s("POST")),
                    kv("url.path", s("/pay")),
                    kv("peer", s("10.0.0.1")),
                ],
                17,
            ),
            log(vec![kv("message", s("not a request"))], 9),
            log(vec![kv("http.status_code", s("200"))], 9),
        ],
    );
    let m = logs(&req, &cfg);
    assert_eq!(m.skipped_logs, 1);
    insta::assert_snapshot!(String::from_utf8(m.lines.clone()).unwrap());
    let got = parsed(&m);
    let e = got[0].as_ref().unwrap();
    assert_eq!(
        (e.service.as_str(), e.status_code, e.latency_ms),
        ("checkout", 502, 125.0)
    );
    assert_eq!(e.error, Some(true));
    assert_eq!(e.method.as_deref(), Some("POST"));
    assert_eq!(e.endpoint.as_deref(), Some("/pay"));
    // No latency attribute: rejected to the dead letter, not guessed.
    assert_eq!(got[1], Err("latency_ms: missing_field".to_owned()));

    // Other names, another unit, the service from the record itself.
    let cfg = OtlpLogsConfig {
        service: vec!["app".into(), "service.name".into()],
        status_code: vec!["status".into()],
        latency: vec!["took_ms".into()],
        latency_unit: telltale_core::config::LatencyUnit::Millis,
        ..OtlpLogsConfig::default()
    };
    let req = logs_req(
        checkout(),
        vec![log(
            vec![
                kv("app", s("billing")),
                kv("status", Value::IntValue(200)),
                kv("took_ms", Value::IntValue(40)),
            ],
            9,
        )],
    );
    let e = parsed(&logs(&req, &cfg)).remove(0).unwrap();
    assert_eq!(
        (e.service.as_str(), e.status_code, e.latency_ms),
        ("billing", 200, 40.0)
    );
    assert_eq!(e.instance.as_deref(), Some("pod-7"));
}
