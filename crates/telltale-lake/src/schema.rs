//! The Arrow schemas of the four tables and the conversion of core rows to record batches.
//!
//! Partition columns (`service`/`target`/`monitor_id`, `date`) are not stored in the files: they are
//! the directory names, and readers (DataFusion, datafusion-cli, DuckDB, Spark) add them
//! back. Storing them as well would make schema inference see them twice.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Float64Builder, Int32Array, Int64Array, ListArray,
    ListBuilder, RecordBatch, StringArray, StringBuilder, StructArray, TimestampMicrosecondArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use telltale_core::{FlaggedEvent, HttpCheckEvent, ProbeEvent, ProbeHop, RollupRow};

use crate::error::{LakeError, Result};
use crate::layout::Table;

/// Time zone of every timestamp column: readers then show instants, not local times.
pub const TIMESTAMP_TZ: &str = "UTC";

fn timestamp(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some(TIMESTAMP_TZ.into())),
        false,
    )
}

/// The hop struct: the first four fields are the original ones; the rest were added (all
/// nullable) with the real tracer, and [`conform`] fills them with nulls in older files.
fn hop_fields() -> Fields {
    let text = |name| Field::new(name, DataType::Utf8, true);
    let f64_col = |name| Field::new(name, DataType::Float64, true);
    let i64_col = |name| Field::new(name, DataType::Int64, true);
    Fields::from(vec![
        Field::new("ttl", DataType::Int32, false),
        text("addr"),
        f64_col("rtt_ms"),
        Field::new("loss_pct", DataType::Float64, false),
        Field::new(
            "addrs",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, false))),
            true,
        ),
        text("name"),
        i64_col("sent"),
        i64_col("received"),
        f64_col("last_ms"),
        f64_col("best_ms"),
        f64_col("worst_ms"),
        f64_col("jitter_ms"),
        text("scope"),
        i64_col("asn"),
        text("as_org"),
        text("city"),
        text("country"),
        f64_col("latitude"),
        f64_col("longitude"),
    ])
}

fn hop_item_field() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Struct(hop_fields()), false))
}

static EVENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        timestamp("timestamp"),
        Field::new("status_code", DataType::Int32, false),
        Field::new("latency_ms", DataType::Float64, false),
        Field::new("error", DataType::Boolean, true),
        Field::new("is_error", DataType::Boolean, false),
        Field::new("is_slow", DataType::Boolean, false),
        Field::new("team", DataType::Utf8, false),
        Field::new("endpoint", DataType::Utf8, true),
        Field::new("method", DataType::Utf8, true),
        Field::new("region", DataType::Utf8, true),
        Field::new("instance", DataType::Utf8, true),
        Field::new("trace_id", DataType::Utf8, true),
        Field::new("attributes", DataType::Utf8, true),
    ]))
});

static ROLLUPS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let f64_col = |name| Field::new(name, DataType::Float64, false);
    Arc::new(Schema::new(vec![
        timestamp("window_start"),
        Field::new("window_seconds", DataType::Int32, false),
        Field::new("team", DataType::Utf8, false),
        Field::new("count", DataType::Int64, false),
        Field::new("errors", DataType::Int64, false),
        Field::new("slow", DataType::Int64, false),
        f64_col("error_rate"),
        f64_col("slow_rate"),
        f64_col("latency_avg_ms"),
        f64_col("latency_p50_ms"),
        f64_col("latency_p95_ms"),
        f64_col("latency_p99_ms"),
        f64_col("latency_max_ms"),
    ]))
});

