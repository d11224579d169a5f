//! `--tls-ca`, `--tls-client-cert`, `--tls-client-key`, `--tls-insecure-skip-verify`: how
//! a command's https client (`telltale sim`/`probe --output https://…`, `telltale spike
//! --control https://…`) checks the server and proves who it is.

use telltale_core::config::ClientTlsConfig;

/// The https client flags of a command that sends to a telltale server.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientTlsArgs {
    /// PEM CA certificates trusted for an https:// server besides the system's (e.g. the
    /// private CA that signed the processor's --tls-cert).
    #[arg(long, env = "TELLTALE_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<String>,
    /// PEM client certificate, for a server that requires one (--tls-client-ca there).
    #[arg(
        long,
        env = "TELLTALE_TLS_CLIENT_CERT",
        value_name = "FILE",
        requires = "tls_client_key"
    )]
    pub tls_client_cert: Option<String>,
    /// PEM private key of --tls-client-cert.
    #[arg(
        long,
        env = "TELLTALE_TLS_CLIENT_KEY",
        value_name = "FILE",
        requires = "tls_client_cert"
    )]
    pub tls_client_key: Option<String>,
    /// Accept any server certificate (expired, self-signed, another host's): anyone on the
    /// path can then read and change the traffic. For a test bench only; use --tls-ca.
    #[arg(long)]
    pub tls_insecure_skip_verify: bool,
}

impl ClientTlsArgs {
    /// The flags as an output's `tls` table.
    pub fn config(&self) -> ClientTlsConfig {
        ClientTlsConfig {
            ca_file: self.tls_ca.clone(),
            cert_file: self.tls_client_cert.clone(),
            key_file: self.tls_client_key.clone(),
            insecure_skip_verify: self.tls_insecure_skip_verify,
        }
    }
}
