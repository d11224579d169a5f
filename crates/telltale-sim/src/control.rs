//! The simulator's control API: load spikes and incidents on demand, over HTTP, while a
//! [`SimHandle`] runs.
//!
//! ```text
//! GET  /control            the plan: rates, the spike in effect, incidents
//! POST /control/spike      {"factor": 10, "duration": "60s"}
//! POST /control/incident   {"service": "checkout-api", "kind": "outage", "duration": "5m", "magnitude": 1}
//! ```
//!
//! `GET /control` is open (read). The `POST`s change what every dashboard shows, so once
//! any bearer token is configured ([`Tokens`]) they need an admin one: 401 without a
//! token or with an unknown one, 403 with an ingest (write) token.
//!
//! Both `POST`s answer with the plan after the change, like `GET /control`. Durations are
//! humantime strings (`60s`, `5m`, `1h30m`) of simulated time, which is the wall clock
//! when the simulator runs paced. Every error a client can get is a [`ControlError`],
//! mapped to its status code in one place ([`ControlError::status`]) with a JSON body
//! `{"error": "...", "field": "..."}` (`field` only when one field is at fault).

use std::time::Duration;

use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, SecondsFormat};
use serde::{Deserialize, Serialize};
use telltale_core::auth::{Access, Denied, Role, RouteAccess, Tokens, Verified};
use telltale_core::event::MICROS_PER_SEC;

use crate::run::SimHandle;
use crate::sim::{Incident, IncidentKind, SimPlan};

/// Largest spike factor accepted: ×1000 of a 200/s base is already 200k lines a second.
pub const MAX_SPIKE_FACTOR: f64 = 1000.0;

/// Longest spike or incident accepted: the longest SLO window (a calendar month).
pub const MAX_CONTROL_DURATION: Duration = Duration::from_secs(31 * 86_400);

/// Body of `POST /control/spike`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpikeRequest {
    /// Rate multiplier, above 0 and at most [`MAX_SPIKE_FACTOR`].
    pub factor: f64,
    /// How long, as humantime (`60s`, `5m`); replaces any spike in effect.
    pub duration: String,
}

/// Body of `POST /control/incident`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentRequest {
    /// A simulated service, e.g. `checkout-api`.
    pub service: String,
    /// `outage`, `error_burst` or `latency_regression` (kebab-case is accepted too).
    pub kind: String,
    /// How long, as humantime (`5m`).
    pub duration: String,
    /// Latency factor of a regression or 5xx fraction of an error burst; the kind's
    /// default ([`IncidentKind::default_magnitude`]) when absent. Ignored for an outage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub magnitude: Option<f64>,
}

/// What the simulator is doing now: the body of `GET /control` and of a successful `POST`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlStatus {
    /// The simulated clock, RFC 3339 (the wall clock, give or take a batch, when paced).
    pub now: String,
    /// Configured average rate, events per second.
    pub base_rate: f64,
    /// Time-of-day factor now (0.5 at midnight UTC .. 1.5 at noon UTC).
    pub diurnal_factor: f64,
    /// Rate in effect now: base × diurnal × spike.
    pub effective_rate: f64,
    /// The load spike in effect, if any.
    pub spike: Option<SpikeStatus>,
    /// Incidents in effect now.
    pub active_incidents: Vec<IncidentStatus>,
    /// Incidents already scheduled to start later.
    pub upcoming_incidents: Vec<IncidentStatus>,
    /// Whether incidents are also scheduled from the seed.
    pub incidents_enabled: bool,
    /// Names of the simulated services (the valid `service` values).
    pub services: Vec<String>,
}

/// A load spike in [`ControlStatus`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpikeStatus {
    /// Rate multiplier.
    pub factor: f64,
    /// Start, RFC 3339.
    pub started: String,
    /// End, RFC 3339.
    pub ends: String,
    /// Time left, humantime rounded to the second.
    pub remaining: String,
    /// Time left in seconds.
    pub remaining_secs: f64,
}

