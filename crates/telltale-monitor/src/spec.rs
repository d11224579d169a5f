//! What a monitor is: a URL and a frequency of 1, 2, 5, 10, 20 or 30 minutes, checked as
//! given by a user (the API, the CLI, the config) with errors that name the field and the
//! valid values.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The frequencies a monitor may have, in minutes (the one list, in `telltale-core`).
pub use telltale_core::config::ALLOWED_MINUTES;

/// Longest URL kept (the `urltarget varchar(1024)` of the PostgreSQL schema).
pub const MAX_URL_BYTES: usize = 1024;

/// How often a monitor is checked: one of [`ALLOWED_MINUTES`], written `"5m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Every(u64);

impl Every {
    /// Minutes between checks.
    pub fn minutes(self) -> u64 {
        self.0
    }

    /// Seconds between checks.
    pub fn seconds(self) -> u64 {
        self.0 * 60
    }
}

impl fmt::Display for Every {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}m", self.0)
    }
}

/// A bad monitor: which field, and why (with the valid values).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct SpecError {
    /// `url` or `every`.
    pub field: &'static str,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl FromStr for Every {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        telltale_core::config::parse_every_minutes(s)
            .map(Every)
            .ok_or_else(|| SpecError {
                field: "every",
                message: format!(
                    "{s:?} is not an allowed frequency: use one of {}",
                    telltale_core::config::allowed_frequencies()
                ),
            })
    }
}

impl Serialize for Every {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Every {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A monitor as stored: its id, URL and frequency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Monitor {
    /// Stable id of (URL, frequency): 16 hex digits.
    pub id: String,
    /// The http(s) URL.
    pub url: String,
    /// How often it is checked.
    pub every: Every,
}

impl Monitor {
    /// Checks `url` and `every` as a user gave them.
    pub fn new(url: &str, every: &str) -> Result<Self, SpecError> {
        let url = check_url(url)?;
        let every: Every = every.parse()?;
        Ok(Self {
            id: id_of(&url, every),
            url,
            every,
        })
    }
}

/// The URL, normalised (`url::Url`'s form), if it is http(s) with a host and not too long.
pub fn check_url(url: &str) -> Result<String, SpecError> {
    let bad = |message: String| SpecError {
        field: "url",
        message,
    };
    let parsed = url::Url::parse(url.trim()).map_err(|e| {
        bad(format!(
            "{url:?} is not a URL ({e}): use e.g. \"https://example.com/health\""
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad(format!(
            "{url:?} must be an http:// or https:// URL with a host, e.g. \"https://example.com/health\""
        )));
    }
    let normal = parsed.to_string();
    if normal.len() > MAX_URL_BYTES {
        return Err(bad(format!(
            "is {} bytes, over the limit of {MAX_URL_BYTES}",
            normal.len()
        )));
    }
    Ok(normal)
}

/// FNV-1a of the URL and the frequency: the same monitor has the same id everywhere.
fn id_of(url: &str, every: Every) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in url.bytes().chain([0]).chain(every.to_string().bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequencies_are_the_six_allowed_ones() {
        for (text, m) in [("1m", 1), ("5m", 5), ("30m", 30), (" 10 ", 10), ("2min", 2)] {
            assert_eq!(text.parse::<Every>().unwrap().minutes(), m, "{text}");
        }
        for bad in ["3m", "0m", "60m", "5s", "", "fast"] {
            let e = bad.parse::<Every>().unwrap_err();
            assert_eq!(e.field, "every");
            assert!(
                e.message
                    .contains("\"1m\", \"2m\", \"5m\", \"10m\", \"20m\", \"30m\""),
                "{e}"
            );
        }
    }

    #[test]
    fn urls_must_be_http_with_a_host() {
        for bad in ["ftp://x/", "example.com", "http://", "javascript:alert(1)"] {
            let e = Monitor::new(bad, "5m").unwrap_err();
            assert_eq!(e.field, "url", "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES));
        assert!(
            Monitor::new(&long, "5m")
                .unwrap_err()
                .message
                .contains("limit")
        );
    }

    #[test]
    fn the_id_is_stable_and_differs_by_frequency() {
        let a = Monitor::new("https://example.com", "5m").unwrap();
        assert_eq!(a.url, "https://example.com/");
        assert_eq!(a, Monitor::new("https://example.com/", "5m").unwrap());
        assert_ne!(a.id, Monitor::new("https://example.com/", "1m").unwrap().id);
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.contains("\"every\":\"5m\""), "{json}");
        assert_eq!(serde_json::from_str::<Monitor>(&json).unwrap(), a);
    }
}
