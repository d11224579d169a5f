//! Delivery of alert state to an Alertmanager-compatible receiver (`POST /api/v2/alerts`),
//! so users route telltale's SLO alerts with the Alertmanager they already run.
//!
//! Alertmanager keeps an alert alive only while it is re-sent, so every firing alert is
//! re-posted every `resend_interval` with `endsAt` a few intervals ahead: if telltale
//! stops, Alertmanager resolves the alerts by itself instead of paging forever. A resolve
//! is posted with `endsAt` = the time it cleared. A failed post is retried with backoff
//! and, in any case, again at the next resend.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

/// One alert as Alertmanager's API takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Identity and routing labels (`alertname`, `service`, `team`, `sli`, `severity`, …).
    pub labels: BTreeMap<String, String>,
    /// Human-readable details (`summary`, `description`, burn rates, …).
    pub annotations: BTreeMap<String, String>,
    /// When it started firing, RFC 3339.
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    /// When it ends (resolved) or expires unless re-sent, RFC 3339.
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    /// Link back to telltale (the status page).
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

/// A change of one alert's state, as the SLO engine reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertUpdate {
    /// Start or keep firing (labels identify the alert; an escalation is a new label set).
    Firing {
        /// Labels of the alert.
        labels: BTreeMap<String, String>,
        /// Annotations of the alert.
        annotations: BTreeMap<String, String>,
        /// When it started firing, µs since the epoch.
        since_us: i64,
    },
    /// The alert with these labels cleared.
    Resolved {
        /// Labels of the alert.
        labels: BTreeMap<String, String>,
        /// When it cleared, µs since the epoch.
        at_us: i64,
    },
}

/// Where and how often to deliver.
#[derive(Debug, Clone)]
pub struct NotifierSettings {
    /// Base URL of the Alertmanager, e.g. `http://alertmanager:9093`.
    pub url: String,
    /// Re-send interval of firing alerts.
    pub resend_interval: Duration,
    /// Link in `generatorURL`.
    pub generator_url: String,
    /// How an `https://` Alertmanager is verified (`[alertmanager.tls]`).
    pub tls: telltale_core::config::ClientTlsConfig,
}

impl NotifierSettings {
    /// From `[alertmanager]` of `telltale.toml` (with its `ALERTMANAGER_*` overrides).
    pub fn from_config(cfg: &telltale_core::config::AlertmanagerConfig) -> Self {
        Self {
            url: cfg.url.clone(),
            resend_interval: cfg.resend_interval,
            generator_url: cfg.generator_url.clone(),
            tls: cfg.tls.clone(),
        }
    }
}

/// Delivery counters, exported as metrics.
#[derive(Debug, Default)]
pub struct NotifierStats {
    /// Successful posts.
    pub posts_ok: std::sync::atomic::AtomicU64,
    /// Failed posts (each retried later).
    pub posts_failed: std::sync::atomic::AtomicU64,
}

