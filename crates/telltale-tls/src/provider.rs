//! The one crypto provider, ring, made the process default for reqwest.

use std::sync::{Arc, OnceLock};

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
