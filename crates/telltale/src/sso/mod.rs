//! Single sign-on for the status page and the control API (issue #14): any OpenID
//! Connect provider, the authorization code flow with PKCE, sessions in encrypted and
//! authenticated cookies, a groups claim mapped to the read or admin role. Bearer tokens
//! keep working beside it.
//!
//! Place in the data flow (`telltale process` / `telltale run`, `process::serve`):
//!
//! ```text
//! start: [server.oidc] ─▶ Sso::start ─ discovery, JWKS (provider.rs), key (session.rs)
//! request ─▶ guard.rs ─ bearer? tokens as before
//!                    └─ session cookie? (session.rs) role + CSRF ─▶ handler (Verified)
//!                    └─ neither: browser ─▶ 302 to the provider; else 401
//! /auth/login ─▶ routes.rs ─▶ provider ─▶ /auth/callback ─ code exchange, ID token
//!                 checks (provider.rs) ─▶ session cookie ─▶ back to the page
//! ```
//!
//! The files: `state.rs` ([`Sso`]: start, the secret, session look-up), `provider.rs` (the
//! protocol, `openidconnect`), `session.rs` (cookies, key, logout, CSRF check),
//! `routes.rs` (the `/auth/*` handlers and the login redirect).

mod provider;
mod routes;
mod session;
mod state;

pub use state::{Sso, client_secret};
