//! The sink's files: the spool (`<data_dir>/spool/influx/`), where points wait while the
//! server is unreachable, and dead letters (`<data_dir>/deadletter/influx/date=…/`),
//! where batches the server refused are kept with its message.
//!
//! Both are written like the lake's files (temp file, fsync, rename, fsync of the
//! directory): a file is either complete or absent, even after a crash. A spool file is
//! named after the sequence numbers of its first and last line
//! (`<first>-<last>.lp`, zero-padded), so sorting the names gives the order the points
//! were sent in, across restarts.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

/// Temporary files start with this, as in the lake; they are ignored and cleaned up.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// Writes `bytes` to `dir/name` so that readers see all of it or nothing, and so that it
/// survives a crash once this returns.
pub(crate) fn write_atomic(dir: &Path, name: &str, parts: &[&[u8]]) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{TEMP_PREFIX}{name}"));
    let path = dir.join(name);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        for part in parts {
            f.write_all(part)?;
        }
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        // The rename is only durable once the directory entry is.
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| path)
}

/// One spool file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpoolFile {
    /// Sequence number of its first line.
    pub first_seq: u64,
    /// Sequence number of its last line (lines in a file are consecutive).
    pub last_seq: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// Where it is.
    pub path: PathBuf,
    /// Being sent right now: not to be evicted.
    pub in_flight: bool,
}

impl SpoolFile {
    /// Lines (points) in the file.
    pub fn lines(&self) -> u64 {
        self.last_seq - self.first_seq + 1
    }
}

/// The spool files on disk, oldest first, and their total size.
#[derive(Debug)]
pub(crate) struct SpoolIndex {
    dir: PathBuf,
    files: BTreeMap<u64, SpoolFile>,
    bytes: u64,
    lines: u64,
}

impl SpoolIndex {
    /// Opens (creating) the spool directory, removes temporary files a crash left behind
    /// and indexes the spool files found, which the sink sends before anything new.
    pub fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let mut index = Self {
            dir: dir.to_owned(),
            files: BTreeMap::new(),
            bytes: 0,
            lines: 0,
        };
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(TEMP_PREFIX) {
                let _ = fs::remove_file(entry.path());
                continue;
            }
            let Some((first, last)) = parse_name(&name) else {
                tracing::warn!(file = %entry.path().display(), "ignoring a file that is not a spool file");
                continue;
            };
            index.insert(SpoolFile {
                first_seq: first,
                last_seq: last,
                bytes: entry.metadata()?.len(),
                path: entry.path(),
                in_flight: false,
            });
        }
        Ok(index)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file name for lines `first..=last`.
    pub fn file_name(first: u64, last: u64) -> String {
        format!("{first:020}-{last:020}.lp")
    }

    /// The sequence number after every spooled line.
    pub fn next_seq(&self) -> u64 {
        self.files
            .values()
            .next_back()
            .map_or(0, |f| f.last_seq + 1)
    }

    /// Total bytes spooled.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Total lines spooled.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Whether nothing is spooled.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Adds a file that is on disk now.
    pub fn insert(&mut self, file: SpoolFile) {
        self.bytes += file.bytes;
        self.lines += file.lines();
        if let Some(old) = self.files.insert(file.first_seq, file) {
            self.bytes -= old.bytes;
            self.lines -= old.lines();
        }
    }

    /// Removes a file from the index (the caller deletes it).
    pub fn remove(&mut self, first_seq: u64) -> Option<SpoolFile> {
        let f = self.files.remove(&first_seq)?;
        self.bytes -= f.bytes;
        self.lines -= f.lines();
        Some(f)
    }

    /// The oldest file, marked in flight, if it is not already.
    pub fn take_oldest(&mut self) -> Option<SpoolFile> {
        let f = self.files.values_mut().next()?;
        if f.in_flight {
            return None;
        }
        f.in_flight = true;
        Some(f.clone())
    }

    /// Marks a file as no longer being sent.
    pub fn release(&mut self, first_seq: u64) {
        if let Some(f) = self.files.get_mut(&first_seq) {
            f.in_flight = false;
        }
    }

    /// Makes room for `need` more bytes under `max` by removing the oldest files that
    /// are not being sent from the index; returns them for the caller to delete and
    /// report. Returns `None` when even that cannot make room.
    pub fn evict_for(&mut self, need: u64, max: u64) -> Option<Vec<SpoolFile>> {
        let evictable: u64 = self
            .files
            .values()
            .filter(|f| !f.in_flight)
            .map(|f| f.bytes)
            .sum();
        if need > max || self.bytes - evictable + need > max {
            return None;
        }
        let mut victims = Vec::new();
        while self.bytes + need > max {
            let Some(first) = self
                .files
                .values()
                .find(|f| !f.in_flight)
                .map(|f| f.first_seq)
            else {
                break;
            };
            victims.extend(self.remove(first));
        }
        Some(victims)
    }
}

