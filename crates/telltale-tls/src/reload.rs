//! The server certificate, read again when its files change: a renewed certificate
//! (certbot, cert-manager, a rotated Kubernetes secret) is served from the next handshake
//! on, without a restart and without dropping open connections.
//!
//! Each handshake compares the two files' identity (device, inode, size, modification
//! time) with what was loaded: a `stat` of two files, small beside the handshake's
//! cryptography. A changed pair that does not load (the certificate renewed but the key
//! not yet written) keeps the last good pair and logs a warning; it is tried again when a
//! file changes again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::error::TlsError;

/// What tells that a file changed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        modified: m.modified().ok(),
    })
}

#[derive(Debug)]
struct Loaded {
    stamps: (Option<Stamp>, Option<Stamp>),
    key: Arc<CertifiedKey>,
}

/// A [`ResolvesServerCert`] that reloads the certificate and key files when they change.
#[derive(Debug)]
pub(crate) struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    loaded: Mutex<Loaded>,
}

impl ReloadingCert {
    /// Loads the pair once: an error here is a start-up error.
    pub(crate) fn new(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let stamps = (stamp(cert), stamp(key));
        let certified = crate::pem::certified_key(cert, key)?;
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            loaded: Mutex::new(Loaded {
                stamps,
                key: certified,
            }),
        })
    }

    /// The pair to serve now, reloaded first if a file changed.
    pub(crate) fn current(&self) -> Arc<CertifiedKey> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let stamps = (stamp(&self.cert), stamp(&self.key));
        if stamps != loaded.stamps {
            loaded.stamps = stamps;
            match crate::pem::certified_key(&self.cert, &self.key) {
                Ok(key) => {
                    loaded.key = key;
                    tracing::info!(
                        cert = %self.cert.display(),
                        "the TLS certificate changed on disk: serving the new one"
                    );
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "the TLS certificate files changed but do not load: still serving the previous certificate"
                ),
            }
        }
        Arc::clone(&loaded.key)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let c = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        // Atomically, as certbot and Kubernetes do: write beside, rename over.
        for (path, text) in [(&cert, c.cert.pem()), (&key, c.signing_key.serialize_pem())] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
        (cert, key)
    }

    #[test]
    fn a_renewed_pair_is_served_and_a_half_written_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "old.test");
        let resolver = ReloadingCert::new(&cert, &key).unwrap();
        let first = resolver.current();
        assert!(
            Arc::ptr_eq(&first, &resolver.current()),
            "unchanged files: same pair"
        );

        write_pair(dir.path(), "new.test");
        let renewed = resolver.current();
        assert_ne!(
            renewed.cert, first.cert,
            "the renewed certificate is served"
        );

        // The certificate is replaced but the key is not (yet): keep serving the last pair.
        let other = rcgen::generate_simple_self_signed(vec!["other.test".into()]).unwrap();
        std::fs::write(&cert, other.cert.pem()).unwrap();
        assert_eq!(resolver.current().cert, renewed.cert);
    }
}
