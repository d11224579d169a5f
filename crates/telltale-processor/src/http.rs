//! HTTP edge of the processor: `POST /v1/events`, `GET /healthz`, `GET /metrics`.
//!
//! Every error a client can get is an [`ApiError`], mapped to its status code in one
//! place ([`ApiError::status`]) with a JSON body `{"error": "..."}`.

use std::io::Read;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use telltale_core::autoscale::AutoscaleConfig;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::{CodeLabel, ReasonLabel};
use crate::outputs::SloView;
use crate::pipeline::{BatchOutcome, IngestBatch, Pipeline, PipelineError};
use crate::pool::{IngestPool, Refused};

/// Settings of the HTTP edge.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Bearer tokens accepted by `POST /v1/events`; empty = no authentication.
    pub tokens: Vec<String>,
    /// Largest body, compressed and decompressed.
    pub max_body_bytes: usize,
    /// Body bytes all requests in flight may hold together (429 above).
    pub max_inflight_bytes: usize,
    /// Batches that may wait for a processing worker (429 above).
    pub queue_batches: usize,
    /// Worker pool scaling.
    pub autoscale: AutoscaleConfig,
}

impl Default for HttpSettings {
    fn default() -> Self {
        let server = telltale_core::config::ServerConfig::default();
        Self {
            tokens: Vec::new(),
            max_body_bytes: server.max_body_bytes,
            max_inflight_bytes: server.max_inflight_bytes,
            queue_batches: server.queue_batches,
            autoscale: AutoscaleConfig::default(),
        }
    }
}

#[derive(Debug, Clone)]
struct AppState {
    pipeline: Pipeline,
    settings: Arc<HttpSettings>,
    view: Arc<SloView>,
    pool: IngestPool,
    inflight: Arc<Semaphore>,
}

/// Everything that can go wrong for a client, with its status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Tokens are configured and the request has none or a wrong one.
    #[error("missing or invalid bearer token: send `Authorization: Bearer <token>`")]
    Unauthorized,
    /// The body (or its decompressed form) is over the limit.
    #[error("request body is over the limit of {limit} bytes: send smaller batches")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A `Content-Encoding` other than gzip or identity.
    #[error("unsupported Content-Encoding {0:?}: send gzip or no encoding")]
    UnsupportedEncoding(String),
    /// The body could not be read or decompressed.
    #[error("could not read the request body: {0}")]
    BadBody(String),
    /// The pipeline is shutting down (or cannot write its log).
    #[error("the processor is shutting down; retry against another instance or later")]
    Unavailable,
    /// Too much in flight: refused before reading the body, so memory stays bounded.
    #[error("the processor is overloaded ({reason}); retry after the Retry-After delay")]
    Overloaded {
        /// `memory` (in-flight body bytes) or `queue` (batches waiting for a worker).
        reason: &'static str,
    },
    /// A bug or an unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The one place errors become status codes.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BadBody(_) => StatusCode::BAD_REQUEST,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::WriterGone | PipelineError::WalFailed => ApiError::Unavailable,
            other => ApiError::Internal(other.to_string()),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut resp = (
            status,
            Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response();
        match self {
            ApiError::Unauthorized => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Unavailable => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            ApiError::Overloaded { .. } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        resp
    }
}

/// The ingest routes, ready to be served or nested.
pub fn router(pipeline: Pipeline, settings: HttpSettings, view: Arc<SloView>) -> Router {
    let max_body = settings.max_body_bytes;
    let pool = IngestPool::start(
        settings.queue_batches,
        settings.autoscale.clone(),
        Arc::clone(pipeline.metrics()),
    );
    let inflight = Arc::new(Semaphore::new(
        settings.max_inflight_bytes.min(Semaphore::MAX_PERMITS),
    ));
    let state = AppState {
        pipeline,
        settings: Arc::new(settings),
        view,
        pool,
        inflight,
    };
    Router::new()
        .route("/", get(status_page))
        .route("/api/v1/slo", get(slo_api))
        .route("/v1/events", post(ingest))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        // Our own check below gives the JSON error; this only stops axum buffering more.
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// The status page: static HTML that polls `/api/v1/slo`.
async fn status_page() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("../static/status.html"),
    )
}

async fn slo_api(State(state): State<AppState>) -> impl IntoResponse {
    Json(state.view.snapshot())
}

/// Response body of `POST /v1/events`.
#[derive(Debug, Serialize)]
struct IngestResponse {
    #[serde(flatten)]
    outcome: BatchOutcome,
}

async fn ingest(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let metrics = Arc::clone(state.pipeline.metrics());
    let response = match ingest_batch(state, headers, body).await {
        Ok((status, json)) => (status, json).into_response(),
        Err(e) => {
            if let ApiError::Overloaded { reason } = &e {
                metrics
                    .overload_rejections
                    .get_or_create(&ReasonLabel {
                        reason: (*reason).to_owned(),
                    })
                    .inc();
            }
            if matches!(e, ApiError::Unavailable) {
                metrics
                    .overload_rejections
                    .get_or_create(&ReasonLabel {
                        reason: "shutting_down".to_owned(),
                    })
                    .inc();
            }
            e.into_response()
        }
    };
    metrics
        .http_responses
        .get_or_create(&CodeLabel {
            code: response.status().as_u16().to_string(),
        })
        .inc();
    response
}

