//! The schedule on tokio's paused clock: time moves only when every task waits, so the
//! instants below are exact, not measured.

use super::*;
use std::sync::atomic::AtomicUsize;

/// A check that takes `delay(url)` of (paused) time and records when it started.
#[derive(Default)]
struct Fake {
    delays: HashMap<String, Duration>,
    started: Mutex<Vec<(String, Instant)>>,
    running: Mutex<HashMap<String, usize>>,
    max_per_url: AtomicUsize,
    now: AtomicUsize,
    max_at_once: AtomicUsize,
}

impl Fake {
    fn with(delays: &[(&Monitor, Duration)]) -> Arc<Self> {
        Arc::new(Self {
            delays: delays.iter().map(|(m, d)| (m.url.clone(), *d)).collect(),
            ..Self::default()
        })
    }

    fn starts(&self, url: &str) -> Vec<Instant> {
        let s = self.started.lock().unwrap();
        s.iter()
            .filter(|(u, _)| u == url)
            .map(|(_, t)| *t)
            .collect()
    }
}

/// Decrements the counts when a check ends or is cut off.
struct Done<'a>(&'a Fake, String);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        *self.0.running.lock().unwrap().get_mut(&self.1).unwrap() -= 1;
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Check for Fake {
    fn check<'a>(&'a self, url: &'a str) -> Pin<Box<dyn Future<Output = CheckResult> + Send + 'a>> {
        Box::pin(async move {
            self.started
                .lock()
                .unwrap()
                .push((url.to_owned(), Instant::now()));
            {
                let mut r = self.running.lock().unwrap();
                let n = r.entry(url.to_owned()).or_default();
                *n += 1;
                self.max_per_url.fetch_max(*n, Ordering::SeqCst);
            }
            let at_once = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_at_once.fetch_max(at_once, Ordering::SeqCst);
            let _done = Done(self, url.to_owned());
            let delay = self
                .delays
                .get(url)
                .copied()
                .unwrap_or(Duration::from_millis(100));
            tokio::time::sleep(delay).await;
            let mut r =
                CheckResult::failed(url, String::new(), 0.0, CheckError::Http, String::new());
            r.error = None;
            r.error_message = None;
            r.status_code = Some(200);
            r
        })
    }
}

fn monitor(n: u32, every: &str) -> Monitor {
    Monitor::new(&format!("http://m{n}.example/"), every).unwrap()
}

fn scheduler(
    fake: &Arc<Fake>,
    settings: SchedulerSettings,
) -> (Scheduler, mpsc::Receiver<CheckResult>) {
    let (tx, rx) = mpsc::channel(1024);
    let check: Arc<dyn Check> = Arc::clone(fake) as Arc<dyn Check>;
    let s = Scheduler::new(check, settings, tx, Arc::new(SchedulerStats::default()));
    (s, rx)
}

/// Results that arrive until `until` (paused time runs there).
async fn collect(rx: &mut mpsc::Receiver<CheckResult>, until: Instant) -> Vec<CheckResult> {
    let mut out = Vec::new();
    while let Ok(Some(r)) = tokio::time::timeout_at(until, rx.recv()).await {
        out.push(r);
    }
    out
}

