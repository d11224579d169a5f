//! Draining the HTTP server at shutdown. Once [`Drain::start`] is called, new ingest
//! requests are answered 503 with `Retry-After` (their bodies unread) and `/healthz`
//! answers 503, while the requests already in flight run to their acknowledgement;
//! [`Drain::idle`] resolves when none is left, and the server may close its listener.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Shared between the server's handlers and whoever shuts it down.
#[derive(Debug, Clone, Default)]
pub struct Drain {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    draining: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
}

/// A request in flight; dropping it ends it.
#[derive(Debug)]
pub struct InFlight {
    inner: Arc<Inner>,
}

impl Drain {
    /// A request starts, unless the server is draining (`None`: answer 503).
    pub fn enter(&self) -> Option<InFlight> {
        // Counted before the check, so `idle` after `start` cannot miss it.
        self.inner.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = InFlight {
            inner: Arc::clone(&self.inner),
        };
        (!self.inner.draining.load(Ordering::SeqCst)).then_some(guard)
    }

    /// From now on, new requests are refused.
    pub fn start(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    /// Whether [`start`](Self::start) was called.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::SeqCst)
    }

    /// Resolves once no request is in flight (call after [`start`](Self::start)).
    pub async fn idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.inner.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_waits_for_the_requests_in_flight_and_refuses_new_ones() {
        let drain = Drain::default();
        let a = drain.enter().expect("accepting before the drain");
        drain.start();
        assert!(drain.enter().is_none(), "refused while draining");
        assert_eq!(drain.in_flight(), 1, "the refused request is not counted");
        let waiter = tokio::spawn({
            let drain = drain.clone();
            async move { drain.idle().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "a request is still in flight");
        drop(a);
        waiter.await.unwrap();
        drain.idle().await;
    }
}
