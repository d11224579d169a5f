//! Tests of the OTLP/HTTP answers through the router: full and partial success, 400 in
//! the request's encoding, 415, 413, gzip, the token; and the gRPC status codes.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use telltale_core::auth::Tokens;
use tower::ServiceExt;

use super::decode::RpcStatus;
use crate::pipeline::Pipeline;
use crate::sources::http::{HttpSettings, IngestState};

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn request(service: Option<&str>, kinds: &[SpanKind]) -> ExportTraceServiceRequest {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap() as u64;
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: service.map(|s| kv("service.name", s)).into_iter().collect(),
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: kinds
                    .iter()
                    .map(|k| Span {
                        name: "op".into(),
                        kind: *k as i32,
                        start_time_unix_nano: now - 5_000_000,
                        end_time_unix_nano: now,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    pipeline: Pipeline,
    app: axum::Router,
}

fn fixture(settings: HttpSettings) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(telltale_lake::store::LocalDisk::new(dir.path()));
    let pipeline = Pipeline::start(
        crate::PipelineSettings::from_config(
            &telltale_core::PipelineConfig::default(),
            Arc::new(telltale_core::ServiceCatalog::from_toml_str("", "test").unwrap()),
        ),
        store,
        Arc::new(crate::Metrics::new()),
        None,
    )
    .unwrap();
    let app = super::http::routes(IngestState::start(pipeline.clone(), settings));
    Fixture {
        _dir: dir,
        pipeline,
        app,
    }
}

async fn post(
    app: &axum::Router,
    path: &str,
    ct: &str,
    body: Vec<u8>,
    extra: &[(header::HeaderName, &str)],
) -> (StatusCode, String, Vec<u8>) {
    let mut req = Request::post(path).header(header::CONTENT_TYPE, ct);
    for (k, v) in extra {
        req = req.header(k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    (status, ct, bytes)
}

const PB: &str = "application/x-protobuf";

#[tokio::test(flavor = "multi_thread")]
async fn full_and_partial_success() {
    let f = fixture(HttpSettings::default());
    let body = request(Some("svc"), &[SpanKind::Server, SpanKind::Client]).encode_to_vec();
    let (status, ct, bytes) = post(&f.app, "/v1/traces", PB, body, &[]).await;
    assert_eq!((status, ct.as_str()), (StatusCode::OK, PB));
    let resp = ExportTraceServiceResponse::decode(&bytes[..]).unwrap();
    assert_eq!(resp.partial_success, None);
    let skipped = f.pipeline.metrics().encode();
    assert!(
        skipped.contains("telltale_otlp_spans_skipped_total{kind=\"client\"} 1"),
        "{skipped}"
    );

    // No service.name: every span rejected, with the reason, in the same encoding.
    let body = request(None, &[SpanKind::Server, SpanKind::Server]).encode_to_vec();
    let (status, _, bytes) = post(&f.app, "/v1/traces", PB, body, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let partial = ExportTraceServiceResponse::decode(&bytes[..])
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(partial.rejected_spans, 2);
    assert!(
        partial.error_message.contains("\"op\": service:"),
        "{}",
        partial.error_message
    );

    // JSON in, JSON out (int64 as a string).
    let json = serde_json::to_vec(&request(None, &[SpanKind::Server])).unwrap();
    let (status, ct, bytes) = post(&f.app, "/v1/traces", "application/json", json, &[]).await;
    assert_eq!((status, ct.as_str()), (StatusCode::OK, "application/json"));
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedSpans"], "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_in_the_request_encoding() {
    let mut settings = HttpSettings {
        max_body_bytes: 1000,
        ..HttpSettings::default()
    };
    settings.tokens = Tokens::new(vec!["w".into()], vec![]);
    let f = fixture(settings);
    let auth = [(header::AUTHORIZATION, "Bearer w")];
    // 400, as a protobuf google.rpc.Status.
    let (status, ct, bytes) = post(&f.app, "/v1/traces", PB, vec![0xff; 8], &auth).await;
    assert_eq!((status, ct.as_str()), (StatusCode::BAD_REQUEST, PB));
    let st = RpcStatus::decode(&bytes[..]).unwrap();
    assert_eq!(st.code, tonic::Code::InvalidArgument as i32);
    assert!(st.message.contains("not a protobuf"), "{}", st.message);
    // 400 as JSON for a JSON request.
    let (status, ct, bytes) =
        post(&f.app, "/v1/logs", "application/json", b"{".to_vec(), &auth).await;
    assert_eq!(
        (status, ct.as_str()),
        (StatusCode::BAD_REQUEST, "application/json")
    );
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["code"], 3);
    // 415 for another type.
    let (status, _, _) = post(&f.app, "/v1/traces", "text/plain", b"x".to_vec(), &auth).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // 413 over the limit, compressed or not.
    let (status, _, _) = post(&f.app, "/v1/traces", PB, vec![0; 2000], &auth).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&[0u8; 5000]).unwrap();
        e.finish().unwrap()
    };
    let (status, _, _) = post(
        &f.app,
        "/v1/traces",
        PB,
        gz,
        &[
            (header::AUTHORIZATION, "Bearer w"),
            (header::CONTENT_ENCODING, "gzip"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // gzip that fits is fine.
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&request(Some("svc"), &[SpanKind::Server]).encode_to_vec())
            .unwrap();
        e.finish().unwrap()
    };
    let (status, _, bytes) = post(
        &f.app,
        "/v1/traces",
        PB,
        gz,
        &[
            (header::AUTHORIZATION, "Bearer w"),
            (header::CONTENT_ENCODING, "gzip"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ExportTraceServiceResponse::decode(&bytes[..])
            .unwrap()
            .partial_success,
        None
    );
    // 401 without the token, before anything else.
    let (status, _, bytes) = post(&f.app, "/v1/traces", PB, vec![], &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        RpcStatus::decode(&bytes[..]).unwrap().code,
        tonic::Code::Unauthenticated as i32
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shutting_down_is_503_with_retry_after() {
    let settings = HttpSettings::default();
    let drain = settings.drain.clone();
    let f = fixture(settings);
    drain.start();
    let resp = f
        .app
        .clone()
        .oneshot(
            Request::post("/v1/traces")
                .header(header::CONTENT_TYPE, PB)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key(header::RETRY_AFTER));
}
