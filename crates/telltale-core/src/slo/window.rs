//! Per-minute counts and the windows over them: the engine's only memory.
//!
//! A service's events are kept as exact integer counts per minute (total, errors, slow),
//! stored cumulatively so any window is two binary searches and a subtraction. Here too:
//! where an SLO window starts (rolling, or the UTC calendar month) and how window lengths
//! are labelled (`"5m"`, `"1h"`, `"3d"`).

use std::collections::VecDeque;

use chrono::{DateTime, Datelike, TimeZone, Utc};

use super::sli::Sli;
use crate::config::SloWindow;

/// One minute in µs: the resolution of every window.
pub(super) const MINUTE_US: i64 = 60_000_000;
pub(super) const DAY_MINUTES: i64 = 1440;
/// A calendar month spans at most 31 days.
pub(super) const CALENDAR_MONTH_MAX_MINUTES: i64 = 31 * DAY_MINUTES;

/// Event counts; the two SLIs share `total`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Counts {
    pub(super) total: u64,
    pub(super) errors: u64,
    pub(super) slow: u64,
}

impl Counts {
    pub(super) fn add(self, o: Counts) -> Counts {
        Counts {
            total: self.total + o.total,
            errors: self.errors + o.errors,
            slow: self.slow + o.slow,
        }
    }

    /// `self - o` where `o` is an earlier cumulative value (so never negative).
    fn since(self, o: Counts) -> Counts {
        Counts {
            total: self.total - o.total,
            errors: self.errors - o.errors,
            slow: self.slow - o.slow,
        }
    }

    pub(super) fn bad(self, sli: Sli) -> u64 {
        match sli {
            Sli::Availability => self.errors,
            Sli::Latency => self.slow,
        }
    }
}

/// A sparse per-minute series of one service stored as cumulative counts, so any window
/// is two binary searches and a subtraction, whatever its length.
#[derive(Debug, Clone, Default)]
pub(super) struct Series {
    /// `(minute, counts of every minute up to and including it)`, minutes increasing.
    entries: VecDeque<(i64, Counts)>,
    /// Cumulative counts of the pruned entries.
    base: Counts,
    /// Minutes before this were pruned; rows for them are stale.
    floor_minute: i64,
}

impl Series {
    pub(super) fn new() -> Self {
        Self {
            floor_minute: i64::MIN,
            ..Self::default()
        }
    }

    /// Adds counts to a minute. Rows normally arrive in order (append); an out-of-order
    /// minute is inserted and every later cumulative value corrected.
    pub(super) fn add(&mut self, minute: i64, c: Counts) -> bool {
        if minute < self.floor_minute {
            return false;
        }
        match self.entries.back_mut() {
            Some((m, cum)) if *m == minute => *cum = cum.add(c),
            Some((m, cum)) if *m < minute => {
                let next = cum.add(c);
                self.entries.push_back((minute, next));
            }
            None => self.entries.push_back((minute, self.base.add(c))),
            Some(_) => {
                let i = self.entries.partition_point(|(m, _)| *m < minute);
                if self.entries[i].0 != minute {
                    let before = self.cum_before_index(i);
                    self.entries.insert(i, (minute, before));
                }
                for (_, cum) in self.entries.range_mut(i..) {
                    *cum = cum.add(c);
                }
            }
        }
        true
    }

    fn cum_before_index(&self, i: usize) -> Counts {
        if i == 0 {
            self.base
        } else {
            self.entries[i - 1].1
        }
    }

    /// Cumulative counts of every minute before `minute`.
    fn cum_before(&self, minute: i64) -> Counts {
        self.cum_before_index(self.entries.partition_point(|(m, _)| *m < minute))
    }

    /// Counts of minutes in `[start, end)`.
    pub(super) fn window(&self, start: i64, end: i64) -> Counts {
        if end <= start {
            return Counts::default();
        }
        self.cum_before(end).since(self.cum_before(start))
    }

    /// Forgets minutes before `minute`.
    pub(super) fn prune_before(&mut self, minute: i64) {
        while let Some(&(m, cum)) = self.entries.front() {
            if m >= minute {
                break;
            }
            self.base = cum;
            self.entries.pop_front();
        }
        self.floor_minute = self.floor_minute.max(minute);
    }
}

