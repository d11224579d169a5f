//! [`Sso`], single sign-on once started: the provider discovered, the cookie key loaded,
//! the client secret read (`TELLTALE_OIDC_CLIENT_SECRET` or the file). Place in the data
//! flow: built by `process::serve` before the listener opens; the guard and `routes.rs`
//! hold it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::HeaderMap;
use telltale_core::config::{OidcConfig, Secret};

pub use super::session::Session;
use super::{provider, session};

/// Where the client secret comes from besides `server.oidc.client_secret_file`.
pub const SECRET_ENV: &str = "TELLTALE_OIDC_CLIENT_SECRET";

/// Single sign-on, started: the provider discovered, the cookie key loaded.
#[derive(Debug)]
pub struct Sso {
    pub(super) provider: provider::Provider,
    pub(super) cookies: session::Cookies,
    /// telltale's public origin (of `redirect_url`), which cookie-signed-in state
    /// changes must come from.
    origin: String,
    pub(super) session_ttl: Duration,
}

/// The client secret: `TELLTALE_OIDC_CLIENT_SECRET`, else the file's first line.
pub fn client_secret(cfg: &OidcConfig) -> anyhow::Result<Option<Secret>> {
    if let Ok(v) = std::env::var(SECRET_ENV)
        && !v.trim().is_empty()
    {
        return Ok(Some(Secret::new(v.trim())));
    }
    let Some(path) = &cfg.client_secret_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading server.oidc.client_secret_file {path}"))?;
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    match line {
        Some(l) => Ok(Some(Secret::new(l))),
        None => anyhow::bail!(
            "server.oidc.client_secret_file {path} is empty: put the client secret from \
             the provider in it (or set {SECRET_ENV})"
        ),
    }
}

impl Sso {
    /// Discovers the provider and loads (or generates) the session key. `https`: the
    /// listener speaks TLS (cookies are then `Secure`; so they are when `redirect_url`
    /// is https, behind a proxy that terminates TLS).
    pub async fn start(
        cfg: &OidcConfig,
        data_dir: &Path,
        https: bool,
    ) -> anyhow::Result<Arc<Self>> {
        let secret = client_secret(cfg)?;
        let key = session::load_key(cfg.session_key_file.as_deref(), data_dir)?;
        let origin = openidconnect::url::Url::parse(&cfg.redirect_url)
            .context("server.oidc.redirect_url is not a URL")?
            .origin()
            .ascii_serialization();
        let secure = https || cfg.redirect_url.starts_with("https://");
        let provider = provider::Provider::discover(cfg.clone(), secret).await?;
        tracing::info!(
            issuer = %cfg.issuer_url,
            client_id = %cfg.client_id,
            "single sign-on on: reading needs a session or a token"
        );
        Ok(Arc::new(Self {
            provider,
            cookies: session::Cookies::new(key, secure),
            origin,
            session_ttl: cfg.session_ttl,
        }))
    }

    /// The request's session, if any (sealed by us, unexpired, not logged out).
    pub fn session(&self, headers: &HeaderMap) -> Option<Session> {
        self.cookies.session(headers)
    }

    /// The CSRF check for a cookie-signed-in state change.
    pub fn same_origin(&self, headers: &HeaderMap) -> bool {
        session::same_origin(headers, &self.origin)
    }
}
