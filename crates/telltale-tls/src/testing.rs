//! Test support (feature `testing`): a private CA that issues server and client
//! certificates into PEM files, for tests that start real TLS servers and clients.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A certificate authority made for one test.
pub struct TestCa {
    name: String,
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").field("name", &self.name).finish()
    }
}

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Pair {
    /// The certificate (leaf only).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA named `name` (its common name).
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let pem = params.self_signed(&key).expect("CA certificate").pem();
        Self {
            name: name.to_owned(),
            params,
            key,
            pem,
        }
    }

    /// Writes the CA certificate to `path` (what clients or servers are told to trust).
    pub fn write_ca(&self, path: &Path) -> PathBuf {
        std::fs::write(path, &self.pem).expect("writing the CA file");
        path.to_owned()
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses) into
    /// `<dir>/<stem>.pem` and `<dir>/<stem>.key`, each written atomically (beside, then
    /// renamed over), as certificate renewals are.
    pub fn issue_server(&self, dir: &Path, stem: &str, names: &[&str]) -> Pair {
        self.issue(dir, stem, names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A server certificate for `names` that expired yesterday (valid the 30 days before).
    pub fn issue_server_expired(&self, dir: &Path, stem: &str, names: &[&str]) -> Pair {
        let now = std::time::SystemTime::now();
        let day = std::time::Duration::from_secs(86_400);
        self.issue_with(dir, stem, names, ExtendedKeyUsagePurpose::ServerAuth, |p| {
            p.not_before = (now - 31 * day).into();
            p.not_after = (now - day).into();
        })
    }

    /// Issues a client certificate with common name `name`, as [`issue_server`](Self::issue_server).
    pub fn issue_client(&self, dir: &Path, stem: &str, name: &str) -> Pair {
        self.issue(dir, stem, &[name], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(
        &self,
        dir: &Path,
        stem: &str,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> Pair {
        self.issue_with(dir, stem, names, usage, |_| {})
    }

    fn issue_with(
        &self,
        dir: &Path,
        stem: &str,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Pair {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("certificate params");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.extended_key_usages = vec![usage];
        adjust(&mut params);
        let key = KeyPair::generate().expect("key");
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("signing");
        let pair = Pair {
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
        };
        for (path, text) in [(&pair.cert, cert.pem()), (&pair.key, key.serialize_pem())] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).expect("writing a PEM file");
            std::fs::rename(&tmp, path).expect("renaming a PEM file");
        }
        pair
    }
}
