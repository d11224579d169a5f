//! Micro benchmarks of the per-line hot path of the core, in the order a line meets it:
//!
//! ```text
//! bytes ──[parse]──▶ ServiceEvent ──[flag]──▶ FlaggedEvent ──[rollup]──▶ window histograms
//! ```
//!
//! Every line the processor ingests goes through all three, on the ingest threads, so
//! their cost per line bounds the events/s one core can take. Each iteration handles a
//! batch of [`BATCH`] lines and the throughput is reported in elements (lines) per second.
//!
//! Run with `cargo bench -p telltale-core --bench hot_path` (add `-- --quick` for a fast,
//! rougher run).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use telltale_core::config::RollupConfig;
use telltale_core::event::MICROS_PER_SEC;
use telltale_core::parse::parse_line_borrowed;
use telltale_core::{
    FlaggedEvent, Limits, Record, Rollups, ServiceCatalog, ServiceEvent, parse_line,
};

/// Lines per iteration: large enough that per-iteration overhead vanishes, small enough to
/// stay in cache like the processor's own batches.
const BATCH: usize = 1000;

/// Real lines as `telltale simulate` writes them (seed 1; the first lines of
/// `telltale-sim`'s snapshot, plus a 502): every optional field set, as in production.
/// Their timestamps are rewritten per line by [`batch_of`].
const SIM_LINES: [&str; 16] = [
    r#"{"service":"api-gateway","timestamp":"2025-01-01T00:00:00.000Z","status_code":200,"latency_ms":142.013,"error":false,"endpoint":"/*","method":"GET","region":"eu-central-1","instance":"api-gateway-3","trace_id":"7eff8a17b5ea8d36b5c5488e7609dfe1"}"#,
    r#"{"service":"api-gateway","timestamp":"2025-01-01T00:00:00.001Z","status_code":200,"latency_ms":103.506,"error":false,"endpoint":"/*","method":"POST","region":"us-west-2","instance":"api-gateway-1","trace_id":"43901a0bf9e9e1a17415efbf72a6fbe3"}"#,
    r#"{"service":"user-profile","timestamp":"2025-01-01T00:00:00.003Z","status_code":200,"latency_ms":20.861,"error":false,"endpoint":"/v1/users/{id}","method":"PATCH","region":"ap-northeast-1","instance":"user-profile-1","trace_id":"57fbae920fc0902b7af5168c347039e7"}"#,
    r#"{"service":"ab-testing","timestamp":"2025-01-01T00:00:00.036Z","status_code":200,"latency_ms":4.297,"error":false,"endpoint":"/v1/assignments","method":"GET","region":"ap-southeast-2","instance":"ab-testing-2","trace_id":"44a45463d1424ae216a276763845a42f"}"#,
    r#"{"service":"user-profile","timestamp":"2025-01-01T00:00:00.045Z","status_code":200,"latency_ms":15.474,"error":false,"endpoint":"/v1/users/{id}","method":"GET","region":"ap-northeast-1","instance":"user-profile-2","trace_id":"bb12468e17a92162b463fa3986b939fd"}"#,
    r#"{"service":"notification-service","timestamp":"2025-01-01T00:00:00.073Z","status_code":200,"latency_ms":176.44,"error":false,"endpoint":"/v1/notify/push","method":"POST","region":"ap-southeast-2","instance":"notification-service-1","trace_id":"3c2b39ba481f5aeca649f5593a11776f"}"#,
    r#"{"service":"recommendations","timestamp":"2025-01-01T00:00:00.099Z","status_code":200,"latency_ms":86.538,"error":false,"endpoint":"/v1/recommendations","method":"GET","region":"us-east-1","instance":"recommendations-3","trace_id":"91908e4d577ff85c9d44f722d45690f1"}"#,
    r#"{"service":"product-catalog","timestamp":"2025-01-01T00:00:00.111Z","status_code":200,"latency_ms":55.229,"error":false,"endpoint":"/v1/products/{id}","method":"GET","region":"us-west-2","instance":"product-catalog-1","trace_id":"6ba6a696bc601e5a5daa569cd5394aab"}"#,
    r#"{"service":"auth-service","timestamp":"2025-01-01T00:00:00.138Z","status_code":200,"latency_ms":21.25,"error":false,"endpoint":"/v1/token/refresh","method":"POST","region":"us-west-2","instance":"auth-service-1","trace_id":"d7f4fd38a773c7f461c2a3b43769869f"}"#,
    r#"{"service":"shipping-quotes","timestamp":"2025-01-01T00:00:00.158Z","status_code":200,"latency_ms":417.832,"error":false,"endpoint":"/v1/quotes","method":"POST","region":"ap-northeast-1","instance":"shipping-quotes-1","trace_id":"1ccc12b3f0c17146eccdb5ff414eae6b"}"#,
    r#"{"service":"session-store","timestamp":"2025-01-01T00:00:00.205Z","status_code":200,"latency_ms":5.256,"error":false,"endpoint":"/sessions/{id}","method":"GET","region":"eu-west-1","instance":"session-store-1","trace_id":"dcfb4ed853d58d06f54f301132bbe40b"}"#,
    r#"{"service":"fraud-scoring","timestamp":"2025-01-01T00:00:00.290Z","status_code":200,"latency_ms":46.729,"error":false,"endpoint":"/score","method":"POST","region":"eu-west-1","instance":"fraud-scoring-1","trace_id":"6f6e75ae1154a362a679e236aebd545f"}"#,
    r#"{"service":"session-store","timestamp":"2025-01-01T00:00:00.435Z","status_code":404,"latency_ms":2.868,"error":false,"endpoint":"/sessions/{id}","method":"PUT","region":"eu-west-1","instance":"session-store-4","trace_id":"f27eab0066e6eb40c972c7cadc3f3fcb"}"#,
    r#"{"service":"image-resizer","timestamp":"2025-01-01T00:00:00.446Z","status_code":200,"latency_ms":890.759,"error":false,"endpoint":"/img/{size}/{id}","method":"GET","region":"us-east-1","instance":"image-resizer-2","trace_id":"2484040cfd55f59dfafb53875dc697df"}"#,
    r#"{"service":"ab-testing","timestamp":"2025-01-01T00:00:00.865Z","status_code":502,"latency_ms":5.806,"error":true,"endpoint":"/v1/assignments","method":"GET","region":"us-east-1","instance":"ab-testing-1","trace_id":"70e0dd7b0f6add4f645f0be440aaf2c1"}"#,
    r#"{"service":"search-api","timestamp":"2025-01-01T00:00:00.913Z","status_code":200,"latency_ms":244.321,"error":false,"endpoint":"/v1/search","method":"GET","region":"eu-west-1","instance":"search-api-3","trace_id":"2d30e3cd345e34a6aebe93f216ace495"}"#,
];