fn parse_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".lp")?;
    let (a, b) = stem.split_once('-')?;
    let (first, last) = (a.parse().ok()?, b.parse().ok()?);
    (first <= last).then_some((first, last))
}

/// The most of the server's message kept in a dead-letter header.
const MAX_MESSAGE_CHARS: usize = 4096;

/// Writes a refused batch to `root/date=YYYY-MM-DD/dl-<time>-<seq>.lp`. The header is
/// line-protocol comments (`#`), so after fixing the cause the file can be posted back
/// as it is (`curl --data-binary @file …/write?…&precision=ms`).
pub(crate) fn write_dead_letter(
    root: &Path,
    now: DateTime<Utc>,
    seq: u64,
    target: &str,
    status: &str,
    message: &str,
    body: &[u8],
) -> io::Result<PathBuf> {
    let dir = root.join(format!("date={}", now.format("%Y-%m-%d")));
    let name = format!("dl-{}-{seq:020}.lp", now.format("%Y%m%dT%H%M%S%.3fZ"));
    let mut header = String::from("# telltale-influx dead letter: the server refused this batch\n");
    header += &format!(
        "# at: {}\n",
        now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    header += &format!("# target: {target}\n");
    header += &format!("# status: {status}\n");
    header += "# precision: ms\n";
    let message: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    for line in message.lines() {
        header += "# server: ";
        header += line;
        header.push('\n');
    }
    write_atomic(&dir, &name, &[header.as_bytes(), body])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(index: &mut SpoolIndex, first: u64, last: u64, body: &str) {
        let name = SpoolIndex::file_name(first, last);
        let path = write_atomic(&index.dir.clone(), &name, &[body.as_bytes()]).unwrap();
        index.insert(SpoolFile {
            first_seq: first,
            last_seq: last,
            bytes: body.len() as u64,
            path,
            in_flight: false,
        });
    }

    #[test]
    fn reopening_finds_files_in_order_and_cleans_temp_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("spool/influx");
        let mut index = SpoolIndex::open(&dir).unwrap();
        put(&mut index, 10, 19, "b\n");
        put(&mut index, 0, 9, "a\n");
        fs::write(
            dir.join(".tmp-00000000000000000020-00000000000000000029.lp"),
            "x",
        )
        .unwrap();
        fs::write(dir.join("notes.txt"), "x").unwrap();

        let mut again = SpoolIndex::open(&dir).unwrap();
        assert_eq!(again.lines(), 20);
        assert_eq!(again.bytes(), 4);
        assert_eq!(again.next_seq(), 20);
        assert_eq!(again.take_oldest().unwrap().first_seq, 0);
        assert!(again.take_oldest().is_none(), "the oldest is in flight");
        assert!(
            !dir.join(".tmp-00000000000000000020-00000000000000000029.lp")
                .exists()
        );
    }

    #[test]
    fn eviction_takes_the_oldest_idle_files() {
        let tmp = tempfile::tempdir().unwrap();
        let mut index = SpoolIndex::open(tmp.path()).unwrap();
        put(&mut index, 0, 0, "aaaa");
        put(&mut index, 1, 1, "bbbb");
        put(&mut index, 2, 2, "cccc");
        index.take_oldest(); // file 0 is being sent
        let victims = index.evict_for(4, 12).unwrap();
        assert_eq!(
            victims.iter().map(|f| f.first_seq).collect::<Vec<_>>(),
            vec![1]
        );
        assert_eq!(index.bytes(), 8);
        assert!(index.evict_for(13, 12).is_none(), "bigger than the bound");
        assert!(
            index.evict_for(9, 12).is_none(),
            "the in-flight file cannot go"
        );
        assert_eq!(index.bytes(), 8, "a failed eviction removes nothing");
    }

    #[test]
    fn dead_letters_have_a_comment_header_and_the_batch() {
        let tmp = tempfile::tempdir().unwrap();
        let now = DateTime::parse_from_rfc3339("2025-04-30T12:00:00.5Z")
            .unwrap()
            .with_timezone(&Utc);
        let path = write_dead_letter(
            tmp.path(),
            now,
            7,
            "v1 http://h:8086/write?db=t",
            "400 Bad Request",
            "{\"error\":\"field type conflict\"}\nsecond line",
            b"m f=1 1\n",
        )
        .unwrap();
        assert_eq!(
            path.strip_prefix(tmp.path()).unwrap(),
            Path::new("date=2025-04-30/dl-20250430T120000.500Z-00000000000000000007.lp")
        );
        let text = fs::read_to_string(path).unwrap();
        assert!(text.contains("# status: 400 Bad Request\n"), "{text}");
        assert!(
            text.contains("# server: {\"error\":\"field type conflict\"}\n# server: second line\n")
        );
        assert!(text.ends_with("\nm f=1 1\n"));
        assert!(text.lines().filter(|l| !l.starts_with('#')).count() == 1);
    }
}
