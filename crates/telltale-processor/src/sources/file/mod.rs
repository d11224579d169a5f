//! The file source: `telltale process --input FILE`. A regular file is read in large
//! batches to its end; a named pipe or a device, whose lines arrive over time, is read
//! live like stdin.

use std::fs::File;
use std::io;
use std::path::Path;

use super::pull::BatchSource;
use super::reader::ReaderSource;

/// Bytes per batch when reading a file. While the writer encodes a burst of files, the
/// parse threads go on only as far as the writer's queue (`queue_batches` batches)
/// reaches; bigger batches give them more room and cost less per batch. Measured on the
/// benchmark's 10M events (docs/benchmarks.md): 1 MiB 6.9 s, 2 MiB 6.3 s, 4 MiB 5.8 s
/// (RSS 580 MiB), 16 MiB 6.0 s (RSS 1.1 GiB).
pub const FILE_BATCH_BYTES: usize = 4 << 20;

/// An opened file source.
pub struct FileSource {
    /// The source, named `file:<path>`.
    pub source: Box<dyn BatchSource>,
    /// The file's length, when it is a regular file (for a progress bar).
    pub len: Option<u64>,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource")
            .field("name", &self.source.name())
            .field("len", &self.len)
            .finish()
    }
}

/// Opens `path` as a source of lines of at most `max_line_bytes`.
pub fn open(path: &Path, max_line_bytes: usize) -> io::Result<FileSource> {
    let file = File::open(path)?;
    let meta = file.metadata().ok();
    let name = format!("file:{}", path.display());
    Ok(match meta.filter(std::fs::Metadata::is_file) {
        Some(meta) => FileSource {
            source: Box::new(
                ReaderSource::new(file, &name, max_line_bytes).with_batch_bytes(FILE_BATCH_BYTES),
            ),
            len: Some(meta.len()),
        },
        // A named pipe or a device: lines arrive over time, like stdin.
        None => FileSource {
            source: Box::new(ReaderSource::new(file, &name, max_line_bytes).live()),
            len: None,
        },
    })
}
