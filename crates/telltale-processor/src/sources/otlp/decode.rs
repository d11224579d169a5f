//! The OTLP/HTTP wire formats: the first step of the OTLP source (**decode** ▸ map ▸
//! pipeline). Which encoding a request uses (its `Content-Type`), request bodies to the
//! generated OTLP messages, and answers (an export response or a `google.rpc.Status`)
//! in the request's own encoding, as the OTLP specification asks.
//!
//! JSON is the specification's OTLP/JSON: lowerCamelCase field names, trace and span ids
//! as hex, 64-bit integers as strings (numbers accepted too), enums as integers; unknown
//! fields are ignored. `opentelemetry-proto`'s serde impls (`with-serde`) follow those
//! rules for requests, so they decode JSON bodies; its responses do not (the partial
//! success's `rejectedSpans`, an int64, comes out as a JSON number), so [`response`]
//! writes JSON answers itself.

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde::Serialize;

use crate::api::error::ApiError;

/// The two encodings of OTLP/HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`: binary protobuf.
    Protobuf,
    /// `application/json`: OTLP/JSON.
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` names (parameters such as `charset` are ignored);
    /// anything else is 415.
    pub fn from_content_type(content_type: Option<&str>) -> Result<Self, ApiError> {
        let essence = content_type
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase());
        match essence.as_deref() {
            Some("application/x-protobuf") | Some("application/protobuf") => Ok(Self::Protobuf),
            Some("application/json") => Ok(Self::Json),
            other => Err(ApiError::UnsupportedMediaType(
                other.unwrap_or("none").to_owned(),
            )),
        }
    }

    /// The `Content-Type` of answers in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }
}

fn decode<T: Message + Default + serde::de::DeserializeOwned>(
    body: &[u8],
    enc: Encoding,
    what: &str,
) -> Result<T, ApiError> {
    match enc {
        Encoding::Protobuf => {
            T::decode(body).map_err(|e| ApiError::BadBody(format!("not a protobuf {what}: {e}")))
        }
        Encoding::Json => serde_json::from_slice(body)
            .map_err(|e| ApiError::BadBody(format!("not an OTLP/JSON {what}: {e}"))),
    }
}

/// A `POST /v1/traces` body.
pub fn traces(body: &[u8], enc: Encoding) -> Result<ExportTraceServiceRequest, ApiError> {
    decode(body, enc, "ExportTraceServiceRequest")
}

/// A `POST /v1/logs` body.
pub fn logs(body: &[u8], enc: Encoding) -> Result<ExportLogsServiceRequest, ApiError> {
    decode(body, enc, "ExportLogsServiceRequest")
}

/// A message in `enc`.
pub fn encode<T: Message + Serialize>(msg: &T, enc: Encoding) -> Vec<u8> {
    match enc {
        Encoding::Protobuf => msg.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(msg).unwrap_or_default(),
    }
}

/// Which export service a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `POST /v1/traces`, `TraceService/Export`.
    Traces,
    /// `POST /v1/logs`, `LogsService/Export`.
    Logs,
}

/// The export response in `enc`: empty on full success, a partial success with the
/// rejected count (an int64: a string in JSON) and `message` otherwise.
pub fn response(signal: Signal, rejected: u64, message: &str, enc: Encoding) -> Vec<u8> {
    let rejected_i64 = i64::try_from(rejected).unwrap_or(i64::MAX);
    match (enc, signal) {
        (Encoding::Json, _) if rejected == 0 => b"{}".to_vec(),
        (Encoding::Json, signal) => {
            let field = match signal {
                Signal::Traces => "rejectedSpans",
                Signal::Logs => "rejectedLogRecords",
            };
            serde_json::to_vec(&serde_json::json!({
                "partialSuccess": { field: rejected.to_string(), "errorMessage": message }
            }))
            .unwrap_or_default()
        }
        (Encoding::Protobuf, Signal::Traces) => ExportTraceServiceResponse {
            partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: rejected_i64,
                error_message: message.to_owned(),
            }),
        }
        .encode_to_vec(),
        (Encoding::Protobuf, Signal::Logs) => ExportLogsServiceResponse {
            partial_success: (rejected > 0).then(|| ExportLogsPartialSuccess {
                rejected_log_records: rejected_i64,
                error_message: message.to_owned(),
            }),
        }
        .encode_to_vec(),
    }
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error answer (details left empty).
#[derive(Clone, PartialEq, Message, Serialize)]
pub struct RpcStatus {
    /// The gRPC status code.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// What went wrong, for people.
    #[prost(string, tag = "2")]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        use Encoding::*;
        for (ct, want) in [
            ("application/x-protobuf", Protobuf),
            ("application/json", Json),
            ("Application/JSON; charset=utf-8", Json),
        ] {
            assert_eq!(Encoding::from_content_type(Some(ct)).unwrap(), want, "{ct}");
        }
        for ct in [Some("text/plain"), Some("application/x-ndjson"), None] {
            let e = Encoding::from_content_type(ct).unwrap_err();
            assert_eq!(e.status().as_u16(), 415, "{ct:?}");
        }
    }

    /// The specification's JSON example shape: hex ids, string int64s, int enums.
    #[test]
    fn otlp_json_follows_the_spec() {
        let body = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},
          "scopeSpans":[{"scope":{"name":"x"},"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174",
          "name":"GET /cart","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000,
          "attributes":[{"key":"http.response.status_code","value":{"intValue":"503"}}],"status":{"code":2},"unknownField":1}]}]}]}"#;
        let req = traces(body, Encoding::Json).unwrap();
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id.len(), 16);
        assert_eq!(span.trace_id[0], 0x5b);
        assert_eq!(span.kind, 2);
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        // And back: the same rules on the way out (int64 as a string).
        let json = response(Signal::Traces, 2, "bad", Encoding::Json);
        insta::assert_snapshot!(
            String::from_utf8(json).unwrap(),
            @r#"{"partialSuccess":{"errorMessage":"bad","rejectedSpans":"2"}}"#
        );
        assert_eq!(response(Signal::Logs, 0, "", Encoding::Json), b"{}");
        let pb = response(Signal::Logs, 3, "x", Encoding::Protobuf);
        let back = ExportLogsServiceResponse::decode(&pb[..]).unwrap();
        assert_eq!(back.partial_success.unwrap().rejected_log_records, 3);
        assert!(response(Signal::Traces, 0, "", Encoding::Protobuf).is_empty());
    }

    #[test]
    fn undecodable_bodies_are_400() {
        for (body, enc) in [
            (&b"\xff\xff\xff"[..], Encoding::Protobuf),
            (&b"{\"resourceSpans\": 5}"[..], Encoding::Json),
            (&b"not json"[..], Encoding::Json),
        ] {
            let e = traces(body, enc).unwrap_err();
            assert_eq!(e.status().as_u16(), 400, "{e}");
        }
        assert!(
            traces(b"", Encoding::Protobuf)
                .unwrap()
                .resource_spans
                .is_empty()
        );
    }
}