/// The smallest line the processor accepts: the four required fields and `error`.
const MINIMAL_LINE: &str = r#"{"service":"api-gateway","timestamp":"2025-01-01T00:00:00.000Z","status_code":200,"latency_ms":142.013,"error":false}"#;

/// "Now" for the future-skew check: a day after the lines' timestamps.
const NOW_US: i64 = (1_735_689_600 + 86_400) * MICROS_PER_SEC;

/// Event-time distance between consecutive lines of a batch: 1 ms, i.e. 1,000 events/s
/// across all services, so a batch spans one second and windows fill as in production.
const LINE_SPACING_MS: usize = 1;

/// `BATCH` lines cycling through `templates`, the n-th stamped
/// `2025-01-01T00:00:00Z + n * LINE_SPACING_MS` so they are in time order.
fn batch_of(templates: &[&str]) -> Vec<Vec<u8>> {
    (0..BATCH)
        .map(|n| {
            let line = templates[n % templates.len()];
            let ms = n * LINE_SPACING_MS;
            let ts = format!(
                "2025-01-01T{:02}:{:02}:{:02}.{:03}Z",
                ms / 3_600_000,
                ms / 60_000 % 60,
                ms / 1000 % 60,
                ms % 1000
            );
            // Every template has exactly one `"timestamp":"…"` with a 24-character value.
            let start = line.find(r#""timestamp":""#).expect("timestamp field") + 13;
            format!("{}{ts}{}", &line[..start], &line[start + 24..]).into_bytes()
        })
        .collect()
}

/// The service catalogue shipped in `config/services.toml`, loaded as the processor does.
fn catalog() -> ServiceCatalog {
    ServiceCatalog::from_toml_str(
        include_str!("../../../config/services.toml"),
        "config/services.toml",
    )
    .expect("config/services.toml is valid")
}

fn parse_service(raw: &[u8], line: u64, limits: &Limits) -> ServiceEvent {
    match parse_line(raw, line, NOW_US, limits) {
        Ok(Record::Service(e)) => e,
        other => panic!("bench line {line} should parse as a service event: {other:?}"),
    }
}

/// Parse + validate (`parse_line`): UTF-8 check, JSON into a `serde_json::Value`, then
/// field-by-field validation into an owned `ServiceEvent`. The most expensive per-line
/// step; the full simulator line and the minimal line bound it from both sides.
fn bench_parse(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(BATCH as u64));
    for (name, lines) in [
        ("simulator_line", batch_of(&SIM_LINES)),
        ("minimal_line", batch_of(&[MINIMAL_LINE])),
    ] {
        // Every line must be accepted, or the bench would time the rejection path.
        for (i, l) in lines.iter().enumerate() {
            parse_service(l, i as u64 + 1, &limits);
        }
        g.bench_function(name, |b| {
            b.iter(|| {
                for (i, raw) in lines.iter().enumerate() {
                    let _ = black_box(parse_line(black_box(raw), i as u64 + 1, NOW_US, &limits));
                }
            });
        });
    }
    // What the processor's ingest calls: the same validation, strings borrowed from the
    // line (no owned event).
    let lines = batch_of(&SIM_LINES);
    g.bench_function("simulator_line_borrowed", |b| {
        b.iter(|| {
            for (i, raw) in lines.iter().enumerate() {
                let parsed = parse_line_borrowed(black_box(raw), i as u64 + 1, NOW_US, &limits);
                let _ = black_box(parsed);
            }
        });
    });
    g.finish();
}

