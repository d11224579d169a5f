//! The access guard of every server the binary opens: each request is checked against the
//! route table of the server ([`telltale_processor::api::routes`],
//! [`telltale_sim::CONTROL_ROUTES`]) and the configured tokens before it reaches a
//! handler. Fail closed: a route that is served but missing from the table answers 500
//! (and says so in the log), a method the table does not list for a path answers 405; so
//! a new route cannot be served without a rule. Reading routes (`Access::Read`) are
//! refused here when reading is closed.
//!
//! State-changing routes (`Access::Needs`) are refused by their own handler (ingest and
//! control check the role with the same `Tokens`), so the answer is in that surface's
//! words and counted in its metrics (`telltale_http_ingest_responses_total{code="401"}`);
//! the walking test (`tests/it/access.rs`) calls every such route without a token and
//! with each role's, so a handler that forgot its check fails it.
//!
//! With single sign-on (`[server.oidc]`, [`crate::sso`]) reading and the admin routes
//! need a bearer token of the right role (checked as without SSO, but a token must be
//! configured) or a session cookie of the right role: a session on an admin route must
//! also pass the cross-site check (`Origin`), and is handed to the handler as
//! [`Verified`]. A browser (`Accept: text/html`) without either asking to read is sent
//! to the provider; anything else gets 401. Ingest (`Access::Needs(Role::Write)`) stays
//! with its tokens alone.

use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use telltale_core::auth::{Access, Denied, Role, RouteAccess, Tokens, Verified};

use crate::sso::Sso;

#[derive(Debug)]
struct Guard {
    table: Vec<RouteAccess>,
    tokens: Tokens,
    sso: Option<Arc<Sso>>,
}

/// `router` with every request checked against `table`, `tokens` and, when on, the
/// single sign-on sessions of `sso`.
pub fn guarded(
    router: Router,
    table: Vec<RouteAccess>,
    tokens: Tokens,
    sso: Option<Arc<Sso>>,
) -> Router {
    let guard = Arc::new(Guard { table, tokens, sso });
    router.route_layer(axum::middleware::from_fn_with_state(guard, check))
}

fn unauthenticated(message: String) -> Response {
    let mut resp = refuse(StatusCode::UNAUTHORIZED, message);
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// The rule with single sign-on on (see the module doc).
async fn with_sso(
    sso: &Sso,
    tokens: &Tokens,
    access: Access,
    mut request: Request,
    next: Next,
) -> Response {
    let needs = match access {
        Access::Open | Access::Needs(Role::Write) => return next.run(request).await,
        Access::Read => Role::Read,
        Access::Needs(role) => role,
    };
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let headers = request.headers();
    if let Some(presented) = headers.get(header::AUTHORIZATION) {
        if !tokens.any() {
            return unauthenticated(format!(
                "{method} {path}: no bearer token is configured here; sign in at /auth/login"
            ));
        }
        if access != Access::Read {
            // The handler checks its role (see the module doc).
            return next.run(request).await;
        }
        return match tokens.check(presented.to_str().ok(), Role::Read) {
            Ok(()) => next.run(request).await,
            Err(_) => unauthenticated(format!(
                "{method} {path} needs a bearer token of any role, or a signed-in session"
            )),
        };
    }
    let Some(session) = sso.session(headers) else {
        let browser = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        if browser && method == axum::http::Method::GET {
            let next_path = request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            return sso.login_redirect(&next_path).await;
        }
        return unauthenticated(format!(
            "{method} {path} needs a signed-in session (/auth/login) or a bearer token              (Authorization: Bearer <token>)"
        ));
    };
    let role = session.role().unwrap_or(Role::Read);
    if !role.grants(needs) {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "{method} {path} needs the {} role; {} is signed in with the {} role",
                needs.as_str(),
                session.name,
                role.as_str()
            ),
        );
    }
    if access != Access::Read && !sso.same_origin(headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "{method} {path}: cross-site request refused (a signed-in change must come                  from telltale's own pages: the Origin header must be telltale's)"
            ),
        );
    }
    request.extensions_mut().insert(Verified(role));
    next.run(request).await
}

fn refuse(status: StatusCode, message: String) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

async fn check(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let Some(path) = request.extensions().get::<MatchedPath>().cloned() else {
        return next.run(request).await;
    };
    let path = path.as_str();
    // HEAD is served by a GET route.
    let method = match request.method().as_str() {
        "HEAD" => "GET",
        m => m,
    };
    let Some(rule) = guard
        .table
        .iter()
        .find(|r| r.path == path && r.method == method)
    else {
        let allowed: Vec<&str> = guard
            .table
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.method)
            .collect();
        if allowed.is_empty() {
            tracing::error!(path, "a served route has no access rule: refusing it");
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{path} has no access rule (a bug: add it to the route table)"),
            );
        }
        let mut resp = refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{method} is not allowed on {path}: use {}",
                allowed.join(", ")
            ),
        );
        if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
            resp.headers_mut().insert(header::ALLOW, v);
        }
        return resp;
    };
    if let Some(sso) = &guard.sso {
        return with_sso(sso, &guard.tokens, rule.access, request, next).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if matches!(rule.access, Access::Needs(_)) {
        // The handler checks its role (see the module doc).
        return next.run(request).await;
    }
    match guard.tokens.allows(presented, rule.access) {
        Ok(()) => next.run(request).await,
        Err(Denied::Unauthenticated) => unauthenticated(format!(
            "{method} {path} needs a bearer token (Authorization: Bearer <token>)"
        )),
        Err(Denied::Forbidden { needs }) => refuse(
            StatusCode::FORBIDDEN,
            format!(
                "{method} {path} needs a token of the {} role; this one may not",
                needs.as_str()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    async fn status(app: &Router, method: &str, path: &str, token: Option<&str>) -> u16 {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        resp.status().as_u16()
    }

    fn app(table: Vec<RouteAccess>) -> Router {
        let router = Router::new()
            .route("/read", get(|| async { "r" }))
            .route("/healthz", get(|| async { "ok" }))
            .route("/write", post(|| async { "w" }))
            .route("/forgotten", post(|| async { "f" }));
        let tokens = Tokens::new(vec!["w".into()], vec!["a".into()]).with_reads(Vec::new(), true);
        guarded(router, table, tokens, None)
    }

    #[tokio::test]
    async fn a_route_missing_from_the_table_is_refused_not_served() {
        let app = app(vec![
            RouteAccess::new("GET", "/read", Access::Read),
            RouteAccess::new("GET", "/healthz", Access::Open),
            RouteAccess::new("POST", "/write", Access::Needs(Role::Write)),
        ]);
        assert_eq!(status(&app, "POST", "/forgotten", Some("a")).await, 500);
        assert_eq!(
            status(&app, "GET", "/read", None).await,
            401,
            "reads closed"
        );
        assert_eq!(status(&app, "GET", "/read", Some("nope")).await, 401);
        assert_eq!(status(&app, "GET", "/read", Some("w")).await, 200);
        assert_eq!(status(&app, "HEAD", "/read", Some("w")).await, 200);
        assert_eq!(status(&app, "GET", "/healthz", None).await, 200);
        // A state-changing route is the handler's to refuse (this one does not check).
        assert_eq!(status(&app, "POST", "/write", None).await, 200);
        assert_eq!(status(&app, "GET", "/write", Some("a")).await, 405);
        assert_eq!(status(&app, "GET", "/nowhere", None).await, 404);
    }
}