static PROBES: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        timestamp("timestamp"),
        Field::new("rtt_ms", DataType::Float64, true),
        Field::new("loss_pct", DataType::Float64, false),
        Field::new("hop_count", DataType::Int32, false),
        Field::new("route_hash", DataType::Utf8, false),
        Field::new("hops", DataType::List(hop_item_field()), false),
        // Added with the real tracer (all nullable; `conform` fills older files).
        Field::new("agent", DataType::Utf8, true),
        Field::new("protocol", DataType::Utf8, true),
        Field::new("resolved_addr", DataType::Utf8, true),
        Field::new("previous_resolved_addr", DataType::Utf8, true),
        Field::new("dns_ms", DataType::Float64, true),
        Field::new("dns_error", DataType::Utf8, true),
        Field::new("sent", DataType::Int64, true),
        Field::new("received", DataType::Int64, true),
        Field::new("rtt_min_ms", DataType::Float64, true),
        Field::new("rtt_max_ms", DataType::Float64, true),
        Field::new("rtt_median_ms", DataType::Float64, true),
        Field::new("rtt_p95_ms", DataType::Float64, true),
        Field::new("rtt_stddev_ms", DataType::Float64, true),
        Field::new("jitter_ms", DataType::Float64, true),
        Field::new("previous_route_hash", DataType::Utf8, true),
        Field::new(
            "rtt_samples_ms",
            DataType::List(Arc::new(Field::new("item", DataType::Float64, false))),
            true,
        ),
    ]))
});

static MONITORS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let ms = |name| Field::new(name, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        timestamp("timestamp"),
        Field::new("url", DataType::Utf8, false),
        Field::new("every_s", DataType::Int64, true),
        Field::new("status_code", DataType::Int32, true),
        Field::new("duration_ms", DataType::Float64, false),
        ms("dns_ms"),
        ms("connect_ms"),
        ms("tls_ms"),
        ms("ttfb_ms"),
        ms("transfer_ms"),
        Field::new("redirects", DataType::Int64, false),
        Field::new("body_bytes", DataType::Int64, true),
        Field::new("cert_expiry_days", DataType::Float64, true),
        Field::new("final_url", DataType::Utf8, true),
        Field::new("error", DataType::Utf8, true),
        Field::new("error_message", DataType::Utf8, true),
        Field::new("up", DataType::Boolean, false),
    ]))
});

/// Schema of the `events` files (without the `service`, `date` partition columns).
pub fn events_schema() -> SchemaRef {
    Arc::clone(&EVENTS)
}

/// Schema of the `rollups` files (without the `service`, `date` partition columns).
pub fn rollups_schema() -> SchemaRef {
    Arc::clone(&ROLLUPS)
}

/// Schema of the `probes` files (without the `target`, `date` partition columns).
pub fn probes_schema() -> SchemaRef {
    Arc::clone(&PROBES)
}

/// Schema of the `monitors` files (without the `monitor_id`, `date` partition columns).
pub fn monitors_schema() -> SchemaRef {
    Arc::clone(&MONITORS)
}

/// Schema of a table's files.
pub fn table_schema(table: Table) -> SchemaRef {
    match table {
        Table::Events => events_schema(),
        Table::Rollups => rollups_schema(),
        Table::Probes => probes_schema(),
        Table::Monitors => monitors_schema(),
    }
}

/// Indices of `rows` in ascending order of `key` (stable, so equal times keep arrival order).
fn order_by<T>(rows: &[T], key: impl Fn(&T) -> i64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..rows.len()).collect();
    idx.sort_by_key(|&i| key(&rows[i]));
    idx
}

fn ts_array(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone(TIMESTAMP_TZ))
}

