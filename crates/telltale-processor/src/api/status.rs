//! The status page (`GET /`: static HTML that polls the API) and `GET /api/v1/slo`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::outputs::SloView;

/// The status page: static HTML that polls `/api/v1/slo`.
pub(super) async fn status_page() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("../../static/status.html"),
    )
}

pub(super) async fn slo_api(State(view): State<Arc<SloView>>) -> impl IntoResponse {
    Json(view.snapshot())
}
