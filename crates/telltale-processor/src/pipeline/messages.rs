//! The messages between the threads of a pipeline: callers → sequencer ([`Submit`],
//! [`Control`]) and sequencer → writer ([`WriterMsg`]).

use std::sync::mpsc::SyncSender;

use super::error::PipelineError;
use super::prepare::ParsedBatch;
use crate::outputs::Outputs;
use crate::wal::{LoggedBatch, Marker};

/// What the sequencer hands the writer, in log order.
pub(super) enum WriterMsg {
    /// A batch at log position `lsn`.
    Batch { lsn: u64, parsed: ParsedBatch },
    /// A logged decision at position `lsn`; `reply` is told when it has been carried out.
    Marker {
        lsn: u64,
        marker: Marker,
        reply: Option<SyncSender<Result<(), PipelineError>>>,
    },
    /// Start sending rollups and probes to the outputs (after a replay).
    AttachOutputs(Box<Outputs>),
}

impl std::fmt::Debug for WriterMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriterMsg::Batch { lsn, parsed } => write!(
                f,
                "Batch(@{lsn}: {} events, {} probes, {} checks, {} dead)",
                parsed.event_count,
                parsed.probes.len(),
                parsed.check_count(),
                parsed.dead.len()
            ),
            WriterMsg::Marker { lsn, marker, .. } => write!(f, "Marker(@{lsn}: {marker:?})"),
            WriterMsg::AttachOutputs(_) => f.write_str("AttachOutputs"),
        }
    }
}

/// A batch on its way to the sequencer.
pub(super) struct Submit {
    pub(super) logged: LoggedBatch,
    pub(super) parsed: ParsedBatch,
    pub(super) reply: SyncSender<Result<(), PipelineError>>,
}

/// A request to the sequencer from outside the ingest path.
pub(super) enum Control {
    /// Log a writer decision and carry it out; `reply` is told when done.
    Marker {
        marker: Marker,
        reply: Option<SyncSender<Result<(), PipelineError>>>,
    },
    /// Hand the outputs to the writer (not logged: outputs are not lake state).
    Attach(Box<Outputs>),
}

impl std::fmt::Debug for Submit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Submit({} bytes)", self.logged.data.len())
    }
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Control::Marker { marker, .. } => write!(f, "Marker({marker:?})"),
            Control::Attach(_) => f.write_str("Attach"),
        }
    }
}