fn settings(seed: u64) -> SchedulerSettings {
    SchedulerSettings {
        seed,
        ..SchedulerSettings::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_new_monitor_is_checked_at_once_then_each_period_at_its_offset() {
    let m = monitor(1, "1m");
    let fake = Fake::with(&[]);
    let (s, mut rx) = scheduler(&fake, settings(7));
    let offset = s.offset(&m);
    assert!(
        offset < Duration::from_secs(6),
        "10% of a minute: {offset:?}"
    );
    assert_eq!(offset, scheduler(&fake, settings(7)).0.offset(&m), "seeded");
    let t0 = Instant::now();
    assert!(s.add(&m, FirstCheck::Now));
    assert!(!s.add(&m, FirstCheck::Now), "one schedule per monitor");
    let results = collect(&mut rx, t0 + Duration::from_secs(3 * 60 + 30)).await;
    let period = Duration::from_secs(60);
    assert_eq!(
        fake.starts(&m.url),
        vec![
            t0,
            t0 + offset + period,
            t0 + offset + 2 * period,
            t0 + offset + 3 * period
        ]
    );
    assert_eq!(results.len(), 4);
    assert!(
        results
            .iter()
            .all(|r| r.monitor_id.as_deref() == Some(m.id.as_str()) && r.every_s == Some(60))
    );
    assert_eq!(s.stats().results().get("up"), Some(&4));
}

#[tokio::test(start_paused = true)]
async fn offsets_spread_monitors_and_are_capped() {
    let fake = Fake::with(&[]);
    let (s, _rx) = scheduler(&fake, settings(1));
    let thirty: Vec<Duration> = (0..50).map(|n| s.offset(&monitor(n, "30m"))).collect();
    assert!(
        thirty.iter().all(|o| *o < Duration::from_secs(30)),
        "10% of 30 min is 3 min, capped at max_jitter 30 s: {thirty:?}"
    );
    let mut distinct = thirty.clone();
    distinct.sort();
    distinct.dedup();
    assert!(
        distinct.len() > 40,
        "50 monitors spread over 30 s: {distinct:?}"
    );
    let (other, _rx) = scheduler(&fake, settings(2));
    assert_ne!(
        thirty,
        (0..50)
            .map(|n| other.offset(&monitor(n, "30m")))
            .collect::<Vec<_>>(),
        "another seed, other offsets"
    );
    let (none, _rx) = scheduler(
        &fake,
        SchedulerSettings {
            jitter: 0.0,
            ..settings(1)
        },
    );
    assert_eq!(none.offset(&monitor(1, "5m")), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn monitors_loaded_at_start_first_fire_at_their_offsets() {
    let fake = Fake::with(&[]);
    let (s, mut rx) = scheduler(&fake, settings(3));
    let t0 = Instant::now();
    let ms: Vec<Monitor> = (0..5).map(|n| monitor(n, "5m")).collect();
    for m in &ms {
        s.add(m, FirstCheck::AtOffset);
    }
    collect(&mut rx, t0 + Duration::from_secs(31)).await;
    for m in &ms {
        assert_eq!(fake.starts(&m.url), vec![t0 + s.offset(m)], "{}", m.url);
    }
}

#[tokio::test(start_paused = true)]
async fn a_check_still_running_at_the_next_tick_is_skipped_and_counted() {
    let m = monitor(1, "1m");
    // Each check takes 2.5 periods: the two ticks during it are skipped.
    let fake = Fake::with(&[(&m, Duration::from_secs(150))]);
    let (s, mut rx) = scheduler(
        &fake,
        SchedulerSettings {
            timeout: Duration::from_secs(600),
            ..settings(5)
        },
    );
    let t0 = Instant::now();
    s.add(&m, FirstCheck::Now);
    let results = collect(&mut rx, t0 + Duration::from_secs(10 * 60)).await;
    assert_eq!(
        fake.max_per_url.load(Ordering::SeqCst),
        1,
        "never two at a time"
    );
    let offset = s.offset(&m);
    let period = Duration::from_secs(60);
    // Started at 0; ticks at o+1m, o+2m skipped (running until 2.5m); o+3m starts…
    assert_eq!(
        fake.starts(&m.url),
        vec![
            t0,
            t0 + offset + 3 * period,
            t0 + offset + 6 * period,
            t0 + offset + 9 * period
        ]
    );
    assert_eq!(results.len(), 3, "the fourth is still running at 10 min");
    assert_eq!(s.stats().missed_ticks(), 6);
}

#[tokio::test(start_paused = true)]
async fn the_pool_bounds_the_checks_running_at_once() {
    let ms: Vec<Monitor> = (0..6).map(|n| monitor(n, "1m")).collect();
    let slow: Vec<(&Monitor, Duration)> = ms.iter().map(|m| (m, Duration::from_secs(4))).collect();
    let fake = Fake::with(&slow);
    let (s, mut rx) = scheduler(
        &fake,
        SchedulerSettings {
            max_concurrent: 2,
            ..settings(9)
        },
    );
    let t0 = Instant::now();
    for m in &ms {
        s.add(m, FirstCheck::Now);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        s.stats().in_flight(),
        2,
        "two in the pool, four waiting for a slot"
    );
    let results = collect(&mut rx, t0 + Duration::from_secs(13)).await;
    assert_eq!(results.len(), 6, "three rounds of two, 4 s each");
    assert_eq!(fake.max_at_once.load(Ordering::SeqCst), 2);
    assert_eq!(s.stats().in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_target_that_never_answers_times_out_without_delaying_another() {
    let hung = monitor(1, "1m");
    let fast = monitor(2, "1m");
    let fake = Fake::with(&[(&hung, Duration::from_secs(3600))]);
    let (s, mut rx) = scheduler(
        &fake,
        SchedulerSettings {
            timeout: Duration::from_secs(10),
            ..settings(4)
        },
    );
    let t0 = Instant::now();
    s.add(&hung, FirstCheck::Now);
    s.add(&fast, FirstCheck::Now);
    // Bounded on the paused clock, so a broken schedule fails instead of hanging.
    let next = async |rx: &mut mpsc::Receiver<CheckResult>| {
        tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("a result within a minute")
            .unwrap()
    };
    let first = next(&mut rx).await;
    assert_eq!(first.url, fast.url);
    assert_eq!(
        Instant::now(),
        t0 + Duration::from_millis(100),
        "the fast one's own time"
    );
    let second = next(&mut rx).await;
    assert_eq!(second.url, hung.url);
    assert_eq!(second.error, Some(CheckError::Timeout));
    assert_eq!(Instant::now(), t0 + Duration::from_secs(10));
    assert_eq!(s.stats().results().get("timeout"), Some(&1));
}

#[tokio::test(start_paused = true)]
async fn a_removed_monitor_is_checked_no_more() {
    let a = monitor(1, "1m");
    let b = monitor(2, "1m");
    let fake = Fake::with(&[]);
    let (s, mut rx) = scheduler(&fake, settings(6));
    let t0 = Instant::now();
    s.add(&a, FirstCheck::Now);
    s.add(&b, FirstCheck::Now);
    collect(&mut rx, t0 + Duration::from_secs(1)).await;
    assert!(s.remove(&a.id));
    assert!(!s.remove(&a.id));
    assert_eq!(s.len(), 1);
    collect(&mut rx, t0 + Duration::from_secs(5 * 60)).await;
    assert_eq!(fake.starts(&a.url).len(), 1);
    assert_eq!(fake.starts(&b.url).len(), 5);
    s.stop();
    assert!(s.is_empty());
}
