//! OTLP records to telltale's JSON lines: the middle step of the OTLP source
//! (decode ▸ **map** ▸ the pipeline's parse, validation, WAL and lake).
//!
//! A server (or consumer) span is one request event; other span kinds are counted and
//! dropped. A log record with a status code is one request event (attribute names from
//! `[otlp.logs]`). The lines are validated by the pipeline like any NDJSON line, so a
//! record that cannot be a valid event (no `service.name`, no start time, an end before
//! the start) becomes a line the validator rejects with its reason, into the dead letter.
//! The mapping, field by field, is in docs/otlp.md.

use std::io::Write;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;
use telltale_core::config::OtlpLogsConfig;
use telltale_core::event::rfc3339;

/// Span kinds that are not requests of their service, in the `kind` label of
/// `telltale_otlp_spans_skipped_total`.
pub const SKIPPED_KINDS: [&str; 4] = ["client", "internal", "producer", "unspecified"];

/// Keys of a line that are telltale's own fields: an attribute of the same name is kept
/// as `otel.<name>` so it cannot overwrite them.
use telltale_core::access_log::TELLTALE_FIELDS as RESERVED;

/// Span and resource attributes that became fields of the event (not repeated in
/// `attributes`).
const SPAN_CONSUMED: [&str; 8] = [
    "service.name",
    "service.instance.id",
    "cloud.region",
    "http.route",
    "http.request.method",
    "http.method",
    "http.response.status_code",
    "http.status_code",
];

/// What a request became: the lines and, per line, the record's name for error messages.
#[derive(Debug, Default)]
pub struct Mapped {
    /// Newline-terminated JSON lines, one per request record.
    pub lines: Vec<u8>,
    /// The span name (or log event name) of each line, in order.
    pub names: Vec<String>,
    /// Spans skipped, by [`SKIPPED_KINDS`] index.
    pub skipped_spans: [u64; 4],
    /// Log records skipped for having no status code (not requests).
    pub skipped_logs: u64,
}

impl Mapped {
    /// Number of lines.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// No lines.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn str_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match attr(attrs, key)? {
        Value::StringValue(s) => Some(s),
        _ => None,
    }
}

