//! Request bodies of the HTTP source: the in-flight byte budget, draining refused
//! bodies, gunzip with the limit applied to the decompressed size, and the bearer token.

use std::io::Read;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use telltale_core::auth::{Role, Tokens};
use tokio::sync::OwnedSemaphorePermit;

use crate::api::error::ApiError;

/// Reads and drops a refused request's body, chunk by chunk (no memory held), so the
/// client gets the answer instead of a connection reset while it is still sending. Stops
/// after twice the body limit or 10 s; then the connection is closed.
pub(super) async fn discard(body: Body, limit: usize) {
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
pub(super) struct InflightBytes {
    pub(super) _permit: OwnedSemaphorePermit,
    pub(super) bytes: i64,
    pub(super) metrics: Arc<crate::Metrics>,
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
pub(super) fn authorize(headers: &HeaderMap, tokens: &Tokens) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    tokens
        .check(presented, Role::Write)
        .map_err(|denied| match denied {
            telltale_core::auth::Denied::Unauthenticated => ApiError::Unauthorized,
            telltale_core::auth::Denied::Forbidden { .. } => ApiError::Forbidden,
        })
}

pub(super) fn gunzip(body: &[u8], limit: usize) -> Result<Bytes, ApiError> {
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
