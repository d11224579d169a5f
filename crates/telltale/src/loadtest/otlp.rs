//! `telltale loadtest --protocol otlp`: the run's events as OTLP/HTTP protobuf spans
//! (`POST /v1/traces`), so the OTLP path can be measured beside NDJSON on the same events.
//!
//! Each event is one `SPAN_KIND_SERVER` span of the run's service: start = the event's
//! timestamp, end = start + its latency (a multiple of 1/8 ms, so exact in nanoseconds),
//! `http.response.status_code` its status, span status unset (no error). The processor
//! maps it back to the same row the NDJSON line makes, which the lake check compares; an
//! NDJSON `"error": false` has no span equivalent, so the check expects the column null.

use std::ops::Range;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::SpanKind};
use prost::Message;

use super::events::{EventSpace, expected};

fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

/// The protobuf `ExportTraceServiceRequest` of the events `seqs`.
pub fn batch(space: &EventSpace, seqs: Range<u64>) -> Vec<u8> {
    let spans = seqs
        .map(|seq| {
            let e = expected(seq);
            let start = u64::try_from(space.timestamp_us(seq)).unwrap_or(0) * 1_000;
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&seq.to_be_bytes());
            trace_id[8..].copy_from_slice(&space.base_us.to_be_bytes());
            Span {
                trace_id: trace_id.to_vec(),
                span_id: (seq + 1).to_be_bytes().to_vec(),
                name: "POST /v1/load".to_owned(),
                kind: SpanKind::Server as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: start + (e.latency_ms * 1e6) as u64,
                attributes: vec![attribute(
                    "http.response.status_code",
                    any_value::Value::IntValue(i64::from(e.status_code)),
                )],
                ..Span::default()
            }
        })
        .collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![attribute(
                    "service.name",
                    any_value::Value::StringValue(space.service.clone()),
                )],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    };
    request.encode_to_vec()
}

/// Spans a 2xx answer says were rejected (its partial success), or `None` when the body
/// is not an `ExportTraceServiceResponse`.
pub fn rejected(answer: &[u8]) -> Option<u64> {
    let response = ExportTraceServiceResponse::decode(answer).ok()?;
    Some(
        response
            .partial_success
            .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_carry_each_events_time_latency_and_status() {
        let space = EventSpace::new("t", 1_700_000_000_000_000, true);
        let body = batch(&space, 3..5);
        let req = ExportTraceServiceRequest::decode(&body[..]).unwrap();
        let spans = &req.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 2);
        let (s, e) = (&spans[0], expected(3));
        assert_eq!(s.start_time_unix_nano, space.timestamp_us(3) as u64 * 1000);
        let latency_ns = s.end_time_unix_nano - s.start_time_unix_nano;
        assert_eq!(latency_ns as f64 / 1e6, e.latency_ms);
        assert_eq!(s.kind, SpanKind::Server as i32);
        assert_ne!(spans[0].trace_id, spans[1].trace_id);
        assert_eq!(rejected(&[]), Some(0));
    }
}
