//! `[otlp]` and `[otlp.logs]` of `config/telltale.toml`: how OpenTelemetry log records
//! become request events (spans map by the HTTP semantic conventions, fixed in code:
//! docs/otlp.md). The OTLP source (`telltale_processor::sources::otlp`) reads this.

use serde::{Deserialize, Serialize};

use super::error::{ConfigError, invalid};

/// `[otlp]`: OpenTelemetry (OTLP) ingest.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// `[otlp.logs]`: which attributes of a log record carry the request's fields.
    pub logs: OtlpLogsConfig,
}

pub use super::formats::LatencyUnit;

/// `[otlp.logs]`: a log record is one request event when it has a status-code attribute;
/// the others are counted in `telltale_otlp_log_records_skipped_total` and dropped. Each
/// field lists attribute names tried in order (log record attributes first, then the
/// resource's); defaults follow the HTTP semantic conventions, old names after new.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpLogsConfig {
    /// The service: default the resource's `service.name`.
    pub service: Vec<String>,
    /// The HTTP status code (an integer or a numeric string); a record without one is
    /// not a request. Default `http.response.status_code`, `http.status_code`.
    pub status_code: Vec<String>,
    /// The request's duration, in `latency_unit`; a record without one is rejected to the
    /// dead letter. Default `http.server.request.duration`, `duration`.
    pub latency: Vec<String>,
    /// Unit of `latency`: `s` (default, as the semantic conventions), `ms`, `us` or `ns`.
    pub latency_unit: LatencyUnit,
    /// The route: default `http.route`, `url.path`.
    pub endpoint: Vec<String>,
    /// The HTTP method: default `http.request.method`, `http.method`.
    pub method: Vec<String>,
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

impl Default for OtlpLogsConfig {
    fn default() -> Self {
        Self {
            service: names(&["service.name"]),
            status_code: names(&["http.response.status_code", "http.status_code"]),
            latency: names(&["http.server.request.duration", "duration"]),
            latency_unit: LatencyUnit::Seconds,
            endpoint: names(&["http.route", "url.path"]),
            method: names(&["http.request.method", "http.method"]),
        }
    }
}

impl OtlpConfig {
    /// Every list needs at least one non-empty attribute name.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let l = &self.logs;
        for (key, list, example) in [
            ("otlp.logs.service", &l.service, "service.name"),
            (
                "otlp.logs.status_code",
                &l.status_code,
                "http.response.status_code",
            ),
            (
                "otlp.logs.latency",
                &l.latency,
                "http.server.request.duration",
            ),
            ("otlp.logs.endpoint", &l.endpoint, "http.route"),
            ("otlp.logs.method", &l.method, "http.request.method"),
        ] {
            if list.is_empty() || list.iter().any(|n| n.trim().is_empty()) {
                return Err(invalid(
                    file,
                    key,
                    format!(
                        "must list attribute names, none empty, e.g. [\"{example}\"] (or leave the key out for the default)"
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_empty_lists_are_named() {
        OtlpConfig::default().validate("t.toml").unwrap();
        let cfg: OtlpConfig = toml::from_str("[logs]\nlatency = []\n").unwrap();
        let e = cfg.validate("t.toml").unwrap_err().to_string();
        assert!(
            e.starts_with("t.toml: `otlp.logs.latency`: must list"),
            "{e}"
        );
        assert!(toml::from_str::<OtlpConfig>("[logs]\nlatency_units = \"s\"\n").is_err());
        let cfg: OtlpConfig = toml::from_str("[logs]\nlatency_unit = \"ms\"\n").unwrap();
        assert_eq!(cfg.logs.latency_unit, LatencyUnit::Millis);
    }
}
