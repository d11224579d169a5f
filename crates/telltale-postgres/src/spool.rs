//! The spool (`<data_dir>/spool/postgres/`): results wait here, in order, while the
//! server is unreachable. A file is one batch as NDJSON, named after the sequence numbers
//! of its first and last result (`<first>-<last>.ndjson`, zero-padded), so sorting the
//! names gives the order they came in, across restarts. Files are written like the
//! lake's (temp file, fsync, rename, fsync of the directory): complete or absent.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::PgError;
use crate::row::CheckRow;

const TEMP_PREFIX: &str = ".tmp-";
const EXT: &str = ".ndjson";

/// One spool file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolFile {
    /// Sequence number of its first result.
    pub first: u64,
    /// Sequence number of its last result.
    pub last: u64,
    /// Size in bytes.
    pub bytes: u64,
    path: PathBuf,
}

impl SpoolFile {
    /// Results in the file.
    pub fn rows(&self) -> u64 {
        self.last - self.first + 1
    }
}

/// The spool's files, oldest first.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    files: VecDeque<SpoolFile>,
    next_seq: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PgError + '_ {
    move |source| PgError::Spool {
        path: path.to_owned(),
        source,
    }
}

impl Spool {
    /// Opens (creating) `dir`: the files a previous run left, temp files removed.
    pub fn open(dir: &Path) -> Result<Self, PgError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let mut files = Vec::new();
        for entry in fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(TEMP_PREFIX) {
                let _ = fs::remove_file(entry.path());
                continue;
            }
            let Some((first, last)) = name
                .strip_suffix(EXT)
                .and_then(|s| s.split_once('-'))
                .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
            else {
                continue;
            };
            let bytes = entry.metadata().map_err(io(dir))?.len();
            files.push(SpoolFile {
                first,
                last,
                bytes,
                path: entry.path(),
            });
        }
        files.sort_by_key(|f| f.first);
        let next_seq = files.last().map_or(0, |f| f.last + 1);
        Ok(Self {
            dir: dir.to_owned(),
            files: files.into(),
            next_seq,
        })
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Results waiting.
    pub fn rows(&self) -> u64 {
        self.files.iter().map(SpoolFile::rows).sum()
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// Writes `rows` as the newest file, durably.
    pub fn append(&mut self, rows: &[CheckRow]) -> Result<(), PgError> {
        if rows.is_empty() {
            return Ok(());
        }
        let first = self.next_seq;
        let last = first + rows.len() as u64 - 1;
        let mut text = Vec::with_capacity(rows.len() * 256);
        for r in rows {
            serde_json::to_writer(&mut text, r).expect("a CheckRow always serializes");
            text.push(b'\n');
        }
        let name = format!("{first:020}-{last:020}{EXT}");
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{TEMP_PREFIX}{name}"));
        let written = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io(&path)(e));
        }
        self.next_seq = last + 1;
        self.files.push_back(SpoolFile {
            first,
            last,
            bytes: text.len() as u64,
            path,
        });
        Ok(())
    }

    /// The oldest file and its results.
    pub fn oldest(&self) -> Result<Option<(SpoolFile, Vec<CheckRow>)>, PgError> {
        let Some(file) = self.files.front() else {
            return Ok(None);
        };
        let text = fs::read_to_string(&file.path).map_err(io(&file.path))?;
        let rows = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<Vec<CheckRow>, _>>()
            .map_err(|e| io(&file.path)(std::io::Error::other(e)))?;
        Ok(Some((file.clone(), rows)))
    }

    /// Removes the oldest file once its results are written (or dropped).
    pub fn remove_oldest(&mut self) -> Result<Option<SpoolFile>, PgError> {
        let Some(file) = self.files.pop_front() else {
            return Ok(None);
        };
        match fs::remove_file(&file.path) {
            Ok(()) => Ok(Some(file)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some(file)),
            Err(e) => {
                let path = file.path.clone();
                self.files.push_front(file);
                Err(io(&path)(e))
            }
        }
    }

    /// Removes the oldest files until the spool holds at most `max_bytes`; the files
    /// removed (their results are lost: the caller counts and logs them).
    pub fn evict_over(&mut self, max_bytes: u64) -> Result<Vec<SpoolFile>, PgError> {
        let mut evicted = Vec::new();
        while self.bytes() > max_bytes && self.files.len() > 1 {
            if let Some(f) = self.remove_oldest()? {
                evicted.push(f);
            }
        }
        Ok(evicted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn row(n: i64) -> CheckRow {
        CheckRow {
            monitor_id: "00000000000000aa".into(),
            url: "https://example.com/".into(),
            frequency_min: 1,
            start_us: 1_700_000_000_000_000 + n * 60_000_000,
            http_status: Some(200),
            duration_ms: 12.5,
            dns_ms: Some(1.0),
            connect_ms: Some(2.0),
            tls_ms: None,
            ttfb_ms: Some(3.0),
            transfer_ms: Some(0.5),
            redirects: 0,
            body_bytes: Some(10),
            cert_expiry_days: None,
            final_url: None,
            error: None,
            error_message: None,
            up: true,
        }
    }

    #[test]
    fn files_come_back_in_order_across_a_reopen_and_temp_files_are_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path()).unwrap();
        spool.append(&[row(0), row(1)]).unwrap();
        spool.append(&[row(2)]).unwrap();
        fs::write(dir.path().join(".tmp-x.ndjson"), "half").unwrap();
        let mut spool = Spool::open(dir.path()).unwrap();
        assert!(!dir.path().join(".tmp-x.ndjson").exists());
        assert_eq!(spool.rows(), 3);
        let (f, rows) = spool.oldest().unwrap().unwrap();
        assert_eq!((f.first, f.last), (0, 1));
        assert_eq!(rows, vec![row(0), row(1)]);
        spool.remove_oldest().unwrap();
        spool.append(&[row(3)]).unwrap();
        let (f, rows) = spool.oldest().unwrap().unwrap();
        assert_eq!((f.first, rows), (2, vec![row(2)]));
        let evicted = spool.evict_over(0).unwrap();
        assert_eq!(evicted.len(), 1, "the newest file stays");
        assert_eq!(spool.oldest().unwrap().unwrap().1, vec![row(3)]);
    }
}