fn batch(table: Table, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    RecordBatch::try_new(table_schema(table), columns)
        .map_err(|e| LakeError::arrow(format!("building a {table} batch"), e))
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// An `events` batch of `rows`, sorted by timestamp. All rows' services are dropped (the
/// service is the partition directory), so callers pass one partition's rows.
pub fn events_batch(rows: &[FlaggedEvent]) -> Result<RecordBatch> {
    let order = order_by(rows, |r| r.event.timestamp_us);
    let rows: Vec<&FlaggedEvent> = order.into_iter().map(|i| &rows[i]).collect();
    let text = |f: fn(&FlaggedEvent) -> Option<&str>| -> ArrayRef {
        Arc::new(rows.iter().map(|r| f(r)).collect::<StringArray>())
    };
    batch(
        Table::Events,
        vec![
            ts_array(rows.iter().map(|r| r.event.timestamp_us).collect()),
            Arc::new(
                rows.iter()
                    .map(|r| i32::from(r.event.status_code))
                    .collect::<Int32Array>(),
            ),
            Arc::new(
                rows.iter()
                    .map(|r| r.event.latency_ms)
                    .collect::<Float64Array>(),
            ),
            Arc::new(rows.iter().map(|r| r.event.error).collect::<BooleanArray>()),
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.is_error))
                    .collect::<BooleanArray>(),
            ),
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.is_slow))
                    .collect::<BooleanArray>(),
            ),
            Arc::new(rows.iter().map(|r| Some(&*r.team)).collect::<StringArray>()),
            text(|r| r.event.endpoint.as_deref()),
            text(|r| r.event.method.as_deref()),
            text(|r| r.event.region.as_deref()),
            text(|r| r.event.instance.as_deref()),
            text(|r| r.event.trace_id.as_deref()),
            text(|r| r.event.attributes.as_deref()),
        ],
    )
}

/// One `events` batch of `batches` (each in the events schema), sorted by timestamp like
/// [`events_batch`]. Input in time order, the usual case, is only concatenated.
pub fn concat_events<'a>(
    batches: impl IntoIterator<Item = &'a RecordBatch>,
) -> Result<RecordBatch> {
    let all = arrow::compute::concat_batches(&events_schema(), batches)
        .map_err(|e| LakeError::arrow("concatenating events".to_owned(), e))?;
    let Some(ts) = all
        .column(0)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
    else {
        return Err(LakeError::arrow(
            "concatenating events".to_owned(),
            arrow::error::ArrowError::SchemaError("timestamp column is not µs".to_owned()),
        ));
    };
    if ts.values().is_sorted() {
        return Ok(all);
    }
    let ts = ts.values();
    let mut order: Vec<u32> = (0..all.num_rows() as u32).collect();
    // Stable, so equal times keep arrival order (as `order_by`).
    order.sort_by_key(|&i| ts[i as usize]);
    arrow::compute::take_record_batch(&all, &arrow::array::UInt32Array::from(order))
        .map_err(|e| LakeError::arrow("sorting events".to_owned(), e))
}

/// A `rollups` batch of `rows`, sorted by window start.
pub fn rollups_batch(rows: &[RollupRow]) -> Result<RecordBatch> {
    let order = order_by(rows, |r| r.window_start_us);
    let rows: Vec<&RollupRow> = order.into_iter().map(|i| &rows[i]).collect();
    let f64s = |f: fn(&RollupRow) -> f64| -> ArrayRef {
        Arc::new(rows.iter().map(|r| f(r)).collect::<Float64Array>())
    };
    let i64s = |f: fn(&RollupRow) -> u64| -> ArrayRef {
        Arc::new(
            rows.iter()
                .map(|r| saturating_i64(f(r)))
                .collect::<Int64Array>(),
        )
    };
    batch(
        Table::Rollups,
        vec![
            ts_array(rows.iter().map(|r| r.window_start_us).collect()),
            Arc::new(
                rows.iter()
                    .map(|r| i32::try_from(r.window_seconds).unwrap_or(i32::MAX))
                    .collect::<Int32Array>(),
            ),
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.team.as_str()))
                    .collect::<StringArray>(),
            ),
            i64s(|r| r.count),
            i64s(|r| r.errors),
            i64s(|r| r.slow),
            f64s(RollupRow::error_rate),
            f64s(RollupRow::slow_rate),
            f64s(|r| r.latency_avg_ms),
            f64s(|r| r.latency_p50_ms),
            f64s(|r| r.latency_p95_ms),
            f64s(|r| r.latency_p99_ms),
            f64s(|r| r.latency_max_ms),
        ],
    )
}

/// The `route_hash` column's text: 16 lowercase hex digits.
pub fn route_hash_hex(probe: &ProbeEvent) -> String {
    probe.route_hash_hex()
}

