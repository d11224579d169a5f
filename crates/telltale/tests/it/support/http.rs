//! A blocking HTTP/1.1 client over a plain `TcpStream`, one request a connection
//! (`Connection: close`): enough for the tests' polling and POSTs, and able to see what a
//! real client library would hide (a cut response, a 429 sent before the body was read).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Read timeout of [`request`] and [`get`]: far beyond any answer the tests wait for.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// What came back for one request, however far it got.
pub struct Exchange {
    /// The whole body was written (the server may answer and close before reading it).
    pub body_sent: bool,
    /// The response was read to the end of the connection, without an error or timeout.
    pub read_to_end: bool,
    pub received: Vec<u8>,
}

impl Exchange {
    /// The response as far as it arrived.
    pub fn response(&self) -> Response {
        Response::parse(String::from_utf8_lossy(&self.received).into_owned())
    }

    /// The response, if the request went out whole and the answer came back whole.
    pub fn complete(self) -> Option<Response> {
        (self.body_sent && self.read_to_end)
            .then(|| String::from_utf8(self.received).ok())
            .flatten()
            .map(Response::parse)
    }
}

/// A response, as text.
pub struct Response {
    /// Everything received: status line, headers and body.
    pub raw: String,
    /// `HTTP/1.1 200 OK`.
    pub status_line: String,
    pub status: Option<u16>,
    /// What follows the blank line after the headers.
    pub body: Option<String>,
}

impl Response {
    fn parse(raw: String) -> Self {
        let status_line = raw.lines().next().unwrap_or_default().to_owned();
        let status = raw.split_whitespace().nth(1).and_then(|s| s.parse().ok());
        let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
        Self {
            raw,
            status_line,
            status,
            body,
        }
    }
}

/// Sends one request to `addr` and reads the answer until the server closes (or `timeout`
/// passes between reads). `None` when the connection or the request head failed (e.g.
/// nothing listens).
pub fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> Option<Exchange> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        addr.ip(),
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    let body_sent = s.write_all(body).is_ok();
    let mut received = Vec::new();
    let read_to_end = s.read_to_end(&mut received).is_ok();
    Some(Exchange {
        body_sent,
        read_to_end,
        received,
    })
}

/// One complete request and response, or `None` when it failed anywhere.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> Option<Response> {
    exchange(addr, method, path, body.as_bytes(), READ_TIMEOUT)?.complete()
}

/// `GET path`.
pub fn get(addr: SocketAddr, path: &str) -> Option<Response> {
    request(addr, "GET", path, "")
}

/// One `GET /healthz`, which must answer 200: the server is up and serving.
pub fn expect_healthy(addr: SocketAddr) {
    let r = get(addr, "/healthz");
    assert!(
        r.as_ref()
            .is_some_and(|r| r.status_line.starts_with("HTTP/1.1 200")),
        "GET /healthz on {addr}: {:?}",
        r.map(|r| r.raw)
    );
}
