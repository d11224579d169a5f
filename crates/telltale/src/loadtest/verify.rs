//! Reading the lake back: is every acknowledged event there once, unchanged, and is
//! nothing there that the server refused?

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int32Type, TimestampMicrosecondType};
use serde::Serialize;
use telltale_lake::layout::{self, PARQUET_EXT, Table};
use telltale_lake::store::{LakeStore, LocalDisk};

use super::events::{EventSpace, Fate};

/// Pause between two looks at the lake while waiting for flushes.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How many missing events the report names.
const MISSING_EXAMPLES: usize = 5;

/// What the lake holds of the run, compared with what the server acknowledged.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    /// Seconds spent waiting for the lake to show every acknowledged event.
    pub waited_s: f64,
    /// Whether every acknowledged event and dead letter showed up before the timeout.
    pub complete: bool,
    /// Events the server acknowledged.
    pub acknowledged: u64,
    /// Acknowledged events found exactly once.
    pub present_once: u64,
    /// Acknowledged events not found.
    pub missing: u64,
    /// Timestamps of the first few missing events, to look for in the processor's logs.
    pub first_missing: Vec<String>,
    /// Rows of the run whose fields differ from what was sent.
    pub altered: u64,
    /// Events found more than once (extra copies counted once per event).
    pub duplicated: u64,
    /// Events found although the server refused them (4xx, 429, 5xx, cut-off body,
    /// rejected line) or they were never sent.
    pub present_but_refused: u64,
    /// Events with no clear answer (timeout, reset) and how many of them are stored: not
    /// an error either way, reported so the numbers add up.
    pub ambiguous: u64,
    /// Ambiguous events that are stored.
    pub ambiguous_present: u64,
    /// Rows with the run's service name whose timestamp is none of the run's events.
    pub unexpected_rows: u64,
    /// Bad lines of the malformed phase expected in the dead letter.
    pub deadletter_expected: u64,
    /// Of those, how many were found there.
    pub deadletter_found: u64,
}

impl Verification {
    /// Whether the lake holds anything wrong: the test fails on this.
    pub fn invalid_data(&self) -> bool {
        self.missing > 0
            || self.altered > 0
            || self.duplicated > 0
            || self.present_but_refused > 0
            || self.unexpected_rows > 0
    }
}

