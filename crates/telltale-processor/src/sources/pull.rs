//! The pull-source interface: a source the pipeline reads from at its own pace (a file,
//! stdin, a Kafka partition), as opposed to a push source that is sent to (HTTP).

use std::io;

use crate::batch::IngestBatch;

/// A pull source: yields batches of whole lines until its input ends.
pub trait BatchSource: Send {
    /// Name used in logs and dead letters: `stdin`, `file:<path>`.
    fn name(&self) -> &str;
    /// The next batch of whole lines, or `None` at the end of input.
    fn next_batch(&mut self) -> io::Result<Option<IngestBatch>>;
}

impl<S: BatchSource + ?Sized> BatchSource for Box<S> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn next_batch(&mut self) -> io::Result<Option<IngestBatch>> {
        (**self).next_batch()
    }
}
