//! Where the lake's bytes go: a small synchronous trait with a local-disk implementation.
//!
//! The trait is shaped after what object stores offer (whole-object put, list by prefix,
//! get, delete), so an `object_store`-backed S3/GCS/Azure implementation can be added
//! without touching the writer or compaction. Paths are relative to the lake root and
//! `/`-separated on every platform.

use std::fmt::Debug;
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::error::{LakeError, Result};
use crate::layout::{PARQUET_EXT, PartitionKey, TEMP_PREFIX, Table};

/// A file in the store.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoredFile {
    /// Path relative to the lake root, `/`-separated.
    pub rel_path: String,
    /// Size in bytes.
    pub size: u64,
}

/// Storage of the lake's files.
pub trait LakeStore: Send + Sync + Debug {
    /// Writes a new file so that readers see either nothing or all of it, and so that once
    /// this returns the file survives a crash. Fails if the file already exists.
    fn put_atomic(&self, rel_path: &str, bytes: &[u8]) -> Result<()>;

    /// Every file under `rel_prefix` (a directory; `""` for everything), recursively,
    /// sorted by path. In-flight temporary and hidden files are not listed; a missing
    /// directory lists as empty.
    fn list(&self, rel_prefix: &str) -> Result<Vec<StoredFile>>;

    /// The whole content of a file.
    fn read(&self, rel_path: &str) -> Result<Vec<u8>>;

    /// Deletes a file; deleting a file that is already gone succeeds (so retries do).
    fn delete(&self, rel_path: &str) -> Result<()>;

    /// Where the lake is, for logs and error messages (a directory or a URL).
    fn root(&self) -> String;
}

/// The Parquet files of `table` in partitions dated `since_date` (`YYYY-MM-DD`) or later,
/// with their partition keys, in path order. Files outside a partition are left out.
pub(crate) fn partition_files_since(
    store: &dyn LakeStore,
    table: Table,
    since_date: &str,
) -> Result<Vec<(StoredFile, PartitionKey)>> {
    Ok(store
        .list(table.dir())?
        .into_iter()
        .filter(|f| f.rel_path.ends_with(PARQUET_EXT))
        .filter_map(|f| PartitionKey::from_rel_path(&f.rel_path).map(|k| (f, k)))
        // ISO dates order as strings.
        .filter(|(_, k)| k.date.as_str() >= since_date)
        .collect())
}

/// The lake in a local directory.
#[derive(Debug, Clone)]
pub struct LocalDisk {
    root: PathBuf,
}

impl LocalDisk {
    /// A store rooted at `root`; the directory is created on the first write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root_dir(&self) -> &Path {
        &self.root
    }

    /// The absolute-or-root-relative path of a store path, refusing anything that could
    /// leave the root.
    fn resolve(&self, rel_path: &str) -> Result<PathBuf> {
        let invalid = |reason| LakeError::InvalidPath {
            path: rel_path.to_owned(),
            reason,
        };
        let mut path = self.root.clone();
        for part in rel_path.split('/').filter(|p| !p.is_empty()) {
            if part == "." || part == ".." {
                return Err(invalid("`.` and `..` components are not allowed"));
            }
            if part.contains('\\') && cfg!(windows) {
                return Err(invalid("`\\` is not allowed"));
            }
            path.push(part);
        }
        Ok(path)
    }

    /// Creates `dir` and any missing parents, fsyncing each parent whose entries changed
    /// so that the new directories survive a crash too.
    fn create_dirs(dir: &Path) -> Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            Self::create_dirs(parent)?;
        }
        match fs::create_dir(dir) {
            Ok(()) => {
                if let Some(parent) = dir.parent() {
                    sync_dir(parent)?;
                }
                Ok(())
            }
            // Another writer created it in the meantime.
            Err(e) if e.kind() == ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
            Err(e) => Err(LakeError::io("create dir", dir, e)),
        }
    }
}

/// Makes a directory's entries (a rename, a new file) durable.
fn sync_dir(dir: &Path) -> Result<()> {
    // An empty parent means the current directory.
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LakeError::io("fsync dir", dir, e))
}

fn is_hidden(name: &str) -> bool {
    // Temp files start with `.tmp-`; other dot-files belong to other tools.
    name.starts_with(TEMP_PREFIX) || name.starts_with('.')
}