/// Failure to reach the Alertmanager.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The request could not be sent or got no answer.
    #[error("posting alerts to {url}: {source}")]
    Transport {
        /// The endpoint.
        url: String,
        /// The client error.
        source: reqwest::Error,
    },
    /// The Alertmanager answered with an error.
    #[error("posting alerts to {url}: HTTP {status}: {body}")]
    Status {
        /// The endpoint.
        url: String,
        /// Status code.
        status: u16,
        /// Body of the answer.
        body: String,
    },
    /// The HTTP client could not be built from `[alertmanager.tls]`.
    #[error("the Alertmanager client: {0}")]
    Tls(#[from] telltale_tls::TlsError),
    /// The HTTP client could not be built.
    #[error("building the Alertmanager client: {0}")]
    Client(#[source] reqwest::Error),
}

/// Handle to the delivery task.
#[derive(Debug, Clone)]
pub struct Notifier {
    tx: mpsc::UnboundedSender<AlertUpdate>,
    stats: std::sync::Arc<NotifierStats>,
}

impl Notifier {
    /// Starts the delivery task on the current tokio runtime; an error when the client
    /// cannot be built (a bad `[alertmanager.tls]` file).
    pub fn start(
        settings: NotifierSettings,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), NotifyError> {
        let builder = telltale_tls::client_builder().timeout(Duration::from_secs(10));
        let client = telltale_tls::with_client_tls(
            builder,
            &settings.tls,
            "the Alertmanager client",
            "alertmanager.tls",
        )?
        .build()
        .map_err(NotifyError::Client)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = std::sync::Arc::new(NotifierStats::default());
        let task = tokio::spawn(deliver(settings, client, rx, std::sync::Arc::clone(&stats)));
        Ok((Self { tx, stats }, task))
    }

    /// A notifier without a delivery task: the updates it is sent, for tests.
    #[cfg(test)]
    pub(crate) fn detached() -> (Self, mpsc::UnboundedReceiver<AlertUpdate>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = std::sync::Arc::new(NotifierStats::default());
        (Self { tx, stats }, rx)
    }

    /// Queues an update; never blocks (alert changes are rare and tiny).
    pub fn send(&self, update: AlertUpdate) {
        if self.tx.send(update).is_err() {
            tracing::warn!("alert delivery has stopped; update not sent");
        }
    }

    /// Delivery counters.
    pub fn stats(&self) -> &NotifierStats {
        &self.stats
    }

    /// The delivery counters, shared: holding them does not keep the delivery task
    /// running, unlike a `Notifier` clone.
    pub fn shared_stats(&self) -> std::sync::Arc<NotifierStats> {
        std::sync::Arc::clone(&self.stats)
    }
}

fn rfc3339(us: i64) -> String {
    telltale_core::event::rfc3339(us)
}

async fn deliver(
    settings: NotifierSettings,
    client: reqwest::Client,
    mut rx: mpsc::UnboundedReceiver<AlertUpdate>,
    stats: std::sync::Arc<NotifierStats>,
) {
    let url = format!("{}/api/v2/alerts", settings.url.trim_end_matches('/'));
    // Firing alerts by label set, with their start time and annotations.
    let mut firing: BTreeMap<BTreeMap<String, String>, (i64, BTreeMap<String, String>)> =
        BTreeMap::new();
    let mut resend = tokio::time::interval(settings.resend_interval);
    resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let hold = i64::try_from(settings.resend_interval.as_micros() * 4).unwrap_or(i64::MAX / 4);
    loop {
        let mut batch = Vec::new();
        tokio::select! {
            update = rx.recv() => {
                let Some(first) = update else { break };
                let mut updates = vec![first];
                while let Ok(more) = rx.try_recv() {
                    updates.push(more);
                }
                let now = chrono::Utc::now().timestamp_micros();
                for u in updates {
                    match u {
                        AlertUpdate::Firing { labels, annotations, since_us } => {
                            batch.push(alert(&labels, &annotations, since_us, now + hold, &settings));
                            firing.insert(labels, (since_us, annotations));
                        }
                        AlertUpdate::Resolved { labels, at_us } => {
                            let (since, ann) = firing.remove(&labels).unwrap_or((at_us, BTreeMap::new()));
                            batch.push(alert(&labels, &ann, since, at_us, &settings));
                        }
                    }
                }
            }
            _ = resend.tick() => {
                let now = chrono::Utc::now().timestamp_micros();
                batch = firing.iter().map(|(l, (since, ann))| alert(l, ann, *since, now + hold, &settings)).collect();
            }
        }
        if batch.is_empty() {
            continue;
        }
        match post_with_retry(&client, &url, &batch).await {
            Ok(()) => {
                stats
                    .posts_ok
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e) => {
                stats
                    .posts_failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(error = %e, alerts = batch.len(), "alert delivery failed; firing alerts are re-sent at the next interval");
            }
        }
    }
}

fn alert(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    since_us: i64,
    ends_us: i64,
    settings: &NotifierSettings,
) -> Alert {
    Alert {
        labels: labels.clone(),
        annotations: annotations.clone(),
        starts_at: rfc3339(since_us),
        ends_at: rfc3339(ends_us),
        generator_url: settings.generator_url.clone(),
    }
}

/// Posts one batch, retrying transport errors and 5xx a few times with backoff.
pub async fn post_with_retry(
    client: &reqwest::Client,
    url: &str,
    alerts: &[Alert],
) -> Result<(), NotifyError> {
    let body = serde_json::to_vec(alerts).unwrap_or_default();
    let mut delay = Duration::from_millis(200);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await;
        let err = match result {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = resp.text().await.unwrap_or_default();
                let e = NotifyError::Status {
                    url: url.to_owned(),
                    status,
                    body,
                };
                if status < 500 {
                    return Err(e);
                }
                e
            }
            Err(source) => NotifyError::Transport {
                url: url.to_owned(),
                source,
            },
        };
        if attempt >= 4 {
            return Err(err);
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_matches_the_alertmanager_v2_shape() {
        let labels = BTreeMap::from([
            ("alertname".to_owned(), "SLOBurnRate".to_owned()),
            ("service".to_owned(), "auth".to_owned()),
        ]);
        let settings = NotifierSettings {
            url: "http://am:9093".into(),
            resend_interval: Duration::from_secs(60),
            generator_url: "http://telltale:8080/".into(),
            tls: Default::default(),
        };
        let a = alert(&labels, &BTreeMap::new(), 0, 60_000_000, &settings);
        let json = serde_json::to_value([a]).unwrap();
        assert_eq!(
            json,
            serde_json::json!([{
                "labels": {"alertname": "SLOBurnRate", "service": "auth"},
                "annotations": {},
                "startsAt": "1970-01-01T00:00:00.000000Z",
                "endsAt": "1970-01-01T00:01:00.000000Z",
                "generatorURL": "http://telltale:8080/"
            }])
        );
    }
}
