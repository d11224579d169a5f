//! The OpenID Connect side of single sign-on, with the `openidconnect` crate: discovery
//! (`/.well-known/openid-configuration` and the JWKS it names), the authorization URL
//! with PKCE, state and nonce, and the code exchange whose ID token is checked (signature
//! against the JWKS, issuer, audience, expiry, nonce) before its groups claim becomes a
//! role. HTTP goes through telltale's own reqwest client (`telltale_tls::client_builder`,
//! no redirects followed), served to the crate through its `AsyncHttpClient` trait.
//!
//! Place in the data flow: `routes.rs` calls [`Provider::begin`] at `/auth/login` and
//! [`Provider::finish`] at `/auth/callback`; what `finish` returns becomes the session
//! cookie (`session.rs`).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, StandardErrorResponse,
    StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};
use telltale_core::auth::Role;
use telltale_core::config::{OidcConfig, Secret};

/// The claims beyond the standard ones, kept whole so the configured groups claim can be
/// read by name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtraClaims {
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}
impl AdditionalClaims for ExtraClaims {}

type IdFields = IdTokenFields<
    ExtraClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type OidcClient = Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    StandardTokenResponse<IdFields, CoreTokenType>,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// How old the discovered metadata and keys may get before a new sign-in reads them
/// again (the provider may have rotated its signing keys).
const REDISCOVER_AFTER: Duration = Duration::from_secs(300);

/// A failed HTTP exchange with the provider, as the crate's trait needs it.
#[derive(Debug)]
pub struct HttpFailure(String);

impl std::fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for HttpFailure {}

async fn send(
    client: reqwest::Client,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, HttpFailure> {
    let (parts, body) = request.into_parts();
    let resp = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| HttpFailure(format!("{}: {e}", parts.uri)))?;
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = resp
        .bytes()
        .await
        .map_err(|e| HttpFailure(format!("reading the answer of {}: {e}", parts.uri)))?;
    let mut out = openidconnect::http::Response::new(body.to_vec());
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

/// The user an ID token names, with the role their groups map to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    /// The `sub` claim.
    pub subject: String,
    /// `preferred_username`, `email` or `name`, for logs and the page (may be empty).
    pub name: String,
    pub role: Role,
}

/// What `/auth/login` keeps in the login cookie until the callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// The provider, discovered.
pub struct Provider {
    config: OidcConfig,
    secret: Option<Secret>,
    http: reqwest::Client,
    metadata: RwLock<(Instant, Arc<CoreProviderMetadata>)>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer_url", &self.config.issuer_url)
            .field("client_id", &self.config.client_id)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

async fn discover(http: &reqwest::Client, issuer: &str) -> anyhow::Result<CoreProviderMetadata> {
    let url = IssuerUrl::new(issuer.to_owned())
        .with_context(|| format!("server.oidc.issuer_url {issuer:?} is not a URL"))?;
    let client = http.clone();
    let call = move |req| send(client.clone(), req);
    CoreProviderMetadata::discover_async(url, &call)
        .await
        .map_err(|e| anyhow::anyhow!(error_chain(&e)))
        .with_context(|| {
            format!(
                "OpenID Connect discovery failed: reading \
                 {}/.well-known/openid-configuration and the keys it names \
                 (check server.oidc.issuer_url, and that the provider is up and reachable)",
                issuer.trim_end_matches('/')
            )
        })
}

/// An error and its sources, `: `-joined (the crate's top-level messages are terse).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

impl Provider {
    /// Reads the provider's metadata and keys: an unreachable or wrong issuer is an error
    /// here, at start, not at the first sign-in.
    pub async fn discover(config: OidcConfig, secret: Option<Secret>) -> anyhow::Result<Self> {
        let http = telltale_tls::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()
            .context("building the HTTP client for the OpenID Connect provider")?;
        let metadata = discover(&http, &config.issuer_url).await?;
        Ok(Self {
            config,
            secret,
            http,
            metadata: RwLock::new((Instant::now(), Arc::new(metadata))),
        })
    }

    fn metadata(&self) -> Arc<CoreProviderMetadata> {
        Arc::clone(&self.metadata.read().unwrap_or_else(|p| p.into_inner()).1)
    }

    /// The metadata, read again when older than [`REDISCOVER_AFTER`] (a failure keeps
    /// the old one and is logged).
    async fn fresh_metadata(&self) -> Arc<CoreProviderMetadata> {
        let stale = self
            .metadata
            .read()
            .map(|m| m.0.elapsed() > REDISCOVER_AFTER)
            .unwrap_or(true);
        if stale {
            match discover(&self.http, &self.config.issuer_url).await {
                Ok(m) => {
                    let mut slot = self.metadata.write().unwrap_or_else(|p| p.into_inner());
                    *slot = (Instant::now(), Arc::new(m));
                }
                Err(e) => tracing::warn!("{e:#}; keeping the keys read before"),
            }
        }
        self.metadata()
    }