/// An incident in [`ControlStatus`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentStatus {
    /// Identifier (manual incidents count from 1).
    pub id: u64,
    /// Affected service.
    pub service: String,
    /// What happens.
    pub kind: IncidentKind,
    /// Latency factor, 5xx fraction, or 1 for an outage.
    pub magnitude: f64,
    /// Started through the control API (or another caller) rather than from the seed.
    pub manual: bool,
    /// Start, RFC 3339.
    pub started: String,
    /// End, RFC 3339.
    pub ends: String,
    /// Time until it ends, humantime rounded to the second.
    pub remaining: String,
    /// Time until it ends in seconds.
    pub remaining_secs: f64,
}

impl ControlStatus {
    /// The status of a plan, with times relative to the plan's simulated clock.
    pub fn from_plan(plan: &SimPlan) -> Self {
        let now = plan.now_us;
        let incident = |i: &Incident| IncidentStatus {
            id: i.id,
            service: i.service.clone(),
            kind: i.kind,
            magnitude: i.magnitude,
            manual: i.manual,
            started: rfc3339(i.start_us),
            ends: rfc3339(i.end_us),
            remaining: remaining(now, i.end_us),
            remaining_secs: remaining_secs(now, i.end_us),
        };
        Self {
            now: rfc3339(now),
            base_rate: plan.base_rate,
            diurnal_factor: plan.diurnal_factor,
            effective_rate: plan.effective_rate,
            spike: plan.spike.map(|s| SpikeStatus {
                factor: s.factor,
                started: rfc3339(s.start_us),
                ends: rfc3339(s.end_us),
                remaining: remaining(now, s.end_us),
                remaining_secs: remaining_secs(now, s.end_us),
            }),
            active_incidents: plan.active_incidents.iter().map(incident).collect(),
            upcoming_incidents: plan.upcoming_incidents.iter().map(incident).collect(),
            incidents_enabled: plan.incidents_enabled,
            services: plan.services.iter().map(|s| s.name.clone()).collect(),
        }
    }
}

fn rfc3339(us: i64) -> String {
    DateTime::from_timestamp_micros(us).map_or_else(
        || us.to_string(),
        |t| t.to_rfc3339_opts(SecondsFormat::Millis, true),
    )
}

fn remaining_secs(now_us: i64, end_us: i64) -> f64 {
    // Millisecond precision: finer is noise for a person and for a test.
    (end_us.saturating_sub(now_us).max(0) / 1000) as f64 / 1000.0
}

fn remaining(now_us: i64, end_us: i64) -> String {
    let secs = (end_us.saturating_sub(now_us).max(0) + MICROS_PER_SEC / 2) / MICROS_PER_SEC;
    humantime::format_duration(Duration::from_secs(secs as u64)).to_string()
}

/// Everything that can go wrong for a control client, with its status code.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No bearer token, or not a configured one, while tokens are configured.
    #[error(
        "this changes the simulator's plan: send `Authorization: Bearer <admin token>` \
         (`telltale spike --token`, TELLTALE_ADMIN_TOKEN)"
    )]
    Unauthenticated,
    /// A configured token whose role may not change the plan.
    #[error("this token may only ingest: changing the simulator's plan needs an admin token")]
    Forbidden,
    /// The body is not declared as JSON.
    #[error("the request body must be JSON: send `Content-Type: application/json`")]
    NotJson,
    /// The body is not JSON, or not the shape the endpoint takes.
    #[error("invalid request body: {0}")]
    BadBody(String),
    /// One field has a value the simulator cannot use.
    #[error("invalid `{field}` {value}: {message}")]
    InvalidField {
        /// The field, as in the JSON body.
        field: &'static str,
        /// The value given, as JSON (strings quoted).
        value: String,
        /// What is wrong, and the valid choices or range.
        message: String,
    },
}

