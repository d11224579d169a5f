//! OTLP/HTTP: `POST /v1/traces` and `POST /v1/logs`, the HTTP front of the OTLP source
//! (**http** ▸ decode ▸ map ▸ pipeline). The same admission as `POST /v1/events` (token,
//! shutdown, the in-flight budget, the body limit, gzip), then the body's `Content-Type`
//! picks the encoding, and every answer, errors too, is in that encoding: an export
//! response (full or partial success) or a `google.rpc.Status`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::decode::{self, Encoding, RpcStatus, Signal};
use super::ingest::{Exported, export};
use super::map;
use crate::api::error::ApiError;
use crate::metrics::CodeLabel;
use crate::sources::http::body::{admit, discard, gunzip};
use crate::sources::http::{IngestState, count_refusal, rate_limit};

/// `POST /v1/traces` and `POST /v1/logs` on `state`, rate-limited as `/v1/events`.
pub fn routes(state: IngestState) -> Router {
    let max_body = state.settings.max_body_bytes;
    let rate_limit = state.settings.rate_limit.clone();
    let metrics = Arc::clone(state.pipeline.metrics());
    let routes = Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/logs", post(logs))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state);
    rate_limit::limit(routes, &rate_limit, &metrics)
}

async fn traces(State(state): State<IngestState>, headers: HeaderMap, body: Body) -> Response {
    handle(state, headers, body, Signal::Traces).await
}

async fn logs(State(state): State<IngestState>, headers: HeaderMap, body: Body) -> Response {
    handle(state, headers, body, Signal::Logs).await
}

async fn handle(state: IngestState, headers: HeaderMap, body: Body, signal: Signal) -> Response {
    let metrics = Arc::clone(state.pipeline.metrics());
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    // Errors before the encoding is known (a 415 among them) are answered in JSON.
    let enc = Encoding::from_content_type(content_type);
    let answer_in = *enc.as_ref().unwrap_or(&Encoding::Json);
    let response = match process(&state, &headers, body, enc, signal).await {
        Ok(exported) => success(&exported, answer_in, signal),
        Err(e) => {
            count_refusal(&metrics, &e);
            error(e, answer_in)
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

async fn process(
    state: &IngestState,
    headers: &HeaderMap,
    body: Body,
    enc: Result<Encoding, ApiError>,
    signal: Signal,
) -> Result<Exported, ApiError> {
    let metrics = Arc::clone(state.pipeline.metrics());
    let limit = state.settings.max_body_bytes;
    // The token first, so an unauthenticated sender learns nothing else.
    crate::sources::http::body::authorize(headers, &state.settings.tokens)?;
    let enc = match enc {
        Ok(enc) => enc,
        Err(e) => {
            discard(body, limit).await;
            return Err(e);
        }
    };
    let admitted = admit(&state.settings, &state.inflight, &metrics, headers, body).await?;
    let (body, gzip) = (admitted.body.clone(), admitted.gzip);
    let body_len = body.len() as u64;
    let logs_cfg = state.settings.otlp_logs.clone();
    let exported = export(state, "otlp", move || {
        let data = if gzip { gunzip(&body, limit)? } else { body };
        Ok(match signal {
            Signal::Traces => map::spans(&decode::traces(&data, enc)?),
            Signal::Logs => map::logs(&decode::logs(&data, enc)?, &logs_cfg),
        })
    })
    .await?;
    drop(admitted);
    metrics.accepted_bytes.inc_by(body_len);
    Ok(exported)
}

/// 200 with an export response: empty on full success, `partial_success` with the count
/// and the reasons when some records were rejected.
fn success(exported: &Exported, enc: Encoding, signal: Signal) -> Response {
    let bytes = decode::response(signal, exported.rejected, &exported.error_message, enc);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, enc.content_type())],
        bytes,
    )
        .into_response()
}

/// The error's status and headers (`Retry-After`, `WWW-Authenticate`, from
/// [`ApiError`]'s one mapping) with a `google.rpc.Status` body in `enc`.
fn error(e: ApiError, enc: Encoding) -> Response {
    let status = RpcStatus {
        code: e.grpc_code() as i32,
        message: e.to_string(),
    };
    let mut resp = e.into_response();
    *resp.body_mut() = Body::from(decode::encode(&status, enc));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(enc.content_type()),
    );
    resp
}
