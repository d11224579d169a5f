//! Micro benchmarks of the lake's write path, in the order an event meets it:
//!
//! ```text
//! FlaggedEvent ──[route]──▶ partition buffer ──[arrow]──▶ RecordBatch ──[parquet]──▶ file bytes ──▶ store
//! ```
//!
//! Every accepted event is routed to its partition buffer as it arrives, and every buffered
//! row is later turned into Arrow columns and encoded (zstd) once, on the writer's single
//! thread, so the rows/s of each stage bounds what one writer can sustain. Throughput is
//! reported in elements (rows) per second.
//!
//! Run with `cargo bench -p telltale-lake --bench encode` (add `-- --quick` for a fast,
//! rougher run).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use telltale_core::event::MICROS_PER_SEC;
use telltale_core::{FlaggedEvent, ServiceCatalog, ServiceEvent};
use telltale_lake::parquet_io::{self, EncodeOptions};
use telltale_lake::store::StoredFile;
use telltale_lake::{LakeError, LakeStore, LakeWriter, LocalDisk, WriterOptions, schema};

/// 2025-01-01T00:00:00Z: every bench row falls on this UTC day.
const DAY0_US: i64 = 1_735_689_600 * MICROS_PER_SEC;

/// Rows per partition file in the `arrow` and `parquet` benches: a partition's worth of
/// rows the writer encodes in one go (the default flush is at 100,000 rows; 10,000 keeps an
/// iteration short and is still far above the per-file overheads).
const PARTITION_ROWS: usize = 10_000;

/// Events per iteration in the `route` and `writer` benches, spread over every service
/// of the catalogue (so about `WRITER_ROWS / 20` rows per partition and file).
const WRITER_ROWS: usize = 50_000;

/// The service catalogue shipped in `config/services.toml`.
fn catalog() -> ServiceCatalog {
    ServiceCatalog::from_toml_str(
        include_str!("../../../config/services.toml"),
        "config/services.toml",
    )
    .expect("config/services.toml is valid")
}

/// splitmix64: deterministic data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

const REGIONS: [&str; 6] = [
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-northeast-1",
    "ap-southeast-2",
];

/// `n` flagged events shaped like the simulator's (as far as encoding cares: value
/// cardinalities and number formats), 1 ms apart in time order. With `service`, all of
/// that service (one partition); otherwise spread over every service of the catalogue.
fn events(n: usize, service: Option<&str>) -> Vec<FlaggedEvent> {
    let catalog = catalog();
    let services: Vec<_> = catalog
        .services()
        .filter(|p| service.is_none_or(|s| p.name == s))
        .cloned()
        .collect();
    assert!(
        !services.is_empty(),
        "service {service:?} is in the catalogue"
    );
    let mut rng = Rng(1);
    (0..n)
        .map(|i| {
            let p = rng.pick(&services);
            let endpoints = p.sim.endpoints.as_deref().unwrap_or_default();
            let (method, endpoint) = match endpoints {
                [] => ("GET", "/"),
                _ => rng.pick(endpoints).split_once(' ').unwrap_or(("GET", "/")),
            };
            let status_code = match rng.next() % 1000 {
                0..=4 => 503,
                5..=14 => 404,
                _ => 200,
            };
            // Roughly log-normal around the service's baseline, three decimals as sent.
            let baseline = p.sim.baseline_latency_ms.unwrap_or(50.0);
            let latency_ms = (baseline * (2.0 * rng.unit() - 1.0).exp() * 1000.0).round() / 1000.0;
            let event = ServiceEvent {
                service: p.name.clone(),
                timestamp_us: DAY0_US + i as i64 * 1000,
                status_code,
                latency_ms,
                error: Some(status_code >= 500),
                endpoint: Some(endpoint.to_owned()),
                method: Some(method.to_owned()),
                region: Some((*rng.pick(&REGIONS)).to_owned()),
                instance: Some(format!("{}-{}", p.name, 1 + rng.next() % 4)),
                trace_id: Some(format!("{:016x}{:016x}", rng.next(), rng.next())),
                attributes: None,
            };
            catalog.flag(event).0
        })
        .collect()
}

/// A store that keeps nothing: isolates the writer's own CPU cost from the file system.
#[derive(Debug)]
struct NullStore;

impl LakeStore for NullStore {
    fn put_atomic(&self, _: &str, bytes: &[u8]) -> telltale_lake::Result<()> {
        black_box(bytes);
        Ok(())
    }
    fn list(&self, _: &str) -> telltale_lake::Result<Vec<StoredFile>> {
        Ok(Vec::new())
    }
    fn read(&self, rel_path: &str) -> telltale_lake::Result<Vec<u8>> {
        Err(LakeError::io(
            "read",
            rel_path,
            std::io::ErrorKind::NotFound.into(),
        ))
    }
    fn delete(&self, _: &str) -> telltale_lake::Result<()> {
        Ok(())
    }
    fn root(&self) -> String {
        "null".into()
    }
}

