//! The status page (`GET /`: HTML that polls the APIs, with the URL monitors' form and
//! table) and `GET /api/v1/slo`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::outputs::SloView;

/// The status page: HTML that polls `/api/v1/slo` and `/api/v1/monitors`, with the
/// monitor form's frequencies filled in from the one list
/// ([`telltale_core::config::ALLOWED_MINUTES`]).
pub(super) async fn status_page() -> impl IntoResponse {
    static PAGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let options: String = telltale_core::config::ALLOWED_MINUTES
            .iter()
            .map(|m| {
                let selected = if *m == 5 { " selected" } else { "" };
                format!("<option value=\"{m}m\"{selected}>every {m} min</option>")
            })
            .collect();
        include_str!("../../static/status.html").replace("<!--EVERY_OPTIONS-->", &options)
    });
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        PAGE.as_str(),
    )
}

pub(super) async fn slo_api(State(view): State<Arc<SloView>>) -> impl IntoResponse {
    Json(view.snapshot())
}
