//! Where things live in the lake: `<table>/<key_col>=<value>/date=YYYY-MM-DD/part-*.parquet`.
//!
//! Partition values are percent-encoded with Hive's `escapePathName` set, so a service
//! called `a/b` becomes the single directory `service=a%2Fb` and the layout reads the same
//! in Hive, Spark, DuckDB and DataFusion (all of which decode it back).

use std::borrow::Cow;
use std::fmt;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// Directory of dead letters, next to the tables.
pub const DEADLETTER_DIR: &str = "deadletter";

/// Name of the date partition column.
pub const DATE_COLUMN: &str = "date";

/// Extension of table data files; anything else in a table directory is ignored.
pub const PARQUET_EXT: &str = ".parquet";

/// Extension of dead-letter files.
pub const NDJSON_EXT: &str = ".ndjson";

/// Prefix of in-flight temporary files: hidden, and never ends in a data extension.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Hive's `FileUtils.escapePathName` set: controls, and the characters that are special
/// in paths, URLs or globs. Non-ASCII UTF-8 is left as is (Hive does the same).
const HIVE_ESCAPE: &AsciiSet = &CONTROLS
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'\'')
    .add(b'*')
    .add(b'/')
    .add(b':')
    .add(b'=')
    .add(b'?')
    .add(b'\\')
    .add(b'{')
    .add(b'[')
    .add(b']')
    .add(b'^');

/// A table of the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Every flagged service event.
    Events,
    /// Per-service window rollups.
    Rollups,
    /// Network probe measurements.
    Probes,
    /// URL monitor check results.
    Monitors,
}

impl Table {
    /// Every table, in a stable order.
    pub const ALL: [Table; 4] = [
        Table::Events,
        Table::Rollups,
        Table::Probes,
        Table::Monitors,
    ];

    /// The table's directory under the lake root (also its SQL name).
    pub fn dir(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Rollups => "rollups",
            Self::Probes => "probes",
            Self::Monitors => "monitors",
        }
    }

    /// The first partition column (the second is always `date`).
    pub fn key_column(self) -> &'static str {
        match self {
            Self::Events | Self::Rollups => "service",
            Self::Probes => "target",
            Self::Monitors => "monitor_id",
        }
    }

    /// The table named `name` (its directory name), if any.
    pub fn from_dir(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.dir() == name)
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir())
    }
}

/// Percent-encodes a partition value for use in a `col=value` directory name.
///
/// A leading `.` is encoded too (and both dots of `..`), so no value can look like a
/// hidden, current or parent directory to tools that look at the value alone.
pub fn encode(value: &str) -> String {
    let (head, rest) = match value {
        ".." => ("%2E%2E", ""),
        _ => match value.strip_prefix('.') {
            Some(rest) => ("%2E", rest),
            None => ("", value),
        },
    };
    let mut out = String::with_capacity(value.len() + 6);
    out.push_str(head);
    // `utf8_percent_encode` would escape every non-ASCII byte too; Hive keeps them, and
    // so do we, so only ASCII characters go through the set.
    for (i, c) in rest.char_indices() {
        if c.is_ascii() {
            out.extend(utf8_percent_encode(&rest[i..=i], HIVE_ESCAPE));
        } else {
            out.push(c);
        }
    }
    out
}

/// Decodes a partition value from its directory name; text that does not decode to
/// UTF-8 is returned as is (as DataFusion does).
pub fn decode(encoded: &str) -> Cow<'_, str> {
    percent_decode_str(encoded)
        .decode_utf8()
        .unwrap_or(Cow::Borrowed(encoded))
}

/// One partition directory of a table: a service (or target) on one UTC date.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    /// The table.
    pub table: Table,
    /// The decoded service or target name.
    pub key: String,
    /// The UTC date, `YYYY-MM-DD`.
    pub date: String,
}

impl PartitionKey {
    /// A key from its parts.
    pub fn new(table: Table, key: impl Into<String>, date: impl Into<String>) -> Self {
        Self {
            table,
            key: key.into(),
            date: date.into(),
        }
    }

    /// The directory relative to the lake root, `/`-separated, without a trailing `/`.
    pub fn rel_dir(&self) -> String {
        format!(
            "{}/{}={}/{DATE_COLUMN}={}",
            self.table.dir(),
            self.table.key_column(),
            encode(&self.key),
            encode(&self.date)
        )
    }

