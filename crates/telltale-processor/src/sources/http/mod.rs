//! The HTTP source: `POST /v1/events`, NDJSON (gzip or not) from any sender.
//!
//! Push-based, so it keeps memory bounded by refusing rather than queueing: a body's bytes
//! are reserved from an in-flight budget before it is read, and the parse runs on the
//! autoscaled processing pool, whose full queue refuses at once (429 with `Retry-After`,
//! see [`crate::sources`] for the contract). The answer is sent only after the batch is
//! acknowledged by the pipeline.

pub(crate) mod body;
pub(crate) mod rate_limit;
mod settings;

pub use settings::HttpSettings;

use std::sync::Arc;
use telltale_core::auth::{Access, Role, RouteAccess};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::api::error::ApiError;
use crate::batch::{BatchOutcome, IngestBatch};
use crate::metrics::{CodeLabel, ReasonLabel};
use crate::pipeline::Pipeline;
use crate::pool::{IngestPool, Refused};
use body::{admit, gunzip};

/// What the push sources' handlers share: the pipeline, the settings, the processing
/// pool and the in-flight body budget (one of each for NDJSON and OTLP together).
#[derive(Debug, Clone)]
pub struct IngestState {
    pub(crate) pipeline: Pipeline,
    pub(crate) settings: Arc<HttpSettings>,
    pub(crate) pool: IngestPool,
    pub(crate) inflight: Arc<Semaphore>,
}

impl IngestState {
    /// Starts the processing pool of `settings`.
    pub fn start(pipeline: Pipeline, settings: HttpSettings) -> Self {
        let pool = IngestPool::start(
            settings.queue_batches,
            settings.autoscale.clone(),
            Arc::clone(pipeline.metrics()),
        );
        let inflight = Arc::new(Semaphore::new(
            settings.max_inflight_bytes.min(Semaphore::MAX_PERMITS),
        ));
        Self {
            pipeline,
            settings: Arc::new(settings),
            pool,
            inflight,
        }
    }

    /// Hands `job` to the processing pool, or refuses at once (429 when the queue is
    /// full, 503 once stopped).
    pub(crate) fn submit(&self, job: impl FnOnce() + Send + 'static) -> Result<(), ApiError> {
        self.pool.try_submit(job).map_err(|refused| match refused {
            Refused::QueueFull => ApiError::Overloaded { reason: "queue" },
            Refused::Stopped => ApiError::Unavailable,
        })
    }
}

/// Counts a refusal (429/503 before processing) in `telltale_overload_rejections_total`.
pub(crate) fn count_refusal(metrics: &crate::Metrics, e: &ApiError) {
    let reason = match e {
        ApiError::Overloaded { reason } => Some(*reason),
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
}

/// Who may use the routes of [`routes`].
pub const ROUTES: &[RouteAccess] = &[RouteAccess::new(
    "POST",
    "/v1/events",
    Access::Needs(Role::Write),
)];

/// `POST /v1/events` on `state`, ready to be merged into a server's router.
pub fn routes(state: IngestState) -> Router {
    let max_body = state.settings.max_body_bytes;
    let rate_limit = state.settings.rate_limit.clone();
    let metrics = Arc::clone(state.pipeline.metrics());
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
            count_refusal(&metrics, &e);
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
    let metrics = Arc::clone(state.pipeline.metrics());
    let limit = state.settings.max_body_bytes;
    let admitted = admit(&state.settings, &state.inflight, &metrics, &headers, body).await?;
    let (body, gzip) = (admitted.body.clone(), admitted.gzip);
    let body_len = body.len() as u64;
    let pipeline = state.pipeline.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    // Decompression and parsing are CPU work: a processing worker does them, off the I/O
    // runtime; a full queue refuses the request now rather than queueing it in memory.
    state.submit(move || {
        let result = (|| -> Result<BatchOutcome, ApiError> {
            let data = if gzip { gunzip(&body, limit)? } else { body };
            Ok(pipeline.ingest(IngestBatch::whole(data, "http"))?)
        })();
        let _ = tx.send(result);
    })?;
    let outcome = rx
        .await
        .map_err(|_| ApiError::Internal("the processing worker stopped".into()))??;
    drop(admitted);
    metrics.accepted_bytes.inc_by(body_len);
    // A batch of nothing but bad lines is the client's error; a mixed batch is accepted.
    let status = if outcome.accepted == 0 && outcome.rejected > 0 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok((status, Json(IngestResponse { outcome })))
}