impl ControlError {
    /// The one place errors become status codes.
    pub fn status(&self) -> StatusCode {
        match self {
            ControlError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ControlError::Forbidden => StatusCode::FORBIDDEN,
            ControlError::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ControlError::BadBody(_) | ControlError::InvalidField { .. } => StatusCode::BAD_REQUEST,
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            ControlError::InvalidField { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl From<JsonRejection> for ControlError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ControlError::NotJson,
            other => ControlError::BadBody(other.body_text()),
        }
    }
}

/// Error body: `{"error": "...", "field": "..."}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ControlErrorBody {
    /// What went wrong and how to fix it.
    pub error: String,
    /// The field at fault, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let body = ControlErrorBody {
            error: self.to_string(),
            field: self.field().map(str::to_owned),
        };
        let status = self.status();
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// What the handlers share: the simulator and who may change it.
#[derive(Clone)]
struct Control {
    sim: SimHandle,
    tokens: Arc<Tokens>,
}

impl Control {
    /// The admin role, once any token is configured; or an SSO session of the admin
    /// role that the binary's guard verified.
    fn authorize(
        &self,
        headers: &HeaderMap,
        verified: Option<Extension<Verified>>,
    ) -> Result<&SimHandle, ControlError> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let verified = verified.map(|Extension(v)| v);
        match self
            .tokens
            .check_or_verified(presented, verified, Role::Admin)
        {
            Ok(()) => Ok(&self.sim),
            Err(Denied::Unauthenticated) => Err(ControlError::Unauthenticated),
            Err(Denied::Forbidden { .. }) => Err(ControlError::Forbidden),
        }
    }
}

/// Who may use the routes of [`control_router`].
pub const CONTROL_ROUTES: &[RouteAccess] = &[
    RouteAccess::new("GET", "/control", Access::Read),
    RouteAccess::new("POST", "/control/spike", Access::Needs(Role::Admin)),
    RouteAccess::new("POST", "/control/incident", Access::Needs(Role::Admin)),
];

/// The control routes over `sim`, ready to be served or merged into another router; the
/// `POST`s need an admin token once `tokens` has any.
pub fn control_router(sim: SimHandle, tokens: Tokens) -> Router {
    Router::new()
        .route("/control", get(status))
        .route("/control/spike", post(spike))
        .route("/control/incident", post(incident))
        .with_state(Control {
            sim,
            tokens: Arc::new(tokens),
        })
}

async fn status(State(control): State<Control>) -> Json<ControlStatus> {
    Json(ControlStatus::from_plan(&control.sim.plan()))
}

async fn spike(
    State(control): State<Control>,
    headers: HeaderMap,
    verified: Option<Extension<Verified>>,
    body: Result<Json<SpikeRequest>, JsonRejection>,
) -> Result<Json<ControlStatus>, ControlError> {
    // Who asks first: a refused request learns nothing about the plan or its body.
    let sim = control.authorize(&headers, verified)?;
    let Json(req) = body?;
    if !(req.factor.is_finite() && req.factor > 0.0 && req.factor <= MAX_SPIKE_FACTOR) {
        return Err(ControlError::InvalidField {
            field: "factor",
            value: req.factor.to_string(),
            message: format!(
                "give a rate multiplier above 0 and at most {MAX_SPIKE_FACTOR}, e.g. 10"
            ),
        });
    }
    let duration = parse_duration(&req.duration)?;
    let mut s = sim.lock();
    s.set_spike(req.factor, duration)
        .map_err(|e| ControlError::InvalidField {
            field: "factor",
            value: req.factor.to_string(),
            message: e.to_string(),
        })?;
    tracing::info!(
        factor = req.factor,
        duration = %req.duration,
        "control: load spike"
    );
    Ok(Json(ControlStatus::from_plan(&s.plan())))
}