/// Flagging (`ServiceCatalog::flag`): catalogue lookup by service name, the error and
/// slow flags, and the team. Runs once per accepted line.
fn bench_flag(c: &mut Criterion) {
    let limits = Limits::default();
    let catalog = catalog();
    let events: Vec<ServiceEvent> = batch_of(&SIM_LINES)
        .iter()
        .enumerate()
        .map(|(i, l)| parse_service(l, i as u64 + 1, &limits))
        .collect();
    assert!(
        events.iter().all(|e| catalog.get(&e.service).is_some()),
        "every bench service is in the catalogue"
    );
    let mut g = c.benchmark_group("flag");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("catalog", |b| {
        // `flag` takes the event by value; cloning the batch is setup, not measured.
        b.iter_batched(
            || events.clone(),
            |events| {
                events
                    .into_iter()
                    .map(|e| catalog.flag(e).0)
                    .collect::<Vec<FlaggedEvent>>()
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

/// Flagged events of one batch, in time order.
fn flagged_batch() -> Vec<FlaggedEvent> {
    let limits = Limits::default();
    let catalog = catalog();
    batch_of(&SIM_LINES)
        .iter()
        .enumerate()
        .map(|(i, l)| catalog.flag(parse_service(l, i as u64 + 1, &limits)).0)
        .collect()
}

/// Rollups (`Rollups::record`): per event, find the service's open window and add the
/// event to its counters and latency histogram. Measured in steady state: one long-lived
/// `Rollups` with the default window and lateness, fed batch after batch with event time
/// moving on, and `drain_closed` after each batch as the pipeline does, so window
/// creation and emission are amortised as in production.
fn bench_rollup(c: &mut Criterion) {
    let cfg = RollupConfig::default();
    let mut events = flagged_batch();
    let batch_span_us = (BATCH * LINE_SPACING_MS * 1000) as i64;
    let mut g = c.benchmark_group("rollup");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("record", |b| {
        let mut rollups = Rollups::new(cfg.window, cfg.allowed_lateness);
        b.iter(|| {
            for e in &mut events {
                e.event.timestamp_us += batch_span_us;
                rollups.record(e);
            }
            black_box(rollups.drain_closed())
        });
    });
    g.finish();
}

/// The three together, line by line, as the processor's ingest does: parse, flag, record.
fn bench_ingest(c: &mut Criterion) {
    let limits = Limits::default();
    let catalog = catalog();
    let cfg = RollupConfig::default();
    let lines = batch_of(&SIM_LINES);
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("parse_flag_record", |b| {
        // The batch's timestamps repeat every iteration. Nothing is drained here, so their
        // windows stay open and every event counts into an existing window (window
        // creation and emission are in `rollup/record`).
        let mut rollups = Rollups::new(cfg.window, cfg.allowed_lateness);
        b.iter(|| {
            for (i, raw) in lines.iter().enumerate() {
                if let Ok(Record::Service(e)) = parse_line(raw, i as u64 + 1, NOW_US, &limits) {
                    let (flagged, _known) = catalog.flag(e);
                    rollups.record(&flagged);
                }
            }
        });
        black_box(rollups.open_windows());
    });
    g.finish();
}

criterion_group!(benches, bench_parse, bench_flag, bench_rollup, bench_ingest);
criterion_main!(benches);
