//! Reverse DNS of hop addresses, through the system resolver (`getnameinfo`, so
//! `/etc/hosts` and nsswitch apply, as for `mtr` and `traceroute`). Names are cached; a
//! lookup that takes longer than the deadline gives no name this time and is not waited
//! for, so a slow resolver never delays a probe's line.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How long a name (or the absence of one) is kept.
const CACHE_TTL: Duration = Duration::from_secs(600);

/// A name (or none) and when it was looked up.
type Cached = (Option<String>, Instant);

/// A reverse-DNS cache shared by every probe of a process.
#[derive(Debug, Clone)]
pub struct ReverseDns {
    cache: Arc<Mutex<HashMap<IpAddr, Cached>>>,
    deadline: Duration,
}

impl ReverseDns {
    /// Lookups wait at most `deadline` per probe.
    pub fn new(deadline: Duration) -> Self {
        Self {
            cache: Arc::default(),
            deadline,
        }
    }

    /// The names of `addrs` that have one (looked up at once, in parallel).
    pub fn names(&self, addrs: &[IpAddr]) -> HashMap<IpAddr, String> {
        let mut found = HashMap::new();
        let mut wanted = Vec::new();
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            for addr in addrs {
                match cache.get(addr) {
                    Some((Some(name), at)) if at.elapsed() < CACHE_TTL => {
                        found.insert(*addr, name.clone());
                    }
                    Some((None, at)) if at.elapsed() < CACHE_TTL => {}
                    _ if !wanted.contains(addr) => wanted.push(*addr),
                    _ => {}
                }
            }
        }
        if wanted.is_empty() {
            return found;
        }
        let (tx, rx) = mpsc::channel();
        for addr in &wanted {
            let (tx, addr, cache) = (tx.clone(), *addr, Arc::clone(&self.cache));
            // Detached: a lookup past the deadline still fills the cache for next time.
            std::thread::spawn(move || {
                let name = dns_lookup::lookup_addr(&addr)
                    .ok()
                    .filter(|n| !n.is_empty() && n.parse::<IpAddr>().is_err());
                cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(addr, (name.clone(), Instant::now()));
                let _ = tx.send((addr, name));
            });
        }
        drop(tx);
        let until = Instant::now() + self.deadline;
        for _ in &wanted {
            match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok((addr, Some(name))) => {
                    found.insert(addr, name);
                }
                Ok((_, None)) => {}
                Err(_) => break,
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `localhost` is in every `/etc/hosts`; a name is cached after the first lookup.
    #[test]
    fn loopback_has_a_name_and_it_is_cached() {
        let rdns = ReverseDns::new(Duration::from_secs(5));
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let names = rdns.names(&[lo, lo]);
        let name = names.get(&lo).expect("127.0.0.1 has a name in /etc/hosts");
        assert!(!name.is_empty());
        assert!(rdns.cache.lock().unwrap().contains_key(&lo));
        assert_eq!(rdns.names(&[lo]).get(&lo), Some(name));
    }
}
