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
//! - [`grpc_server_config`]: the same with HTTP/2 over ALPN, for the OTLP/gRPC listener;
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
mod provider;
mod reload;
mod server;
#[cfg(feature = "testing")]
pub mod testing;

pub use client::{client_builder, rustls_client_config, server_verifier, with_client_tls};
pub use error::TlsError;
pub use listener::{Listener, Peer, Stream};
pub use provider::provider;
pub use server::{grpc_server_config, server_config};
