//! Settings of the HTTP push sources (`POST /v1/events`, OTLP), from `[server]`,
//! `[autoscale]` and `[otlp]` of `telltale.toml`.

use telltale_core::auth::Tokens;
use telltale_core::config::{AutoscaleConfig, PipelineConfig};

use crate::drain::Drain;

/// Settings of the HTTP source.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Bearer tokens: `POST /v1/events` needs a write (or admin) token once any token is
    /// configured; none = no authentication.
    pub tokens: Tokens,
    /// Largest body, compressed and decompressed.
    pub max_body_bytes: usize,
    /// Body bytes all requests in flight may hold together (429 above).
    pub max_inflight_bytes: usize,
    /// Batches that may wait for a processing worker (429 above).
    pub queue_batches: usize,
    /// Worker pool scaling.
    pub autoscale: AutoscaleConfig,
    /// Shutdown: once draining, new requests get 503 with `Retry-After`.
    pub drain: Drain,
    /// Per-address and per-token request limits (429 with `Retry-After` past them).
    pub rate_limit: telltale_core::config::RateLimitConfig,
    /// How OTLP log records map to events (`[otlp.logs]`), for the OTLP routes.
    pub otlp_logs: telltale_core::config::OtlpLogsConfig,
}

impl HttpSettings {
    /// From `[server]` and `[autoscale]` of `telltale.toml`; `tokens` are read by the
    /// caller (from `server.tokens_file` or the environment: secrets stay out of config).
    pub fn from_config(cfg: &PipelineConfig, tokens: Tokens) -> Self {
        Self {
            tokens,
            max_body_bytes: cfg.server.max_body_bytes,
            max_inflight_bytes: cfg.server.max_inflight_bytes,
            queue_batches: cfg.server.queue_batches,
            autoscale: cfg.autoscale.clone(),
            drain: Drain::default(),
            rate_limit: cfg.server.rate_limit.clone(),
            otlp_logs: cfg.otlp.logs.clone(),
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self::from_config(&PipelineConfig::default(), Tokens::default())
    }
}
