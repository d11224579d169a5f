//! Flagging: an event is an error when `status_code >= 500` or the sender said `error`,
//! and slow when its latency is over its service's threshold.

use crate::config::{ServiceCatalog, ServicePolicy};
use crate::event::{FlaggedEvent, ServiceEvent};

/// Applies one service's policy to an event.
pub fn flag_with(policy: &ServicePolicy, event: ServiceEvent) -> FlaggedEvent {
    FlaggedEvent {
        is_error: event.status_code >= 500 || event.error == Some(true),
        is_slow: event.latency_ms > policy.latency_threshold_ms,
        team: std::sync::Arc::clone(&policy.team),
        event,
    }
}

/// The flags of one event, and who owns its service.
#[derive(Debug, Clone, PartialEq)]
pub struct Flags {
    /// Owning team (the default team for unknown services).
    pub team: std::sync::Arc<str>,
    /// `status_code >= 500` or the sender said `error`.
    pub is_error: bool,
    /// Latency over the service's threshold.
    pub is_slow: bool,
    /// Whether the service is in the catalogue.
    pub known: bool,
}

impl ServiceCatalog {
    /// [`ServiceCatalog::flag`] without an owned event (the borrowed parse path).
    pub fn flags(
        &self,
        service: &str,
        status_code: u16,
        latency_ms: f64,
        error: Option<bool>,
    ) -> Flags {
        let is_error = status_code >= 500 || error == Some(true);
        match self.get(service) {
            Some(p) => Flags {
                team: std::sync::Arc::clone(&p.team),
                is_error,
                is_slow: latency_ms > p.latency_threshold_ms,
                known: true,
            },
            None => {
                let p = self.default_policy(service);
                Flags {
                    is_slow: latency_ms > p.latency_threshold_ms,
                    team: p.team,
                    is_error,
                    known: false,
                }
            }
        }
    }

    /// Flags an event against its service's policy (defaults for unknown services).
    /// The bool is whether the service is in the catalogue.
    pub fn flag(&self, event: ServiceEvent) -> (FlaggedEvent, bool) {
        match self.get(&event.service) {
            Some(p) => (flag_with(p, event), true),
            None => {
                let p = self.default_policy(&event.service);
                (flag_with(&p, event), false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> ServiceCatalog {
        ServiceCatalog::from_toml_str(
            "[defaults]\nlatency_threshold_ms = 300.0\n[services.auth]\nteam = \"identity\"\nlatency_threshold_ms = 250.0\n",
            "t",
        )
        .unwrap()
    }

    fn ev(service: &str, status: u16, latency: f64, error: Option<bool>) -> ServiceEvent {
        ServiceEvent {
            service: service.into(),
            timestamp_us: 0,
            status_code: status,
            latency_ms: latency,
            error,
            endpoint: None,
            method: None,
            region: None,
            instance: None,
            trace_id: None,
            attributes: None,
        }
    }

    #[test]
    fn flags_follow_the_catalogue() {
        let c = catalog();
        let cases = [
            // service, status, latency, error, is_error, is_slow, team, known
            ("auth", 200, 250.0, None, false, false, "identity", true),
            ("auth", 200, 250.001, None, false, true, "identity", true),
            ("auth", 499, 1.0, None, false, false, "identity", true),
            ("auth", 500, 1.0, None, true, false, "identity", true),
            ("auth", 200, 1.0, Some(true), true, false, "identity", true),
            ("auth", 503, 1.0, Some(false), true, false, "identity", true),
            ("other", 200, 300.0, None, false, false, "unowned", false),
            ("other", 200, 300.5, None, false, true, "unowned", false),
        ];
        for (s, st, lat, err, is_error, is_slow, team, known) in cases {
            let (f, k) = c.flag(ev(s, st, lat, err));
            assert_eq!(
                (f.is_error, f.is_slow, &*f.team, k),
                (is_error, is_slow, team, known),
                "{s} {st} {lat} {err:?}"
            );
            // The borrowed path flags exactly the same way.
            let b = c.flags(s, st, lat, err);
            assert_eq!(
                (b.is_error, b.is_slow, &*b.team, b.known),
                (is_error, is_slow, team, known),
                "flags(): {s} {st} {lat} {err:?}"
            );
        }
    }
}
