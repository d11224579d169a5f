//! The autoscaler's policy: how many processing workers the pipeline should run, decided
//! from the backlog of ingest batches and the CPU the process already uses.
//!
//! Pure code, like the rest of the core: no clock, no threads. The caller (the worker
//! pool in the processor) measures, calls [`Autoscaler::observe`] every
//! [`AutoscaleConfig::interval`] with the time and the measurements, and applies the
//! [`Decision`]. The rules, in order:
//!
//! 1. **One step at a time.** A decision moves the worker count by exactly one, so a
//!    spike ramps up over several intervals instead of jumping to `max_workers` on one
//!    noisy sample.
//! 2. **Up** when the backlog per worker is above `scale_up_backlog`, the count is below
//!    `max_workers`, the process uses less than `max_cpu_fraction` of the cores (a worker
//!    more cannot help when the CPU is already the bottleneck), and `up_cooldown` has
//!    passed since the last change (the last worker needs time to take load off the queue).
//! 3. **Down** when the backlog per worker has stayed below `scale_down_backlog` for
//!    `down_after` without a break, the count is above `min_workers`, one worker fewer
//!    would not cross `scale_up_backlog` straight away, and `down_cooldown` has passed
//!    since the last change. Scaling down is slower than scaling up on purpose: a worker
//!    too many costs a little memory, a worker too few costs latency for everyone.
//! 4. A count outside `[min_workers, max_workers]` (a worker died, or the pool started
//!    elsewhere) is stepped back towards the range, cooldowns still respected.
//!
//! Otherwise [`Decision::Hold`]. The gap between `scale_down_backlog` and
//! `scale_up_backlog` is the hysteresis that keeps the pool from flapping.

use std::time::Duration;

use crate::config::AutoscaleConfig;

/// What the pool looks like at one run of the policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Now, in milliseconds on any clock that does not go backwards (a monotonic clock is
    /// best: only differences matter).
    pub now_ms: u64,
    /// Ingest batches waiting for a worker.
    pub backlog: usize,
    /// Workers running now.
    pub workers: usize,
    /// CPU the process used over the last interval, in cores (1.0 = one core busy); NaN
    /// when it could not be measured.
    pub cpu_cores_used: f64,
    /// Cores the process may use. Zero or less means unknown. An unknown CPU use or core
    /// count blocks no scale-up.
    pub cores_available: f64,
}

/// What the pool should do now.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Keep the worker count.
    Hold,
    /// Add one worker, going `to` this many.
    ScaleUp {
        /// The new worker count (the observed count + 1).
        to: usize,
        /// Why, for the log, e.g. `backlog 9.0 per worker > 2.0`.
        reason: String,
    },
    /// Remove one worker, going `to` this many.
    ScaleDown {
        /// The new worker count (the observed count − 1).
        to: usize,
        /// Why, for the log, e.g. `backlog 0.00 per worker < 0.25 for 10s`.
        reason: String,
    },
}

impl Decision {
    /// The worker count the decision asks for, `None` for [`Decision::Hold`].
    pub fn target(&self) -> Option<usize> {
        match self {
            Decision::Hold => None,
            Decision::ScaleUp { to, .. } | Decision::ScaleDown { to, .. } => Some(*to),
        }
    }

    /// `"up"` or `"down"` (the `direction` label of the processor's
    /// `telltale_autoscale_decisions` metric), `None` for [`Decision::Hold`].
    pub fn direction(&self) -> Option<&'static str> {
        match self {
            Decision::Hold => None,
            Decision::ScaleUp { .. } => Some("up"),
            Decision::ScaleDown { .. } => Some("down"),
        }
    }
}

/// The policy with its memory: when the worker count last changed and since when the
/// backlog has been low. See the module documentation for the rules.
#[derive(Debug, Clone)]
pub struct Autoscaler {
    cfg: AutoscaleConfig,
    /// When the last decision that changed the count was made.
    last_change_ms: Option<u64>,
    /// Start of the current unbroken run of low-backlog observations.
    low_since_ms: Option<u64>,
}

