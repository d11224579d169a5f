//! One HTTP(S) check, phase by phase: resolve, connect, TLS, request to first byte, body.
//! The connection is made here (tokio, tokio-rustls, hyper's HTTP/1.1 client connection)
//! rather than through reqwest, so that each phase can be timed and the server's
//! certificate read.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::result::{CheckError, CheckResult};

/// How checks are made.
#[derive(Debug, Clone)]
pub struct CheckSettings {
    /// The whole check, redirects included.
    pub timeout: Duration,
    /// Redirects followed before the check fails with `too_many_redirects`.
    pub max_redirects: u32,
    /// Body bytes read at most (the rest is not downloaded).
    pub max_body_bytes: u64,
}

impl Default for CheckSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_redirects: 10,
            max_body_bytes: 10 << 20,
        }
    }
}

/// Makes checks; cheap to clone and share.
#[derive(Clone)]
pub struct Checker {
    settings: CheckSettings,
    verifier: Arc<dyn ServerCertVerifier>,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A failed phase: the class and the reason.
type Failure = (CheckError, String);

/// What the phases found so far (kept when the timeout cuts the check short).
#[derive(Debug, Default)]
struct Progress {
    dns_ms: Option<f64>,
    connect_ms: Option<f64>,
    tls_ms: Option<f64>,
    ttfb_ms: Option<f64>,
    transfer_ms: Option<f64>,
    status: Option<u16>,
    body_bytes: Option<u64>,
    redirects: u32,
    cert_expiry_days: Option<f64>,
    url: Option<url::Url>,
}

impl Checker {
    /// A checker that trusts the system's CA certificates plus those of `ca_file`.
    pub fn new(
        settings: CheckSettings,
        ca_file: Option<&Path>,
    ) -> Result<Self, telltale_tls::TlsError> {
        Ok(Self {
            settings,
            verifier: telltale_tls::server_verifier(ca_file)?,
        })
    }

    /// Checks `url` once. Never fails: a failure is a result with `error` set.
    pub async fn check(&self, url: &str) -> CheckResult {
        let started = SystemTime::now();
        let clock = Instant::now();
        let mut progress = Progress::default();
        let outcome =
            match tokio::time::timeout(self.settings.timeout, self.run(url, &mut progress)).await {
                Ok(r) => r,
                Err(_) => Err((
                    CheckError::Timeout,
                    format!("no complete answer within {:?}", self.settings.timeout),
                )),
            };
        let (error, error_message) = match outcome {
            Ok(()) => (None, None),
            Err((e, m)) => (Some(e), Some(m)),
        };
        let timestamp_us = started
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        let final_url = progress
            .url
            .as_ref()
            .map(url::Url::to_string)
            .filter(|u| progress.redirects > 0 && u != url);
        CheckResult {
            kind: "http".to_owned(),
            url: url.to_owned(),
            monitor_id: None,
            every_s: None,
            timestamp: telltale_core::event::rfc3339(timestamp_us),
            status_code: progress.status,
            duration_ms: ms(clock.elapsed()),
            dns_ms: progress.dns_ms,
            connect_ms: progress.connect_ms,
            tls_ms: progress.tls_ms,
            ttfb_ms: progress.ttfb_ms,
            transfer_ms: progress.transfer_ms,
            redirects: progress.redirects,
            body_bytes: progress.body_bytes,
            cert_expiry_days: progress.cert_expiry_days,
            final_url,
            error,
            error_message,
        }
    }

    async fn run(&self, url: &str, p: &mut Progress) -> Result<(), Failure> {
        let mut current = parse_url(url)?;
        loop {
            p.url = Some(current.clone());
            let location = self.request(&current, p).await?;
            let Some(location) = location else {
                return Ok(());
            };
            if p.redirects >= self.settings.max_redirects {
                return Err((
                    CheckError::TooManyRedirects,
                    format!(
                        "more than {} redirects (the last to {location})",
                        self.settings.max_redirects
                    ),
                ));
            }
            p.redirects += 1;
            current = current
                .join(&location)
                .map_err(|e| {
                    (
                        CheckError::Http,
                        format!("bad redirect Location {location:?}: {e}"),
                    )
                })
                .and_then(|u| check_scheme(u, &location))?;
        }
    }

