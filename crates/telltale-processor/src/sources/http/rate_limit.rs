//! Per-address and per-token limits on ingest requests (`[server.rate_limit]`), with
//! `tower_governor` (GCRA): 429 with `Retry-After` and a JSON body naming the limit,
//! counted in `telltale_http_ingest_responses_total{code="429"}`.

use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use ipnet::IpNet;
use telltale_core::config::RateLimitConfig;
use tower_governor::GovernorError;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;

use crate::metrics::{CodeLabel, Metrics};

/// The client's address: the connection's (from `ConnectInfo<Peer>`; unspecified when
/// served without it), or, for a connection from a trusted proxy, the rightmost address
/// of `X-Forwarded-For` that is not itself a trusted proxy.
#[derive(Debug, Clone)]
struct ByAddress {
    trusted: Arc<[IpNet]>,
}

impl ByAddress {
    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request that came over a connection from `peer`.
    fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let mut client = peer;
        // Each proxy appends the address it saw: read from the right, through the
        // trusted ones; an entry that is not an address ends the chain (anything left of
        // it was written by the client itself).
        for entry in forwarded_for.unwrap_or_default().rsplit(',') {
            let Some(ip) = parse_forwarded(entry) else {
                break;
            };
            client = ip;
            if !self.is_trusted(ip) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:80`.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
}

impl KeyExtractor for ByAddress {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<IpAddr, GovernorError> {
        let peer = req
            .extensions()
            .get::<ConnectInfo<telltale_tls::Peer>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.0.ip());
        if self.trusted.is_empty() {
            return Ok(peer);
        }
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        Ok(self.client(peer, Some(&forwarded)))
    }
}

/// A hash of the bearer token (the token itself is not kept in the limiter's table);
/// requests without one share one key.
#[derive(Debug, Clone)]
struct ByToken(std::collections::hash_map::RandomState);

impl KeyExtractor for ByToken {
    type Key = u64;

    fn extract<T>(&self, req: &Request<T>) -> Result<u64, GovernorError> {
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        Ok(self.0.hash_one(token))
    }
}

/// `routes` with the limits of `cfg` applied (unchanged when both are 0).
pub(crate) fn limit(mut routes: Router, cfg: &RateLimitConfig, metrics: &Arc<Metrics>) -> Router {
    if cfg.per_token_per_second > 0.0 {
        routes = layer(
            routes,
            ByToken(Default::default()),
            cfg.per_token_per_second,
            cfg.burst_for(cfg.per_token_per_second),
            "token",
            metrics,
        );
    }
    if cfg.per_address_per_second > 0.0 {
        routes = layer(
            routes,
            ByAddress {
                trusted: cfg
                    .trusted_proxies
                    .iter()
                    .filter_map(|p| telltale_core::config::parse_ip_range(p))
                    .collect(),
            },
            cfg.per_address_per_second,
            cfg.burst_for(cfg.per_address_per_second),
            "client address",
            metrics,
        );
    }
    routes
}

fn layer<K>(
    routes: Router,
    key: K,
    rate: f64,
    burst: u32,
    per: &'static str,
    metrics: &Arc<Metrics>,
) -> Router
where
    K: KeyExtractor + Send + Sync + 'static,
    K::Key: Send + Sync + 'static,
{
    let period = Duration::from_secs_f64(1.0 / rate);
    let config = GovernorConfigBuilder::default()
        .period(period)
        .burst_size(burst)
        .key_extractor(key)
        .finish()
        .expect("a positive rate and burst");
    let limiter = Arc::clone(config.limiter());
    // Forget idle clients now and then, so the table stays as small as the active set.
    std::thread::Builder::new()
        .name("rate-limit-gc".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(60));
                limiter.retain_recent();
            }
        })
        .ok();
    let metrics = Arc::clone(metrics);
    let layer = tower_governor::GovernorLayer::new(config)
        .error_handler(move |e| refusal(e, rate, burst, per, &metrics));
    routes.layer(layer)
}

fn refusal(
    e: GovernorError,
    rate: f64,
    burst: u32,
    per: &str,
    metrics: &Metrics,
) -> Response<Body> {
    let wait_s = match &e {
        GovernorError::TooManyRequests { wait_time, .. } => (*wait_time).max(1),
        _ => 1,
    };
    metrics
        .http_responses
        .get_or_create(&CodeLabel {
            code: "429".to_owned(),
        })
        .inc();
    let body = serde_json::json!({
        "error": format!(
            "rate limit: at most {rate} requests a second per {per} (burst {burst}, \
             server.rate_limit); retry after {wait_s}s"
        ),
    });
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::RETRY_AFTER, HeaderValue::from(wait_s));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by(trusted: &[&str]) -> ByAddress {
        ByAddress {
            trusted: trusted
                .iter()
                .map(|t| telltale_core::config::parse_ip_range(t).unwrap())
                .collect(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_proxy() {
        let b = by(&["10.0.0.0/8"]);
        // From the proxy: the address it saw.
        assert_eq!(
            b.client(ip("10.1.2.3"), Some("203.0.113.7")),
            ip("203.0.113.7")
        );
        // From anyone else: the header is theirs to write, so it is ignored.
        assert_eq!(
            b.client(ip("198.51.100.1"), Some("203.0.113.7")),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn a_forged_left_part_does_not_move_the_client() {
        let b = by(&["10.0.0.0/8", "127.0.0.1"]);
        // The client wrote 1.1.1.1 itself; the trusted hops appended after it.
        assert_eq!(
            b.client(ip("127.0.0.1"), Some("1.1.1.1, 203.0.113.7:5544, 10.0.0.9")),
            ip("203.0.113.7")
        );
        // Garbage ends the chain at the last address read.
        assert_eq!(
            b.client(ip("127.0.0.1"), Some("not-an-ip, 10.0.0.9")),
            ip("10.0.0.9")
        );
        // No header: the proxy itself.
        assert_eq!(b.client(ip("127.0.0.1"), None), ip("127.0.0.1"));
        assert_eq!(
            b.client(ip("127.0.0.1"), Some("[2001:db8::1]:80")),
            ip("2001:db8::1")
        );
    }
}
