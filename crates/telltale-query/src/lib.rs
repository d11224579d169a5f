//! # telltale-query
//!
//! Ad-hoc SQL over the lake with DataFusion, and the output formats of `telltale query`.
//! At the reading end of the data flow, beside datafusion-cli, DuckDB and pyarrow:
//!
//! ```text
//! lake (hive-partitioned Parquet) ──▶ QueryEngine (listing tables events/rollups/probes/monitors) ──▶ format_batches ──▶ stdout
//! ```
//!
//! Only this crate's own binary, `telltale-query` (which `telltale query` runs), links
//! it: DataFusion is the heaviest dependency of the workspace, and the `telltale` binary,
//! the processor and their tests do without it (the processor's start-up reads rollup
//! history with the parquet crate, `telltale_lake::history`; `telltale loadtest` reads
//! its partition back the same way).
//!
//! # Partition values with escaped characters
//!
//! The writer percent-encodes partition values (`service=a%2Fb` for `a/b`, see
//! [`crate::layout`]). Checked against DataFusion 55 (tests below):
//!
//! - `object_store`'s local file system lists a directory named `service=a%2Fb` as the
//!   path segment `service=a%2Fb` (no double encoding of `%`) and maps it back to the same
//!   directory when reading;
//! - DataFusion's listing table percent-decodes partition values
//!   (`parse_partitions_for_path`), so `service` reads `a/b`;
//! - filters on a partition column are matched against the decoded value. A literal that
//!   needs no escaping (`service = 'checkout'`) becomes a listing prefix, so only that
//!   directory is listed; a literal that does need escaping (`'a/b'`) skips the prefix
//!   shortcut, lists the table and filters on the decoded values — still correct, a
//!   little slower, and only for such names.
//!
//! So the engine needs nothing of its own: no UDF, view or custom provider. A plain
//! `SessionContext` (as in `datafusion-cli`) behaves the same, which
//! `docs/lake-queries.sql` relies on.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;

use datafusion::error::DataFusionError;
use telltale_lake::LakeError;
use telltale_lake::layout::{DATE_COLUMN, PARQUET_EXT, Table};
use telltale_lake::schema::table_schema;

/// What can go wrong querying the lake.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Opening the lake's directories failed.
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// Planning or running a query failed.
    #[error("query, {context}: {source}")]
    Query {
        /// The statement or table concerned.
        context: String,
        /// The DataFusion error.
        source: Box<DataFusionError>,
    },
    /// Formatting results failed.
    #[error("formatting results as {format:?}: {source}")]
    Format {
        /// The output format.
        format: OutputFormat,
        /// The Arrow error.
        source: arrow::error::ArrowError,
    },
}

impl QueryError {
    fn query(context: impl Into<String>, source: DataFusionError) -> Self {
        Self::Query {
            context: context.into(),
            source: Box::new(source),
        }
    }
}

/// Result with [`QueryError`] as the default error.
pub type Result<T, E = QueryError> = std::result::Result<T, E>;

/// SQL over a lake directory: tables `events`, `rollups`, `probes` and `monitors`.
pub struct QueryEngine {
    ctx: SessionContext,
    data_dir: PathBuf,
}

