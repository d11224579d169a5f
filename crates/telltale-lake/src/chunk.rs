//! Columnar event batches: parsed events go straight into Arrow builders, one set per
//! (service, UTC day) partition, on the thread that parsed them.
//!
//! ```text
//!  parse thread: line ─▶ EventRow (borrowed) ─▶ EventChunks ─▶ Vec<EventChunk> ─▶ writer
//! ```
//!
//! So an event costs no heap allocation of its own, the writer thread routes one chunk per
//! partition instead of every row, and rollups read the columns they need from the chunk.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Float64Array, Float64Builder, Int32Builder,
    RecordBatch, StringBuilder, TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use telltale_core::FlaggedEvent;
use telltale_core::event::MICROS_PER_DAY;

use crate::error::{LakeError, Result};
use crate::schema::{self, TIMESTAMP_TZ};

/// One flagged event, borrowed from wherever it was parsed.
#[derive(Debug, Clone, Copy)]
pub struct EventRow<'a> {
    /// Partition key.
    pub service: &'a str,
    /// Owning team (from the service catalogue).
    pub team: &'a Arc<str>,
    /// Event time, µs since the epoch.
    pub timestamp_us: i64,
    /// HTTP status.
    pub status_code: u16,
    /// Latency, ms.
    pub latency_ms: f64,
    /// The sender's own error flag.
    pub error: Option<bool>,
    /// Flagged as an error.
    pub is_error: bool,
    /// Flagged as slow.
    pub is_slow: bool,
    /// Optional context, as sent.
    pub endpoint: Option<&'a str>,
    /// Optional context, as sent.
    pub method: Option<&'a str>,
    /// Optional context, as sent.
    pub region: Option<&'a str>,
    /// Optional context, as sent.
    pub instance: Option<&'a str>,
    /// Optional context, as sent.
    pub trace_id: Option<&'a str>,
    /// Unknown fields, as a JSON object.
    pub attributes: Option<&'a str>,
}

impl<'a> From<&'a FlaggedEvent> for EventRow<'a> {
    fn from(f: &'a FlaggedEvent) -> Self {
        let e = &f.event;
        Self {
            service: &e.service,
            team: &f.team,
            timestamp_us: e.timestamp_us,
            status_code: e.status_code,
            latency_ms: e.latency_ms,
            error: e.error,
            is_error: f.is_error,
            is_slow: f.is_slow,
            endpoint: e.endpoint.as_deref(),
            method: e.method.as_deref(),
            region: e.region.as_deref(),
            instance: e.instance.as_deref(),
            trace_id: e.trace_id.as_deref(),
            attributes: e.attributes.as_deref(),
        }
    }
}

/// The events of one partition from one batch of input, as an `events` record batch in
/// arrival order.
#[derive(Debug, Clone)]
pub struct EventChunk {
    /// Partition key.
    pub service: Arc<str>,
    /// Owning team.
    pub team: Arc<str>,
    /// UTC day number (days since the epoch) of every row.
    pub day: i64,
    /// Rows, in the `events` schema.
    pub batch: RecordBatch,
}

impl EventChunk {
    /// Number of events.
    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.batch.num_rows() == 0
    }

    /// The columns rollups need: (timestamp µs, latency ms, is_error, is_slow) per row.
    pub fn rollup_inputs(&self) -> impl Iterator<Item = (i64, f64, bool, bool)> + '_ {
        let col = |i: usize| self.batch.column(i);
        let ts = col(0).as_any().downcast_ref::<TimestampMicrosecondArray>();
        let latency = col(2).as_any().downcast_ref::<Float64Array>();
        let is_error = col(4).as_any().downcast_ref::<BooleanArray>();
        let is_slow = col(5).as_any().downcast_ref::<BooleanArray>();
        // The batch was built by `ChunkBuilder` with the events schema, so the downcasts
        // hold; a mismatch yields no rows rather than a panic.
        let cols = ts.zip(latency).zip(is_error).zip(is_slow);
        cols.into_iter().flat_map(|(((ts, lat), err), slow)| {
            (0..ts.len()).map(move |i| (ts.value(i), lat.value(i), err.value(i), slow.value(i)))
        })
    }

    /// (first, last) timestamp when the rows are non-empty and in timestamp order.
    pub fn sorted_time_range(&self) -> Option<(i64, i64)> {
        let ts = self.timestamps()?;
        let range = (*ts.first()?, *ts.last()?);
        ts.is_sorted().then_some(range)
    }

    /// Each row as one JSON object, `service` first: how events set aside after parsing
    /// (a service past `limits.max_services`) are kept in the dead letter.
    pub fn json_lines(&self) -> Result<Vec<Vec<u8>>> {
        let mut buf = Vec::new();
        let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
        w.write(&self.batch)
            .and_then(|()| w.finish())
            .map_err(|source| LakeError::Arrow {
                context: "events as JSON".into(),
                source,
            })?;
        drop(w);
        let service = serde_json::to_string(&*self.service).unwrap_or_default();
        Ok(buf
            .split(|b| *b == b'\n')
            .filter(|l| l.first() == Some(&b'{'))
            .map(|l| {
                let mut line = format!("{{\"service\":{service}").into_bytes();
                if l.len() > 2 {
                    line.push(b',');
                }
                line.extend_from_slice(&l[1..]);
                line
            })
            .collect())
    }

    fn timestamps(&self) -> Option<&[i64]> {
        self.batch
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .map(|ts| &ts.values()[..])
    }
}