impl LakeStore for LocalDisk {
    fn put_atomic(&self, rel_path: &str, bytes: &[u8]) -> Result<()> {
        let path = self.resolve(rel_path)?;
        let (Some(dir), Some(_)) = (path.parent(), path.file_name()) else {
            return Err(LakeError::InvalidPath {
                path: rel_path.to_owned(),
                reason: "no file name",
            });
        };
        Self::create_dirs(dir)?;
        // The temp file lives in the target directory so the rename cannot cross file
        // systems, and its name ends in neither `.parquet` nor `.ndjson`, so no reader
        // picks it up. If anything below fails, dropping it deletes it.
        let mut tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .rand_bytes(8)
            .tempfile_in(dir)
            .map_err(|e| LakeError::io("create temp file in", dir, e))?;
        tmp.write_all(bytes)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| LakeError::io("write temp file for", &path, e))?;
        // No-clobber: names are unique per writer, so an existing file means a bug, and
        // overwriting would silently lose its rows.
        tmp.persist_noclobber(&path).map_err(|e| {
            if e.error.kind() == ErrorKind::AlreadyExists {
                LakeError::AlreadyExists { path: path.clone() }
            } else {
                LakeError::io("rename temp file to", &path, e.error)
            }
        })?;
        sync_dir(dir)
    }

    fn list(&self, rel_prefix: &str) -> Result<Vec<StoredFile>> {
        let start = self.resolve(rel_prefix)?;
        let prefix = rel_prefix.trim_matches('/');
        let mut out = Vec::new();
        let mut stack = vec![(start, prefix.to_owned())];
        while let Some((dir, rel)) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(LakeError::io("list dir", &dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| LakeError::io("list dir", &dir, e))?;
                // Names that are not UTF-8 cannot be ours; skip them rather than fail.
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                if is_hidden(&name) {
                    continue;
                }
                let child_rel = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                let meta = entry
                    .metadata()
                    .map_err(|e| LakeError::io("stat", entry.path(), e))?;
                if meta.is_dir() {
                    stack.push((entry.path(), child_rel));
                } else if meta.is_file() {
                    out.push(StoredFile {
                        rel_path: child_rel,
                        size: meta.len(),
                    });
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn read(&self, rel_path: &str) -> Result<Vec<u8>> {
        let path = self.resolve(rel_path)?;
        fs::read(&path).map_err(|e| LakeError::io("read", path, e))
    }

    fn delete(&self, rel_path: &str) -> Result<()> {
        let path = self.resolve(rel_path)?;
        match fs::remove_file(&path) {
            Ok(()) => path.parent().map_or(Ok(()), sync_dir),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LakeError::io("delete", path, e)),
        }
    }

    fn root(&self) -> String {
        self.root.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_names(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                out.extend(all_names(&entry.path()));
            } else {
                out.push(entry.file_name().into_string().unwrap());
            }
        }
        out
    }

    #[test]
    fn put_leaves_no_temp_files_and_lists_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDisk::new(dir.path().join("lake"));
        store
            .put_atomic("events/service=a/date=2025-04-30/part-2.parquet", b"two")
            .unwrap();
        store
            .put_atomic("events/service=a/date=2025-04-30/part-1.parquet", b"one!")
            .unwrap();
        store
            .put_atomic("deadletter/date=2025-04-30/dl-1.ndjson", b"{}\n")
            .unwrap();
        let mut names = all_names(dir.path());
        names.sort();
        assert_eq!(names, ["dl-1.ndjson", "part-1.parquet", "part-2.parquet"]);

        let listed = store.list("events").unwrap();
        assert_eq!(
            listed,
            [
                StoredFile {
                    rel_path: "events/service=a/date=2025-04-30/part-1.parquet".into(),
                    size: 4
                },
                StoredFile {
                    rel_path: "events/service=a/date=2025-04-30/part-2.parquet".into(),
                    size: 3
                },
            ]
        );
        assert_eq!(store.list("").unwrap().len(), 3);
        assert_eq!(
            store
                .read("deadletter/date=2025-04-30/dl-1.ndjson")
                .unwrap(),
            b"{}\n"
        );
    }

    #[test]
    fn list_ignores_temp_files_and_missing_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDisk::new(dir.path());
        store.put_atomic("events/x/part-1.parquet", b"1").unwrap();
        // What a crash in the middle of a put leaves behind.
        fs::write(dir.path().join("events/x/.tmp-abcdef"), b"partial").unwrap();
        let listed: Vec<_> = store
            .list("events/")
            .unwrap()
            .into_iter()
            .map(|f| f.rel_path)
            .collect();
        assert_eq!(listed, ["events/x/part-1.parquet"]);
        assert!(store.list("probes").unwrap().is_empty());
    }

    #[test]
    fn put_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDisk::new(dir.path());
        store.put_atomic("a/f.parquet", b"first").unwrap();
        let err = store.put_atomic("a/f.parquet", b"second").unwrap_err();
        assert!(matches!(err, LakeError::AlreadyExists { .. }), "{err}");
        assert_eq!(store.read("a/f.parquet").unwrap(), b"first");
        assert_eq!(
            all_names(dir.path()),
            ["f.parquet"],
            "failed put cleaned its temp file"
        );
    }

    #[test]
    fn delete_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDisk::new(dir.path());
        store.put_atomic("a/f.parquet", b"x").unwrap();
        store.delete("a/f.parquet").unwrap();
        store.delete("a/f.parquet").unwrap();
        assert!(store.list("a").unwrap().is_empty());
    }

    #[test]
    fn paths_cannot_escape_the_root() {
        let store = LocalDisk::new("/nonexistent-root");
        for bad in ["../x", "a/../../x", "./a"] {
            assert!(
                matches!(store.read(bad), Err(LakeError::InvalidPath { .. })),
                "{bad}"
            );
        }
    }
}