fn int_attr(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attrs, key)? {
        Value::IntValue(i) => Some(*i),
        Value::DoubleValue(d) if d.fract() == 0.0 => Some(*d as i64),
        Value::StringValue(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn num_attr(attrs: &[KeyValue], key: &str) -> Option<f64> {
    match attr(attrs, key)? {
        Value::IntValue(i) => Some(*i as f64),
        Value::DoubleValue(d) => Some(*d),
        Value::StringValue(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The HTTP-like status of a gRPC status code (as grpc-gateway maps them).
pub fn grpc_to_http(code: i64) -> u16 {
    match code {
        0 => 200,  // OK
        1 => 499,  // CANCELLED
        3 => 400,  // INVALID_ARGUMENT
        4 => 504,  // DEADLINE_EXCEEDED
        5 => 404,  // NOT_FOUND
        6 => 409,  // ALREADY_EXISTS
        7 => 403,  // PERMISSION_DENIED
        8 => 429,  // RESOURCE_EXHAUSTED
        9 => 400,  // FAILED_PRECONDITION
        10 => 409, // ABORTED
        11 => 400, // OUT_OF_RANGE
        12 => 501, // UNIMPLEMENTED
        14 => 503, // UNAVAILABLE
        16 => 401, // UNAUTHENTICATED
        _ => 500,  // UNKNOWN (2), INTERNAL (13), DATA_LOSS (15), anything else
    }
}

/// A JSON string, escaped.
fn string(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

fn key(out: &mut Vec<u8>, k: &str) {
    out.push(b',');
    if RESERVED.contains(&k) {
        out.extend_from_slice(b"\"otel.");
        let quoted = serde_json::to_string(k).unwrap_or_default();
        out.extend_from_slice(&quoted.as_bytes()[1..]);
    } else {
        string(out, k);
    }
    out.push(b':');
}

fn field_str(out: &mut Vec<u8>, k: &str, v: &str) {
    out.push(b',');
    string(out, k);
    out.push(b':');
    string(out, v);
}

/// An OTLP value as JSON: strings, booleans, numbers (a non-finite double as a string),
/// arrays, key-value lists as objects, bytes as lowercase hex.
fn value(out: &mut Vec<u8>, v: Option<&AnyValue>) {
    match v.and_then(|v| v.value.as_ref()) {
        None | Some(Value::StringValueStrindex(_)) => out.extend_from_slice(b"null"),
        Some(Value::StringValue(s)) => string(out, s),
        Some(Value::BoolValue(b)) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Some(Value::IntValue(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(Value::DoubleValue(d)) if d.is_finite() => {
            let _ = serde_json::to_writer(&mut *out, d);
        }
        Some(Value::DoubleValue(d)) => string(out, &d.to_string()),
        Some(Value::ArrayValue(a)) => {
            out.push(b'[');
            for (i, item) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                value(out, Some(item));
            }
            out.push(b']');
        }
        Some(Value::KvlistValue(kv)) => {
            out.push(b'{');
            for (i, item) in kv.values.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(out, &item.key);
                out.push(b':');
                value(out, item.value.as_ref());
            }
            out.push(b'}');
        }
        Some(Value::BytesValue(b)) => {
            out.push(b'"');
            hex(out, b);
            out.push(b'"');
        }
    }
}

fn hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0xf)]);
    }
}

fn attributes(out: &mut Vec<u8>, attrs: &[KeyValue], skip: &[&str]) {
    for kv in attrs {
        if skip.contains(&kv.key.as_str()) {
            continue;
        }
        key(out, &kv.key);
        value(out, kv.value.as_ref());
    }
}

/// The part of every line that comes from the resource: `service` (left out when the
/// resource has no `service.name`, so the validator rejects the line), `instance`,
/// `region`, then the other resource attributes. Rendered once per resource.
fn resource_fields(attrs: &[KeyValue], service_keys: &[&str], consumed: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    if let Some(s) = service_keys.iter().find_map(|k| str_attr(attrs, k)) {
        field_str(&mut out, "service", s);
    }
    if let Some(s) = str_attr(attrs, "service.instance.id") {
        field_str(&mut out, "instance", s);
    }
    if let Some(s) = str_attr(attrs, "cloud.region") {
        field_str(&mut out, "region", s);
    }
    attributes(&mut out, attrs, consumed);
    out
}

/// `timestamp` (from Unix nanoseconds, left out when 0 so the validator rejects it).
fn timestamp(out: &mut Vec<u8>, unix_nano: u64) {
    if unix_nano > 0 {
        field_str(out, "timestamp", &rfc3339((unix_nano / 1_000) as i64));
    }
}

/// Maps the server and consumer spans of `req` to lines.
pub fn spans(req: &ExportTraceServiceRequest) -> Mapped {
    let mut m = Mapped::default();
    for rs in &req.resource_spans {
        let rattrs = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        let prefix = resource_fields(rattrs, &["service.name"], &SPAN_CONSUMED);
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                let kind = SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified);
                let kind_name = match kind {
                    SpanKind::Server => "server",
                    SpanKind::Consumer => "consumer",
                    SpanKind::Client => {
                        m.skipped_spans[0] += 1;
                        continue;
                    }
                    SpanKind::Internal => {
                        m.skipped_spans[1] += 1;
                        continue;
                    }
                    SpanKind::Producer => {
                        m.skipped_spans[2] += 1;
                        continue;
                    }
                    SpanKind::Unspecified => {
                        m.skipped_spans[3] += 1;
                        continue;
                    }
                };
                let out = &mut m.lines;
                let a = &span.attributes[..];
                out.push(b'{');
                let start = out.len();
                out.extend_from_slice(&prefix);
                timestamp(out, span.start_time_unix_nano);
                let latency_ns =
                    span.end_time_unix_nano as i128 - span.start_time_unix_nano as i128;
                let _ = write!(out, ",\"latency_ms\":{}", latency_ns as f64 / 1e6);
                let status = int_attr(a, "http.response.status_code")
                    .or_else(|| int_attr(a, "http.status_code"))
                    .or_else(|| {
                        int_attr(a, "rpc.grpc.status_code").map(|c| i64::from(grpc_to_http(c)))
                    });
                let error = span
                    .status
                    .as_ref()
                    .is_some_and(|s| s.code == SpanStatus::Error as i32);
                let status = status.unwrap_or(if error { 500 } else { 200 });
                let _ = write!(out, ",\"status_code\":{status}");
                if error {
                    out.extend_from_slice(b",\"error\":true");
                }
                if let Some(r) = str_attr(a, "http.route") {
                    field_str(out, "endpoint", r);
                }
                if let Some(r) =
                    str_attr(a, "http.request.method").or_else(|| str_attr(a, "http.method"))
                {
                    field_str(out, "method", r);
                }
                if !span.trace_id.is_empty() {
                    out.extend_from_slice(b",\"trace_id\":\"");
                    hex(out, &span.trace_id);
                    out.push(b'"');
                }
                field_str(out, "span.name", &span.name);
                field_str(out, "span.kind", kind_name);
                if !span.span_id.is_empty() {
                    out.extend_from_slice(b",\"span.id\":\"");
                    hex(out, &span.span_id);
                    out.push(b'"');
                }
                if error && let Some(s) = span.status.as_ref().filter(|s| !s.message.is_empty()) {
                    field_str(out, "span.status_message", &s.message);
                }
                attributes(out, a, &SPAN_CONSUMED);
                close(out, start);
                m.names.push(span.name.clone());
            }
        }
    }
    m
}

