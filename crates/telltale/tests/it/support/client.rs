//! One request with the client every telltale component uses (reqwest, built by
//! `telltale_tls::client_builder`): bearer tokens, https with a CA file and a client
//! certificate, a chosen loopback source address. Blocking, for the synchronous tests. A
//! transport failure (a refused handshake, nothing listening) is an `Err` with reqwest's
//! error, never an answer.

use std::time::Duration;

use telltale_core::config::ClientTlsConfig;
use telltale_tls::testing::Pair;

/// What to send, beyond the method and the URL.
#[derive(Default)]
pub struct Req<'a> {
    /// `Authorization: Bearer <token>`.
    pub token: Option<&'a str>,
    /// The request body.
    pub body: Option<String>,
    /// Its `Content-Type`.
    pub content_type: Option<&'a str>,
    /// A CA file trusted for an https URL.
    pub ca: Option<&'a std::path::Path>,
    /// A client certificate to present.
    pub identity: Option<&'a Pair>,
    /// The loopback source address (127.0.0.0/8 is all this machine's).
    pub from: Option<&'a str>,
    /// Further headers.
    pub headers: Vec<(&'a str, &'a str)>,
}

/// The answer: status, `Retry-After` and body.
#[derive(Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
}

/// Sends `method url` with `req`; the answer, or the client's error.
pub fn send(method: &str, url: &str, req: Req<'_>) -> Result<Answer, String> {
    let tls = ClientTlsConfig {
        ca_file: req.ca.map(|p| p.display().to_string()),
        cert_file: req.identity.map(|p| p.cert.display().to_string()),
        key_file: req.identity.map(|p| p.key.display().to_string()),
        insecure_skip_verify: false,
    };
    let mut builder = telltale_tls::client_builder().timeout(Duration::from_secs(30));
    if let Some(from) = req.from {
        builder = builder.local_address(from.parse::<std::net::IpAddr>().unwrap());
    }
    let client = telltale_tls::with_client_tls(builder, &tls, "test", "test")
        .unwrap()
        .build()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = client.request(method, url);
        if let Some(t) = req.token {
            request = request.bearer_auth(t);
        }
        if let Some(c) = req.content_type {
            request = request.header("content-type", c);
        }
        for (k, v) in req.headers {
            request = request.header(k, v);
        }
        if let Some(b) = req.body {
            request = request.body(b);
        }
        let resp = request.send().await.map_err(|e| format!("{e:?}"))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = resp.text().await.map_err(|e| e.to_string())?;
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    })
}
