//! Opening a listener for a `--listen`-style flag: one error per mistake, naming the flag,
//! and `--print-address` (the bound address as the first line on stdout).

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;

/// Binds `listen`, the value of `flag` (e.g. `--listen`, whose `example` is
/// `127.0.0.1:8080`); `what` names the server in the error (`the HTTP server`). With
/// `print_address` the bound address goes to stdout as one line, flushed, so a caller that
/// passed port 0 can read the port back without a race.
pub async fn bind(
    listen: &str,
    flag: &str,
    example: &str,
    what: &str,
    print_address: bool,
) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let addr: SocketAddr = listen.parse().with_context(|| {
        format!("{flag} {listen:?} is not an address: use host:port, e.g. {example}")
    })?;
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!("binding {what} to {addr} (is the port taken? pick another with {flag})")
    })?;
    let addr = listener.local_addr().unwrap_or(addr);
    if print_address {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{addr}");
        let _ = out.flush();
    }
    Ok((listener, addr))
}