/// A `probes` batch of `rows`, sorted by timestamp.
pub fn probes_batch(rows: &[ProbeEvent]) -> Result<RecordBatch> {
    let order = order_by(rows, |r| r.timestamp_us);
    let rows: Vec<&ProbeEvent> = order.into_iter().map(|i| &rows[i]).collect();
    let hops: Vec<&ProbeHop> = rows.iter().flat_map(|r| r.hops.iter()).collect();
    let hop_text = |f: fn(&ProbeHop) -> Option<&str>| -> ArrayRef {
        Arc::new(hops.iter().map(|h| f(h)).collect::<StringArray>())
    };
    let hop_f64 = |f: fn(&ProbeHop) -> Option<f64>| -> ArrayRef {
        Arc::new(hops.iter().map(|h| f(h)).collect::<Float64Array>())
    };
    let hop_i64 = |f: fn(&ProbeHop) -> Option<i64>| -> ArrayRef {
        Arc::new(hops.iter().map(|h| f(h)).collect::<Int64Array>())
    };
    let mut addrs = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new(
        "item",
        DataType::Utf8,
        false,
    )));
    for h in &hops {
        if h.addrs.is_empty() {
            addrs.append_null();
        } else {
            addrs.append_value(h.addrs.iter().map(Some));
        }
    }
    let hop_columns: Vec<ArrayRef> = vec![
        Arc::new(
            hops.iter()
                .map(|h| i32::from(h.ttl))
                .collect::<Int32Array>(),
        ),
        hop_text(|h| h.addr.as_deref()),
        hop_f64(|h| h.rtt_ms),
        Arc::new(hops.iter().map(|h| h.loss_pct).collect::<Float64Array>()),
        Arc::new(addrs.finish()),
        hop_text(|h| h.name.as_deref()),
        hop_i64(|h| h.sent.map(i64::from)),
        hop_i64(|h| h.received.map(i64::from)),
        hop_f64(|h| h.last_ms),
        hop_f64(|h| h.best_ms),
        hop_f64(|h| h.worst_ms),
        hop_f64(|h| h.jitter_ms),
        hop_text(|h| h.scope.as_deref()),
        hop_i64(|h| h.asn.map(i64::from)),
        hop_text(|h| h.as_org.as_deref()),
        hop_text(|h| h.city.as_deref()),
        hop_text(|h| h.country.as_deref()),
        hop_f64(|h| h.latitude),
        hop_f64(|h| h.longitude),
    ];
    let hop_structs = StructArray::try_new(hop_fields(), hop_columns, None)
        .map_err(|e| LakeError::arrow("building probe hops", e))?;
    let hop_lists = ListArray::try_new(
        hop_item_field(),
        OffsetBuffer::from_lengths(rows.iter().map(|r| r.hops.len())),
        Arc::new(hop_structs),
        None,
    )
    .map_err(|e| LakeError::arrow("building probe hop lists", e))?;
    let text = |f: fn(&ProbeEvent) -> Option<&str>| -> ArrayRef {
        Arc::new(rows.iter().map(|r| f(r)).collect::<StringArray>())
    };
    let f64s = |f: fn(&ProbeEvent) -> Option<f64>| -> ArrayRef {
        Arc::new(rows.iter().map(|r| f(r)).collect::<Float64Array>())
    };
    let i64s = |f: fn(&ProbeEvent) -> Option<i64>| -> ArrayRef {
        Arc::new(rows.iter().map(|r| f(r)).collect::<Int64Array>())
    };
    let mut samples = ListBuilder::new(Float64Builder::new()).with_field(Arc::new(Field::new(
        "item",
        DataType::Float64,
        false,
    )));
    for r in &rows {
        if r.rtt_samples_ms.is_empty() {
            samples.append_null();
        } else {
            samples.append_value(r.rtt_samples_ms.iter().copied().map(Some));
        }
    }
    batch(
        Table::Probes,
        vec![
            ts_array(rows.iter().map(|r| r.timestamp_us).collect()),
            f64s(|r| r.rtt_ms),
            Arc::new(rows.iter().map(|r| r.loss_pct).collect::<Float64Array>()),
            Arc::new(
                rows.iter()
                    .map(|r| i32::from(r.hop_count))
                    .collect::<Int32Array>(),
            ),
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.route_hash_hex()))
                    .collect::<StringArray>(),
            ),
            Arc::new(hop_lists),
            text(|r| r.agent.as_deref()),
            text(|r| r.protocol.as_deref()),
            text(|r| r.resolved_addr.as_deref()),
            text(|r| r.previous_resolved_addr.as_deref()),
            f64s(|r| r.dns_ms),
            text(|r| r.dns_error.as_deref()),
            i64s(|r| r.sent.map(i64::from)),
            i64s(|r| r.received.map(i64::from)),
            f64s(|r| r.rtt_min_ms),
            f64s(|r| r.rtt_max_ms),
            f64s(|r| r.rtt_median_ms),
            f64s(|r| r.rtt_p95_ms),
            f64s(|r| r.rtt_stddev_ms),
            f64s(|r| r.jitter_ms),
            text(|r| r.previous_route_hash.as_deref()),
            Arc::new(samples.finish()),
        ],
    )
}

