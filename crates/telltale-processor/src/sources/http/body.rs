//! Request bodies of the HTTP push sources (NDJSON here, OTLP/HTTP in `sources::otlp`):
//! the in-flight byte budget, draining refused bodies, gunzip with the limit applied to
//! the decompressed size, and the bearer token; [`admit`] runs them in order.

use std::io::Read;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use telltale_core::auth::{Role, Tokens};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::settings::HttpSettings;
use crate::api::error::ApiError;
use crate::drain::InFlight;
use crate::metrics::Metrics;

/// One request in `telltale_ingest_requests_in_flight`, for as long as it is held.
pub(crate) struct InFlightGauge(
    prometheus_client::metrics::gauge::Gauge<i64, std::sync::atomic::AtomicI64>,
);

impl InFlightGauge {
    pub(crate) fn enter(
        gauge: &prometheus_client::metrics::gauge::Gauge<i64, std::sync::atomic::AtomicI64>,
    ) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for InFlightGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A request body admitted by [`admit`], with what it holds until the answer is sent.
pub(crate) struct Admitted {
    /// The body as received (still gzipped when `gzip`).
    pub(crate) body: Bytes,
    /// `Content-Encoding: gzip`.
    pub(crate) gzip: bool,
    /// The body's bytes in the in-flight budget.
    pub(crate) _held: InflightBytes,
    /// Shutdown waits for it.
    pub(crate) _in_flight: InFlight,
    pub(crate) _counted: InFlightGauge,
}

/// The checks every ingest request passes before its body is processed, in order: the
/// token, shutdown (503), the declared length (413), the in-flight budget (429), reading
/// the body (413 past the limit), its `Content-Encoding` (415). A refused body is drained
/// so the client reads the answer.
pub(crate) async fn admit(
    settings: &HttpSettings,
    inflight: &Arc<Semaphore>,
    metrics: &Arc<Metrics>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Admitted, ApiError> {
    authorize(headers, &settings.tokens)?;
    let limit = settings.max_body_bytes;
    // Held to the acknowledgement: a shutdown waits for it before closing the listener.
    let Some(in_flight) = settings.drain.enter() else {
        discard(body, limit).await;
        return Err(ApiError::Unavailable);
    };
    let counted = InFlightGauge::enter(&metrics.ingest_requests_in_flight);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    metrics.offered_bytes.inc_by(declared.unwrap_or(0) as u64);
    if declared.is_some_and(|n| n > limit) {
        discard(body, limit).await;
        return Err(ApiError::BodyTooLarge { limit });
    }
    // Reserve the body's bytes before reading it: under overload the request is refused
    // here, and memory never holds more than `max_inflight_bytes` of bodies.
    let need = declared.unwrap_or(limit).clamp(1, limit);
    let Ok(permit) =
        Arc::clone(inflight).try_acquire_many_owned(u32::try_from(need).unwrap_or(u32::MAX))
    else {
        discard(body, limit).await;
        return Err(ApiError::Overloaded { reason: "memory" });
    };
    metrics
        .inflight_bytes
        .inner()
        .fetch_add(need as i64, std::sync::atomic::Ordering::Relaxed);
    let held = InflightBytes {
        _permit: permit,
        bytes: need as i64,
        metrics: Arc::clone(metrics),
    };
    let body = axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::BodyTooLarge { limit }
        } else {
            ApiError::BadBody(e.to_string())
        }
    })?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let gzip = match encoding.as_deref() {
        None | Some("") | Some("identity") => false,
        Some("gzip") | Some("x-gzip") => true,
        Some(other) => return Err(ApiError::UnsupportedEncoding(other.to_owned())),
    };
    Ok(Admitted {
        body,
        gzip,
        _held: held,
        _in_flight: in_flight,
        _counted: counted,
    })
}

/// Reads and drops a refused request's body, chunk by chunk (no memory held), so the
/// client gets the answer instead of a connection reset while it is still sending. Stops
/// after twice the body limit or 10 s; then the connection is closed.
pub(crate) async fn discard(body: Body, limit: usize) {
    use http_body_util::BodyExt;
    let drain = async {
        let mut body = body;
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > limit.saturating_mul(2) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), drain).await;
}

/// Body bytes held by a request, given back (to the budget and the gauge) when dropped.
pub(crate) struct InflightBytes {
    pub(crate) _permit: OwnedSemaphorePermit,
    pub(crate) bytes: i64,
    pub(crate) metrics: Arc<crate::Metrics>,
}

impl Drop for InflightBytes {
    fn drop(&mut self) {
        self.metrics
            .inflight_bytes
            .inner()
            .fetch_sub(self.bytes, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Ingest needs the write role once any token is configured ([`Tokens::check`]).
pub(crate) fn authorize(headers: &HeaderMap, tokens: &Tokens) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    authorize_token(presented, tokens)
}

/// [`authorize`] for a presented `Authorization` value (`Bearer <token>`), from an HTTP
/// header or gRPC metadata.
pub(crate) fn authorize_token(presented: Option<&str>, tokens: &Tokens) -> Result<(), ApiError> {
    tokens
        .check(presented, Role::Write)
        .map_err(|denied| match denied {
            telltale_core::auth::Denied::Unauthenticated => ApiError::Unauthorized,
            telltale_core::auth::Denied::Forbidden { .. } => ApiError::Forbidden,
        })
}

pub(crate) fn gunzip(body: &[u8], limit: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    flate2::read::MultiGzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::BadBody(format!("invalid gzip: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::BodyTooLarge { limit });
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn token_check() {
        let tokens = Tokens::new(vec!["s3cret".to_owned()], vec!["adm1n".to_owned()]);
        let mut h = HeaderMap::new();
        assert!(matches!(
            authorize(&h, &tokens),
            Err(ApiError::Unauthorized)
        ));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer nope"),
        );
        assert!(authorize(&h, &tokens).is_err());
        for ok in ["Bearer s3cret", "Bearer adm1n"] {
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(ok));
            assert!(authorize(&h, &tokens).is_ok(), "{ok}");
        }
        assert!(authorize(&HeaderMap::new(), &Tokens::default()).is_ok());
    }

    #[test]
    fn gunzip_enforces_the_limit_on_the_decompressed_size() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&vec![b'a'; 10_000]).unwrap();
        let gz = enc.finish().unwrap();
        assert!(gz.len() < 1000);
        assert!(matches!(
            gunzip(&gz, 5_000),
            Err(ApiError::BodyTooLarge { limit: 5_000 })
        ));
        assert_eq!(gunzip(&gz, 10_000).unwrap().len(), 10_000);
        assert!(matches!(
            gunzip(b"not gzip", 100),
            Err(ApiError::BadBody(_))
        ));
    }
}