    /// One request; the redirect's `Location` when the answer is a redirect.
    async fn request(&self, url: &url::Url, p: &mut Progress) -> Result<Option<String>, Failure> {
        // The phases are those of the last request of a redirect chain.
        *p = Progress {
            redirects: p.redirects,
            url: p.url.take(),
            ..Progress::default()
        };
        let host = url.host_str().unwrap_or_default().to_owned();
        let bare_host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url.port_or_known_default().unwrap_or(80);

        let t = Instant::now();
        let addr: SocketAddr = tokio::net::lookup_host((bare_host.as_str(), port))
            .await
            .map_err(|e| (CheckError::Dns, format!("{host} does not resolve: {e}")))?
            .next()
            .ok_or_else(|| (CheckError::Dns, format!("{host} has no address")))?;
        p.dns_ms = Some(ms(t.elapsed()));

        let t = Instant::now();
        let tcp = TcpStream::connect(addr).await.map_err(|e| {
            let class = if e.kind() == std::io::ErrorKind::ConnectionRefused {
                CheckError::ConnectRefused
            } else {
                CheckError::Connect
            };
            (class, format!("connecting to {addr}: {e}"))
        })?;
        let _ = tcp.set_nodelay(true);
        p.connect_ms = Some(ms(t.elapsed()));

        let io: Box<dyn Io> = if url.scheme() == "https" {
            let t = Instant::now();
            let stream = self.handshake(tcp, &bare_host, p).await?;
            p.tls_ms = Some(ms(t.elapsed()));
            Box::new(stream)
        } else {
            Box::new(tcp)
        };

        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| (CheckError::Http, format!("HTTP handshake: {e}")))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut target = url.path().to_owned();
        if let Some(q) = url.query() {
            target.push('?');
            target.push_str(q);
        }
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        let request = hyper::Request::get(target)
            .header(hyper::header::HOST, authority)
            .header(
                hyper::header::USER_AGENT,
                concat!("telltale-monitor/", env!("CARGO_PKG_VERSION")),
            )
            .header(hyper::header::ACCEPT, "*/*")
            .header(hyper::header::CONNECTION, "close")
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|e| (CheckError::InvalidUrl, format!("building the request: {e}")))?;
        let t = Instant::now();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| (CheckError::Http, format!("no valid HTTP answer: {e}")))?;
        p.ttfb_ms = Some(ms(t.elapsed()));
        let status = response.status();
        p.status = Some(status.as_u16());
        let location = status
            .is_redirection()
            .then(|| response.headers().get(hyper::header::LOCATION))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);

        let t = Instant::now();
        let mut body = response.into_body();
        let mut bytes = 0u64;
        while bytes < self.settings.max_body_bytes {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        bytes += data.len() as u64;
                    }
                }
                Some(Err(e)) => {
                    p.body_bytes = Some(bytes);
                    return Err((CheckError::Http, format!("reading the body: {e}")));
                }
                None => break,
            }
        }
        p.transfer_ms = Some(ms(t.elapsed()));
        p.body_bytes = Some(bytes);
        Ok(location)
    }

    async fn handshake(
        &self,
        tcp: TcpStream,
        host: &str,
        p: &mut Progress,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Failure> {
        let seen = Arc::new(Mutex::new(None));
        let verifier = Arc::new(Recording {
            inner: Arc::clone(&self.verifier),
            seen: Arc::clone(&seen),
        });
        let mut config = rustls::ClientConfig::builder_with_provider(telltale_tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| (CheckError::Tls, e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = ServerName::try_from(host.to_owned()).map_err(|e| {
            (
                CheckError::InvalidUrl,
                format!("{host:?} as a TLS name: {e}"),
            )
        })?;
        let result = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await;
        p.cert_expiry_days = seen.lock().ok().and_then(|s| {
            s.as_ref()
                .and_then(|der: &CertificateDer<'static>| expiry_days(der))
        });
        result.map_err(|e| (CheckError::Tls, format!("TLS handshake with {host}: {e}")))
    }
}

/// A stream hyper can speak HTTP over: TCP or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The real verifier, keeping the end-entity certificate it was shown (for its expiry,
/// also when it is refused).
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn ServerCertVerifier>,
    seen: Arc<Mutex<Option<CertificateDer<'static>>>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(end_entity.clone().into_owned());
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Days from now until `der`'s `notAfter`.
fn expiry_days(der: &CertificateDer<'_>) -> Option<f64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let not_after = cert.validity().not_after.timestamp();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    Some(((not_after as f64 - now) / 86_400.0 * 100.0).round() / 100.0)
}

fn parse_url(url: &str) -> Result<url::Url, Failure> {
    let parsed = url::Url::parse(url)
        .map_err(|e| (CheckError::InvalidUrl, format!("{url:?} is not a URL: {e}")))?;
    check_scheme(parsed, url)
}

fn check_scheme(url: url::Url, text: &str) -> Result<url::Url, Failure> {
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err((
            CheckError::InvalidUrl,
            format!("{text:?} is not an http:// or https:// URL with a host"),
        ));
    }
    Ok(url)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_with_a_host_are_checked() {
        for bad in ["ftp://x/", "http://", "not a url", "file:///etc/passwd"] {
            let (class, message) = parse_url(bad).unwrap_err();
            assert_eq!(class, CheckError::InvalidUrl, "{bad}");
            assert!(message.contains(bad), "{message}");
        }
        assert!(parse_url("https://example.com/x?y=1").is_ok());
    }

    #[tokio::test]
    async fn a_refused_port_is_a_result_not_an_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let checker = Checker::new(CheckSettings::default(), None).unwrap();
        let r = checker.check(&format!("http://127.0.0.1:{port}/")).await;
        assert_eq!(r.error, Some(CheckError::ConnectRefused), "{r:?}");
        assert!(r.dns_ms.is_some());
        assert!(r.connect_ms.is_none());
        assert!(!r.is_up());
    }
}