async fn incident(
    State(control): State<Control>,
    headers: HeaderMap,
    verified: Option<Extension<Verified>>,
    body: Result<Json<IncidentRequest>, JsonRejection>,
) -> Result<Json<ControlStatus>, ControlError> {
    // Who asks first: a refused request learns nothing about the plan or its body.
    let sim = control.authorize(&headers, verified)?;
    let Json(req) = body?;
    let kind: IncidentKind = req.kind.parse().map_err(|_| ControlError::InvalidField {
        field: "kind",
        value: format!("{:?}", req.kind),
        message: format!(
            "not an incident kind; valid choices: {}",
            IncidentKind::ALL.map(IncidentKind::as_str).join(", ")
        ),
    })?;
    let duration = parse_duration(&req.duration)?;
    let mut s = sim.lock();
    let services: Vec<String> = s.plan().services.into_iter().map(|p| p.name).collect();
    if !services.contains(&req.service) {
        return Err(ControlError::InvalidField {
            field: "service",
            value: format!("{:?}", req.service),
            message: format!(
                "not a simulated service; valid choices: {}",
                services.join(", ")
            ),
        });
    }
    let magnitude = req.magnitude.unwrap_or_else(|| kind.default_magnitude());
    let started = s
        .start_incident_with_magnitude(&req.service, kind, duration, magnitude)
        .map_err(|e| ControlError::InvalidField {
            // Service, kind and duration are checked above: what is left is the magnitude.
            field: "magnitude",
            value: magnitude.to_string(),
            message: e.to_string(),
        })?;
    tracing::info!(
        id = started.id,
        service = %started.service,
        kind = %started.kind,
        magnitude = started.magnitude,
        duration = %req.duration,
        "control: incident started"
    );
    Ok(Json(ControlStatus::from_plan(&s.plan())))
}

