//! TLS settings as written in `config/telltale.toml`: `[server.tls]` for every listener
//! telltale opens, and a `tls` table beside each output's URL (`[influx.tls]`,
//! `[alertmanager.tls]`) for the https clients. Only paths and switches: reading the PEM
//! files and building the rustls configs is `telltale-tls`'s job.

use serde::{Deserialize, Serialize};

use super::error::{ConfigError, invalid};

/// `[server.tls]`: HTTPS on every listener telltale opens (ingest, status page and API,
/// control API, `/metrics`). Both files set = the listener speaks only TLS; neither =
/// plain HTTP. The CLI's `--tls-cert`/`--tls-key`/`--tls-client-ca` (and
/// `TELLTALE_TLS_CERT`/`TELLTALE_TLS_KEY`/`TELLTALE_TLS_CLIENT_CA`) win over the file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerTlsConfig {
    /// PEM file with the certificate chain, leaf first. Read again when it changes (a
    /// renewed certificate is served from the next connection on, without a restart).
    pub cert_file: Option<String>,
    /// PEM file with the private key of `cert_file` (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<String>,
    /// PEM file with the CA certificates that sign client certificates. When set, every
    /// client must present a certificate signed by one of them (mutual TLS).
    pub client_ca_file: Option<String>,
}

impl ServerTlsConfig {
    /// Whether the listeners speak TLS.
    pub fn is_enabled(&self) -> bool {
        self.cert_file.is_some() || self.key_file.is_some()
    }

    /// Checks that the certificate and the key come together; `file` and `key` (the
    /// table, e.g. `server.tls`) name the source in messages.
    pub fn validate(&self, file: &str, key: &str) -> Result<(), ConfigError> {
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => Err(invalid(
                file,
                format!("{key}.key_file"),
                "is missing: a certificate needs its private key (set both, or neither for plain HTTP)",
            )),
            (None, Some(_)) => Err(invalid(
                file,
                format!("{key}.cert_file"),
                "is missing: a private key needs its certificate (set both, or neither for plain HTTP)",
            )),
            (None, None) if self.client_ca_file.is_some() => Err(invalid(
                file,
                format!("{key}.client_ca_file"),
                "needs cert_file and key_file: client certificates are checked only on a TLS listener",
            )),
            _ => Ok(()),
        }
    }
}

/// A `tls` table beside an output's URL (`[influx.tls]`, `[alertmanager.tls]`): how an
/// https client checks the server, and the client's own certificate for servers that ask
/// for one. The system's CA certificates are always trusted (`SSL_CERT_FILE` /
/// `SSL_CERT_DIR` point elsewhere).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ClientTlsConfig {
    /// PEM file with CA certificates trusted in addition to the system's, e.g. a private
    /// CA that signed the server's certificate.
    pub ca_file: Option<String>,
    /// PEM file with a client certificate chain, for servers that require mutual TLS.
    pub cert_file: Option<String>,
    /// PEM file with the private key of `cert_file`.
    pub key_file: Option<String>,
    /// Accepts any server certificate, even expired, self-signed or for another host.
    /// Anyone on the path can then read and change the traffic: for a test bench only.
    /// Logged as a warning at start.
    pub insecure_skip_verify: bool,
}

impl ClientTlsConfig {
    /// Checks that a client certificate comes with its key; `key` names the table.
    pub fn validate(&self, file: &str, key: &str) -> Result<(), ConfigError> {
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => Err(invalid(
                file,
                format!("{key}.key_file"),
                "is missing: a client certificate needs its private key",
            )),
            (None, Some(_)) => Err(invalid(
                file,
                format!("{key}.cert_file"),
                "is missing: a private key needs its client certificate",
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_without_its_key_names_the_missing_key() {
        let tls = ServerTlsConfig {
            cert_file: Some("cert.pem".into()),
            ..Default::default()
        };
        let err = tls.validate("telltale.toml", "server.tls").unwrap_err();
        assert!(err.to_string().contains("server.tls.key_file"), "{err}");
        let tls = ServerTlsConfig {
            key_file: Some("key.pem".into()),
            ..Default::default()
        };
        let err = tls.validate("telltale.toml", "server.tls").unwrap_err();
        assert!(err.to_string().contains("server.tls.cert_file"), "{err}");
    }

    #[test]
    fn a_client_ca_without_a_tls_listener_is_an_error() {
        let tls = ServerTlsConfig {
            client_ca_file: Some("ca.pem".into()),
            ..Default::default()
        };
        let err = tls.validate("telltale.toml", "server.tls").unwrap_err();
        assert!(err.to_string().contains("client_ca_file"), "{err}");
        assert!(!tls.is_enabled());
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let tls = ClientTlsConfig {
            cert_file: Some("client.pem".into()),
            ..Default::default()
        };
        let err = tls.validate("telltale.toml", "influx.tls").unwrap_err();
        assert!(err.to_string().contains("influx.tls.key_file"), "{err}");
        assert!(ClientTlsConfig::default().validate("f", "k").is_ok());
    }
}