    /// Parses the partition of a file's or directory's relative path
    /// (`events/service=x/date=2025-04-30[/file]`); `None` when it is not one.
    pub fn from_rel_path(rel_path: &str) -> Option<Self> {
        let mut parts = rel_path.split('/');
        let table = Table::from_dir(parts.next()?)?;
        let key = parts
            .next()?
            .strip_prefix(table.key_column())?
            .strip_prefix('=')?;
        let date = parts.next()?.strip_prefix(DATE_COLUMN)?.strip_prefix('=')?;
        Some(Self::new(table, decode(key), decode(date)))
    }
}

impl fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rel_dir())
    }
}

/// The dead-letter directory of a UTC date, relative to the lake root.
pub fn deadletter_dir(date: &str) -> String {
    format!("{DEADLETTER_DIR}/{DATE_COLUMN}={}", encode(date))
}

/// The write-ahead log position a data file was written from, for files named
/// `part-<position>-wal.parquet` (see `LakeWriter::set_position`); `None` for any other
/// name.
pub fn wal_position(file_name: &str) -> Option<u64> {
    file_name
        .strip_prefix("part-")?
        .strip_suffix(PARQUET_EXT)?
        .strip_suffix("-wal")?
        .parse()
        .ok()
}

/// The last component of a `/`-separated relative path.
pub fn file_name(rel_path: &str) -> &str {
    rel_path.rsplit('/').next().unwrap_or(rel_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hive_characters_are_encoded_and_others_kept() {
        assert_eq!(encode("checkout"), "checkout");
        assert_eq!(encode("a/b"), "a%2Fb");
        assert_eq!(encode("x=1:2"), "x%3D1%3A2");
        assert_eq!(encode("50%"), "50%25");
        // `}` is not in Hive's set (only `{` is).
        assert_eq!(encode("q?*[]{}^#'\"\\"), "q%3F%2A%5B%5D%7B}%5E%23%27%22%5C");
        assert_eq!(encode("tab\there\n\x7f"), "tab%09here%0A%7F");
        // Spaces, dashes, dots inside and non-ASCII stay readable.
        assert_eq!(encode("my svc-1.eu"), "my svc-1.eu");
        assert_eq!(encode("café☕"), "café☕");
    }

    #[test]
    fn dot_values_never_name_special_directories() {
        assert_eq!(encode("."), "%2E");
        assert_eq!(encode(".."), "%2E%2E");
        assert_eq!(encode(".hidden"), "%2Ehidden");
        assert_eq!(encode("..x"), "%2E.x");
        assert_eq!(decode("%2E%2E"), "..");
    }

    #[test]
    fn invalid_utf8_escape_decodes_to_itself() {
        assert_eq!(decode("a%FFb"), "a%FFb");
        assert_eq!(decode("a%2Fb"), "a/b");
    }

    #[test]
    fn partition_dir_round_trips() {
        let key = PartitionKey::new(Table::Probes, "10.0.0.1:443", "2025-04-30");
        assert_eq!(
            key.rel_dir(),
            "probes/target=10.0.0.1%3A443/date=2025-04-30"
        );
        assert_eq!(
            PartitionKey::from_rel_path(&key.rel_dir()),
            Some(key.clone())
        );
        let file = format!("{}/part-1-abcdef01-000001.parquet", key.rel_dir());
        assert_eq!(PartitionKey::from_rel_path(&file), Some(key));
        assert_eq!(
            PartitionKey::from_rel_path("events/target=x/date=2025-04-30"),
            None
        );
        assert_eq!(
            PartitionKey::from_rel_path("deadletter/date=2025-04-30"),
            None
        );
        assert_eq!(PartitionKey::from_rel_path("events/service=x"), None);
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(value in any::<String>()) {
            let enc = encode(&value);
            prop_assert_eq!(decode(&enc), value.as_str());
            // One path component, never special.
            prop_assert!(!enc.contains('/') && !enc.contains('='));
            prop_assert!(!enc.starts_with('.'));
            prop_assert!(!enc.bytes().any(|b| b.is_ascii_control()));
        }

        #[test]
        fn partition_key_round_trip(key in "\\PC*", date in "[0-9]{4}-[0-9]{2}-[0-9]{2}") {
            for table in Table::ALL {
                let pk = PartitionKey::new(table, key.clone(), date.clone());
                prop_assert_eq!(PartitionKey::from_rel_path(&pk.rel_dir()), Some(pk));
            }
        }
    }
}
