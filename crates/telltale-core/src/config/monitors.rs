//! `[monitors]` in `config/telltale.toml`: how scheduled URL monitors are checked (timeout,
//! pool size, jitter, redirects) and the monitors listed in the file
//! (`[[monitors.targets]]`). The scheduler that reads them is `telltale-monitor`'s; this
//! file only holds the settings and their checks, and the allowed frequencies every
//! other place uses ([`ALLOWED_MINUTES`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::{ConfigError, invalid};

/// The frequencies a monitor may have, in minutes: the one list the API, the CLI, the
/// config and `telltale_monitor::Every` check against.
pub const ALLOWED_MINUTES: [u64; 6] = [1, 2, 5, 10, 20, 30];

/// The allowed frequencies as a user writes them: `"1m", "2m", "5m", "10m", "20m", "30m"`.
pub fn allowed_frequencies() -> String {
    ALLOWED_MINUTES.map(|m| format!("\"{m}m\"")).join(", ")
}

/// Minutes of a frequency written `"5m"`, `"5min"` or `"5"`, if it is an allowed one.
pub fn parse_every_minutes(text: &str) -> Option<u64> {
    let t = text.trim();
    t.strip_suffix("min")
        .or_else(|| t.strip_suffix('m'))
        .unwrap_or(t)
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|m| ALLOWED_MINUTES.contains(m))
}

/// `[monitors]`: scheduled URL checks. Every key has a default.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorsConfig {
    /// One check, redirects included: a target slower than this is a `timeout` result,
    /// and never delays another monitor's check.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Checks running at the same time at most (the pool); more wait for a free slot.
    pub max_concurrent: usize,
    /// Each monitor's checks are shifted by a fixed offset of up to this fraction of its
    /// period (derived from its id), so monitors of one frequency do not fire together.
    pub jitter: f64,
    /// The offset is at most this long, whatever the period.
    #[serde(with = "humantime_serde")]
    pub max_jitter: Duration,
    /// Redirects followed before a check fails with `too_many_redirects`.
    pub max_redirects: u32,
    /// A PEM file of CA certificates trusted for https monitors besides the system's
    /// (`telltale monitor check --tls-ca`). None by default.
    pub tls_ca: Option<String>,
    /// Results kept in memory per monitor for its availability on the status page and in
    /// `GET /api/v1/monitors`.
    pub keep_results: usize,
    /// Monitors listed in the file, checked besides those added through the API (which
    /// are kept in `<data_dir>/monitors/monitors.json`). Empty by default.
    pub targets: Vec<MonitorTarget>,
}

impl Default for MonitorsConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_concurrent: 32,
            jitter: 0.1,
            max_jitter: Duration::from_secs(30),
            max_redirects: 10,
            tls_ca: None,
            keep_results: 100,
            targets: Vec::new(),
        }
    }
}

/// `[[monitors.targets]]`: one monitor of the config file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MonitorTarget {
    /// The http:// or https:// URL, with a host.
    pub url: String,
    /// How often: one of `"1m"`, `"2m"`, `"5m"`, `"10m"`, `"20m"`, `"30m"`. Default `"5m"`.
    #[serde(default = "default_every")]
    pub every: String,
}

fn default_every() -> String {
    "5m".to_owned()
}

/// Whether `url` is http(s) with a host (the full check, with normalisation, is
/// `telltale_monitor::spec::check_url`).
fn has_http_host(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let Some(rest) = rest else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = if host.starts_with('[') {
        host
    } else {
        host.split(':').next().unwrap_or("")
    };
    !host.is_empty() && !host.contains(char::is_whitespace)
}