/// A `monitors` batch of check results, sorted by timestamp.
pub fn monitors_batch(rows: &[HttpCheckEvent]) -> Result<RecordBatch> {
    let order = order_by(rows, |r| r.timestamp_us);
    let rows: Vec<&HttpCheckEvent> = order.into_iter().map(|i| &rows[i]).collect();
    let text = |f: fn(&HttpCheckEvent) -> Option<&str>| -> ArrayRef {
        Arc::new(rows.iter().map(|r| f(r)).collect::<StringArray>())
    };
    let f64s = |f: fn(&HttpCheckEvent) -> Option<f64>| -> ArrayRef {
        Arc::new(rows.iter().map(|r| f(r)).collect::<Float64Array>())
    };
    let i64s = |f: fn(&HttpCheckEvent) -> Option<i64>| -> ArrayRef {
        Arc::new(rows.iter().map(|r| f(r)).collect::<Int64Array>())
    };
    batch(
        Table::Monitors,
        vec![
            ts_array(rows.iter().map(|r| r.timestamp_us).collect()),
            text(|r| Some(&r.url)),
            i64s(|r| r.every_s.map(saturating_i64)),
            Arc::new(
                rows.iter()
                    .map(|r| r.status_code.map(i32::from))
                    .collect::<Int32Array>(),
            ),
            f64s(|r| Some(r.duration_ms)),
            f64s(|r| r.dns_ms),
            f64s(|r| r.connect_ms),
            f64s(|r| r.tls_ms),
            f64s(|r| r.ttfb_ms),
            f64s(|r| r.transfer_ms),
            i64s(|r| Some(i64::from(r.redirects))),
            i64s(|r| r.body_bytes.map(saturating_i64)),
            f64s(|r| r.cert_expiry_days),
            text(|r| r.final_url.as_deref()),
            text(|r| r.error.as_deref()),
            text(|r| r.error_message.as_deref()),
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.is_up()))
                    .collect::<BooleanArray>(),
            ),
        ],
    )
}

/// `batch` (read from a file written by an older telltale) in the table's current schema:
/// columns and struct fields are matched by name, and the ones added since (all nullable)
/// are filled with nulls. Only additive changes conform; anything else is `None`.
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Option<RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return RecordBatch::try_new(schema.clone(), batch.columns().to_vec()).ok();
    }
    let columns = conform_fields(
        batch.schema().fields(),
        batch.columns(),
        schema.fields(),
        batch.num_rows(),
    )?;
    RecordBatch::try_new(schema.clone(), columns).ok()
}