/// Looks at the lake until it holds every acknowledged event and every expected dead
/// letter, or `timeout` passes; then compares.
pub async fn verify(
    data_dir: &Path,
    space: &EventSpace,
    fates: &[Fate],
    bad_lines: &[String],
    timeout: Duration,
) -> anyhow::Result<Verification> {
    let started = Instant::now();
    loop {
        let batches = read_service(data_dir, &space.service)
            .with_context(|| format!("reading the lake at {}", data_dir.display()))?;
        let mut v = compare(&batches, space, fates)?;
        v.deadletter_expected = bad_lines.len() as u64;
        v.deadletter_found = deadletters_found(data_dir, &space.service, bad_lines)
            .context("reading the dead letter")?;
        v.complete = v.missing == 0 && v.deadletter_found == v.deadletter_expected;
        v.waited_s = started.elapsed().as_secs_f64();
        if v.complete || started.elapsed() >= timeout {
            return Ok(v);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Every row of `service`'s event partitions (`events/service=<name>/date=*/*.parquet`),
/// read with the parquet crate: files appear atomically, so each listed file is whole.
fn read_service(data_dir: &Path, service: &str) -> anyhow::Result<Vec<RecordBatch>> {
    let store = LocalDisk::new(data_dir);
    let prefix = format!(
        "{}/service={}",
        Table::Events.dir(),
        layout::encode(service)
    );
    let mut batches = Vec::new();
    for file in store.list(&prefix)? {
        if !file.rel_path.ends_with(PARQUET_EXT) {
            continue;
        }
        let bytes = store.read(&file.rel_path)?;
        let decoded = telltale_lake::parquet_io::decode(bytes, true, &file.rel_path)?;
        batches.extend(decoded.batches);
    }
    Ok(batches)
}

/// One look at the lake: the rows of the run's service.
fn compare(
    batches: &[RecordBatch],
    space: &EventSpace,
    fates: &[Fate],
) -> anyhow::Result<Verification> {
    let mut copies = vec![0u32; fates.len()];
    let mut v = Verification::default();
    for batch in batches {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| anyhow::anyhow!("events has no column {name}"))
        };
        let column_err = |name: &str| anyhow::anyhow!("events.{name} has an unexpected type");
        let timestamps = column("timestamp")?
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(|| column_err("timestamp"))?;
        let statuses = column("status_code")?
            .as_primitive_opt::<Int32Type>()
            .ok_or_else(|| column_err("status_code"))?;
        let latencies = column("latency_ms")?
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| column_err("latency_ms"))?;
        let errors = column("error")?
            .as_boolean_opt()
            .ok_or_else(|| column_err("error"))?;
        for row in 0..batch.num_rows() {
            let Some(seq) = space.seq_of(timestamps.value(row)) else {
                v.unexpected_rows += 1;
                continue;
            };
            copies[seq as usize] += 1;
            let want = space.expected(seq);
            let error = (!errors.is_null(row)).then(|| errors.value(row));
            // Bit-exact: the latencies sent are multiples of 1/8, exact in decimal and f64.
            if i64::from(statuses.value(row)) != i64::from(want.status_code)
                || latencies.value(row).to_bits() != want.latency_ms.to_bits()
                || error != want.error
            {
                v.altered += 1;
            }
        }
    }
    for (seq, (fate, &n)) in fates.iter().zip(&copies).enumerate() {
        if n > 1 {
            v.duplicated += 1;
        }
        match fate {
            Fate::Acknowledged => {
                v.acknowledged += 1;
                match n {
                    0 => {
                        v.missing += 1;
                        if v.first_missing.len() < MISSING_EXAMPLES {
                            let ts = space.timestamp_us(seq as u64);
                            v.first_missing.push(telltale_core::event::rfc3339(ts));
                        }
                    }
                    1 => v.present_once += 1,
                    _ => {}
                }
            }
            Fate::Refused | Fate::RejectedLine | Fate::Unsent => {
                if n > 0 {
                    v.present_but_refused += 1;
                }
            }
            Fate::Ambiguous => {
                v.ambiguous += 1;
                if n > 0 {
                    v.ambiguous_present += 1;
                }
            }
        }
    }
    Ok(v)
}

/// How many of `bad_lines` are in the dead-letter files (`deadletter/date=*/*.ndjson`).
fn deadletters_found(data_dir: &Path, service: &str, bad_lines: &[String]) -> anyhow::Result<u64> {
    let root = data_dir.join("deadletter");
    let wanted: HashSet<&str> = bad_lines.iter().map(String::as_str).collect();
    let mut found = HashSet::new();
    let Ok(dates) = std::fs::read_dir(&root) else {
        return Ok(0);
    };
    for date in dates {
        let date = date.with_context(|| format!("listing {}", root.display()))?;
        let Ok(files) = std::fs::read_dir(date.path()) else {
            continue;
        };
        for file in files {
            let path = file
                .with_context(|| format!("listing {}", date.path().display()))?
                .path();
            if path.extension().is_none_or(|e| e != "ndjson") {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            // The raw line is JSON-escaped inside the dead letter, but the service name
            // has nothing to escape, so a plain substring test skips other runs cheaply.
            for line in text.lines().filter(|l| l.contains(service)) {
                let Ok(letter) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                if let Some(raw) = letter["raw"].as_str()
                    && wanted.contains(raw)
                {
                    found.insert(raw.to_owned());
                }
            }
        }
    }
    Ok(found.len() as u64)
}
