//! The `/auth/*` routes (in `telltale_processor::api::AUTH_ROUTES`, so the guard knows
//! them) and the redirect that starts a sign-in: `/auth/login` sends the browser to the
//! provider with a fresh state, nonce and PKCE challenge sealed in the login cookie;
//! `/auth/callback` checks the state, has the code exchanged and the ID token checked,
//! and turns the user into a session cookie; `/auth/logout` ends the session. Refusals
//! are logged with their reason (never a token or a cookie) and make no session.
//!
//! Place in the data flow: between the browser, the provider (`provider.rs`) and the
//! cookies (`session.rs`); the guard calls [`Sso::login_redirect`] for a browser without
//! a session.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::provider::{Pending, Refusal};
use super::session::{LOGIN_COOKIE, LOGIN_TTL, SESSION_COOKIE, Session, now, random_id};
use super::state::Sso;

/// What the login cookie holds.
#[derive(Debug, Serialize, Deserialize)]
struct Login {
    pending: Pending,
    /// The local path to return to.
    next: String,
    exp: i64,
}

/// `next` if it is a path on this server (never another host: `//evil`, `/\evil`).
fn local_path(next: &str) -> String {
    let ok = next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\");
    if ok { next.to_owned() } else { "/".to_owned() }
}

fn with_cookies(mut resp: Response, cookies: &[String]) -> Response {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn redirect(status: StatusCode, to: &str) -> Response {
    let mut resp = status.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn page(status: StatusCode, text: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

impl Sso {
    /// The `/auth/*` routes.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/auth/login", get(login))
            .route("/auth/callback", get(callback))
            .route("/auth/logout", post(logout))
            .with_state(Arc::clone(self))
    }

    /// 302 to the provider, with the login cookie; back to `next` afterwards.
    pub async fn login_redirect(&self, next: &str) -> Response {
        match self.provider.begin().await {
            Ok((url, pending)) => {
                let login = Login {
                    pending,
                    next: local_path(next),
                    exp: now() + LOGIN_TTL.as_secs() as i64,
                };
                let cookie = self.cookies.seal(LOGIN_COOKIE, &login, LOGIN_TTL);
                with_cookies(redirect(StatusCode::FOUND, &url), &[cookie])
            }
            Err(e) => {
                tracing::error!("single sign-on: cannot start a sign-in: {e:#}");
                page(
                    StatusCode::BAD_GATEWAY,
                    format!("cannot start the sign-in: {e:#}\n"),
                )
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

async fn login(State(sso): State<Arc<Sso>>, Query(q): Query<LoginQuery>) -> Response {
    sso.login_redirect(q.next.as_deref().unwrap_or("/")).await
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Compares without an early exit (the state is a secret of this sign-in).
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn callback(
    State(sso): State<Arc<Sso>>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let clear_login = sso.cookies.clear(LOGIN_COOKIE);
    let refuse = |status: StatusCode, why: String| {
        tracing::warn!("single sign-on refused: {why}");
        with_cookies(
            page(status, format!("sign-in refused: {why}\n")),
            std::slice::from_ref(&clear_login),
        )
    };
    let Some(login) = sso
        .cookies
        .open::<Login>(&headers, LOGIN_COOKIE)
        .filter(|l| l.exp > now())
    else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "no sign-in in progress from this browser (or it took over 10 minutes): \
             start again at /auth/login"
                .to_owned(),
        );
    };
    if !q
        .state
        .as_deref()
        .is_some_and(|s| same(s, &login.pending.state))
    {
        return refuse(
            StatusCode::FORBIDDEN,
            "the state parameter does not match this browser's sign-in (a forged or \
             replayed callback)"
                .to_owned(),
        );
    }
    if let Some(error) = q.error {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "the provider answered {error}: {}",
                q.error_description.unwrap_or_default()
            ),
        );
    }
    let Some(code) = q.code else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the callback has no code".to_owned(),
        );
    };
    match sso.provider.finish(code, login.pending).await {
        Ok(user) => {
            let session = Session {
                sid: random_id(),
                sub: user.subject,
                name: user.name,
                role: user.role.as_str().to_owned(),
                exp: now() + sso.session_ttl.as_secs() as i64,
            };
            tracing::info!(user = %session.name, sub = %session.sub, role = %session.role, "signed in");
            let cookie = sso.cookies.seal(SESSION_COOKIE, &session, sso.session_ttl);
            with_cookies(
                redirect(StatusCode::SEE_OTHER, &login.next),
                &[cookie, clear_login.clone()],
            )
        }
        Err(e @ Refusal::Internal(_)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => refuse(StatusCode::FORBIDDEN, e.to_string()),
    }
}

async fn logout(State(sso): State<Arc<Sso>>, headers: HeaderMap) -> Response {
    if !sso.same_origin(&headers) {
        return page(
            StatusCode::FORBIDDEN,
            "cross-site sign-out refused: POST /auth/logout from telltale's own pages\n".to_owned(),
        );
    }
    if let Some(s) = sso.session(&headers) {
        sso.cookies.revoke(&s);
        tracing::info!(user = %s.name, sub = %s.sub, "signed out");
    }
    with_cookies(
        page(StatusCode::OK, "signed out\n".to_owned()),
        &[sso.cookies.clear(SESSION_COOKIE)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(local_path("/control?x=1"), "/control?x=1");
        for bad in ["//evil.example/", "/\\evil", "https://evil.example/", ""] {
            assert_eq!(local_path(bad), "/", "{bad}");
        }
    }
}
