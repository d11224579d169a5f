//! # telltale-tls
//!
//! TLS wherever a network is crossed, on both ends of the data flow:
//!
//! ```text
//! sender ──https──▶ [Listener: TLS handshake, client certificate (mTLS), plain HTTP
//!                    answered with 400] ──▶ axum router (ingest, status, API, control)
//!
//! processor / simulator / probe ──[client_builder: system roots + CA file, client
//!                    certificate]──https──▶ InfluxDB, Alertmanager, another processor
//! ```
//!
//! - [`server_config`]: `[server.tls]` as a rustls server config whose certificate is read
//!   again when its files change (`reload`), with client-certificate checks when a client
//!   CA is set;
//! - [`Listener`]: a TCP listener for `axum::serve` that speaks TLS when given a config
//!   (handshakes run beside the accept loop, so a slow client delays no other);
//! - [`client_builder`]: the one way an HTTP client is built in telltale, https-ready,
//!   with an output's `tls` table applied.
//!
//! The crypto provider is `ring` (no cmake, a fraction of `aws-lc-rs`'s build:
//! docs/decisions/0014), installed as the process default for every client.

mod client;
mod error;
mod listener;
mod pem;
mod reload;
mod server;
#[cfg(feature = "testing")]
pub mod testing;

use std::sync::{Arc, OnceLock};

pub use client::{client_builder, with_client_tls};
pub use error::TlsError;
pub use listener::{Listener, Stream};
pub use server::server_config;

/// The crypto provider of every TLS connection telltale makes or takes: ring's.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // The process default, for reqwest (built with no provider of its own). Another
        // one installed first (by an embedding program) is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
        provider
    }))
}
