//! `/api/v1/monitors`: scheduled URL monitors over HTTP, for the CLI (`telltale monitor
//! add/list/remove`) and the status page.
//!
//! ```text
//! GET    /api/v1/monitors        every monitor, its last result and availability (read)
//! POST   /api/v1/monitors        {"url": "https://…", "every": "5m"} → 201 and the monitor (admin)
//! DELETE /api/v1/monitors/{id}   → 200 and the removed monitor (admin)
//! ```
//!
//! Once any token is configured the changes need an admin token (401 without one, 403
//! with a lesser one), or an SSO session of the admin role the guard verified. Errors are
//! [`ApiError`]s: 400 (bad URL or frequency, `field` names it), 409 (duplicate, or a
//! monitor of the config file), 404 (unknown id), 415 (not JSON), 422 (not the object).

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use telltale_core::auth::{Access, Denied, Role, RouteAccess, Tokens, Verified};
use telltale_monitor::{MonitorView, Registry};

use super::error::ApiError;

/// Who may use the routes of [`router`].
pub const ROUTES: &[RouteAccess] = &[
    RouteAccess::new("GET", "/api/v1/monitors", Access::Read),
    RouteAccess::new("POST", "/api/v1/monitors", Access::Needs(Role::Admin)),
    RouteAccess::new(
        "DELETE",
        "/api/v1/monitors/{id}",
        Access::Needs(Role::Admin),
    ),
];

/// Body of `POST /api/v1/monitors`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMonitor {
    /// The http(s) URL.
    pub url: String,
    /// One of `1m`, `2m`, `5m`, `10m`, `20m`, `30m`; default `5m`.
    #[serde(default = "default_every")]
    pub every: String,
}

fn default_every() -> String {
    "5m".to_owned()
}

#[derive(Clone)]
struct MonitorsState {
    registry: Arc<Registry>,
    tokens: Arc<Tokens>,
}

impl MonitorsState {
    fn authorize(
        &self,
        headers: &HeaderMap,
        verified: Option<Extension<Verified>>,
    ) -> Result<(), ApiError> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match self
            .tokens
            .check_or_verified(presented, verified.map(|Extension(v)| v), Role::Admin)
        {
            Ok(()) => Ok(()),
            Err(Denied::Unauthenticated) => Err(ApiError::Unauthorized),
            Err(Denied::Forbidden { .. }) => Err(ApiError::AdminRequired),
        }
    }
}

/// The routes over `registry`; the changes need an admin token once `tokens` has any.
pub fn router(registry: Arc<Registry>, tokens: Tokens) -> Router {
    Router::new()
        .route("/api/v1/monitors", get(list).post(add))
        .route("/api/v1/monitors/{id}", delete(remove))
        .with_state(MonitorsState {
            registry,
            tokens: Arc::new(tokens),
        })
}

async fn list(State(s): State<MonitorsState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "monitors": s.registry.list() }))
}

fn body_error(e: JsonRejection) -> ApiError {
    match e {
        JsonRejection::MissingJsonContentType(_) => ApiError::NotJson,
        JsonRejection::JsonDataError(e) => ApiError::Unprocessable(format!(
            "{}: send {{\"url\": \"https://example.com/health\", \"every\": \"5m\"}}",
            e.body_text()
        )),
        other => ApiError::BadBody(other.body_text()),
    }
}

async fn add(
    State(s): State<MonitorsState>,
    headers: HeaderMap,
    verified: Option<Extension<Verified>>,
    body: Result<Json<AddMonitor>, JsonRejection>,
) -> Result<(StatusCode, Json<MonitorView>), ApiError> {
    s.authorize(&headers, verified)?;
    let Json(req) = body.map_err(body_error)?;
    let registry = Arc::clone(&s.registry);
    let view = tokio::task::spawn_blocking(move || registry.add(&req.url, &req.every))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn remove(
    State(s): State<MonitorsState>,
    headers: HeaderMap,
    verified: Option<Extension<Verified>>,
    Path(id): Path<String>,
) -> Result<Json<MonitorView>, ApiError> {
    s.authorize(&headers, verified)?;
    let registry = Arc::clone(&s.registry);
    let view = tokio::task::spawn_blocking(move || registry.remove(&id))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(Json(view))
}
