//! `[server.oidc]` as written in `config/telltale.toml`: single sign-on through an OpenID
//! Connect provider for the status page and the control API (issue #14). Only URLs,
//! names and paths: the binary (`crates/telltale/src/sso/`) reads the secret and key
//! files, talks to the provider and keeps the sessions.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::{ConfigError, invalid};

/// `[server.oidc]`: sign in through an OpenID Connect provider (Keycloak, Authentik,
/// Entra ID, Google, …) with the authorization code flow and PKCE. Off while
/// `issuer_url` is empty. When on, reading (status page, `/api/v1/*`, `/metrics`,
/// `GET /control`) needs a session or a bearer token of any role, and a browser without
/// either is sent to the provider; bearer tokens keep working as without SSO.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// The provider's issuer, e.g. `https://sso.example.com/realms/telltale`; its
    /// `/.well-known/openid-configuration` is read at start. Must be https, except on a
    /// loopback address (a provider on the same machine, as in the tests).
    pub issuer_url: String,
    /// The client ID registered at the provider for telltale.
    pub client_id: String,
    /// File holding the client secret (one line). `TELLTALE_OIDC_CLIENT_SECRET` wins over
    /// it. Neither: a public client (PKCE alone). Keep the file out of git.
    pub client_secret_file: Option<String>,
    /// The public URL of telltale's `/auth/callback`, exactly as registered at the
    /// provider, e.g. `https://telltale.example.com/auth/callback`. Its origin is the one
    /// cookie-signed-in `POST`s must come from (CSRF check).
    pub redirect_url: String,
    /// Scopes asked for; `openid` is always sent.
    pub scopes: Vec<String>,
    /// The ID token claim that lists the user's groups (or roles): a string or an array
    /// of strings. Keycloak: add a "Group Membership" mapper to the ID token.
    pub groups_claim: String,
    /// Groups whose members get the admin role (the control API, and reading).
    pub admin_groups: Vec<String>,
    /// Groups whose members may read (status page, `/api/v1/*`, `/metrics`). A user in
    /// none of `admin_groups` and `read_groups` is refused at sign-in.
    pub read_groups: Vec<String>,
    /// File with the key that encrypts and signs the session cookies (at least 64 random
    /// bytes, as 128+ hex digits). Unset: `sso-session.key` in the data dir, generated on
    /// first start. Set it to the same file on every instance behind one load balancer.
    pub session_key_file: Option<String>,
    /// How long a session lasts after sign-in (then the browser is sent to the provider
    /// again).
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No secret lives here (only the path of one), but keep the shape explicit.
        f.debug_struct("OidcConfig")
            .field("issuer_url", &self.issuer_url)
            .field("client_id", &self.client_id)
            .field("client_secret_file", &self.client_secret_file)
            .field("redirect_url", &self.redirect_url)
            .field("scopes", &self.scopes)
            .field("groups_claim", &self.groups_claim)
            .field("admin_groups", &self.admin_groups)
            .field("read_groups", &self.read_groups)
            .field("session_key_file", &self.session_key_file)
            .field("session_ttl", &self.session_ttl)
            .finish()
    }
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            issuer_url: String::new(),
            client_id: String::new(),
            client_secret_file: None,
            redirect_url: String::new(),
            scopes: ["openid", "profile", "email", "groups"]
                .map(str::to_owned)
                .to_vec(),
            groups_claim: "groups".to_owned(),
            admin_groups: Vec::new(),
            read_groups: Vec::new(),
            session_key_file: None,
            session_ttl: Duration::from_secs(8 * 3600),
        }
    }
}

