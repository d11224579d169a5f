//! `[alertmanager]` in `config/telltale.toml`: where SLO alert state changes are
//! delivered. `ALERTMANAGER_URL` wins over the file.

use serde::{Deserialize, Serialize};

use super::error::{ConfigError, invalid};
use super::tls::ClientTlsConfig;

/// `[alertmanager]`: where SLO alert state changes are delivered
/// (`POST /api/v2/alerts` of an Alertmanager). `ALERTMANAGER_URL` wins.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerConfig {
    /// Base URL, e.g. `"http://alertmanager:9093"`; empty = alerts are only logged.
    pub url: String,
    /// How often firing alerts are re-sent (Alertmanager drops alerts that stop coming).
    #[serde(with = "humantime_serde")]
    pub resend_interval: std::time::Duration,
    /// Evaluations whose event time is older than this are logged but not delivered, so
    /// replaying an old file does not page anyone for last month's incident. Alerts still
    /// firing are delivered (with `startsAt` = when they began) at the first evaluation
    /// within this age, and at the end of an input whatever its age.
    #[serde(with = "humantime_serde")]
    pub max_alert_age: std::time::Duration,
    /// Link sent as `generatorURL`, e.g. the public address of the status page.
    pub generator_url: String,
    /// `[alertmanager.tls]`: for an `https://` URL, extra CA certificates, a client
    /// certificate, or (test benches only) no verification.
    pub tls: ClientTlsConfig,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            resend_interval: std::time::Duration::from_secs(60),
            max_alert_age: std::time::Duration::from_secs(15 * 60),
            generator_url: "http://127.0.0.1:8080/".to_owned(),
            tls: ClientTlsConfig::default(),
        }
    }
}

impl AlertmanagerConfig {
    /// Whether alerts are delivered at all.
    pub fn is_enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// Applies `ALERTMANAGER_URL` (the environment wins over the file).
    pub fn with_env(mut self, get: impl Fn(&str) -> Option<String>) -> Self {
        if let Some(url) = get("ALERTMANAGER_URL") {
            self.url = url.trim().to_owned();
        }
        self
    }

    /// Checks the values; `file` names the source in messages.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let url = self.url.trim();
        if !url.is_empty() && !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(invalid(
                file,
                "alertmanager.url",
                format!(
                    "{url:?} must be an http:// or https:// URL such as \"http://alertmanager:9093\""
                ),
            ));
        }
        self.tls.validate(file, "alertmanager.tls")?;
        if self.resend_interval < std::time::Duration::from_secs(1) {
            return Err(invalid(
                file,
                "alertmanager.resend_interval",
                "must be at least 1s, e.g. \"1m\"",
            ));
        }
        Ok(())
    }
}
