//! `[autoscale]` in `config/telltale.toml`: bounds and thresholds of the processing
//! worker pool. The policy that reads them is [`crate::autoscale::Autoscaler`]; this file
//! only holds the settings and their checks.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::{ConfigError, invalid};

/// `[autoscale]` in `config/telltale.toml`: bounds and thresholds of the processing worker
/// pool. Every key has a default.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AutoscaleConfig {
    /// Fewest processing workers; the pool starts with this many.
    pub min_workers: usize,
    /// Most processing workers.
    pub max_workers: usize,
    /// How often the policy runs (and over which CPU use is measured).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Add a worker when more than this many batches wait per worker.
    pub scale_up_backlog: f64,
    /// Remove a worker when fewer than this many batches wait per worker (for `down_after`).
    pub scale_down_backlog: f64,
    /// Add no worker while the process uses at least this fraction of the available cores:
    /// more workers cannot help a saturated CPU, they only add contention.
    pub max_cpu_fraction: f64,
    /// Least time between the last change and adding a worker.
    #[serde(with = "humantime_serde")]
    pub up_cooldown: Duration,
    /// Least time between the last change and removing a worker.
    #[serde(with = "humantime_serde")]
    pub down_cooldown: Duration,
    /// The backlog must stay below `scale_down_backlog` this long before a worker goes.
    #[serde(with = "humantime_serde")]
    pub down_after: Duration,
}

impl Default for AutoscaleConfig {
    fn default() -> Self {
        Self {
            min_workers: 1,
            max_workers: 4,
            interval: Duration::from_secs(1),
            scale_up_backlog: 2.0,
            scale_down_backlog: 0.25,
            max_cpu_fraction: 0.9,
            up_cooldown: Duration::from_secs(5),
            down_cooldown: Duration::from_secs(30),
            down_after: Duration::from_secs(10),
        }
    }
}

impl AutoscaleConfig {
    /// Checks values that parse but cannot work; `file` names the source in messages.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        if self.min_workers == 0 {
            return Err(invalid(
                file,
                "autoscale.min_workers",
                "must be at least 1 (no worker would process anything), e.g. 1",
            ));
        }
        if self.max_workers < self.min_workers {
            return Err(invalid(
                file,
                "autoscale.max_workers",
                format!(
                    "{} is below min_workers ({}): raise max_workers or lower min_workers \
                     (equal values turn autoscaling off)",
                    self.max_workers, self.min_workers
                ),
            ));
        }
        if self.interval.is_zero() {
            return Err(invalid(
                file,
                "autoscale.interval",
                "must be above zero, e.g. \"1s\"",
            ));
        }
        if !self.scale_up_backlog.is_finite() || self.scale_up_backlog <= 0.0 {
            return Err(invalid(
                file,
                "autoscale.scale_up_backlog",
                format!(
                    "{} is not a backlog: give a positive number of batches per worker, e.g. 2.0",
                    self.scale_up_backlog
                ),
            ));
        }
        if !self.scale_down_backlog.is_finite()
            || self.scale_down_backlog < 0.0
            || self.scale_down_backlog >= self.scale_up_backlog
        {
            return Err(invalid(
                file,
                "autoscale.scale_down_backlog",
                format!(
                    "{} must be at least 0 and below scale_up_backlog ({}), e.g. 0.25: \
                     the gap keeps the pool from adding and removing a worker in turn",
                    self.scale_down_backlog, self.scale_up_backlog
                ),
            ));
        }
        if !self.max_cpu_fraction.is_finite()
            || self.max_cpu_fraction <= 0.0
            || self.max_cpu_fraction > 1.0
        {
            return Err(invalid(
                file,
                "autoscale.max_cpu_fraction",
                format!(
                    "{} is not a fraction of the cores: give a number above 0 and at most 1, \
                     e.g. 0.9 (1 lets CPU never block a scale-up)",
                    self.max_cpu_fraction
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_the_key_and_the_fix() {
        AutoscaleConfig::default().validate("t.toml").unwrap();
        let bad = |cfg: AutoscaleConfig| cfg.validate("t.toml").unwrap_err().to_string();
        let d = AutoscaleConfig::default;
        assert_eq!(
            bad(AutoscaleConfig {
                min_workers: 0,
                ..d()
            }),
            "t.toml: `autoscale.min_workers`: must be at least 1 (no worker would process \
             anything), e.g. 1"
        );
        assert_eq!(
            bad(AutoscaleConfig {
                min_workers: 4,
                max_workers: 2,
                ..d()
            }),
            "t.toml: `autoscale.max_workers`: 2 is below min_workers (4): raise max_workers or \
             lower min_workers (equal values turn autoscaling off)"
        );
        for (cfg, key) in [
            (
                AutoscaleConfig {
                    interval: Duration::ZERO,
                    ..d()
                },
                "interval",
            ),
            (
                AutoscaleConfig {
                    scale_up_backlog: 0.0,
                    ..d()
                },
                "scale_up_backlog",
            ),
            (
                AutoscaleConfig {
                    scale_up_backlog: f64::NAN,
                    ..d()
                },
                "scale_up_backlog",
            ),
            (
                AutoscaleConfig {
                    scale_down_backlog: 2.0,
                    ..d()
                },
                "scale_down_backlog",
            ),
            (
                AutoscaleConfig {
                    scale_down_backlog: -0.1,
                    ..d()
                },
                "scale_down_backlog",
            ),
            (
                AutoscaleConfig {
                    max_cpu_fraction: 0.0,
                    ..d()
                },
                "max_cpu_fraction",
            ),
            (
                AutoscaleConfig {
                    max_cpu_fraction: 90.0,
                    ..d()
                },
                "max_cpu_fraction",
            ),
        ] {
            let err = bad(cfg);
            assert!(
                err.starts_with(&format!("t.toml: `autoscale.{key}`: ")),
                "{err}"
            );
            assert!(err.contains("e.g."), "names a fix: {err}");
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Section {
        autoscale: AutoscaleConfig,
    }

    #[test]
    fn toml_keys_parse_with_humantime_durations_and_reject_typos() {
        let s: Section = toml::from_str(
            "[autoscale]\nmax_workers = 8\nup_cooldown = \"2s 500ms\"\ndown_after = \"1m\"\n",
        )
        .unwrap();
        assert_eq!(s.autoscale.max_workers, 8);
        assert_eq!(s.autoscale.up_cooldown, Duration::from_millis(2500));
        assert_eq!(s.autoscale.down_after, Duration::from_secs(60));
        assert_eq!(s.autoscale.min_workers, 1, "the rest default");
        let err = toml::from_str::<Section>("[autoscale]\nmax_worker = 8\n").unwrap_err();
        assert!(err.to_string().contains("max_worker"), "{err}");
    }
}
