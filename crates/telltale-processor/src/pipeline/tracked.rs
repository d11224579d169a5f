//! What the parsing threads see of the writer's tracked services ([`TrackedView`]): a
//! read-only snapshot the writer publishes (`service_limit`) and `prepare` reads, so a
//! batch builds columns only for services that can be tracked. A leaf: it imports nothing
//! of the pipeline.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

pub(super) type NameSet = HashSet<Arc<str>, foldhash::fast::RandomState>;

/// The tracked set as the parsing threads see it.
#[derive(Debug, Default)]
pub(super) struct TrackedView {
    pub(super) names: NameSet,
    pub(super) max: usize,
}

impl TrackedView {
    /// Whether `service` was tracked when the view was published.
    pub(super) fn contains(&self, service: &str) -> bool {
        self.names.contains(service)
    }

    /// How many more services could be admitted then.
    pub(super) fn room(&self) -> usize {
        self.max.saturating_sub(self.names.len())
    }
}

/// Where the writer publishes its [`TrackedView`] and the parsing threads read it.
pub(super) type SharedView = Arc<RwLock<Arc<TrackedView>>>;