impl fmt::Debug for QueryEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryEngine")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl QueryEngine {
    /// Registers the lake's tables under `data_dir`, creating their directories if
    /// missing so an empty lake answers with empty results rather than errors.
    ///
    /// Each table is a listing table over its hive directories with the schema of
    /// [`crate::schema`] (not inferred: an empty table still has columns) and partition
    /// columns `service`/`target` and `date`, both `Utf8`. Only `*.parquet` files are
    /// read, so in-flight temp files are never seen.
    pub async fn open(data_dir: &Path) -> Result<Self> {
        let ctx = SessionContext::new();
        for table in Table::ALL {
            let dir = data_dir.join(table.dir());
            std::fs::create_dir_all(&dir).map_err(|e| LakeError::io("create dir", &dir, e))?;
        }
        // Absolute, so the table URLs do not depend on a later change of directory.
        let root = data_dir
            .canonicalize()
            .map_err(|e| LakeError::io("resolve", data_dir, e))?;
        let invalid = |reason| {
            QueryError::Lake(LakeError::InvalidPath {
                path: root.display().to_string(),
                reason,
            })
        };
        let root_text = root
            .to_str()
            .ok_or_else(|| invalid("the lake path must be UTF-8"))?;
        if root_text.contains(['?', '*', '[']) {
            // DataFusion would read the path as a glob pattern.
            return Err(invalid("the lake path must not contain `?`, `*` or `[`"));
        }
        for table in Table::ALL {
            let dir = root.join(table.dir());
            let url_text = format!("{root_text}/{}/", table.dir());
            let ctx_err =
                |e| QueryError::query(format!("registering {table} at {}", dir.display()), e);
            let url = ListingTableUrl::parse(&url_text).map_err(ctx_err)?;
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(PARQUET_EXT)
                .with_table_partition_cols(vec![
                    (table.key_column().to_owned(), DataType::Utf8),
                    (DATE_COLUMN.to_owned(), DataType::Utf8),
                ]);
            let config = ListingTableConfig::new(url)
                .with_listing_options(options)
                .with_schema(table_schema(table));
            let provider = ListingTable::try_new(config).map_err(ctx_err)?;
            ctx.register_table(table.dir(), Arc::new(provider))
                .map_err(ctx_err)?;
        }
        Ok(Self {
            ctx,
            data_dir: root,
        })
    }

    /// Runs one SQL statement and collects its result.
    pub async fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let err = |e| QueryError::query(format!("running `{}`", sql.trim()), e);
        self.ctx
            .sql(sql)
            .await
            .map_err(err)?
            .collect()
            .await
            .map_err(err)
    }

    /// The DataFusion context, for callers that need more than [`Self::sql`].
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The lake root, absolute.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

/// How query results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// An aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object per line.
    Json,
}

/// Query results as text in `format`. Timestamps with a time zone print as RFC 3339
/// (`2025-04-30T12:00:00Z`) in every format.
pub fn format_batches(batches: &[RecordBatch], format: OutputFormat) -> Result<String> {
    let arrow_err = |source| QueryError::Format { format, source };
    match format {
        OutputFormat::Table => {
            let text = arrow::util::pretty::pretty_format_batches(batches).map_err(arrow_err)?;
            Ok(format!("{text}\n"))
        }
        OutputFormat::Csv => {
            let mut out = Vec::new();
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            for batch in batches {
                writer
                    .write(&flatten_nested(batch).map_err(arrow_err)?)
                    .map_err(arrow_err)?;
            }
            drop(writer);
            Ok(String::from_utf8_lossy(&out).into_owned())
        }
        OutputFormat::Json => {
            let mut out = Vec::new();
            // Explicit nulls: every line has every column, which `jq` users expect.
            let mut writer = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::LineDelimited>(&mut out);
            writer
                .write_batches(&batches.iter().collect::<Vec<_>>())
                .map_err(arrow_err)?;
            writer.finish().map_err(arrow_err)?;
            drop(writer);
            Ok(String::from_utf8_lossy(&out).into_owned())
        }
    }
}