/// Maps the log records of `req` that carry a status code to lines, by `cfg`'s names.
pub fn logs(req: &ExportLogsServiceRequest, cfg: &OtlpLogsConfig) -> Mapped {
    let service: Vec<&str> = cfg.service.iter().map(String::as_str).collect();
    let mut consumed: Vec<&str> = ["service.instance.id", "cloud.region"].to_vec();
    for list in [
        &cfg.service,
        &cfg.status_code,
        &cfg.latency,
        &cfg.endpoint,
        &cfg.method,
    ] {
        consumed.extend(list.iter().map(String::as_str));
    }
    let mut m = Mapped::default();
    for rl in &req.resource_logs {
        let rattrs = rl.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        let prefix = resource_fields(rattrs, &service, &consumed);
        for sl in &rl.scope_logs {
            for rec in &sl.log_records {
                let a = &rec.attributes[..];
                let find_int = |names: &[String]| {
                    names
                        .iter()
                        .find_map(|n| int_attr(a, n).or_else(|| int_attr(rattrs, n)))
                };
                let find_num = |names: &[String]| {
                    names
                        .iter()
                        .find_map(|n| num_attr(a, n).or_else(|| num_attr(rattrs, n)))
                };
                let find_str = |names: &[String]| {
                    names
                        .iter()
                        .find_map(|n| str_attr(a, n).or_else(|| str_attr(rattrs, n)))
                };
                let Some(status) = find_int(&cfg.status_code) else {
                    m.skipped_logs += 1;
                    continue;
                };
                let out = &mut m.lines;
                out.push(b'{');
                let start = out.len();
                let record_service = cfg.service.iter().find_map(|n| str_attr(a, n));
                if let Some(s) = record_service {
                    field_str(out, "service", s);
                    // The record names its own service: the resource's is not repeated.
                    out.extend_from_slice(strip_service(&prefix));
                } else {
                    out.extend_from_slice(&prefix);
                }
                let t = if rec.time_unix_nano > 0 {
                    rec.time_unix_nano
                } else {
                    rec.observed_time_unix_nano
                };
                timestamp(out, t);
                let _ = write!(out, ",\"status_code\":{status}");
                if let Some(l) = find_num(&cfg.latency) {
                    let ms = l * cfg.latency_unit.to_ms();
                    if ms.is_finite() {
                        let _ = write!(out, ",\"latency_ms\":{ms}");
                    }
                }
                // SeverityNumber ERROR (17) and above.
                if rec.severity_number >= 17 {
                    out.extend_from_slice(b",\"error\":true");
                }
                if let Some(r) = find_str(&cfg.endpoint) {
                    field_str(out, "endpoint", r);
                }
                if let Some(r) = find_str(&cfg.method) {
                    field_str(out, "method", r);
                }
                if !rec.trace_id.is_empty() {
                    out.extend_from_slice(b",\"trace_id\":\"");
                    hex(out, &rec.trace_id);
                    out.push(b'"');
                }
                if !rec.event_name.is_empty() {
                    field_str(out, "log.event_name", &rec.event_name);
                }
                if !rec.severity_text.is_empty() {
                    field_str(out, "log.severity", &rec.severity_text);
                }
                attributes(out, a, &consumed);
                close(out, start);
                m.names.push(if rec.event_name.is_empty() {
                    "log record".to_owned()
                } else {
                    rec.event_name.clone()
                });
            }
        }
    }
    m
}

/// Ends the line begun at `start` (every field was written with a leading comma).
fn close(out: &mut Vec<u8>, start: usize) {
    if out.get(start) == Some(&b',') {
        out.remove(start);
    }
    out.extend_from_slice(b"}\n");
}

/// `prefix` without its leading `,"service":"…"` field, when it has one.
fn strip_service(prefix: &[u8]) -> &[u8] {
    let Some(rest) = prefix.strip_prefix(b",\"service\":") else {
        return prefix;
    };
    // The value is a JSON string: skip to its closing quote.
    let mut i = 1;
    while i < rest.len() {
        match rest[i] {
            b'\\' => i += 2,
            b'"' => return &rest[i + 1..],
            _ => i += 1,
        }
    }
    prefix
}

#[cfg(test)]
#[path = "map_tests.rs"]
mod tests;