fn parse_duration(text: &str) -> Result<Duration, ControlError> {
    let bad = |message: String| ControlError::InvalidField {
        field: "duration",
        value: format!("{text:?}"),
        message,
    };
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| bad(format!("not a duration ({e}); give e.g. 60s, 5m or 1h30m")))?;
    if d.is_zero() || d > MAX_CONTROL_DURATION {
        return Err(bad(format!(
            "give a duration above zero and at most {}, e.g. 60s",
            humantime::format_duration(MAX_CONTROL_DURATION)
        )));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, header};
    use telltale_core::ServiceCatalog;
    use tower::ServiceExt;

    use super::*;
    use crate::sim::{SEEDED_START_US, SimConfig, Simulator};

    fn shipped_catalog() -> ServiceCatalog {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/services.toml");
        ServiceCatalog::from_toml_str(&std::fs::read_to_string(path).unwrap(), "services.toml")
            .unwrap()
    }

    /// A simulator at 2025-01-01T00:00:00Z with no scheduled incidents: its plan is fixed.
    fn handle() -> SimHandle {
        SimHandle::new(Simulator::new(
            &shipped_catalog(),
            SimConfig {
                seed: 1,
                start_us: SEEDED_START_US,
                rate: 50.0,
                incidents: false,
                ..SimConfig::default()
            },
        ))
    }

    async fn call(
        sim: &SimHandle,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> (StatusCode, serde_json::Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let resp = control_router(sim.clone(), Tokens::default())
            .oneshot(req.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
        (status, json)
    }

    async fn post(sim: &SimHandle, path: &str, body: &str) -> (StatusCode, serde_json::Value) {
        call(sim, "POST", path, Some("application/json"), body).await
    }

    fn error_of(json: &serde_json::Value) -> &str {
        json["error"].as_str().unwrap_or_else(|| panic!("{json}"))
    }

    /// Issue #14: once any token is configured, every route that changes the plan needs
    /// an admin token (401 without or with an unknown one, 403 with an ingest token);
    /// reading the plan stays open.
    #[tokio::test]
    async fn with_tokens_configured_only_an_admin_token_changes_the_plan() {
        let sim = handle();
        let tokens = Tokens::new(vec!["ingest-t".into()], vec!["admin-t".into()]);
        let app = control_router(sim.clone(), tokens);
        let incidents = |sim: &SimHandle| {
            let plan = sim.plan();
            plan.active_incidents.len() + plan.upcoming_incidents.len()
        };
        let before = incidents(&sim);
        let send = |method: &str, path: &str, auth: Option<&str>| {
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .header(header::CONTENT_TYPE, "application/json");
            if let Some(auth) = auth {
                req = req.header(header::AUTHORIZATION, auth);
            }
            let body = if path.ends_with("spike") {
                r#"{"factor":10,"duration":"60s"}"#
            } else {
                r#"{"service":"checkout-api","kind":"outage","duration":"5m"}"#
            };
            app.clone().oneshot(req.body(Body::from(body)).unwrap())
        };
        for path in ["/control/spike", "/control/incident"] {
            let resp = send("POST", path, None).await.unwrap();
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(resp.headers()[header::WWW_AUTHENTICATE], "Bearer");
            for (auth, want) in [
                ("Bearer nope", StatusCode::UNAUTHORIZED),
                ("Bearer ingest-t", StatusCode::FORBIDDEN),
            ] {
                let resp = send("POST", path, Some(auth)).await.unwrap();
                assert_eq!(resp.status(), want, "{path} {auth}");
            }
            assert!(sim.plan().spike.is_none() && incidents(&sim) == before);
        }
        let resp = send("GET", "/control", None).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "reading is open");
        for path in ["/control/spike", "/control/incident"] {
            let resp = send("POST", path, Some("Bearer admin-t")).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
        }
        assert!(sim.plan().spike.is_some() && incidents(&sim) > before);
    }

    #[tokio::test]
    async fn a_spike_applies_to_the_simulator_and_answers_with_the_plan() {
        let sim = handle();
        let (status, json) =
            post(&sim, "/control/spike", r#"{"factor":10,"duration":"60s"}"#).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        let answered: ControlStatus = serde_json::from_value(json).unwrap();
        let spike = sim.plan().spike.expect("the simulator has the spike");
        assert_eq!(spike.factor, 10.0);
        assert_eq!(spike.end_us - spike.start_us, 60 * MICROS_PER_SEC);
        assert_eq!(answered, ControlStatus::from_plan(&sim.plan()));
        assert_eq!(answered.spike.unwrap().remaining, "1m");
        assert!((answered.effective_rate - 50.0 * 0.5 * 10.0).abs() < 1e-9);
    }

    #[tokio::test]
    async fn the_plan_has_a_stable_json_shape() {
        let sim = handle();
        post(&sim, "/control/spike", r#"{"factor":10,"duration":"60s"}"#).await;
        let (status, _) = post(
            &sim,
            "/control/incident",
            r#"{"service":"checkout-api","kind":"error_burst","duration":"5m","magnitude":0.3}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, json) = call(&sim, "GET", "/control", None, "").await;
        assert_eq!(status, StatusCode::OK);
        // Through the struct, so the snapshot shows the fields in the order they are sent.
        let mut plan: ControlStatus = serde_json::from_value(json).unwrap();
        // The shipped catalogue is counted here, not frozen in the snapshot.
        assert_eq!(plan.services.len(), 20);
        assert_eq!(plan.services[0], "ab-testing");
        plan.services = vec!["…20 services".to_owned()];
        insta::assert_json_snapshot!(plan);
    }

    #[tokio::test]
    async fn incidents_start_with_the_kind_default_or_the_given_magnitude() {
        let sim = handle();
        let (status, json) = post(
            &sim,
            "/control/incident",
            r#"{"service":"checkout-api","kind":"outage","duration":"5m"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{json}");
        let (_, json) = post(
            &sim,
            "/control/incident",
            r#"{"service":"search-api","kind":"latency-regression","duration":"2m"}"#,
        )
        .await;
        let active = sim.plan().active_incidents;
        assert_eq!(active.len(), 2, "{json}");
        assert_eq!(
            (active[0].service.as_str(), active[0].kind, active[0].manual),
            ("checkout-api", IncidentKind::Outage, true)
        );
        assert_eq!(active[0].end_us - active[0].start_us, 300 * MICROS_PER_SEC);
        assert_eq!(active[1].kind, IncidentKind::LatencyRegression);
        assert_eq!(active[1].magnitude, 6.0);
        assert_eq!(json["active_incidents"][1]["remaining"], "2m");
    }

    #[tokio::test]
    async fn an_unknown_service_or_kind_names_the_field_the_value_and_the_choices() {
        let sim = handle();
        let (status, json) = post(
            &sim,
            "/control/incident",
            r#"{"service":"checkout","kind":"outage","duration":"5m"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(json["field"], "service");
        let e = error_of(&json);
        assert!(
            e.starts_with("invalid `service` \"checkout\": not a simulated service; valid choices: ab-testing, "),
            "{e}"
        );
        assert!(e.contains("checkout-api"), "{e}");

        let (status, json) = post(
            &sim,
            "/control/incident",
            r#"{"service":"checkout-api","kind":"meltdown","duration":"5m"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            error_of(&json),
            "invalid `kind` \"meltdown\": not an incident kind; valid choices: latency_regression, error_burst, outage"
        );
        assert!(sim.plan().active_incidents.is_empty());
    }

    #[tokio::test]
    async fn out_of_range_values_are_refused_and_change_nothing() {
        let sim = handle();
        for (body, field) in [
            (r#"{"factor":0,"duration":"60s"}"#, "factor"),
            (r#"{"factor":-2,"duration":"60s"}"#, "factor"),
            (r#"{"factor":1001,"duration":"60s"}"#, "factor"),
            (r#"{"factor":10,"duration":"60 parsecs"}"#, "duration"),
            (r#"{"factor":10,"duration":"0s"}"#, "duration"),
            (r#"{"factor":10,"duration":"400days"}"#, "duration"),
        ] {
            let (status, json) = post(&sim, "/control/spike", body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {json}");
            assert_eq!(json["field"], field, "{body}: {json}");
        }
        let (status, json) = post(
            &sim,
            "/control/incident",
            r#"{"service":"checkout-api","kind":"error_burst","duration":"5m","magnitude":2}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(json["field"], "magnitude");
        assert!(error_of(&json).contains("give 0 to 1"), "{json}");
        let plan = sim.plan();
        assert!(plan.spike.is_none() && plan.active_incidents.is_empty());
    }

    #[tokio::test]
    async fn bad_json_and_a_wrong_content_type_say_so() {
        let sim = handle();
        let (status, json) = post(&sim, "/control/spike", "{factor: 10").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            error_of(&json)
                .starts_with("invalid request body: Failed to parse the request body as JSON"),
            "{json}"
        );
        let (status, json) = post(&sim, "/control/spike", r#"{"factor":10}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            error_of(&json).contains("missing field `duration`"),
            "{json}"
        );
        let (status, json) = post(
            &sim,
            "/control/spike",
            r#"{"factor":10,"duration":"1m","for":"1m"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(error_of(&json).contains("unknown field `for`"), "{json}");

        let (status, json) = call(
            &sim,
            "POST",
            "/control/spike",
            Some("text/plain"),
            r#"{"factor":10,"duration":"60s"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(
            error_of(&json),
            "the request body must be JSON: send `Content-Type: application/json`"
        );
        assert!(sim.plan().spike.is_none());
    }

    #[test]
    fn every_error_has_its_status() {
        let invalid = ControlError::InvalidField {
            field: "factor",
            value: "0".into(),
            message: "x".into(),
        };
        assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            ControlError::NotJson.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            ControlError::BadBody(String::new()).status(),
            StatusCode::BAD_REQUEST
        );
    }
}