/// Builders for one partition's rows.
#[derive(Debug)]
struct ChunkBuilder {
    service: Arc<str>,
    team: Arc<str>,
    day: i64,
    timestamp: TimestampMicrosecondBuilder,
    status_code: Int32Builder,
    latency_ms: Float64Builder,
    error: BooleanBuilder,
    is_error: BooleanBuilder,
    is_slow: BooleanBuilder,
    team_col: StringBuilder,
    endpoint: StringBuilder,
    method: StringBuilder,
    region: StringBuilder,
    instance: StringBuilder,
    trace_id: StringBuilder,
    attributes: StringBuilder,
}

impl ChunkBuilder {
    fn new(service: &str, team: &Arc<str>, day: i64) -> Self {
        // A batch of input spreads over many partitions, so chunks are small (hundreds
        // of rows). Arrow's default builders reserve 1,024 rows each: for 13 columns that
        // was several times the data, paid in resident memory and in page zeroing while
        // chunks wait to be written. Start small and let the builders double instead: at 8
        // rows, a batch whose lines name 40,000 different services (typos, an attack) holds
        // ~60 MB of builders instead of the ~1 GB that 128 rows cost (bench/many_services.sh).
        const ROWS: usize = 8;
        let text = |bytes_per_row| StringBuilder::with_capacity(ROWS, ROWS * bytes_per_row);
        Self {
            service: Arc::from(service),
            team: Arc::clone(team),
            day,
            timestamp: TimestampMicrosecondBuilder::with_capacity(ROWS).with_timezone(TIMESTAMP_TZ),
            status_code: Int32Builder::with_capacity(ROWS),
            latency_ms: Float64Builder::with_capacity(ROWS),
            error: BooleanBuilder::with_capacity(ROWS),
            is_error: BooleanBuilder::with_capacity(ROWS),
            is_slow: BooleanBuilder::with_capacity(ROWS),
            team_col: text(team.len()),
            endpoint: text(16),
            method: text(8),
            region: text(16),
            instance: text(16),
            trace_id: text(32),
            attributes: text(0),
        }
    }

    fn push(&mut self, r: &EventRow<'_>) {
        self.timestamp.append_value(r.timestamp_us);
        self.status_code.append_value(i32::from(r.status_code));
        self.latency_ms.append_value(r.latency_ms);
        self.error.append_option(r.error);
        self.is_error.append_value(r.is_error);
        self.is_slow.append_value(r.is_slow);
        self.team_col.append_value(&**r.team);
        self.endpoint.append_option(r.endpoint);
        self.method.append_option(r.method);
        self.region.append_option(r.region);
        self.instance.append_option(r.instance);
        self.trace_id.append_option(r.trace_id);
        self.attributes.append_option(r.attributes);
    }

    fn finish(mut self) -> Result<EventChunk> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.timestamp.finish()),
            Arc::new(self.status_code.finish()),
            Arc::new(self.latency_ms.finish()),
            Arc::new(self.error.finish()),
            Arc::new(self.is_error.finish()),
            Arc::new(self.is_slow.finish()),
            Arc::new(self.team_col.finish()),
            Arc::new(self.endpoint.finish()),
            Arc::new(self.method.finish()),
            Arc::new(self.region.finish()),
            Arc::new(self.instance.finish()),
            Arc::new(self.trace_id.finish()),
            Arc::new(self.attributes.finish()),
        ];
        let batch = RecordBatch::try_new(schema::events_schema(), columns)
            .map_err(|e| LakeError::arrow("building an events chunk".to_owned(), e))?;
        Ok(EventChunk {
            service: self.service,
            team: self.team,
            day: self.day,
            batch,
        })
    }
}

/// Collects a batch's events into one [`EventChunk`] per partition.
#[derive(Debug, Default)]
pub struct EventChunks {
    /// Service → (day, index into `builders`); a service's events nearly always share
    /// one day, so the inner list is tiny.
    /// (foldhash: this is looked up once per event, and SipHash showed in profiles.)
    index: HashMap<Box<str>, Vec<(i64, usize)>, foldhash::fast::RandomState>,
    builders: Vec<ChunkBuilder>,
    rows: usize,
}