fn conform_fields(
    have: &Fields,
    columns: &[ArrayRef],
    want: &Fields,
    len: usize,
) -> Option<Vec<ArrayRef>> {
    // Every column a file has must still be in the schema: dropping data is not additive.
    if have.iter().any(|h| want.find(h.name()).is_none()) {
        return None;
    }
    want.iter()
        .map(|w| match have.find(w.name()) {
            None => w
                .is_nullable()
                .then(|| arrow::array::new_null_array(w.data_type(), len)),
            Some((i, h)) => conform_array(&columns[i], h.data_type(), w.data_type()),
        })
        .collect()
}

fn conform_array(array: &ArrayRef, have: &DataType, want: &DataType) -> Option<ArrayRef> {
    if have == want {
        return Some(array.clone());
    }
    match (have, want) {
        (DataType::Struct(hf), DataType::Struct(wf)) => {
            let s = array.as_any().downcast_ref::<StructArray>()?;
            let columns = conform_fields(hf, s.columns(), wf, s.len())?;
            Some(Arc::new(
                StructArray::try_new(wf.clone(), columns, s.nulls().cloned()).ok()?,
            ))
        }
        (DataType::List(hi), DataType::List(wi)) => {
            let l = array.as_any().downcast_ref::<ListArray>()?;
            let values = conform_array(l.values(), hi.data_type(), wi.data_type())?;
            Some(Arc::new(
                ListArray::try_new(wi.clone(), l.offsets().clone(), values, l.nulls().cloned())
                    .ok()?,
            ))
        }
        _ => None,
    }
}

