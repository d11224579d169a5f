//! Reading certificates, keys and CA bundles from PEM files, with errors that name the file.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::TlsError;

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn pem_error(what: &'static str, path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::Pem {
        what,
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Every certificate in a PEM file, in file order; an error when there is none.
pub(crate) fn certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(what, path, format!("is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(pem_error(
            what,
            path,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn key(what: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(what, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => pem_error(
            what,
            path,
            "holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)",
        ),
        e => pem_error(what, path, format!("is not valid PEM: {e}")),
    })
}

/// A certificate chain and its key, checked to belong together.
pub(crate) fn certified_key(cert: &Path, key_path: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = certs("certificate file", cert)?;
    let key = key("private key file", key_path)?;
    let provider = crate::provider::provider();
    let ck = CertifiedKey::from_der(chain, key, &provider).map_err(|source| TlsError::Rustls {
        what: format!(
            "the certificate {} and the key {} do not make a usable pair",
            cert.display(),
            key_path.display()
        ),
        source,
    })?;
    Ok(Arc::new(ck))
}

/// A root store holding every certificate of a CA bundle.
pub(crate) fn roots(what: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certs(what, path)? {
        store.add(cert).map_err(|source| TlsError::Rustls {
            what: format!("the {what} {} holds an unusable CA", path.display()),
            source,
        })?;
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_a_certificate_says_what_it_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cert.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = certs("certificate file", &path).unwrap_err().to_string();
        assert!(err.contains("cert.pem"), "{err}");
        assert!(err.contains("BEGIN CERTIFICATE"), "{err}");
        let err = key("private key file", &path).unwrap_err().to_string();
        assert!(err.contains("BEGIN PRIVATE KEY"), "{err}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = certs("client CA file", Path::new("/nonexistent/ca.pem"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("client CA file /nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b.test".into()]).unwrap();
        let cert = dir.path().join("a.pem");
        let key_path = dir.path().join("b.key");
        std::fs::write(&cert, a.cert.pem()).unwrap();
        std::fs::write(&key_path, b.signing_key.serialize_pem()).unwrap();
        let err = certified_key(&cert, &key_path).unwrap_err().to_string();
        assert!(err.contains("do not make a usable pair"), "{err}");
    }
}
