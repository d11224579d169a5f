//! `[formats.<name>]` in `config/telltale.toml`: how the lines of a JSON access log that
//! is not telltale's own shape map to an event (`telltale process --input FILE --format
//! <name>`). The built-in presets (`nginx`, `envoy`, `traefik`) are values of the same
//! type ([`AccessLogFormat::preset`]); the mapper that applies one is `Mapper` in
//! `telltale_core::access_log`.

use serde::{Deserialize, Serialize};

use super::error::{ConfigError, invalid};

/// The names `--format` accepts besides `[formats.<name>]` tables of the config file.
pub const PRESETS: [&str; 3] = ["nginx", "envoy", "traefik"];

/// How a field's timestamp is written.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimestampFormat {
    /// RFC 3339 / ISO 8601 with an offset: nginx `$time_iso8601`, Envoy `%START_TIME%`,
    /// Traefik `StartUTC`.
    #[default]
    Rfc3339,
    /// Common Log Format, nginx `$time_local`: `03/Dec/2026:14:00:00 +0000`.
    Clf,
    /// Seconds since the epoch, a number or a string, fractions allowed (nginx `$msec`).
    UnixSeconds,
    /// Milliseconds since the epoch.
    UnixMillis,
    /// Microseconds since the epoch.
    UnixMicros,
    /// Nanoseconds since the epoch.
    UnixNanos,
}

/// The unit a latency field is written in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum LatencyUnit {
    /// Seconds (nginx `$request_time`, `$upstream_response_time`).
    #[serde(rename = "s")]
    Seconds,
    /// Milliseconds (Envoy `%DURATION%`).
    #[default]
    #[serde(rename = "ms")]
    Millis,
    /// Microseconds (Apache `%D`).
    #[serde(rename = "us")]
    Micros,
    /// Nanoseconds (Traefik `Duration`).
    #[serde(rename = "ns")]
    Nanos,
}

impl LatencyUnit {
    /// Milliseconds in one unit.
    pub fn to_ms(self) -> f64 {
        match self {
            Self::Seconds => 1_000.0,
            Self::Millis => 1.0,
            Self::Micros => 1e-3,
            Self::Nanos => 1e-6,
        }
    }
}

/// `[formats.<name>]`: which fields of a JSON access log line hold what telltale needs.
/// A field name may be a dotted path into nested objects (`"http.status"`); a key that
/// itself contains the dots is found first. Fields the mapping does not use are kept in
/// the event's `attributes`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLogFormat {
    /// A fixed service name for every line (e.g. the one service behind this nginx). Wins
    /// over `service_field`; `--service` on the command line wins over both.
    pub service: String,
    /// The field holding the service name, used when `service` is empty.
    pub service_field: String,
    /// The field holding the time of the request.
    pub timestamp_field: String,
    /// How `timestamp_field` is written.
    pub timestamp_format: TimestampFormat,
    /// The field holding the HTTP status (a number or a numeric string).
    pub status_field: String,
    /// The field holding the request's duration (a number or a numeric string).
    pub latency_field: String,
    /// The unit of `latency_field`.
    pub latency_unit: LatencyUnit,
    /// The field holding the route or path (optional; empty = none). A query string is
    /// cut off.
    pub endpoint_field: String,
    /// The field holding the HTTP method (optional).
    pub method_field: String,
    /// A field holding the whole request line, `GET /path HTTP/1.1` (nginx `$request`),
    /// used for the method and endpoint when their own fields are empty or absent.
    pub request_field: String,
    /// The field holding a trace id (optional).
    pub trace_id_field: String,
    /// The field holding the instance (host, pod) that served the request (optional).
    pub instance_field: String,
    /// The field holding the region (optional).
    pub region_field: String,
}

impl Default for AccessLogFormat {
    fn default() -> Self {
        Self {
            service: String::new(),
            service_field: "service".to_owned(),
            timestamp_field: "timestamp".to_owned(),
            timestamp_format: TimestampFormat::Rfc3339,
            status_field: "status".to_owned(),
            latency_field: "latency_ms".to_owned(),
            latency_unit: LatencyUnit::Millis,
            endpoint_field: String::new(),
            method_field: String::new(),
            request_field: String::new(),
            trace_id_field: String::new(),
            instance_field: String::new(),
            region_field: String::new(),
        }
    }
}