/// The writer's options, with flushes only when asked for (`flush_all`).
fn no_auto_flush() -> WriterOptions {
    WriterOptions {
        flush_rows: usize::MAX,
        flush_age: Duration::MAX,
        ..WriterOptions::default()
    }
}

/// Routing (`LakeWriter::append_events` without a flush): per event, find the partition
/// buffer of its service and UTC day (a hash lookup by `&str`, a day-number BTreeMap) and
/// move the event in. Runs for every accepted event.
fn bench_route(c: &mut Criterion) {
    let events = events(WRITER_ROWS, None);
    let mut g = c.benchmark_group("route");
    g.throughput(Throughput::Elements(WRITER_ROWS as u64));
    g.bench_function("append_events", |b| {
        // A fresh writer per iteration, so buffers do not grow without bound; its setup
        // and the drop of the buffered rows are not measured.
        b.iter_batched(
            || {
                let w = LakeWriter::new(Arc::new(NullStore), no_auto_flush()).unwrap();
                (w, events.clone())
            },
            |(mut w, events)| {
                w.append_events(events, Instant::now()).unwrap();
                w
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

/// Arrow (`schema::events_batch`): one partition's rows sorted by time and copied into the
/// 13 columns of the `events` schema. Runs once per row, at flush.
fn bench_arrow(c: &mut Criterion) {
    let rows = events(PARTITION_ROWS, Some("api-gateway"));
    let mut g = c.benchmark_group("arrow");
    g.throughput(Throughput::Elements(PARTITION_ROWS as u64));
    g.bench_function("events_batch", |b| {
        b.iter(|| schema::events_batch(black_box(&rows)).unwrap());
    });
    g.finish();
}

/// Parquet (`parquet_io::encode`): one partition's record batch encoded as one row group
/// with the lake's writer properties (zstd at the default level, page statistics, sorting
/// metadata) into an in-memory file. Runs once per row, at flush; usually the costliest
/// step of the writer.
fn bench_parquet(c: &mut Criterion) {
    let batch = schema::events_batch(&events(PARTITION_ROWS, Some("api-gateway"))).unwrap();
    let defaults = WriterOptions::default();
    let opts = EncodeOptions {
        zstd_level: defaults.zstd_level,
        row_group_rows: defaults.row_group_rows,
    };
    let size = parquet_io::encode(&batch, &opts, Vec::new(), "bench")
        .unwrap()
        .len();
    eprintln!(
        "parquet/encode_row_group: {PARTITION_ROWS} rows encode to {size} bytes ({:.1} B/row)",
        size as f64 / PARTITION_ROWS as f64
    );
    let mut g = c.benchmark_group("parquet");
    g.throughput(Throughput::Elements(PARTITION_ROWS as u64));
    g.bench_function("encode_row_group", |b| {
        b.iter(|| parquet_io::encode(black_box(&batch), &opts, Vec::new(), "bench").unwrap());
    });
    g.finish();
}

/// The whole writer: `append_events` of events over every service, then `flush_all`,
/// which builds, encodes and stores one file per partition. Into a store that keeps
/// nothing (the writer's CPU cost) and into a local directory (plus temp file, fsync and
/// rename per file, as in production; the directory persists across iterations, so
/// partition directories exist after the first one, as in a running processor).
fn bench_writer(c: &mut Criterion) {
    let events = events(WRITER_ROWS, None);
    let mut g = c.benchmark_group("writer");
    g.throughput(Throughput::Elements(WRITER_ROWS as u64));
    // An iteration takes tens of milliseconds; fewer samples keep the run short.
    g.sample_size(10);
    let dir = tempfile::tempdir().unwrap();
    let stores: [(&str, Arc<dyn LakeStore>); 2] = [
        ("append_flush_memory", Arc::new(NullStore)),
        ("append_flush_tempdir", Arc::new(LocalDisk::new(dir.path()))),
    ];
    for (name, store) in stores {
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let w = LakeWriter::new(Arc::clone(&store), no_auto_flush()).unwrap();
                    (w, events.clone())
                },
                |(mut w, events)| {
                    w.append_events(events, Instant::now()).unwrap();
                    w.flush_all().unwrap();
                    w
                },
                BatchSize::PerIteration,
            );
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_route,
    bench_arrow,
    bench_parquet,
    bench_writer
);
criterion_main!(benches);
