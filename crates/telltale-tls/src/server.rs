//! `[server.tls]` as a rustls server config: the certificate (reloaded when it changes),
//! HTTP/1.1 over ALPN, and client-certificate checks when a client CA is set.

use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use telltale_core::config::ServerTlsConfig;

use crate::error::TlsError;
use crate::reload::ReloadingCert;

/// The server config for `tls`, or `None` when TLS is off. Loads and checks the files
/// now, so a bad path or a mismatched key is a start-up error naming the file.
pub fn server_config(tls: &ServerTlsConfig) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
    let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) else {
        return Ok(None);
    };
    let resolver = Arc::new(ReloadingCert::new(Path::new(cert), Path::new(key))?);
    let provider = crate::provider::provider();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            what: "the TLS protocol versions".to_owned(),
            source,
        })?;
    let builder = match &tls.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = crate::pem::roots("client CA file", Path::new(ca))?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Rustls {
                    what: format!("the client CA file {ca}"),
                    source: rustls::Error::General(e.to_string()),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(resolver);
    // axum serves HTTP/1.1 here.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// [`server_config`] offering HTTP/2 over ALPN instead of HTTP/1.1: for the OTLP/gRPC
/// listener (gRPC clients insist on `h2`).
pub fn grpc_server_config(
    tls: &ServerTlsConfig,
) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
    Ok(server_config(tls)?.map(|c| {
        let mut c = (*c).clone();
        c.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(c)
    }))
}
