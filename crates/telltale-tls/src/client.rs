//! HTTP clients that speak https: the one way a `reqwest` client is built in telltale.
//!
//! Servers are verified against the system's CA certificates (the platform verifier:
//! `/etc/ssl/certs`, or `SSL_CERT_FILE` / `SSL_CERT_DIR`) plus an output's `ca_file`; the
//! client presents a certificate when the output has one (servers that require mutual
//! TLS). Verification is off only with `insecure_skip_verify`, a name that says what it
//! does, and a warning at start.

use std::path::Path;

use telltale_core::config::ClientTlsConfig;

use crate::error::TlsError;

/// A client builder that can speak https (the ring provider installed). Every HTTP client
/// in telltale starts here; reqwest's own `Client::new()` would find no crypto provider.
pub fn client_builder() -> reqwest::ClientBuilder {
    crate::provider::provider();
    reqwest::Client::builder()
}

/// Applies an output's `tls` table to `builder`. `what` names the client in errors and in
/// the warning about `insecure_skip_verify` (e.g. `the InfluxDB client`); `key` is the
/// table (`influx.tls`).
pub fn with_client_tls(
    mut builder: reqwest::ClientBuilder,
    tls: &ClientTlsConfig,
    what: &str,
    key: &str,
) -> Result<reqwest::ClientBuilder, TlsError> {
    let client_error = |e: reqwest::Error| TlsError::Client {
        what: what.to_owned(),
        reason: e.to_string(),
    };
    if let Some(ca) = &tls.ca_file {
        let mut roots = Vec::new();
        for der in crate::pem::certs("CA file", Path::new(ca))? {
            roots.push(reqwest::Certificate::from_der(&der).map_err(client_error)?);
        }
        builder = builder.tls_certs_merge(roots);
    }
    if let (Some(cert), Some(key_file)) = (&tls.cert_file, &tls.key_file) {
        // Both read and checked here so that a bad file is named, not reqwest's parse error.
        crate::pem::certified_key(Path::new(cert), Path::new(key_file))?;
        let mut pem = read(cert, "client certificate file")?;
        pem.push(b'\n');
        pem.extend(read(key_file, "client key file")?);
        builder = builder.identity(reqwest::Identity::from_pem(&pem).map_err(client_error)?);
    }
    if tls.insecure_skip_verify {
        tracing::warn!(
            "{key}.insecure_skip_verify is on: {what} accepts any server certificate, so anyone \
             on the path can read and change its traffic; use {key}.ca_file instead"
        );
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    Ok(builder)
}

/// The verifier of server certificates that reqwest clients use (the platform's roots,
/// plus the certificates of `ca_file`), for a client that speaks TLS itself (the URL
/// monitors, which time the handshake and read the certificate).
pub fn server_verifier(
    ca_file: Option<&Path>,
) -> Result<std::sync::Arc<dyn rustls::client::danger::ServerCertVerifier>, TlsError> {
    let extra = match ca_file {
        Some(ca) => crate::pem::certs("CA file", ca)?,
        None => Vec::new(),
    };
    let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(
        extra,
        crate::provider::provider(),
    )
    .map_err(|source| TlsError::Rustls {
        what: "the platform certificate verifier".to_owned(),
        source,
    })?;
    Ok(std::sync::Arc::new(verifier))
}

fn read(path: &str, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.into(),
        source,
    })
}

/// A rustls client configuration from an output's `tls` table, for clients that are not
/// reqwest (the PostgreSQL connection): [`server_verifier`]'s trust, the client
/// certificate when the table has one. `insecure_skip_verify` is refused here: such a
/// client has no reason to skip it, and a database password must not go to anyone.
pub fn rustls_client_config(
    tls: &ClientTlsConfig,
    key: &str,
) -> Result<std::sync::Arc<rustls::ClientConfig>, TlsError> {
    if tls.insecure_skip_verify {
        return Err(TlsError::Client {
            what: key.to_owned(),
            reason: format!("{key}.insecure_skip_verify is not supported: set {key}.ca_file"),
        });
    }
    let verifier = server_verifier(tls.ca_file.as_deref().map(Path::new))?;
    let builder = rustls::ClientConfig::builder_with_provider(crate::provider::provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            what: "the TLS client".to_owned(),
            source,
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key_file)) => {
            let chain = crate::pem::certs("client certificate file", Path::new(cert))?;
            let key_der = crate::pem::key("client key file", Path::new(key_file))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|source| TlsError::Rustls {
                    what: "the client certificate".to_owned(),
                    source,
                })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(std::sync::Arc::new(config))
}