impl AccessLogFormat {
    /// A built-in preset by name (see [`PRESETS`]), `None` for another name.
    ///
    /// - `nginx`: the `log_format telltale escape=json` of `docs/access-logs.md` (and of
    ///   `deploy/nginx/`): `time` (`$time_iso8601`), `status`, `request_time` (seconds),
    ///   `request_method`, `uri`, `request`, `host` as the service unless one is given.
    /// - `envoy`: Envoy's (and Istio's) JSON access log keys: `start_time`,
    ///   `response_code`, `duration` (ms), `method`, `path`, `upstream_cluster` as the
    ///   service, `x_request_id`/`trace_id`… (`trace_id` when logged).
    /// - `traefik`: Traefik's JSON access log: `StartUTC`, `DownstreamStatus`, `Duration`
    ///   (ns), `RequestMethod`, `RequestPath`, `ServiceName` as the service.
    pub fn preset(name: &str) -> Option<Self> {
        let s = |v: &str| v.to_owned();
        Some(match name {
            "nginx" => Self {
                service_field: s("host"),
                timestamp_field: s("time"),
                timestamp_format: TimestampFormat::Rfc3339,
                status_field: s("status"),
                latency_field: s("request_time"),
                latency_unit: LatencyUnit::Seconds,
                endpoint_field: s("uri"),
                method_field: s("request_method"),
                request_field: s("request"),
                trace_id_field: s("trace_id"),
                instance_field: s("hostname"),
                ..Self::default()
            },
            "envoy" => Self {
                service_field: s("upstream_cluster"),
                timestamp_field: s("start_time"),
                timestamp_format: TimestampFormat::Rfc3339,
                status_field: s("response_code"),
                latency_field: s("duration"),
                latency_unit: LatencyUnit::Millis,
                endpoint_field: s("path"),
                method_field: s("method"),
                trace_id_field: s("trace_id"),
                instance_field: s("upstream_host"),
                ..Self::default()
            },
            "traefik" => Self {
                service_field: s("ServiceName"),
                timestamp_field: s("StartUTC"),
                timestamp_format: TimestampFormat::Rfc3339,
                status_field: s("DownstreamStatus"),
                latency_field: s("Duration"),
                latency_unit: LatencyUnit::Nanos,
                endpoint_field: s("RequestPath"),
                method_field: s("RequestMethod"),
                instance_field: s("ServiceAddr"),
                ..Self::default()
            },
            _ => return None,
        })
    }

    /// Checks the mapping; `key` is its table (`formats.myapp`).
    pub fn validate(&self, file: &str, key: &str) -> Result<(), ConfigError> {
        if self.service.trim().is_empty() && self.service_field.trim().is_empty() {
            return Err(invalid(
                file,
                format!("{key}.service_field"),
                "no service: set `service_field` to the field holding the service name, or \
                 `service` to a fixed name such as \"checkout\"",
            ));
        }
        for (name, value) in [
            ("timestamp_field", &self.timestamp_field),
            ("status_field", &self.status_field),
            ("latency_field", &self.latency_field),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(
                    file,
                    format!("{key}.{name}"),
                    "must name the access log's field, e.g. \"status\"",
                ));
            }
        }
        Ok(())
    }
}

/// Checks every `[formats.<name>]`: no name may shadow a preset.
pub(super) fn validate_all(
    formats: &std::collections::BTreeMap<String, AccessLogFormat>,
    file: &str,
) -> Result<(), ConfigError> {
    for (name, format) in formats {
        let key = format!("formats.{name}");
        if PRESETS.contains(&name.as_str()) || name == "telltale" {
            return Err(invalid(
                file,
                key,
                format!(
                    "`{name}` is a built-in format: give your mapping another name, e.g. \
                     `[formats.{name}-custom]`"
                ),
            ));
        }
        format.validate(file, &key)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate() {
        for name in PRESETS {
            AccessLogFormat::preset(name)
                .unwrap()
                .validate("t.toml", name)
                .unwrap();
        }
        assert!(AccessLogFormat::preset("apache").is_none());
    }

    #[test]
    fn a_mapping_without_a_service_names_both_fixes() {
        let f = AccessLogFormat {
            service_field: String::new(),
            ..AccessLogFormat::default()
        };
        let e = f.validate("t.toml", "formats.app").unwrap_err().to_string();
        assert!(e.contains("formats.app.service_field"), "{e}");
        assert!(e.contains("`service`"), "{e}");
    }

    /// The example of docs/access-logs.md and config/telltale.toml.
    #[test]
    fn the_documented_table_parses() {
        let cfg = crate::config::PipelineConfig::from_toml_str(
            r#"
[formats.myapp]
service = "payments"
timestamp_field = "ts"
timestamp_format = "unix_seconds"
status_field = "http.status"
latency_field = "took"
latency_unit = "us"
endpoint_field = "http.route"
"#,
            "t.toml",
        )
        .unwrap();
        let f = &cfg.formats["myapp"];
        assert_eq!(f.latency_unit, LatencyUnit::Micros);
        assert_eq!(f.timestamp_format, TimestampFormat::UnixSeconds);
        let e = crate::config::PipelineConfig::from_toml_str(
            "[formats.x]\nlatency_unit = \"minutes\"\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`s`, `ms`, `us`"), "{e}");
    }

    #[test]
    fn a_table_may_not_shadow_a_preset() {
        let formats = [("nginx".to_owned(), AccessLogFormat::default())].into();
        let e = validate_all(&formats, "t.toml").unwrap_err().to_string();
        assert!(e.contains("built-in"), "{e}");
    }
}
