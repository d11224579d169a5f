//! `limits.max_services`: the writer tracks at most this many services (the catalogue's
//! always), so that rollups, the SLO engine, lake partitions, InfluxDB series and the
//! status page stay bounded whatever service names arrive (typos, per-customer names, an
//! attack). The events of a service past the limit are not merged into anything: they go
//! to the dead letter whole, with reason `service_limit`, and are counted.
//!
//! Decided on the writer thread, in log order, and the tracked set is saved with each
//! checkpoint, so a replay after a crash decides exactly as the first run did.

use std::collections::HashSet;
use std::sync::Arc;

use telltale_core::ServiceCatalog;

/// The services tracked so far, up to the limit.
#[derive(Debug)]
pub(super) struct ServiceLimit {
    max: usize,
    catalog: Arc<ServiceCatalog>,
    tracked: HashSet<Arc<str>>,
}

impl ServiceLimit {
    pub(super) fn new(max: usize, catalog: Arc<ServiceCatalog>) -> Self {
        Self {
            max,
            catalog,
            tracked: HashSet::new(),
        }
    }

    /// Whether `service` is tracked, admitting it if it is catalogued or there is room.
    pub(super) fn admit(&mut self, service: &Arc<str>) -> bool {
        if self.tracked.contains(service) {
            return true;
        }
        if self.catalog.get(service).is_some() || self.tracked.len() < self.max {
            self.tracked.insert(Arc::clone(service));
            return true;
        }
        false
    }

    /// Services tracked now.
    pub(super) fn tracked(&self) -> usize {
        self.tracked.len()
    }

    /// The limit.
    pub(super) fn max(&self) -> usize {
        self.max
    }

    /// The tracked set, sorted, for a checkpoint.
    pub(super) fn snapshot(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tracked.iter().map(|s| s.to_string()).collect();
        names.sort_unstable();
        names
    }

    /// The tracked set of a checkpoint (all of it, even past a lowered limit: what was
    /// admitted stays admitted).
    pub(super) fn restore(&mut self, names: &[String]) {
        self.tracked = names.iter().map(|n| Arc::from(n.as_str())).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_always_the_catalogue() {
        let catalog =
            Arc::new(ServiceCatalog::from_toml_str("[services.known]\n", "services.toml").unwrap());
        let mut limit = ServiceLimit::new(2, catalog);
        let name = |s: &str| Arc::<str>::from(s);
        assert!(limit.admit(&name("a")));
        assert!(limit.admit(&name("b")));
        assert!(!limit.admit(&name("c")), "past the limit");
        assert!(limit.admit(&name("a")), "a tracked service stays tracked");
        assert!(limit.admit(&name("known")), "catalogued services always");
        assert_eq!(limit.tracked(), 3);
        let mut again =
            ServiceLimit::new(2, Arc::new(ServiceCatalog::from_toml_str("", "s").unwrap()));
        again.restore(&limit.snapshot());
        assert!(again.admit(&name("known")) && again.admit(&name("b")));
        assert!(
            !again.admit(&name("c")),
            "the restored set decides as before"
        );
    }
}