impl Autoscaler {
    /// A policy with no history: the first change needs no cooldown, the first scale-down
    /// still needs `down_after` of low backlog. `cfg` should have passed
    /// [`AutoscaleConfig::validate`].
    pub fn new(cfg: AutoscaleConfig) -> Self {
        Self {
            cfg,
            last_change_ms: None,
            low_since_ms: None,
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &AutoscaleConfig {
        &self.cfg
    }

    /// Decides from one observation. The caller is expected to apply a scale decision:
    /// the cooldowns count from the moment it is returned.
    pub fn observe(&mut self, obs: Observation) -> Decision {
        let cfg = &self.cfg;
        let workers = obs.workers;
        // Zero workers: the whole backlog waits on the first one to come.
        let per_worker = obs.backlog as f64 / workers.max(1) as f64;
        let since_change = |cooldown: Duration| match self.last_change_ms {
            None => true,
            Some(t) => u128::from(obs.now_ms.saturating_sub(t)) >= cooldown.as_millis(),
        };
        let up_allowed = since_change(cfg.up_cooldown);
        let down_allowed = since_change(cfg.down_cooldown);

        if per_worker < cfg.scale_down_backlog {
            self.low_since_ms.get_or_insert(obs.now_ms);
        } else {
            self.low_since_ms = None;
        }

        let decision = if workers < cfg.min_workers {
            if up_allowed {
                Decision::ScaleUp {
                    to: workers + 1,
                    reason: format!("{workers} workers, below min_workers {}", cfg.min_workers),
                }
            } else {
                Decision::Hold
            }
        } else if workers > cfg.max_workers {
            if down_allowed {
                Decision::ScaleDown {
                    to: workers - 1,
                    reason: format!("{workers} workers, above max_workers {}", cfg.max_workers),
                }
            } else {
                Decision::Hold
            }
        } else if per_worker > cfg.scale_up_backlog {
            // An unmeasured CPU must not freeze the pool at its current size.
            let cpu_fraction = if obs.cores_available > 0.0 && obs.cpu_cores_used.is_finite() {
                obs.cpu_cores_used / obs.cores_available
            } else {
                0.0
            };
            if workers < cfg.max_workers && cpu_fraction < cfg.max_cpu_fraction && up_allowed {
                Decision::ScaleUp {
                    to: workers + 1,
                    reason: format!(
                        "backlog {per_worker:.1} per worker > {:?} (CPU {:.1} of {} cores)",
                        cfg.scale_up_backlog, obs.cpu_cores_used, obs.cores_available
                    ),
                }
            } else {
                Decision::Hold
            }
        } else if let Some(low_since) = self.low_since_ms {
            let low_long_enough =
                u128::from(obs.now_ms.saturating_sub(low_since)) >= cfg.down_after.as_millis();
            // Removing a worker must not push the rest over the scale-up threshold, or the
            // next interval would add it back.
            let after = obs.backlog as f64 / (workers.max(2) - 1) as f64;
            if workers > cfg.min_workers
                && low_long_enough
                && after <= cfg.scale_up_backlog
                && down_allowed
            {
                Decision::ScaleDown {
                    to: workers - 1,
                    reason: format!(
                        "backlog {per_worker:.2} per worker < {:?} for {}",
                        cfg.scale_down_backlog,
                        humantime::format_duration(Duration::from_millis(
                            obs.now_ms.saturating_sub(low_since)
                        ))
                    ),
                }
            } else {
                Decision::Hold
            }
        } else {
            Decision::Hold
        };

        if decision != Decision::Hold {
            self.last_change_ms = Some(obs.now_ms);
            // The new count has to show a quiet backlog of its own before the next step down.
            self.low_since_ms = None;
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const CORES: f64 = 4.0;

    /// A pool that applies every decision, observed every `interval`.
    struct Pool {
        scaler: Autoscaler,
        workers: usize,
        now_ms: u64,
        changes: Vec<(u64, Decision)>,
    }

    impl Pool {
        fn new(cfg: AutoscaleConfig) -> Self {
            Self {
                workers: cfg.min_workers,
                scaler: Autoscaler::new(cfg),
                now_ms: 0,
                changes: Vec::new(),
            }
        }

        /// Runs the policy once a second for `secs` seconds with this backlog and CPU use.
        fn run(&mut self, secs: u64, backlog: usize, cpu_cores_used: f64) {
            for _ in 0..secs {
                self.now_ms += 1000;
                let d = self.scaler.observe(Observation {
                    now_ms: self.now_ms,
                    backlog,
                    workers: self.workers,
                    cpu_cores_used,
                    cores_available: CORES,
                });
                if let Some(to) = d.target() {
                    self.workers = to;
                    self.changes.push((self.now_ms, d));
                }
            }
        }

        fn change_times(&self) -> Vec<u64> {
            self.changes.iter().map(|(t, _)| *t).collect()
        }
    }

    #[test]
    fn a_spike_scales_up_one_step_per_up_cooldown_to_max() {
        let mut pool = Pool::new(AutoscaleConfig::default());
        pool.run(3, 0, 0.5);
        assert_eq!(pool.workers, 1, "quiet: stays at min");
        pool.run(60, 50, 1.0);
        assert_eq!(pool.workers, 4, "at max");
        // 1 → 2 at once (no earlier change), then every 5 s (up_cooldown).
        assert_eq!(pool.change_times(), [4_000, 9_000, 14_000]);
        let Decision::ScaleUp { to, reason } = &pool.changes[0].1 else {
            panic!("{:?}", pool.changes)
        };
        assert_eq!(*to, 2);
        assert_eq!(reason, "backlog 50.0 per worker > 2.0 (CPU 1.0 of 4 cores)");
        assert!(
            pool.changes
                .iter()
                .all(|(_, d)| matches!(d, Decision::ScaleUp { .. }))
        );
    }

    #[test]
    fn a_saturated_cpu_blocks_scaling_up() {
        let mut pool = Pool::new(AutoscaleConfig::default());
        // 3.6 of 4 cores is the 0.9 limit: more workers would only contend.
        pool.run(30, 50, 3.6);
        assert_eq!(pool.workers, 1);
        assert!(pool.changes.is_empty());
        pool.run(1, 50, 3.5);
        assert_eq!(pool.workers, 2, "room on the CPU again");
    }

    #[test]
    fn unknown_core_count_does_not_block_scaling_up() {
        let mut s = Autoscaler::new(AutoscaleConfig::default());
        let d = s.observe(Observation {
            now_ms: 0,
            backlog: 10,
            workers: 1,
            cpu_cores_used: 8.0,
            cores_available: 0.0,
        });
        assert_eq!(d.target(), Some(2));
    }

    #[test]
    fn a_quiet_backlog_scales_down_after_down_after_and_down_cooldown() {
        let cfg = AutoscaleConfig::default();
        let mut pool = Pool::new(cfg.clone());
        pool.run(15, 50, 1.0);
        assert_eq!(pool.workers, 4);
        let last_up = *pool.change_times().last().unwrap();
        assert_eq!(last_up, 11_000);
        pool.changes.clear();
        let quiet_from = pool.now_ms + 1000;
        pool.run(120, 0, 0.1);
        assert_eq!(pool.workers, 1, "back to min, never below");
        let downs = pool.change_times();
        assert_eq!(downs.len(), 3, "{:?}", pool.changes);
        // The first step waits for the down_cooldown after the last scale-up (the quiet
        // run's down_after is shorter); each next one for down_cooldown again.
        assert!(downs[0] >= quiet_from + 10_000);
        assert_eq!(downs[0], last_up + 30_000);
        assert_eq!(downs[1], downs[0] + 30_000);
        assert_eq!(downs[2], downs[1] + 30_000);
        let Decision::ScaleDown { to, reason } = &pool.changes[0].1 else {
            panic!("{:?}", pool.changes)
        };
        assert_eq!(*to, 3);
        assert!(
            reason.starts_with("backlog 0.00 per worker < 0.25 for "),
            "{reason}"
        );
    }

    #[test]
    fn scaling_down_waits_for_down_after_of_unbroken_quiet() {
        let cfg = AutoscaleConfig {
            min_workers: 1,
            max_workers: 2,
            down_cooldown: Duration::ZERO,
            ..AutoscaleConfig::default()
        };
        let mut pool = Pool::new(cfg);
        pool.run(1, 10, 0.5);
        assert_eq!(pool.workers, 2);
        // Quiet samples from 2 s to 10 s, then one busy sample restarts the clock.
        pool.run(9, 0, 0.5);
        pool.run(1, 1, 0.5); // 0.5 per worker is not below 0.25
        // Quiet from 12 s: at 21 s it has been quiet for 9 s...
        pool.run(10, 0, 0.5);
        assert_eq!(pool.workers, 2, "never 10 s of quiet in a row");
        // ...at 22 s for 10 s.
        pool.run(1, 0, 0.5);
        assert_eq!(pool.workers, 1, "10 s of quiet");
        assert_eq!(pool.change_times(), [1_000, 22_000]);
    }

    #[test]
    fn hysteresis_keeps_a_middling_backlog_where_it_is() {
        let mut pool = Pool::new(AutoscaleConfig::default());
        pool.run(30, 30, 1.0);
        let workers = pool.workers;
        pool.changes.clear();
        // 3 batches for 4 workers: under 2 per worker, over 0.25.
        pool.run(300, 3, 1.0);
        assert!(pool.changes.is_empty(), "{:?}", pool.changes);
        assert_eq!(pool.workers, workers);
    }

    #[test]
    fn a_step_down_that_would_trigger_a_step_up_is_not_taken() {
        // A narrow hysteresis band: 1.9 per worker is quiet, 2.0 is busy.
        let cfg = AutoscaleConfig {
            min_workers: 1,
            max_workers: 2,
            scale_up_backlog: 2.0,
            scale_down_backlog: 1.9,
            down_cooldown: Duration::ZERO,
            down_after: Duration::ZERO,
            ..AutoscaleConfig::default()
        };
        let decide = |backlog| {
            Autoscaler::new(cfg.clone()).observe(Observation {
                now_ms: 1000,
                backlog,
                workers: 2,
                cpu_cores_used: 0.0,
                cores_available: CORES,
            })
        };
        // 3 batches: 1.5 per worker is quiet, but 3 on the one left would be busy.
        assert_eq!(decide(3), Decision::Hold);
        // 2 batches: 1.0 per worker, and 2 on the one left is not over 2.0.
        assert_eq!(decide(2).target(), Some(1));
    }

    #[test]
    fn counts_outside_the_range_step_back_into_it() {
        let mut s = Autoscaler::new(AutoscaleConfig {
            min_workers: 2,
            max_workers: 3,
            ..AutoscaleConfig::default()
        });
        let obs = |now_ms, workers| Observation {
            now_ms,
            backlog: 0,
            workers,
            cpu_cores_used: 0.0,
            cores_available: CORES,
        };
        let d = s.observe(obs(0, 0));
        assert_eq!(
            d,
            Decision::ScaleUp {
                to: 1,
                reason: "0 workers, below min_workers 2".into()
            }
        );
        assert_eq!(s.observe(obs(1_000, 1)), Decision::Hold, "up_cooldown");
        assert_eq!(s.observe(obs(5_000, 1)).target(), Some(2));
        assert_eq!(s.observe(obs(40_000, 5)).target(), Some(4));
    }

    #[test]
    fn equal_min_and_max_never_scale() {
        let mut pool = Pool::new(AutoscaleConfig {
            min_workers: 3,
            max_workers: 3,
            ..AutoscaleConfig::default()
        });
        pool.run(60, 100, 0.0);
        pool.run(60, 0, 0.0);
        assert!(pool.changes.is_empty());
        assert_eq!(pool.workers, 3);
    }

    fn config() -> impl Strategy<Value = AutoscaleConfig> {
        (
            1usize..4,
            0usize..5,
            0.5f64..8.0,
            0.0f64..1.0,
            0.2f64..=1.0,
            0u64..20_000,
            0u64..60_000,
            0u64..30_000,
        )
            .prop_map(|(min, extra, up, down_share, cpu, up_cd, down_cd, after)| {
                AutoscaleConfig {
                    min_workers: min,
                    max_workers: min + extra,
                    interval: Duration::from_secs(1),
                    scale_up_backlog: up,
                    scale_down_backlog: up * down_share,
                    max_cpu_fraction: cpu,
                    up_cooldown: Duration::from_millis(up_cd),
                    down_cooldown: Duration::from_millis(down_cd),
                    down_after: Duration::from_millis(after),
                }
            })
    }

    /// `(ms since the previous observation, backlog, CPU cores used)`.
    fn steps() -> impl Strategy<Value = Vec<(u64, usize, f64)>> {
        proptest::collection::vec((0u64..6_000, 0usize..60, 0.0f64..5.0), 1..300)
    }

    proptest! {
        #[test]
        fn an_applied_policy_stays_in_range_and_respects_cooldowns(
            cfg in config(),
            steps in steps(),
        ) {
            cfg.validate("t.toml").unwrap();
            let mut s = Autoscaler::new(cfg.clone());
            let (mut workers, mut now_ms) = (cfg.min_workers, 0u64);
            let mut last_change: Option<u64> = None;
            for (dt, backlog, cpu) in steps {
                now_ms += dt;
                let d = s.observe(Observation {
                    now_ms,
                    backlog,
                    workers,
                    cpu_cores_used: cpu,
                    cores_available: CORES,
                });
                let cooldown = match &d {
                    Decision::Hold => continue,
                    Decision::ScaleUp { to, .. } => {
                        prop_assert_eq!(*to, workers + 1);
                        cfg.up_cooldown
                    }
                    Decision::ScaleDown { to, .. } => {
                        prop_assert_eq!(*to, workers - 1);
                        cfg.down_cooldown
                    }
                };
                if let Some(t) = last_change {
                    prop_assert!(
                        u128::from(now_ms - t) >= cooldown.as_millis(),
                        "{:?} at {} ms, {} ms after the last change", d, now_ms, now_ms - t
                    );
                }
                last_change = Some(now_ms);
                workers = d.target().unwrap();
                prop_assert!((cfg.min_workers..=cfg.max_workers).contains(&workers));
            }
        }

        #[test]
        fn any_observation_gets_one_step_towards_or_within_the_range(
            cfg in config(),
            workers in 0usize..12,
            backlog in 0usize..100,
            cpu in 0.0f64..5.0,
            now_ms in 0u64..1_000_000,
        ) {
            let mut s = Autoscaler::new(cfg.clone());
            let d = s.observe(Observation {
                now_ms,
                backlog,
                workers,
                cpu_cores_used: cpu,
                cores_available: CORES,
            });
            match d {
                Decision::Hold => {}
                Decision::ScaleUp { to, reason } => {
                    prop_assert_eq!(to, workers + 1);
                    prop_assert!(workers < cfg.max_workers, "{}", reason);
                }
                Decision::ScaleDown { to, reason } => {
                    prop_assert_eq!(to + 1, workers);
                    prop_assert!(workers > cfg.min_workers, "{}", reason);
                }
            }
        }
    }
}