impl MonitorsConfig {
    /// Checks values that parse but cannot work; `file` names the source in messages.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        if self.timeout.is_zero() {
            return Err(invalid(
                file,
                "monitors.timeout",
                "must be above zero, e.g. \"10s\"",
            ));
        }
        if self.max_concurrent == 0 {
            return Err(invalid(
                file,
                "monitors.max_concurrent",
                "must be at least 1 (no check would run), e.g. 32",
            ));
        }
        if !(self.jitter.is_finite() && (0.0..=0.5).contains(&self.jitter)) {
            return Err(invalid(
                file,
                "monitors.jitter",
                format!(
                    "{} is not a fraction of the period: give 0 (no jitter) up to 0.5, e.g. 0.1",
                    self.jitter
                ),
            ));
        }
        if self.keep_results == 0 {
            return Err(invalid(
                file,
                "monitors.keep_results",
                "must be at least 1 (availability needs a result), e.g. 100",
            ));
        }
        for (i, t) in self.targets.iter().enumerate() {
            if !has_http_host(t.url.trim()) {
                return Err(invalid(
                    file,
                    format!("monitors.targets[{i}].url"),
                    format!(
                        "{:?} must be an http:// or https:// URL with a host, e.g. \"https://example.com/health\"",
                        t.url
                    ),
                ));
            }
            if parse_every_minutes(&t.every).is_none() {
                return Err(invalid(
                    file,
                    format!("monitors.targets[{i}].every"),
                    format!(
                        "{:?} is not an allowed frequency: use one of {}",
                        t.every,
                        allowed_frequencies()
                    ),
                ));
            }
            if let Some(j) = self.targets[..i].iter().position(|o| {
                o.url.trim() == t.url.trim()
                    && parse_every_minutes(&o.every) == parse_every_minutes(&t.every)
            }) {
                return Err(invalid(
                    file,
                    format!("monitors.targets[{i}]"),
                    format!(
                        "{:?} every {:?} is listed twice (also monitors.targets[{j}]): remove one",
                        t.url, t.every
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

    fn target(url: &str, every: &str) -> MonitorTarget {
        MonitorTarget {
            url: url.into(),
            every: every.into(),
        }
    }

    fn with(targets: Vec<MonitorTarget>) -> Result<(), ConfigError> {
        MonitorsConfig {
            targets,
            ..MonitorsConfig::default()
        }
        .validate("t.toml")
    }

    #[test]
    fn frequencies_parse_only_when_allowed() {
        assert_eq!(parse_every_minutes("5m"), Some(5));
        assert_eq!(parse_every_minutes(" 30min"), Some(30));
        assert_eq!(parse_every_minutes("1"), Some(1));
        for bad in ["3m", "0", "60m", "5s", "", "often"] {
            assert_eq!(parse_every_minutes(bad), None, "{bad}");
        }
    }

    #[test]
    fn targets_name_their_key_and_the_fix() {
        assert!(with(vec![target("https://a.example/x", "5m")]).is_ok());
        let e = with(vec![target("ftp://a.example/", "5m")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("monitors.targets[0].url") && e.contains("http://"),
            "{e}"
        );
        let e = with(vec![target("https://", "5m")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("monitors.targets[0].url"), "{e}");
        let e = with(vec![
            target("https://a.example/", "5m"),
            target("https://a.example/", "3m"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("monitors.targets[1].every")
                && e.contains("\"1m\", \"2m\", \"5m\", \"10m\", \"20m\", \"30m\""),
            "{e}"
        );
        let e = with(vec![
            target("https://a.example/", "5m"),
            target("https://a.example/", "5min"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("listed twice"), "{e}");
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let zero = MonitorsConfig {
            max_concurrent: 0,
            ..MonitorsConfig::default()
        };
        assert!(
            zero.validate("t")
                .unwrap_err()
                .to_string()
                .contains("monitors.max_concurrent")
        );
        let jitter = MonitorsConfig {
            jitter: 2.0,
            ..MonitorsConfig::default()
        };
        assert!(
            jitter
                .validate("t")
                .unwrap_err()
                .to_string()
                .contains("monitors.jitter")
        );
    }
}
