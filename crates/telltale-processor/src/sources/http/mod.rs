//! The HTTP source: `POST /v1/events`, NDJSON (gzip or not) from any sender.
//!
//! Push-based, so it keeps memory bounded by refusing rather than queueing: a body's bytes
//! are reserved from an in-flight budget before it is read, and the parse runs on the
//! autoscaled processing pool, whose full queue refuses at once (429 with `Retry-After`,
//! see [`crate::sources`] for the contract). The answer is sent only after the batch is
//! acknowledged by the pipeline.

mod body;
mod rate_limit;

use std::sync::Arc;
use telltale_core::auth::{Access, Role, RouteAccess, Tokens};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Serialize;
use telltale_core::config::{AutoscaleConfig, PipelineConfig};
use tokio::sync::Semaphore;

use crate::api::error::ApiError;
use crate::batch::{BatchOutcome, IngestBatch};
use crate::drain::Drain;
use crate::metrics::{CodeLabel, ReasonLabel};
use crate::pipeline::Pipeline;
use crate::pool::{IngestPool, Refused};
use body::{InflightBytes, authorize, discard, gunzip};

/// Settings of the HTTP source.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Bearer tokens: `POST /v1/events` needs a write (or admin) token once any token is
    /// configured; none = no authentication.
    pub tokens: Tokens,
    /// Largest body, compressed and decompressed.
    pub max_body_bytes: usize,
    /// Body bytes all requests in flight may hold together (429 above).
    pub max_inflight_bytes: usize,
    /// Batches that may wait for a processing worker (429 above).
    pub queue_batches: usize,
    /// Worker pool scaling.
    pub autoscale: AutoscaleConfig,
    /// Shutdown: once draining, new requests get 503 with `Retry-After`.
    pub drain: Drain,
    /// Per-address and per-token request limits (429 with `Retry-After` past them).
    pub rate_limit: telltale_core::config::RateLimitConfig,
}

impl HttpSettings {
    /// From `[server]` and `[autoscale]` of `telltale.toml`; `tokens` are read by the
    /// caller (from `server.tokens_file` or the environment: secrets stay out of config).
    pub fn from_config(cfg: &PipelineConfig, tokens: Tokens) -> Self {
        Self {
            tokens,
            max_body_bytes: cfg.server.max_body_bytes,
            max_inflight_bytes: cfg.server.max_inflight_bytes,
            queue_batches: cfg.server.queue_batches,
            autoscale: cfg.autoscale.clone(),
            drain: Drain::default(),
            rate_limit: cfg.server.rate_limit.clone(),
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self::from_config(&PipelineConfig::default(), Tokens::default())
    }
}

/// One request in `telltale_ingest_requests_in_flight`, for as long as it is held.
struct InFlightGauge(prometheus_client::metrics::gauge::Gauge<i64, std::sync::atomic::AtomicI64>);

impl InFlightGauge {
    fn enter(
        gauge: &prometheus_client::metrics::gauge::Gauge<i64, std::sync::atomic::AtomicI64>,
    ) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for InFlightGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[derive(Debug, Clone)]
struct IngestState {
    pipeline: Pipeline,
    settings: Arc<HttpSettings>,
    pool: IngestPool,
    inflight: Arc<Semaphore>,
}

/// Who may use the routes of [`routes`].
pub const ROUTES: &[RouteAccess] = &[RouteAccess::new(
    "POST",
    "/v1/events",
    Access::Needs(Role::Write),
)];

/// `POST /v1/events`, with its own state, ready to be merged into a server's router.
pub fn routes(pipeline: Pipeline, settings: HttpSettings) -> Router {
    let max_body = settings.max_body_bytes;
    let rate_limit = settings.rate_limit.clone();
    let metrics = Arc::clone(pipeline.metrics());
    let pool = IngestPool::start(
        settings.queue_batches,
        settings.autoscale.clone(),
        Arc::clone(pipeline.metrics()),
    );
    let inflight = Arc::new(Semaphore::new(
        settings.max_inflight_bytes.min(Semaphore::MAX_PERMITS),
    ));
    let state = IngestState {
        pipeline,
        settings: Arc::new(settings),
        pool,
        inflight,
    };
    let routes = Router::new()
        .route("/v1/events", post(ingest))
        // Our own check below gives the JSON error; this only stops axum buffering more.
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state);
    rate_limit::limit(routes, &rate_limit, &metrics)
}

/// Response body of `POST /v1/events`.
#[derive(Debug, Serialize)]
struct IngestResponse {
    #[serde(flatten)]
    outcome: BatchOutcome,
}

async fn ingest(State(state): State<IngestState>, headers: HeaderMap, body: Body) -> Response {
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
            let reason = match &e {
                ApiError::Unavailable => Some("shutting_down"),
                ApiError::Storage => Some("storage"),
                _ => None,
            };
            if let Some(reason) = reason {
                metrics
                    .overload_rejections
                    .get_or_create(&ReasonLabel {
                        reason: reason.to_owned(),
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

async fn ingest_batch(
    state: IngestState,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<IngestResponse>), ApiError> {
    authorize(&headers, &state.settings.tokens)?;
    let metrics = Arc::clone(state.pipeline.metrics());
    let limit = state.settings.max_body_bytes;
    // Held to the acknowledgement: a shutdown waits for it before closing the listener.
    let Some(_in_flight) = state.settings.drain.enter() else {
        discard(body, limit).await;
        return Err(ApiError::Unavailable);
    };
    let _counted = InFlightGauge::enter(&metrics.ingest_requests_in_flight);
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