    fn client(&self, metadata: &CoreProviderMetadata) -> anyhow::Result<OidcClient> {
        let redirect = RedirectUrl::new(self.config.redirect_url.clone())
            .context("server.oidc.redirect_url is not a URL")?;
        Ok(OidcClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.config.client_id.clone()),
            self.secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose().to_owned())),
        )
        .set_redirect_uri(redirect))
    }

    /// The provider's authorization URL for a new sign-in, and what the callback must
    /// check (state, nonce, PKCE verifier).
    pub async fn begin(&self) -> anyhow::Result<(String, Pending)> {
        let metadata = self.fresh_metadata().await;
        let client = self.client(&metadata)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in self.config.scopes.iter().filter(|s| *s != "openid") {
            req = req.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = req.set_pkce_challenge(challenge).url();
        Ok((
            url.to_string(),
            Pending {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
            },
        ))
    }

    /// Exchanges `code` for tokens and checks the ID token; the user and their role.
    /// Every refusal is an error that says why (never a session).
    pub async fn finish(&self, code: String, pending: Pending) -> Result<SignedIn, Refusal> {
        let metadata = self.metadata();
        let client = self.client(&metadata).map_err(Refusal::internal)?;
        let http = self.http.clone();
        let call = move |req| send(http.clone(), req);
        let tokens = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| {
                Refusal::internal(anyhow::anyhow!("the provider has no token endpoint: {e}"))
            })?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier))
            .request_async(&call)
            .await
            .map_err(|e| Refusal::Exchange(error_chain(&e)))?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| Refusal::Token("the token answer has no id_token".to_owned()))?;
        let verifier = client.id_token_verifier();
        let claims = id_token
            .claims(&verifier, &Nonce::new(pending.nonce))
            .map_err(|e| Refusal::Token(error_chain(&e)))?;
        let groups = groups(
            claims
                .additional_claims()
                .rest
                .get(&self.config.groups_claim),
        );
        let name = claims
            .preferred_username()
            .map(|u| u.to_string())
            .or_else(|| claims.email().map(|e| e.to_string()))
            .or_else(|| {
                claims
                    .name()
                    .and_then(|n| n.get(None))
                    .map(|n| n.to_string())
            })
            .unwrap_or_default();
        let subject = claims.subject().to_string();
        let role = if groups.iter().any(|g| self.config.admin_groups.contains(g)) {
            Role::Admin
        } else if groups.iter().any(|g| self.config.read_groups.contains(g)) {
            Role::Read
        } else {
            return Err(Refusal::NoRole {
                who: if name.is_empty() { subject } else { name },
                claim: self.config.groups_claim.clone(),
                groups,
            });
        };
        Ok(SignedIn {
            subject,
            name,
            role,
        })
    }
}

/// The groups in a claim's value: a string or an array of strings.
fn groups(value: Option<&serde_json::Value>) -> Vec<String> {
    match value {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// Why a callback made no session.
#[derive(Debug)]
pub enum Refusal {
    /// The provider refused the code (or could not be reached).
    Exchange(String),
    /// The ID token failed a check (signature, audience, expiry, nonce, issuer).
    Token(String),
    /// Signed in, but none of the user's groups maps to a role.
    NoRole {
        who: String,
        claim: String,
        groups: Vec<String>,
    },
    /// Telltale's own fault.
    Internal(String),
}

impl Refusal {
    fn internal(e: anyhow::Error) -> Self {
        Refusal::Internal(format!("{e:#}"))
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Exchange(e) => write!(f, "the provider did not exchange the code: {e}"),
            Refusal::Token(e) => write!(f, "the provider's ID token was refused: {e}"),
            Refusal::NoRole { who, claim, groups } => write!(
                f,
                "{who} signed in, but none of their groups ({claim}: {groups:?}) is in \
                 server.oidc.admin_groups or server.oidc.read_groups"
            ),
            Refusal::Internal(e) => write!(f, "{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_groups_claim_may_be_a_string_or_a_list() {
        assert_eq!(groups(Some(&serde_json::json!("a"))), vec!["a"]);
        assert_eq!(
            groups(Some(&serde_json::json!(["a", 1, "b"]))),
            vec!["a", "b"]
        );
        assert!(groups(Some(&serde_json::json!({"a": 1}))).is_empty());
        assert!(groups(None).is_empty());
    }
}
