//! The stdin source: `telltale process --input -`. Read live: each read's complete lines
//! are a batch at once, so `tail -f access.log | telltale process --input -` is processed
//! as it arrives.

use std::io::Stdin;

use super::reader::ReaderSource;

/// The process's standard input as a source of lines of at most `max_line_bytes`.
pub fn stdin(max_line_bytes: usize) -> ReaderSource<Stdin> {
    ReaderSource::new(std::io::stdin(), "stdin", max_line_bytes).live()
}