/// A schema as indented text, one field a line, for reviews and snapshots.
pub fn describe(schema: &Schema) -> String {
    fn field(out: &mut String, f: &Field, depth: usize) {
        let null = if f.is_nullable() { "" } else { " not null" };
        let ty = match f.data_type() {
            DataType::List(_) => "List".to_owned(),
            DataType::Struct(_) => "Struct".to_owned(),
            other => other.to_string(),
        };
        out.push_str(&format!("{}{}: {ty}{null}\n", "  ".repeat(depth), f.name()));
        match f.data_type() {
            DataType::List(item) => field(out, item, depth + 1),
            DataType::Struct(children) => children.iter().for_each(|c| field(out, c, depth + 1)),
            _ => {}
        }
    }
    let mut out = String::new();
    schema.fields().iter().for_each(|f| field(&mut out, f, 0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{DAY0, check, event, probe, rollup};
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int32Type, TimestampMicrosecondType};

    #[test]
    fn schemas_snapshot() {
        let text = Table::ALL
            .iter()
            .map(|t| format!("== {t}\n{}", describe(&table_schema(*t))))
            .collect::<String>();
        insta::assert_snapshot!(text);
    }

    #[test]
    fn monitor_results_are_sorted_and_typed() {
        let b = monitors_batch(&[check("m", DAY0 + 5, Some(200)), check("m", DAY0, None)]).unwrap();
        assert_eq!(b.schema(), monitors_schema());
        let ts = b.column(0).as_primitive::<TimestampMicrosecondType>();
        assert_eq!((ts.value(0), ts.value(1)), (DAY0, DAY0 + 5));
        let status = b
            .column_by_name("status_code")
            .unwrap()
            .as_primitive::<Int32Type>();
        assert!(status.is_null(0));
        assert_eq!(status.value(1), 200);
        let up = b.column_by_name("up").unwrap().as_boolean();
        assert!(!up.value(0) && up.value(1));
        let error = b.column_by_name("error").unwrap().as_string::<i32>();
        assert_eq!(error.value(0), "connect_refused");
        assert!(b.column_by_name("dns_ms").unwrap().is_null(0));
    }

    #[test]
    fn events_are_sorted_and_typed() {
        let rows = vec![
            event("a", DAY0 + 30, 300.0),
            event("a", DAY0 + 10, 1.0),
            event("a", DAY0 + 20, 950.0),
        ];
        let b = events_batch(&rows).unwrap();
        assert_eq!(b.schema(), events_schema());
        let ts = b.column(0).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.values(), &[DAY0 + 10, DAY0 + 20, DAY0 + 30]);
        let err = b.column(3).as_boolean();
        assert!(err.is_null(0) && err.value(1) && err.is_null(2));
        assert_eq!(
            b.column(1).as_primitive::<Int32Type>().values(),
            &[200, 503, 200]
        );
    }

    #[test]
    fn rollups_carry_rates() {
        let b = rollups_batch(&[rollup("a", DAY0 + 60, 8), rollup("a", DAY0, 4)]).unwrap();
        let rate = b
            .column_by_name("error_rate")
            .unwrap()
            .as_primitive::<arrow::datatypes::Float64Type>();
        assert_eq!(rate.values(), &[0.25, 0.25]);
        let count = b
            .column_by_name("count")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(count.values(), &[4, 8]);
    }

    #[test]
    fn probes_nest_hops_in_order() {
        let b = probes_batch(&[probe("t", DAY0 + 5, 3), probe("t", DAY0, 0)]).unwrap();
        let hops = b.column_by_name("hops").unwrap().as_list::<i32>();
        assert_eq!(hops.value_length(0), 0);
        assert_eq!(hops.value_length(1), 3);
        let second = hops.value(1);
        let second = second.as_struct();
        assert!(second.column(1).is_null(1), "hop 2 did not answer");
        let hash = b.column_by_name("route_hash").unwrap().as_string::<i32>();
        assert_eq!(hash.value(1), route_hash_hex(&probe("t", 0, 3)));
        assert_eq!(hash.value(1).len(), 16);
        let samples = b.column_by_name("rtt_samples_ms").unwrap().as_list::<i32>();
        assert!(samples.is_null(0) && samples.is_null(1), "none measured");
        let mut measured = probe("t", DAY0, 1);
        measured.rtt_samples_ms = vec![1.5, 2.5];
        let b = probes_batch(&[measured]).unwrap();
        let samples = b.column_by_name("rtt_samples_ms").unwrap().as_list::<i32>();
        let values = samples.value(0);
        let values = values.as_primitive::<arrow::datatypes::Float64Type>();
        assert_eq!(values.values(), &[1.5, 2.5]);
    }

    /// A probes file from before the tracer fields (the original four hop fields, six
    /// columns) conforms to today's schema with nulls, its values kept.
    #[test]
    fn an_older_probes_file_conforms_with_nulls() {
        let new = probes_batch(&[probe("t", DAY0, 3)]).unwrap();
        let hops = new.column(5).as_list::<i32>();
        let hop_struct = hops.values().as_struct();
        let old_hop_fields: Fields = hop_fields().iter().take(4).cloned().collect();
        let old_hops = StructArray::try_new(
            old_hop_fields.clone(),
            hop_struct.columns()[..4].to_vec(),
            None,
        )
        .unwrap();
        let old_item = Arc::new(Field::new("item", DataType::Struct(old_hop_fields), false));
        let old_list = ListArray::try_new(
            old_item.clone(),
            hops.offsets().clone(),
            Arc::new(old_hops),
            None,
        )
        .unwrap();
        let mut old_fields: Vec<Field> = probes_schema()
            .fields()
            .iter()
            .take(6)
            .map(|f| f.as_ref().clone())
            .collect();
        old_fields[5] = Field::new("hops", DataType::List(old_item), false);
        let mut old_columns = new.columns()[..6].to_vec();
        old_columns[5] = Arc::new(old_list);
        let old = RecordBatch::try_new(Arc::new(Schema::new(old_fields)), old_columns).unwrap();

        let conformed = conform(&old, &probes_schema()).expect("additive change conforms");
        assert_eq!(conformed.schema(), probes_schema());
        assert!(conformed.column_by_name("agent").unwrap().is_null(0));
        let hops = conformed.column(5).as_list::<i32>();
        let first = hops.value(0);
        let first = first.as_struct();
        assert_eq!(
            first
                .column_by_name("addr")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "192.0.2.1"
        );
        assert!(first.column_by_name("city").unwrap().is_null(0));
        // A column the schema no longer has does not conform.
        assert!(conform(&new, &rollups_schema()).is_none());
    }
}