/// Start of the UTC calendar month holding `t_us`, µs since the epoch.
pub fn month_start_us(t_us: i64) -> i64 {
    DateTime::<Utc>::from_timestamp_micros(t_us)
        .and_then(|d| {
            Utc.with_ymd_and_hms(d.year(), d.month(), 1, 0, 0, 0)
                .single()
        })
        .map_or(t_us, |d| d.timestamp_micros())
}

/// `[start, end)` in minutes of the SLO window at `now_us`.
pub(super) fn slo_window(window: SloWindow, now_us: i64) -> (i64, i64) {
    let end = now_us.div_euclid(MINUTE_US);
    let start = match window {
        SloWindow::Rolling(d) => end - (d.as_secs() / 60) as i64,
        // The month holding `now`: at 00:00 on the 1st the window is empty, i.e. a fresh
        // budget; the minute before belongs to the previous month.
        SloWindow::CalendarMonth => month_start_us(now_us).div_euclid(MINUTE_US),
    };
    (start, end)
}

/// `5` → `"5m"`, `60` → `"1h"`, `1440` → `"1d"`.
pub(super) fn minutes_label(m: i64) -> String {
    if m % DAY_MINUTES == 0 {
        format!("{}d", m / DAY_MINUTES)
    } else if m % 60 == 0 {
        format!("{}h", m / 60)
    } else {
        format!("{m}m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slo::burn::BurnRule;
    use crate::slo::test_support::*;
    use proptest::prelude::*;

    #[test]
    fn month_starts() {
        let us = |y, mo, d, h, mi| {
            Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
                .unwrap()
                .timestamp_micros()
        };
        assert_eq!(
            month_start_us(us(2024, 2, 29, 23, 59)),
            us(2024, 2, 1, 0, 0)
        );
        assert_eq!(month_start_us(us(2024, 3, 1, 0, 0)), us(2024, 3, 1, 0, 0));
        assert_eq!(
            month_start_us(us(2024, 3, 1, 0, 0) - 1),
            us(2024, 2, 1, 0, 0)
        );
        assert_eq!(
            month_start_us(us(2024, 12, 31, 23, 59)),
            us(2024, 12, 1, 0, 0)
        );
        assert_eq!(month_start_us(us(2025, 1, 1, 0, 0)), us(2025, 1, 1, 0, 0));
        // A 31-day month at its end needs 31 days of history, the ring's bound.
        let (s, e) = slo_window(SloWindow::CalendarMonth, us(2025, 1, 31, 23, 59) + M - 1);
        assert_eq!(e - s, CALENDAR_MONTH_MAX_MINUTES - 1);
    }

    #[test]
    fn series_handles_out_of_order_minutes() {
        let mut s = Series::new();
        let c = |n| Counts {
            total: n,
            errors: 1,
            slow: 0,
        };
        for m in [5, 9, 3, 9, 7, 3] {
            assert!(s.add(m, c(m as u64)));
        }
        assert_eq!(s.window(0, 100).total, 3 + 3 + 5 + 7 + 9 + 9);
        assert_eq!(s.window(4, 8).total, 5 + 7);
        assert_eq!(
            s.window(3, 4),
            Counts {
                total: 6,
                errors: 2,
                slow: 0
            }
        );
        s.prune_before(6);
        assert_eq!(s.window(6, 100).total, 7 + 18);
        assert!(!s.add(5, c(1)), "pruned minutes are stale");
    }

    proptest! {
        /// Windows are exact integer sums, and a short window's counts never exceed those
        /// of a long window ending at the same minute (whatever order rows came in).
        #[test]
        fn windows_are_exact_and_nested(rs in rows(5 * DAY_MINUTES, 120), end in 0i64..6 * DAY_MINUTES) {
            let mut s = Series::new();
            for &(m, c, e, sl) in &rs {
                s.add(m, Counts { total: c, errors: e, slow: sl });
            }
            for r in BurnRule::workbook() {
                let long = (r.long_window.as_secs() / 60) as i64;
                let short = long / 12;
                let (lw, sw) = (s.window(end - long, end), s.window(end - short, end));
                prop_assert!(sw.total <= lw.total && sw.errors <= lw.errors && sw.slow <= lw.slow);
                let brute = |len: i64| rs.iter().filter(|(m, ..)| (end - len..end).contains(m))
                    .fold(Counts::default(), |a, &(_, c, e, sl)| a.add(Counts { total: c, errors: e, slow: sl }));
                prop_assert_eq!(lw, brute(long));
                prop_assert_eq!(sw, brute(short));
            }
        }
    }
}
