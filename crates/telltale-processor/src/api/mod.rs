//! The processor's HTTP server: the sources' routes (`POST /v1/events`, OTLP/HTTP's
//! `POST /v1/traces` and `/v1/logs`) merged with
//! what people and scrapers read — the status page, `/api/v1/slo`, `/metrics`,
//! `/healthz`, and the URL monitors' `/api/v1/monitors` ([`monitors`]). Errors map to
//! status codes in one place ([`ApiError`]).

pub mod error;
pub mod monitors;
mod status;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

pub use error::ApiError;
use telltale_core::auth::{Access, RouteAccess};

use crate::drain::Drain;
use crate::metrics::Metrics;
use crate::outputs::SloView;
use crate::pipeline::Pipeline;
use crate::sources::http::{self as http_source, HttpSettings, IngestState};
use crate::sources::otlp;

/// The single sign-on routes, served by the binary beside the processor's when
/// `[server.oidc]` is on (404 otherwise). Open: they are how a user gets a session; the
/// callback checks the provider's answer itself, and logout only clears the session.
pub const AUTH_ROUTES: &[RouteAccess] = &[
    RouteAccess::new("GET", "/auth/login", Access::Open),
    RouteAccess::new("GET", "/auth/callback", Access::Open),
    RouteAccess::new("POST", "/auth/logout", Access::Open),
];

/// Who may use each route of [`router`] (and [`AUTH_ROUTES`]): the table the binary's
/// guard checks every request against (a route missing here is refused, never served
/// unguarded).
pub fn routes() -> Vec<RouteAccess> {
    let mut table = http_source::ROUTES.to_vec();
    table.extend_from_slice(otlp::ROUTES);
    table.extend([
        RouteAccess::new("GET", "/", Access::Read),
        RouteAccess::new("GET", "/api/v1/slo", Access::Read),
        RouteAccess::new("GET", "/healthz", Access::Open),
        RouteAccess::new("GET", "/metrics", Access::Read),
    ]);
    table.extend_from_slice(monitors::ROUTES);
    table.extend_from_slice(AUTH_ROUTES);
    table
}

/// Every route of the processor, ready to be served (or merged with more, such as the
/// simulator's control API in `telltale run`).
pub fn router(pipeline: Pipeline, settings: HttpSettings, view: Arc<SloView>) -> Router {
    router_with_state(pipeline, settings, view).0
}

/// [`router`], and the push sources' state it serves, for more listeners of the same
/// sources (`--otlp-listen`, `--otlp-grpc-listen`: one processing pool and budget for all).
pub fn router_with_state(
    pipeline: Pipeline,
    settings: HttpSettings,
    view: Arc<SloView>,
) -> (Router, IngestState) {
    let metrics = Arc::clone(pipeline.metrics());
    let drain = settings.drain.clone();
    let reads = Router::new()
        .route("/", get(status::status_page))
        .route("/api/v1/slo", get(status::slo_api))
        .with_state(view);
    let ops = Router::new()
        .route("/healthz", get(healthz))
        .with_state(drain)
        .route("/metrics", get(metrics_text).with_state(metrics));
    let state = IngestState::start(pipeline, settings);
    let app = http_source::routes(state.clone())
        .merge(otlp::http::routes(state.clone()))
        .merge(reads)
        .merge(ops);
    (app, state)
}

/// 200 while serving; 503 once draining for shutdown, so load balancers stop routing here.
async fn healthz(State(drain): State<Drain>) -> impl IntoResponse {
    if drain.is_draining() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "draining" })),
        )
    } else {
        (StatusCode::OK, Json(serde_json::json!({ "status": "ok" })))
    }
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}
