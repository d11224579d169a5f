//! Opening a listener for a `--listen`-style flag: one error per mistake, naming the flag,
//! TLS when `[server.tls]` / `--tls-cert` say so, and `--print-address` (the bound
//! address as the first line on stdout).

use std::net::SocketAddr;

use anyhow::Context;
use telltale_core::config::ServerTlsConfig;
use tokio::net::TcpListener;

/// `--tls-cert`, `--tls-key`, `--tls-client-ca`: HTTPS on every listener the command
/// opens. They win over `[server.tls]` in the config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerTlsArgs {
    /// PEM certificate chain (leaf first) for HTTPS on every listener; with --tls-key.
    /// Read again when the file changes (renewals need no restart).
    #[arg(long, env = "TELLTALE_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<String>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "TELLTALE_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<String>,
    /// PEM CA certificates: clients must present a certificate signed by one (mutual TLS).
    #[arg(long, env = "TELLTALE_TLS_CLIENT_CA", value_name = "FILE")]
    pub tls_client_ca: Option<String>,
}

impl ServerTlsArgs {
    /// `[server.tls]` with the flags applied, checked.
    pub fn resolve(&self, file: &ServerTlsConfig) -> anyhow::Result<ServerTlsConfig> {
        let mut tls = file.clone();
        if self.tls_cert.is_some() || self.tls_key.is_some() {
            tls.cert_file.clone_from(&self.tls_cert);
            tls.key_file.clone_from(&self.tls_key);
        }
        if self.tls_client_ca.is_some() {
            tls.client_ca_file.clone_from(&self.tls_client_ca);
        }
        tls.validate("--tls-* flags / [server.tls]", "server.tls")?;
        Ok(tls)
    }
}

/// Binds `listen`, the value of `flag` (e.g. `--listen`, whose `example` is
/// `127.0.0.1:8080`), speaking TLS when `tls` has a certificate; `what` names the server
/// in the error (`the HTTP server`). With `print_address` the bound address goes to
/// stdout as one line, flushed, so a caller that passed port 0 can read the port back
/// without a race.
pub async fn bind(
    listen: &str,
    flag: &str,
    example: &str,
    what: &str,
    tls: &ServerTlsConfig,
    print_address: bool,
) -> anyhow::Result<(telltale_tls::Listener, SocketAddr)> {
    let addr: SocketAddr = listen.parse().with_context(|| {
        format!("{flag} {listen:?} is not an address: use host:port, e.g. {example}")
    })?;
    // The certificate first: a bad file is an error before the port is taken.
    let tls = telltale_tls::server_config(tls).context("setting up TLS for the listener")?;
    bind_with(addr, flag, what, tls, print_address.then_some("")).await
}

/// [`bind`] for a second listener: with `print_as` the bound address is printed after
/// that label and a space (`otlp-http 127.0.0.1:4318`), after the main listener's line;
/// `grpc` speaks HTTP/2 over ALPN when TLS is on.
pub async fn bind_extra(
    listen: &str,
    flag: &str,
    example: &str,
    what: &str,
    tls: &ServerTlsConfig,
    grpc: bool,
    print_as: Option<&str>,
) -> anyhow::Result<(telltale_tls::Listener, SocketAddr)> {
    let addr: SocketAddr = listen.parse().with_context(|| {
        format!("{flag} {listen:?} is not an address: use host:port, e.g. {example}")
    })?;
    let tls = if grpc {
        telltale_tls::grpc_server_config(tls)
    } else {
        telltale_tls::server_config(tls)
    }
    .context("setting up TLS for the listener")?;
    bind_with(addr, flag, what, tls, print_as).await
}

async fn bind_with(
    addr: SocketAddr,
    flag: &str,
    what: &str,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    print_as: Option<&str>,
) -> anyhow::Result<(telltale_tls::Listener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!("binding {what} to {addr} (is the port taken? pick another with {flag})")
    })?;
    let addr = listener.local_addr().unwrap_or(addr);
    let listener = telltale_tls::Listener::new(listener, tls)
        .with_context(|| format!("opening {what} on {addr}"))?;
    if let Some(label) = print_as {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let sep = if label.is_empty() { "" } else { " " };
        let _ = writeln!(out, "{label}{sep}{addr}");
        let _ = out.flush();
    }
    Ok((listener, addr))
}