impl EventChunks {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one event to its partition's builders.
    pub fn push(&mut self, row: &EventRow<'_>) {
        let day = row.timestamp_us.div_euclid(MICROS_PER_DAY);
        let days = match self.index.get_mut(row.service) {
            Some(days) => days,
            None => self.index.entry(Box::from(row.service)).or_default(),
        };
        let i = match days.iter().find(|(d, _)| *d == day) {
            Some(&(_, i)) => i,
            None => {
                self.builders
                    .push(ChunkBuilder::new(row.service, row.team, day));
                days.push((day, self.builders.len() - 1));
                self.builders.len() - 1
            }
        };
        self.builders[i].push(row);
        self.rows += 1;
    }

    /// Events pushed so far.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether none were pushed.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The chunks, in order of each partition's first event.
    pub fn finish(self) -> Result<Vec<EventChunk>> {
        self.builders
            .into_iter()
            .map(ChunkBuilder::finish)
            .collect()
    }

    /// Chunks of owned events (tests, and callers that already hold `FlaggedEvent`s).
    pub fn from_events(events: &[FlaggedEvent]) -> Result<Vec<EventChunk>> {
        let mut chunks = Self::new();
        for e in events {
            chunks.push(&EventRow::from(e));
        }
        chunks.finish()
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn json_lines_hold_every_row_with_its_service() {
        let team: Arc<str> = Arc::from("t");
        let mut chunks = EventChunks::new();
        for (i, latency) in [5.5, 7.0].into_iter().enumerate() {
            chunks.push(&EventRow {
                service: "a \"quoted\" name",
                team: &team,
                timestamp_us: 1_700_000_000_000_000 + i as i64,
                status_code: 503,
                latency_ms: latency,
                error: None,
                is_error: true,
                is_slow: false,
                endpoint: Some("GET /x"),
                method: None,
                region: None,
                instance: None,
                trace_id: None,
                attributes: None,
            });
        }
        let chunk = chunks.finish().unwrap().remove(0);
        let lines: Vec<serde_json::Value> = chunk
            .json_lines()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["service"], "a \"quoted\" name");
        assert_eq!(lines[0]["status_code"], 503);
        assert_eq!(lines[1]["latency_ms"], 7.0);
        assert_eq!(lines[0]["endpoint"], "GET /x");
        assert!(
            lines[0]["timestamp"]
                .as_str()
                .unwrap()
                .starts_with("2023-11-14T22:13:20")
        );
    }
    use super::*;
    use crate::fixtures::event;

    #[test]
    fn events_split_by_service_and_day_in_arrival_order() {
        let day = MICROS_PER_DAY;
        let events = vec![
            event("a", day + 5, 1.0),
            event("b", day + 1, 2.0),
            event("a", day + 3, 3.0),
            event("a", 2 * day, 4.0),
        ];
        let chunks = EventChunks::from_events(&events).unwrap();
        let got: Vec<_> = chunks
            .iter()
            .map(|c| {
                (
                    c.service.to_string(),
                    c.day,
                    c.len(),
                    c.sorted_time_range().is_some(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".to_owned(), 1, 2, false),
                ("b".to_owned(), 1, 1, true),
                ("a".to_owned(), 2, 1, true),
            ]
        );
        let inputs: Vec<_> = chunks[0].rollup_inputs().collect();
        assert_eq!(inputs.len(), 2);
        assert_eq!((inputs[0].0, inputs[0].1), (day + 5, 1.0));
        assert_eq!((inputs[1].0, inputs[1].1), (day + 3, 3.0));
    }

    #[test]
    fn concatenated_chunks_come_out_in_time_order() {
        // Two batches of input for one partition, the second older than the first (late
        // data): the file must still be sorted, as the row path sorts it.
        let first: Vec<_> = (0..5).map(|i| event("a", 100 + i, i as f64)).collect();
        let second: Vec<_> = (0..5)
            .map(|i| event("a", 50 + i, 10.0 + i as f64))
            .collect();
        let mut chunks = EventChunks::from_events(&first).unwrap();
        chunks.extend(EventChunks::from_events(&second).unwrap());
        let all = schema::concat_events(chunks.iter().map(|c| &c.batch)).unwrap();
        let both: Vec<_> = first.iter().chain(&second).cloned().collect();
        assert_eq!(all, schema::events_batch(&both).unwrap());
    }

    #[test]
    fn a_chunk_equals_the_row_conversion() {
        let events: Vec<_> = (0..50).map(|i| event("a", 1_000 + i, i as f64)).collect();
        let chunks = EventChunks::from_events(&events).unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].batch, schema::events_batch(&events).unwrap());
    }
}