/// Reads and drops a refused request's body, chunk by chunk (no memory held), so the
/// client gets the answer instead of a connection reset while it is still sending. Stops
/// after twice the body limit or 10 s; then the connection is closed.
async fn discard(body: Body, limit: usize) {
    use http_body_util::BodyExt;
    let drain = async {
        let mut body = body;
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > limit.saturating_mul(2) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), drain).await;
}

/// Body bytes held by a request, given back (to the budget and the gauge) when dropped.
struct InflightBytes {
    _permit: OwnedSemaphorePermit,
    bytes: i64,
    metrics: Arc<crate::Metrics>,
}

impl Drop for InflightBytes {
    fn drop(&mut self) {
        self.metrics
            .inflight_bytes
            .inner()
            .fetch_sub(self.bytes, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn ingest_batch(
    state: AppState,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<IngestResponse>), ApiError> {
    authorize(&headers, &state.settings.tokens)?;
    let metrics = Arc::clone(state.pipeline.metrics());
    let limit = state.settings.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    metrics.offered_bytes.inc_by(declared.unwrap_or(0) as u64);
    if declared.is_some_and(|n| n > limit) {
        discard(body, limit).await;
        return Err(ApiError::BodyTooLarge { limit });
    }
    // Reserve the body's bytes before reading it: under overload the request is refused
    // here, and memory never holds more than `max_inflight_bytes` of bodies.
    let need = declared.unwrap_or(limit).clamp(1, limit);
    let Ok(permit) =
        Arc::clone(&state.inflight).try_acquire_many_owned(u32::try_from(need).unwrap_or(u32::MAX))
    else {
        discard(body, limit).await;
        return Err(ApiError::Overloaded { reason: "memory" });
    };
    metrics
        .inflight_bytes
        .inner()
        .fetch_add(need as i64, std::sync::atomic::Ordering::Relaxed);
    let held = InflightBytes {
        _permit: permit,
        bytes: need as i64,
        metrics: Arc::clone(&metrics),
    };
    let body = axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::BodyTooLarge { limit }
        } else {
            ApiError::BadBody(e.to_string())
        }
    })?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let gzip = match encoding.as_deref() {
        None | Some("") | Some("identity") => false,
        Some("gzip") | Some("x-gzip") => true,
        Some(other) => return Err(ApiError::UnsupportedEncoding(other.to_owned())),
    };
    let body_len = body.len() as u64;
    let pipeline = state.pipeline.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    // Decompression and parsing are CPU work: a processing worker does them, off the I/O
    // runtime; a full queue refuses the request now rather than queueing it in memory.
    state
        .pool
        .try_submit(move || {
            let result = (|| -> Result<BatchOutcome, ApiError> {
                let data = if gzip { gunzip(&body, limit)? } else { body };
                Ok(pipeline.ingest(IngestBatch::whole(data, "http"))?)
            })();
            let _ = tx.send(result);
        })
        .map_err(|refused| match refused {
            Refused::QueueFull => ApiError::Overloaded { reason: "queue" },
            Refused::Stopped => ApiError::Unavailable,
        })?;
    let outcome = rx
        .await
        .map_err(|_| ApiError::Internal("the processing worker stopped".into()))??;
    drop(held);
    metrics.accepted_bytes.inc_by(body_len);
    // A batch of nothing but bad lines is the client's error; a mixed batch is accepted.
    let status = if outcome.accepted == 0 && outcome.rejected > 0 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok((status, Json(IngestResponse { outcome })))
}

fn authorize(headers: &HeaderMap, tokens: &[String]) -> Result<(), ApiError> {
    if tokens.is_empty() {
        return Ok(());
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        Some(t)
            if tokens
                .iter()
                .any(|k| constant_time_eq(k.as_bytes(), t.as_bytes())) =>
        {
            Ok(())
        }
        _ => Err(ApiError::Unauthorized),
    }
}

/// Compares tokens without an early exit, so timing does not reveal a prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn gunzip(body: &[u8], limit: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    flate2::read::MultiGzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::BadBody(format!("invalid gzip: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::BodyTooLarge { limit });
    }
    Ok(Bytes::from(out))
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.pipeline.metrics().encode(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_check() {
        let tokens = vec!["s3cret".to_owned()];
        let mut h = HeaderMap::new();
        assert!(matches!(
            authorize(&h, &tokens),
            Err(ApiError::Unauthorized)
        ));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer nope"),
        );
        assert!(authorize(&h, &tokens).is_err());
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(authorize(&h, &tokens).is_ok());
        assert!(authorize(&HeaderMap::new(), &[]).is_ok());
    }

    #[test]
    fn gunzip_enforces_the_limit_on_the_decompressed_size() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&vec![b'a'; 10_000]).unwrap();
        let gz = enc.finish().unwrap();
        assert!(gz.len() < 1000);
        assert!(matches!(
            gunzip(&gz, 5_000),
            Err(ApiError::BodyTooLarge { limit: 5_000 })
        ));
        assert_eq!(gunzip(&gz, 10_000).unwrap().len(), 10_000);
        assert!(matches!(
            gunzip(b"not gzip", 100),
            Err(ApiError::BadBody(_))
        ));
    }
}
