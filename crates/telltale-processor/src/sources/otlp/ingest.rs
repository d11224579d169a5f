//! The step every OTLP request shares, after its front (http.rs, grpc.rs): decode and map
//! on the processing pool, ingest the lines like an NDJSON batch, and turn the pipeline's
//! outcome into the partial-success count and message.

use super::map::{Mapped, SKIPPED_KINDS};
use crate::api::error::ApiError;
use crate::batch::{BatchOutcome, IngestBatch};
use crate::metrics::{KindLabel, Metrics};
use crate::sources::http::IngestState;

/// What became of an export: the request's records that were rejected and why (the
/// first few reasons), for a partial-success answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exported {
    /// Records mapped to events and accepted.
    pub accepted: u64,
    /// Records rejected (each in the dead letter with its reason).
    pub rejected: u64,
    /// Why, for the sender; empty when nothing was rejected.
    pub error_message: String,
}

/// Most rejection reasons quoted in an `error_message`.
const REASONS_QUOTED: usize = 5;

impl Exported {
    fn from_outcome(outcome: &BatchOutcome, names: &[String]) -> Self {
        let mut msg = String::new();
        for r in outcome.errors.iter().take(REASONS_QUOTED) {
            let name = usize::try_from(r.line)
                .ok()
                .and_then(|l| names.get(l.wrapping_sub(1)))
                .map_or("?", String::as_str);
            if !msg.is_empty() {
                msg.push_str("; ");
            }
            let field = r.field.unwrap_or("record");
            msg.push_str(&format!("{name:?}: {field}: {}", r.message));
        }
        if outcome.rejected > REASONS_QUOTED as u64 {
            msg.push_str(&format!(
                "; and {} more (all in the dead letter)",
                outcome.rejected - REASONS_QUOTED as u64
            ));
        }
        Self {
            accepted: outcome.accepted,
            rejected: outcome.rejected,
            error_message: msg,
        }
    }
}

/// Counts the records the mapping dropped as not requests.
fn count_skipped(metrics: &Metrics, m: &Mapped) {
    for (kind, n) in SKIPPED_KINDS.iter().zip(m.skipped_spans) {
        if n > 0 {
            metrics
                .otlp_spans_skipped
                .get_or_create(&KindLabel {
                    kind: (*kind).to_owned(),
                })
                .inc_by(n);
        }
    }
    metrics.otlp_log_records_skipped.inc_by(m.skipped_logs);
}

/// Runs `work` (decode and map, CPU work) on the processing pool, ingests its lines and
/// waits for the acknowledgement. Refused at once with 429 when the pool's queue is full.
pub(crate) async fn export(
    state: &IngestState,
    source: &'static str,
    work: impl FnOnce() -> Result<Mapped, ApiError> + Send + 'static,
) -> Result<Exported, ApiError> {
    let pipeline = state.pipeline.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    state.submit(move || {
        let result = (|| -> Result<Exported, ApiError> {
            let mapped = work()?;
            count_skipped(pipeline.metrics(), &mapped);
            if mapped.is_empty() {
                return Ok(Exported::default());
            }
            let names = mapped.names;
            let outcome = pipeline.ingest(IngestBatch::whole(mapped.lines, source))?;
            Ok(Exported::from_outcome(&outcome, &names))
        })();
        let _ = tx.send(result);
    })?;
    rx.await
        .map_err(|_| ApiError::Internal("the processing worker stopped".into()))?
}
