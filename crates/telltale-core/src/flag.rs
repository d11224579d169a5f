//! Flagging: an event is an error when `status_code >= 500` or the sender said `error`,
//! and slow when its latency is over its service's threshold.

use std::sync::Arc;

use crate::config::ServiceCatalog;
use crate::event::{FlaggedEvent, ServiceEvent};

/// The flags of one event, and who owns its service.
#[derive(Debug, Clone, PartialEq)]
pub struct Flags<'a> {
    /// Owning team (the default team for unknown services). Borrowed from the catalogue:
    /// cloning the `Arc` per event made every parsing thread bump one shared counter.
    pub team: &'a Arc<str>,
    /// `status_code >= 500` or the sender said `error`.
    pub is_error: bool,
    /// Latency over the service's threshold.
    pub is_slow: bool,
    /// Whether the service is in the catalogue.
    pub known: bool,
}

impl<'a> Flags<'a> {
    /// The one place the flag rules live.
    fn apply(
        team: &'a Arc<str>,
        latency_threshold_ms: f64,
        known: bool,
        status_code: u16,
        latency_ms: f64,
        error: Option<bool>,
    ) -> Self {
        Self {
            team,
            is_error: status_code >= 500 || error == Some(true),
            is_slow: latency_ms > latency_threshold_ms,
            known,
        }
    }
}

impl ServiceCatalog {
    /// Flags an event given by its fields against its service's policy (defaults for
    /// unknown services); the borrowed parse path uses this without an owned event.
    pub fn flags(
        &self,
        service: &str,
        status_code: u16,
        latency_ms: f64,
        error: Option<bool>,
    ) -> Flags<'_> {
        // Unknown services get the defaults, as `default_policy` would give them, without
        // building a policy per event.
        let (team, threshold, known) = match self.get(service) {
            Some(p) => (&p.team, p.latency_threshold_ms, true),
            None => (
                self.default_team(),
                self.default_latency_threshold_ms(),
                false,
            ),
        };
        Flags::apply(team, threshold, known, status_code, latency_ms, error)
    }

    /// Flags an event against its service's policy (defaults for unknown services).
    /// The bool is whether the service is in the catalogue.
    pub fn flag(&self, event: ServiceEvent) -> (FlaggedEvent, bool) {
        let f = self.flags(
            &event.service,
            event.status_code,
            event.latency_ms,
            event.error,
        );
        let flagged = FlaggedEvent {
            team: Arc::clone(f.team),
            event,
            is_error: f.is_error,
            is_slow: f.is_slow,
        };
        (flagged, f.known)
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
            let policy = c.policy_for(s);
            assert_eq!(
                (&*policy.team, policy.known),
                (team, known),
                "policy_for({s})"
            );
            assert_eq!(
                (f.is_error, f.is_slow, &*f.team, k),
                (is_error, is_slow, team, known),
                "{s} {st} {lat} {err:?}"
            );
            // The borrowed path flags exactly the same way.
            let b = c.flags(s, st, lat, err);
            assert_eq!(
                (b.is_error, b.is_slow, &**b.team, b.known),
                (is_error, is_slow, team, known),
                "flags(): {s} {st} {lat} {err:?}"
            );
        }
    }
}