/// CSV has no nested values: list and struct columns become their display text
/// (`[{ttl: 1, addr: 192.0.2.1, ...}]`).
fn flatten_nested(batch: &RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    let nested = |t: &DataType| {
        matches!(
            t,
            DataType::List(_) | DataType::LargeList(_) | DataType::Struct(_) | DataType::Map(..)
        )
    };
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| nested(f.data_type()))
    {
        return Ok(batch.clone());
    }
    let options = FormatOptions::default();
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if nested(field.data_type()) {
            let fmt = ArrayFormatter::try_new(column.as_ref(), &options)?;
            let text: StringArray = (0..column.len())
                .map(|i| column.is_valid(i).then(|| fmt.value(i).to_string()))
                .collect();
            fields.push(Field::new(field.name(), DataType::Utf8, true));
            columns.push(Arc::new(text));
        } else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use std::time::Instant;
    use telltale_lake::fixtures::{DAY0, event, probe, rollup};
    use telltale_lake::history::rollup_minutes_since;
    use telltale_lake::store::LocalDisk;
    use telltale_lake::writer::{LakeWriter, WriterOptions};

    const DAY: i64 = 86_400_000_000;

    /// A lake of services `checkout`, `search`, `a/b`, `x y:z` over two days, rollups and
    /// probes; one file per partition.
    fn write_lake(root: &Path) {
        let mut w =
            LakeWriter::new(Arc::new(LocalDisk::new(root)), WriterOptions::default()).unwrap();
        let mut events = Vec::new();
        for (s, service) in ["checkout", "search", "a/b", "x y:z"]
            .into_iter()
            .enumerate()
        {
            for day in 0..2 {
                for i in 0..10 {
                    events.push(event(
                        service,
                        DAY0 + day * DAY + i * 1_000_000,
                        (s * 100 + i as usize) as f64,
                    ));
                }
            }
        }
        w.append_events(events, Instant::now()).unwrap();
        w.append_rollups(
            vec![
                rollup("checkout", DAY0, 10),
                rollup("search", DAY0 + 60_000_000, 20),
            ],
            Instant::now(),
        )
        .unwrap();
        w.append_probes(vec![probe("10.0.0.1:443", DAY0, 3)], Instant::now())
            .unwrap();
        w.flush_all().unwrap();
    }

    fn strings(batches: &[RecordBatch], col: usize) -> Vec<String> {
        batches
            .iter()
            .flat_map(|b| {
                let a = arrow::compute::cast(b.column(col), &DataType::Utf8).unwrap();
                let a = a.as_string::<i32>();
                (0..a.len())
                    .map(|i| a.value(i).to_owned())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[tokio::test]
    async fn empty_lake_has_tables_with_columns() {
        let dir = tempfile::tempdir().unwrap();
        let engine = QueryEngine::open(&dir.path().join("new")).await.unwrap();
        let batches = engine
            .sql("SELECT count(*) AS n FROM events")
            .await
            .unwrap();
        assert_eq!(strings(&batches, 0), ["0"]);
        let batches = engine.sql("SELECT * FROM probes").await.unwrap();
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);
        assert!(engine.data_dir().join("rollups").is_dir());
        let batches = engine
            .sql("SELECT monitor_id, up FROM monitors")
            .await
            .unwrap();
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);
    }

    /// The `monitors` table: one row per check result, the partition columns back.
    #[tokio::test]
    async fn monitor_results_read_back_by_monitor_id() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LakeWriter::new(
            Arc::new(LocalDisk::new(dir.path())),
            WriterOptions::default(),
        )
        .unwrap();
        let checks = vec![
            telltale_lake::fixtures::check("m1", DAY0, Some(200)),
            telltale_lake::fixtures::check("m1", DAY0 + 1, None),
        ];
        w.append_checks(checks, Instant::now()).unwrap();
        w.flush_all().unwrap();
        let engine = QueryEngine::open(dir.path()).await.unwrap();
        let batches = engine
            .sql("SELECT monitor_id, date, status_code, error, up FROM monitors ORDER BY timestamp")
            .await
            .unwrap();
        assert_eq!(strings(&batches, 0), ["m1", "m1"]);
        assert_eq!(strings(&batches, 1), ["2025-04-30", "2025-04-30"]);
        assert_eq!(strings(&batches, 3), ["", "connect_refused"]);
        assert_eq!(strings(&batches, 4), ["true", "false"]);
    }

    #[tokio::test]
    async fn temp_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        write_lake(dir.path());
        let part = dir.path().join("events/service=checkout/date=2025-04-30");
        std::fs::write(part.join(".tmp-deadbeef"), b"partial parquet").unwrap();
        let engine = QueryEngine::open(dir.path()).await.unwrap();
        let batches = engine
            .sql("SELECT count(*) FROM events WHERE service = 'checkout'")
            .await
            .unwrap();
        assert_eq!(strings(&batches, 0), ["20"]);
    }

    #[tokio::test]
    async fn partition_values_are_decoded() {
        let dir = tempfile::tempdir().unwrap();
        write_lake(dir.path());
        // `%` itself (would show double encoding) and non-ASCII (kept as is on disk).
        let mut w = LakeWriter::new(
            Arc::new(LocalDisk::new(dir.path())),
            WriterOptions::default(),
        )
        .unwrap();
        let extra = vec![event("50%", DAY0, 1.0), event("café", DAY0, 1.0)];
        w.append_events(extra, Instant::now()).unwrap();
        w.flush_all().unwrap();
        for name in [
            "service=a%2Fb",
            "service=x y%3Az",
            "service=50%25",
            "service=café",
        ] {
            assert!(dir.path().join("events").join(name).is_dir(), "{name}");
        }
        let engine = QueryEngine::open(dir.path()).await.unwrap();
        let batches = engine
            .sql("SELECT DISTINCT service FROM events ORDER BY service")
            .await
            .unwrap();
        assert_eq!(
            strings(&batches, 0),
            ["50%", "a/b", "café", "checkout", "search", "x y:z"]
        );
        for (service, want) in [
            ("a/b", "20"),
            ("x y:z", "20"),
            ("50%", "1"),
            ("café", "1"),
            ("a%2Fb", "0"),
            ("50%25", "0"),
        ] {
            let sql = format!("SELECT count(*) FROM events WHERE service = '{service}'");
            assert_eq!(
                strings(&engine.sql(&sql).await.unwrap(), 0),
                [want],
                "{service}"
            );
        }
        let batches = engine
            .sql("SELECT target, hop_count FROM probes")
            .await
            .unwrap();
        assert_eq!(strings(&batches, 0), ["10.0.0.1:443"]);
    }

    /// The plan text of `EXPLAIN [VERBOSE]` rows whose type is `plan_type`.
    fn plan(batches: &[RecordBatch], plan_type: &str) -> String {
        let kinds = strings(batches, 0);
        let plans = strings(batches, 1);
        kinds
            .iter()
            .zip(plans)
            .filter(|(k, _)| k.as_str() == plan_type)
            .map(|(_, p)| p)
            .collect()
    }

    #[tokio::test]
    async fn partition_filters_prune_files() {
        let dir = tempfile::tempdir().unwrap();
        write_lake(dir.path());
        let engine = QueryEngine::open(dir.path()).await.unwrap();
        let query =
            "SELECT count(*) FROM events WHERE service = 'checkout' AND date = '2025-04-30'";

        // DataFusion answers this count from the footers of the files it kept, so the final
        // plan is a constant: 10 is exactly checkout's rows on that day (of 80 in total).
        let final_plan = plan(
            &engine.sql(&format!("EXPLAIN {query}")).await.unwrap(),
            "physical_plan",
        );
        assert!(final_plan.contains("10 as count(*)"), "{final_plan}");

        // The scan it planned first lists only that partition's file.
        let verbose = engine
            .sql(&format!("EXPLAIN VERBOSE {query}"))
            .await
            .unwrap();
        let scan = plan(&verbose, "initial_physical_plan");
        assert!(scan.contains("file_groups="), "{scan}");
        assert!(
            scan.contains("service=checkout/date=2025-04-30/part-"),
            "{scan}"
        );
        assert_eq!(scan.matches(".parquet").count(), 1, "{scan}");

        // A query that must read rows (an average has no footer statistic) scans only that
        // file too.
        let sql = "EXPLAIN SELECT avg(latency_ms) FROM events WHERE service = 'checkout' AND date = '2025-04-30'";
        let scan = plan(&engine.sql(sql).await.unwrap(), "physical_plan");
        assert!(
            scan.contains("service=checkout/date=2025-04-30/part-"),
            "{scan}"
        );
        assert_eq!(scan.matches(".parquet").count(), 1, "{scan}");

        // An escaped name is pruned too (on the decoded value, after listing).
        let sql = "EXPLAIN SELECT avg(latency_ms) FROM events WHERE service = 'a/b' AND date = '2025-04-30'";
        let scan = plan(&engine.sql(sql).await.unwrap(), "physical_plan");
        assert!(
            scan.contains("service=a%2Fb/date=2025-04-30/part-"),
            "{scan}"
        );
        assert_eq!(scan.matches(".parquet").count(), 1, "{scan}");
    }

    #[tokio::test]
    async fn output_formats() {
        let dir = tempfile::tempdir().unwrap();
        write_lake(dir.path());
        let engine = QueryEngine::open(dir.path()).await.unwrap();
        let batches = engine
            .sql(
                "SELECT service, date, timestamp, latency_ms, error, team FROM events \
                 WHERE service IN ('checkout', 'a/b') AND latency_ms IN (0, 201) AND date = '2025-04-30' \
                 ORDER BY service",
            )
            .await
            .unwrap();
        insta::assert_snapshot!(in_every_format(&batches));
    }

    /// `batches` printed in each output format, one after the other.
    fn in_every_format(batches: &[RecordBatch]) -> String {
        let mut text = String::new();
        for format in [OutputFormat::Table, OutputFormat::Csv, OutputFormat::Json] {
            text.push_str(&format!(
                "== {format:?}\n{}",
                format_batches(batches, format).unwrap()
            ));
        }
        text
    }

    #[tokio::test]
    async fn nested_columns_print_in_every_format() {
        let dir = tempfile::tempdir().unwrap();
        write_lake(dir.path());
        let engine = QueryEngine::open(dir.path()).await.unwrap();
        let batches = engine
            .sql("SELECT target, route_hash, hops FROM probes")
            .await
            .unwrap();
        insta::assert_snapshot!(in_every_format(&batches));
    }

    /// A probes partition holding a file from before the tracer fields (six columns,
    /// four hop fields) beside one of today's: both are read, the old one's new columns
    /// and hop fields as nulls (schema evolution, top-level and nested).
    #[tokio::test]
    async fn an_older_probes_file_beside_a_new_one_reads_with_nulls() {
        use arrow::array::{ListArray, StructArray};
        use arrow::datatypes::Fields;
        let dir = tempfile::tempdir().unwrap();
        let mut newer = probe("db.example.com", DAY0 + 1_000_000, 3);
        newer.agent = Some("fra-1".into());
        newer.hops[0].city = Some("Berlin".into());
        let mut w = LakeWriter::new(
            Arc::new(LocalDisk::new(dir.path())),
            WriterOptions::default(),
        )
        .unwrap();
        w.append_probes(vec![newer], Instant::now()).unwrap();
        w.flush_all().unwrap();

        // The old file: today's first six columns, hops with their first four fields.
        let new = telltale_lake::schema::probes_batch(&[probe("db.example.com", DAY0, 3)]).unwrap();
        let hops = new.column(5).as_list::<i32>();
        let hop = hops.values().as_struct();
        let old_fields: Fields = hop.fields().iter().take(4).cloned().collect();
        let old_hops =
            StructArray::try_new(old_fields.clone(), hop.columns()[..4].to_vec(), None).unwrap();
        let item = Arc::new(Field::new("item", DataType::Struct(old_fields), false));
        let list = ListArray::try_new(
            item.clone(),
            hops.offsets().clone(),
            Arc::new(old_hops),
            None,
        )
        .unwrap();
        let mut fields: Vec<Field> = new.schema().fields()[..6]
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields[5] = Field::new("hops", DataType::List(item), false);
        let mut columns: Vec<ArrayRef> = new.columns()[..6].to_vec();
        columns[5] = Arc::new(list);
        let old = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let part = dir
            .path()
            .join("probes/target=db.example.com/date=2025-04-30");
        let file = std::fs::File::create(part.join("old.parquet")).unwrap();
        let mut writer =
            datafusion::parquet::arrow::ArrowWriter::try_new(file, old.schema(), None).unwrap();
        writer.write(&old).unwrap();
        writer.close().unwrap();

        let engine = QueryEngine::open(dir.path()).await.unwrap();
        let batches = engine
            .sql("SELECT agent, hop_count, hops FROM probes ORDER BY timestamp")
            .await
            .unwrap();
        let text = format_batches(&batches, OutputFormat::Json).unwrap();
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 2, "{text}");
        let first_hop = |row: &serde_json::Value| row["hops"][0].clone();
        assert_eq!(
            rows[0]["agent"],
            serde_json::Value::Null,
            "old file: {text}"
        );
        assert_eq!(
            first_hop(&rows[0])["addr"],
            "192.0.2.1",
            "old values kept: {text}"
        );
        assert_eq!(
            first_hop(&rows[0])["city"],
            serde_json::Value::Null,
            "{text}"
        );
        assert_eq!(rows[1]["agent"], "fra-1", "new file: {text}");
        assert_eq!(first_hop(&rows[1])["city"], "Berlin", "{text}");
    }

    #[tokio::test]
    async fn rollups_are_queryable() {
        let dir = tempfile::tempdir().unwrap();
        write_lake(dir.path());
        let engine = QueryEngine::open(dir.path()).await.unwrap();
        let batches = engine
            .sql("SELECT service, sum(count) AS n, max(error_rate) AS r FROM rollups GROUP BY service ORDER BY service")
            .await
            .unwrap();
        assert_eq!(strings(&batches, 0), ["checkout", "search"]);
        assert_eq!(strings(&batches, 1), ["10", "20"]);
        assert!(batches[0].column(2).is_valid(0));
    }

    /// Runs `docs/lake-queries.sql` the way datafusion-cli would: a plain session, schemas
    /// inferred from the files, partition columns from `PARTITIONED BY`.
    #[tokio::test]
    async fn lake_queries_sql_runs_in_a_plain_session() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        write_lake(&root);
        // The things a real lake also has: a compacted partition (extra file metadata),
        // several files per partition, an in-flight temp file, dead letters.
        let store = LocalDisk::new(&root);
        let mut w = LakeWriter::new(Arc::new(store.clone()), WriterOptions::default()).unwrap();
        w.append_events(
            vec![event("checkout", DAY0 + 59_000_000, 7.0)],
            Instant::now(),
        )
        .unwrap();
        w.append_events(
            vec![event("search", DAY0 + 30_000_000, 7.0)],
            Instant::now(),
        )
        .unwrap();
        w.append_dead_letters(telltale_lake::fixtures::mixed_letters(), Instant::now())
            .unwrap();
        let checks = vec![
            telltale_lake::fixtures::check("m1", DAY0, Some(200)),
            telltale_lake::fixtures::check("m1", DAY0 + 60_000_000, None),
        ];
        w.append_checks(checks, Instant::now()).unwrap();
        w.flush_all().unwrap();
        telltale_lake::compact::compact_partition(
            &store,
            Table::Events,
            "search",
            "2025-04-30",
            &Default::default(),
        )
        .unwrap();
        std::fs::write(
            root.join("events/service=checkout/date=2025-04-30/.tmp-0123abcd"),
            b"PAR1 partial",
        )
        .unwrap();

        let sql = include_str!("../../../docs/lake-queries.sql");
        let data_prefix = format!("'{}/", root.display());
        let statements: Vec<String> = sql
            .split(';')
            .map(|s| {
                s.lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.replace("'data/", &data_prefix))
            // The file asks for today's partition of a real catalogue service; this lake
            // holds a fixed day of `checkout`.
            .map(|s| {
                s.replace("CAST(current_date() AS VARCHAR)", "'2025-04-30'")
                    .replace("'checkout-api'", "'checkout'")
            })
            .collect();
        // Column names of each SELECT, in file order.
        let expected: [&[&str]; 5] = [
            &["service", "requests", "p95_ms"],
            &["team", "requests", "errors", "error_rate"],
            &["service", "endpoint", "requests", "avg_ms", "p99_ms"],
            &["minute", "requests", "errors", "max_ms"],
            &["monitor_id", "checks", "availability", "p95_ms"],
        ];
        let ctx = SessionContext::new();
        let mut selects = Vec::new();
        for stmt in &statements {
            let batches = ctx
                .sql(stmt)
                .await
                .unwrap_or_else(|e| panic!("{stmt}: {e}"))
                .collect()
                .await
                .unwrap();
            if stmt.trim_start().starts_with("SELECT") {
                selects.push(batches);
            }
        }
        assert_eq!(statements.len(), 3 + expected.len());
        assert_eq!(selects.len(), expected.len());
        for (batches, columns) in selects.iter().zip(expected) {
            let schema = batches[0].schema();
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            assert_eq!(names, columns);
            assert!(
                batches.iter().map(RecordBatch::num_rows).sum::<usize>() > 0,
                "{columns:?}"
            );
        }
        // Decoded names, and every event exactly once (no temp file, no compaction inputs).
        let p95 = &selects[0];
        let mut services = strings(p95, 0);
        services.sort();
        assert_eq!(services, ["a/b", "checkout", "search", "x y:z"]);
        let total: i64 = p95
            .iter()
            .map(|b| {
                arrow::compute::sum(b.column(1).as_primitive::<arrow::datatypes::Int64Type>())
                    .unwrap()
            })
            .sum();
        assert_eq!(total, 4 * 20 + 2);
        // The pruned query: checkout's first day, 10 events + 1 in minute 0.
        let per_minute = &selects[3];
        assert_eq!(strings(per_minute, 1), ["11"]);
        assert!(
            strings(per_minute, 0)[0].starts_with("2025-04-30T00:00:00"),
            "{:?}",
            strings(per_minute, 0)
        );
        // The monitor's two checks, one up.
        let monitors = &selects[4];
        assert_eq!(
            (
                strings(monitors, 0),
                strings(monitors, 1),
                strings(monitors, 2)
            ),
            (
                vec!["m1".to_owned()],
                vec!["2".to_owned()],
                vec!["0.5".to_owned()]
            )
        );
    }

    /// `telltale_lake::history` (the parquet crate, for the processor's start-up) gives what
    /// the SQL it replaced gives in DataFusion, on a lake with escaped service names, two
    /// days and several files per partition.
    #[tokio::test]
    async fn rollup_history_equals_the_sql_it_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDisk::new(dir.path());
        let mut w = LakeWriter::new(Arc::new(store.clone()), WriterOptions::default()).unwrap();
        for (k, svc) in ["a/b", "x y:z", "search"].into_iter().enumerate() {
            let rows: Vec<_> = (0..40)
                .map(|i| {
                    let mut r = rollup(
                        svc,
                        DAY0 + i * 10_000_000 + k as i64 * 86_400_000_000,
                        3 + i as u64,
                    );
                    r.window_seconds = 10;
                    r
                })
                .collect();
            w.append_rollups(rows, Instant::now()).unwrap();
            w.flush_all().unwrap();
        }
        let since = DAY0 + 30_000_000;
        let since_date = telltale_core::event::utc_date(since);
        let engine = QueryEngine::open(dir.path()).await.unwrap();
        let sql = format!(
            "SELECT service, max(team), date_bin(INTERVAL '1 minute', window_start) AS minute, \
                    CAST(sum(count) AS BIGINT), CAST(sum(errors) AS BIGINT), CAST(sum(slow) AS BIGINT) \
             FROM rollups WHERE date >= '{since_date}' AND window_start >= to_timestamp_micros({since}) \
             GROUP BY service, minute ORDER BY minute, service"
        );
        let batches = engine.sql(&sql).await.unwrap();
        let mut from_sql = Vec::new();
        for b in &batches {
            let text = |c| {
                let a = arrow::compute::cast(b.column(c), &DataType::Utf8).unwrap();
                (0..a.len())
                    .map(|i| a.as_string::<i32>().value(i).to_owned())
                    .collect::<Vec<_>>()
            };
            let (svc, team, minute) = (text(0), text(1), text(2));
            let int = |c| {
                b.column(c)
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .clone()
            };
            let (count, errors, slow) = (int(3), int(4), int(5));
            for i in 0..b.num_rows() {
                from_sql.push((
                    svc[i].clone(),
                    team[i].clone(),
                    minute[i].clone(),
                    count.value(i) as u64,
                    errors.value(i) as u64,
                    slow.value(i) as u64,
                ));
            }
        }
        let from_parquet: Vec<_> = rollup_minutes_since(&store, since)
            .unwrap()
            .into_iter()
            .map(|r| {
                let minute = chrono::DateTime::from_timestamp_micros(r.window_start_us).unwrap();
                (
                    r.service,
                    r.team,
                    minute.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    r.count,
                    r.errors,
                    r.slow,
                )
            })
            .collect();
        assert!(from_sql.len() > 20, "{from_sql:?}");
        assert_eq!(from_parquet, from_sql);
    }
}
