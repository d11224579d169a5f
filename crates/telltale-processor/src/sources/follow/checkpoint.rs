//! Where a follower got to: `<data_dir>/follow/<name>.json`, written atomically (a temp
//! file, fsync, rename, fsync of the folder) after each batch is acknowledged, so a
//! restart neither reads an acknowledged line twice nor skips one.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A file's identity: it survives a rename (rotation), and changes when a new file takes
/// the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

impl FileId {
    /// The identity of an open file or a path's metadata.
    pub fn of(meta: &fs::Metadata) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Self {
                dev: meta.dev(),
                ino: meta.ino(),
            }
        }
        #[cfg(not(unix))]
        {
            // No inodes: a rotation is then seen only as the file getting shorter.
            let _ = meta;
            Self { dev: 0, ino: 0 }
        }
    }
}

/// The saved position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The followed path, as given.
    pub path: PathBuf,
    /// The file the position is in (it may since have been renamed by a rotation).
    pub file: FileId,
    /// Bytes of that file acknowledged: the next read starts here, at a line boundary.
    pub offset: u64,
    /// The number of the next line (dead letters name lines by it).
    pub next_line: u64,
}

/// The checkpoint file of `followed` in `dir`.
pub fn path_for(dir: &Path, followed: &Path) -> PathBuf {
    let name: String = followed
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    dir.join(format!("{}.json", name.trim_matches('_')))
}

/// Reads a checkpoint; `None` when there is none yet.
pub fn load(file: &Path) -> io::Result<Option<Checkpoint>> {
    match fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "follow checkpoint {} is not valid ({e}); move it away to read the file from its start",
                    file.display()
                ),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `checkpoint` to `file` atomically.
pub fn save(file: &Path, checkpoint: &Checkpoint) -> io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = file.with_extension("json.tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        serde_json::to_writer(&mut f, checkpoint)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    fs::rename(&tmp, file)?;
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let file = path_for(dir.path(), Path::new("/var/log/nginx/access.log"));
        assert!(file.ends_with("var_log_nginx_access_log.json"), "{file:?}");
        assert_eq!(load(&file).unwrap(), None);
        let mut c = Checkpoint {
            path: "/var/log/nginx/access.log".into(),
            file: FileId { dev: 1, ino: 2 },
            offset: 10,
            next_line: 3,
        };
        save(&file, &c).unwrap();
        c.offset = 20;
        save(&file, &c).unwrap();
        assert_eq!(load(&file).unwrap(), Some(c));
        assert!(!file.with_extension("json.tmp").exists());
    }

    #[test]
    fn a_corrupt_checkpoint_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.json");
        fs::write(&file, "{").unwrap();
        let e = load(&file).unwrap_err().to_string();
        assert!(e.contains("move it away"), "{e}");
    }
}