/// Whether `url` is `http://` to a loopback host (127.0.0.0/8, `[::1]`, `localhost`).
fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl OidcConfig {
    /// Whether single sign-on is on.
    pub fn is_enabled(&self) -> bool {
        !self.issuer_url.is_empty()
    }

    /// Checks the table when it is on; `file` and `key` (`server.oidc`) name the source.
    pub fn validate(&self, file: &str, key: &str) -> Result<(), ConfigError> {
        if !self.is_enabled() {
            return Ok(());
        }
        let https_or_loopback = |field: &str, url: &str, example: &str| {
            if url.starts_with("https://") || is_loopback_http(url) {
                Ok(())
            } else {
                Err(invalid(
                    file,
                    format!("{key}.{field}"),
                    format!(
                        "`{url}` must be an https:// URL (plain http only to a loopback \
                         address), e.g. \"{example}\""
                    ),
                ))
            }
        };
        https_or_loopback(
            "issuer_url",
            &self.issuer_url,
            "https://sso.example.com/realms/telltale",
        )?;
        if self.client_id.trim().is_empty() {
            return Err(invalid(
                file,
                format!("{key}.client_id"),
                "is empty: set the client ID registered at the provider, e.g. \"telltale\"",
            ));
        }
        if self.redirect_url.is_empty() {
            return Err(invalid(
                file,
                format!("{key}.redirect_url"),
                "is empty: set the public URL of /auth/callback as registered at the \
                 provider, e.g. \"https://telltale.example.com/auth/callback\"",
            ));
        }
        https_or_loopback(
            "redirect_url",
            &self.redirect_url,
            "https://telltale.example.com/auth/callback",
        )?;
        if !self.redirect_url.ends_with("/auth/callback") {
            return Err(invalid(
                file,
                format!("{key}.redirect_url"),
                format!(
                    "`{}` must end in /auth/callback, the route telltale serves the \
                     provider's answer on",
                    self.redirect_url
                ),
            ));
        }
        if self.groups_claim.trim().is_empty() {
            return Err(invalid(
                file,
                format!("{key}.groups_claim"),
                "is empty: name the ID token claim with the user's groups, e.g. \"groups\"",
            ));
        }
        if self.admin_groups.is_empty() && self.read_groups.is_empty() {
            return Err(invalid(
                file,
                format!("{key}.admin_groups"),
                "and read_groups are both empty, so nobody could sign in: list the \
                 provider's groups, e.g. admin_groups = [\"telltale-admins\"]",
            ));
        }
        if self.session_ttl < Duration::from_secs(60) {
            return Err(invalid(
                file,
                format!("{key}.session_ttl"),
                "must be at least 1m, e.g. \"8h\"",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> OidcConfig {
        OidcConfig {
            issuer_url: "https://sso.example.com/realms/t".into(),
            client_id: "telltale".into(),
            redirect_url: "https://t.example.com/auth/callback".into(),
            admin_groups: vec!["admins".into()],
            ..OidcConfig::default()
        }
    }

    #[test]
    fn off_by_default_and_then_not_checked() {
        assert!(!OidcConfig::default().is_enabled());
        assert!(
            OidcConfig::default()
                .validate("t.toml", "server.oidc")
                .is_ok()
        );
        assert!(on().validate("t.toml", "server.oidc").is_ok());
    }

    #[test]
    fn plain_http_only_to_loopback() {
        let mut c = on();
        c.issuer_url = "http://sso.example.com".into();
        let err = c.validate("t.toml", "server.oidc").unwrap_err().to_string();
        assert!(
            err.contains("t.toml") && err.contains("server.oidc.issuer_url"),
            "{err}"
        );
        assert!(err.contains("https://"), "{err}");
        for ok in [
            "http://127.0.0.1:9000",
            "http://localhost/x",
            "http://[::1]:80",
        ] {
            c.issuer_url = ok.into();
            assert!(c.validate("t.toml", "server.oidc").is_ok(), "{ok}");
        }
    }

    #[test]
    fn each_mistake_names_its_key() {
        type Break = fn(&mut OidcConfig);
        let cases: [(&str, Break); 4] = [
            ("client_id", |c| c.client_id.clear()),
            ("redirect_url", |c| {
                c.redirect_url = "https://t.example.com/cb".into()
            }),
            ("admin_groups", |c| c.admin_groups.clear()),
            ("session_ttl", |c| c.session_ttl = Duration::from_secs(5)),
        ];
        for (key, break_it) in cases {
            let mut c = on();
            break_it(&mut c);
            let err = c.validate("t.toml", "server.oidc").unwrap_err().to_string();
            assert!(err.contains(&format!("server.oidc.{key}")), "{key}: {err}");
        }
    }
}
