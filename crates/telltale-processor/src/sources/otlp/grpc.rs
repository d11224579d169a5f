//! OTLP/gRPC: the generated `TraceService` and `LogsService` (tonic), the gRPC front of
//! the OTLP source (**grpc** ▸ map ▸ pipeline; tonic decodes the protobuf). Served by
//! axum over HTTP/2 on the `--otlp-grpc-listen` listener, TLS from the same listener
//! code as every other server. The bearer token comes from the `authorization`
//! metadata; errors are gRPC statuses by [`ApiError::grpc_code`] (`UNAUTHENTICATED`,
//! `PERMISSION_DENIED`, `RESOURCE_EXHAUSTED` and `UNAVAILABLE` for overload and shutdown,
//! `INVALID_ARGUMENT`).

use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use super::ingest::{Exported, export};
use super::map;
use crate::api::error::ApiError;
use crate::metrics::CodeLabel;
use crate::sources::http::body::authorize_token;
use crate::sources::http::{IngestState, count_refusal};

/// The OTLP gRPC services over the push sources' state.
#[derive(Debug, Clone)]
pub struct OtlpGrpc {
    state: IngestState,
}

/// Paths of the two services' `Export` methods.
pub const TRACE_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// See [`TRACE_EXPORT`].
pub const LOGS_EXPORT: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// Both services as an axum router (serve it over HTTP/2); any other method answers
/// `UNIMPLEMENTED`.
pub fn router(state: IngestState) -> Router {
    let limit = state.settings.max_body_bytes;
    let svc = OtlpGrpc { state };
    Router::new()
        .route_service(
            TRACE_EXPORT,
            TraceServiceServer::new(svc.clone()).max_decoding_message_size(limit),
        )
        .route_service(
            LOGS_EXPORT,
            LogsServiceServer::new(svc).max_decoding_message_size(limit),
        )
        .fallback(unimplemented)
}

async fn unimplemented() -> Response {
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/grpc"));
    h.insert("grpc-status", HeaderValue::from_static("12"));
    h.insert(
        "grpc-message",
        HeaderValue::from_static("telltale serves only the OTLP trace and logs services"),
    );
    resp
}

impl OtlpGrpc {
    async fn run<T: Send + 'static>(
        &self,
        request: tonic::Request<T>,
        work: impl FnOnce(T) -> map::Mapped + Send + 'static,
    ) -> Result<Exported, tonic::Status> {
        let metrics = std::sync::Arc::clone(self.state.pipeline.metrics());
        let result = self.admit_and_export(request, work).await;
        let code = match &result {
            Ok(_) => "grpc_ok".to_owned(),
            Err(e) => {
                count_refusal(&metrics, e);
                format!("grpc_{:?}", e.grpc_code()).to_ascii_lowercase()
            }
        };
        metrics
            .http_responses
            .get_or_create(&CodeLabel { code })
            .inc();
        result.map_err(|e| tonic::Status::new(e.grpc_code(), e.to_string()))
    }

    async fn admit_and_export<T: Send + 'static>(
        &self,
        request: tonic::Request<T>,
        work: impl FnOnce(T) -> map::Mapped + Send + 'static,
    ) -> Result<Exported, ApiError> {
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        authorize_token(presented, &self.state.settings.tokens)?;
        let Some(_in_flight) = self.state.settings.drain.enter() else {
            return Err(ApiError::Unavailable);
        };
        let message = request.into_inner();
        export(&self.state, "otlp", move || Ok(work(message))).await
    }
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let e = self.run(request, |req| map::spans(&req)).await?;
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: (e.rejected > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: e.rejected as i64,
                error_message: e.error_message,
            }),
        }))
    }
}

#[tonic::async_trait]
impl LogsService for OtlpGrpc {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let cfg = self.state.settings.otlp_logs.clone();
        let e = self.run(request, move |req| map::logs(&req, &cfg)).await?;
        Ok(tonic::Response::new(ExportLogsServiceResponse {
            partial_success: (e.rejected > 0).then_some(ExportLogsPartialSuccess {
                rejected_log_records: e.rejected as i64,
                error_message: e.error_message,
            }),
        }))
    }
}
