//! Encoding record batches to Parquet bytes and back, shared by the writer and compaction.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use std::sync::Arc;

use bytes::Bytes;

use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowColumnWriter, compute_leaves};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::error::{LakeError, Result};

/// Metadata key naming the crate version that wrote a file.
pub const WRITER_KEY: &str = "telltale.writer";

/// Metadata key listing (as a JSON array) the file names a compacted file replaces.
pub const COMPACTED_FROM_KEY: &str = "telltale.compacted_from";

/// The version written under [`WRITER_KEY`].
pub const WRITER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Events columns written without min/max statistics (see [`EncodeOptions`]).
pub const UNPRUNABLE_TEXT_COLUMNS: [&str; 6] = [
    "endpoint",
    "method",
    "region",
    "instance",
    "trace_id",
    "attributes",
];

/// How Parquet files are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// zstd level, 1–22.
    pub zstd_level: i32,
    /// Most rows in one row group (at least 1).
    pub row_group_rows: usize,
}

impl EncodeOptions {
    /// Checks the values before any data depends on them.
    pub fn validate(&self) -> Result<()> {
        ZstdLevel::try_new(self.zstd_level).map_err(|e| LakeError::InvalidOption {
            option: "zstd_level",
            reason: e.to_string(),
        })?;
        if self.row_group_rows == 0 {
            return Err(LakeError::InvalidOption {
                option: "row_group_rows",
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    fn properties(&self, extra: Vec<KeyValue>) -> Result<WriterProperties> {
        self.validate()?;
        let level = ZstdLevel::try_new(self.zstd_level).map_err(|e| LakeError::InvalidOption {
            option: "zstd_level",
            reason: e.to_string(),
        })?;
        let mut kv = vec![KeyValue::new(
            WRITER_KEY.to_owned(),
            WRITER_VERSION.to_owned(),
        )];
        kv.extend(extra);
        let b = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            // Page-level min/max lets readers skip pages, not just row groups, on time ranges.
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(self.row_group_rows))
            // Every file is sorted by its first column (timestamp / window_start); saying so
            // lets engines skip a sort.
            .set_sorting_columns(Some(vec![SortingColumn {
                column_idx: 0,
                descending: false,
                nulls_first: false,
            }]))
            // Trace ids are unique per event: a dictionary only costs hashing every value
            // and is then abandoned at the page-size limit. (A no-op for other tables.)
            .set_column_dictionary_enabled(ColumnPath::from("trace_id"), false)
            .set_key_value_metadata(Some(kv));
        // Per-event context strings mix every value on every page, so their min/max never
        // lets a reader skip anything, yet computing it compared every value twice: 8% of
        // the batch job's CPU (docs/benchmarks.md). Numbers, times and `team` keep theirs.
        let b = UNPRUNABLE_TEXT_COLUMNS.iter().fold(b, |b, column| {
            b.set_column_statistics_enabled(ColumnPath::from(*column), EnabledStatistics::None)
        });
        // Event times and latencies are nearly all distinct: a dictionary hashed every
        // value, never filled up within a file (about 100k values) and made files bigger.
        // Sorted times delta-encode to almost nothing. Measured on the benchmark's 10M
        // events: files 15% smaller and less CPU (docs/benchmarks.md).
        let b = b
            .set_column_dictionary_enabled(ColumnPath::from("timestamp"), false)
            .set_column_encoding(ColumnPath::from("timestamp"), Encoding::DELTA_BINARY_PACKED)
            .set_column_dictionary_enabled(ColumnPath::from("latency_ms"), false);
        Ok(b.build())
    }
}

/// One Parquet file holding `batch`, with the writer version and `extra` key-value metadata.
pub fn encode(
    batch: &RecordBatch,
    opts: &EncodeOptions,
    extra: Vec<KeyValue>,
    context: &str,
) -> Result<Vec<u8>> {
    encode_all(batch.schema(), [batch], opts, extra, context)
}

/// One Parquet file holding `batches` (all of `schema`) one after another: the same file
/// as [`encode`] of their concatenation, without making the concatenated copy.
pub fn encode_all<'a>(
    schema: SchemaRef,
    batches: impl IntoIterator<Item = &'a RecordBatch>,
    opts: &EncodeOptions,
    extra: Vec<KeyValue>,
    context: &str,
) -> Result<Vec<u8>> {
    let props = opts.properties(extra)?;
    let err = |e| LakeError::parquet(format!("encoding {context}"), e);
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(props)).map_err(err)?;
    for batch in batches {
        writer.write(batch).map_err(err)?;
    }
    writer.into_inner().map_err(err)
}

/// [`encode_all`] with each row group's columns encoded on `threads` threads at once.
///
/// The writer thread that calls this is the one serial stage of the ingest pipeline, and
/// Parquet encoding (dictionaries, zstd) is most of its work; spreading the columns over
/// threads shortens that stage. The file is the same as [`encode_all`]'s: same schema,
/// metadata, row groups and values (tested below).
pub fn encode_all_parallel(
    schema: SchemaRef,
    batches: &[&RecordBatch],
    opts: &EncodeOptions,
    extra: Vec<KeyValue>,
    context: &str,
    threads: usize,
) -> Result<Vec<u8>> {
    let threads = threads.clamp(1, schema.fields().len().max(1));
    let err = |e| LakeError::parquet(format!("encoding {context}"), e);
    let props = opts.properties(extra)?;
    let writer = ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), Some(props)).map_err(err)?;
    let (mut file, factory) = writer.into_serialized_writer().map_err(err)?;
    for (index, group) in row_groups(batches, opts.row_group_rows).iter().enumerate() {
        let writers = factory.create_column_writers(index).map_err(err)?;
        // A flat schema has one leaf per field, so writer i encodes field i.
        let mut per_thread = share_columns(writers, group, threads).into_iter();
        let own = per_thread.next().unwrap_or_default();
        let encoded = std::thread::scope(|scope| {
            let handles: Vec<_> = per_thread
                .map(|columns| {
                    let schema = &schema;
                    scope.spawn(move || encode_columns(schema, group, columns))
                })
                .collect();
            // The calling thread takes a share too instead of waiting idle.
            let mut chunks = encode_columns(&schema, group, own)?;
            for h in handles {
                match h.join() {
                    Ok(r) => chunks.extend(r?),
                    Err(_) => {
                        return Err(ParquetError::General(
                            "a column encoding thread panicked".to_owned(),
                        ));
                    }
                }
            }
            chunks.sort_by_key(|(i, _)| *i);
            Ok(chunks)
        })
        .map_err(err)?;
        let mut row_group = file.next_row_group().map_err(err)?;
        for (_, chunk) in encoded {
            chunk.append_to_row_group(&mut row_group).map_err(err)?;
        }
        row_group.close().map_err(err)?;
    }
    file.into_inner().map_err(err)
}

/// Column writers dealt to `threads` threads so each gets about the same work: biggest
/// column first, each to the least loaded thread. Size stands in for encoding cost; the
/// old round robin put the trace ids (the largest column) with half the others and left
/// one thread idle for the tail of every row group.
fn share_columns(
    writers: Vec<ArrowColumnWriter>,
    group: &[RecordBatch],
    threads: usize,
) -> Vec<Vec<(usize, ArrowColumnWriter)>> {
    let size = |i: usize| -> usize {
        group
            .iter()
            .map(|b| b.column(i).get_buffer_memory_size())
            .sum()
    };
    let mut columns: Vec<_> = writers
        .into_iter()
        .enumerate()
        .map(|(i, w)| (size(i), i, w))
        .collect();
    columns.sort_by_key(|(bytes, i, _)| (std::cmp::Reverse(*bytes), *i));
    let mut shares: Vec<(usize, Vec<(usize, ArrowColumnWriter)>)> =
        (0..threads.max(1)).map(|_| (0, Vec::new())).collect();
    for (bytes, i, w) in columns {
        if let Some(least) = shares.iter_mut().min_by_key(|(load, _)| *load) {
            least.0 += bytes;
            least.1.push((i, w));
        }
    }
    shares.into_iter().map(|(_, share)| share).collect()
}

fn encode_columns(
    schema: &SchemaRef,
    group: &[RecordBatch],
    columns: Vec<(usize, ArrowColumnWriter)>,
) -> std::result::Result<Vec<(usize, ArrowColumnChunk)>, ParquetError> {
    let mut out = Vec::with_capacity(columns.len());
    for (i, mut writer) in columns {
        for batch in group {
            for leaf in compute_leaves(schema.field(i), batch.column(i))? {
                writer.write(&leaf)?;
            }
        }
        out.push((i, writer.close()?));
    }
    Ok(out)
}

/// `batches` cut into row groups of at most `rows` rows (slices share buffers; no copy).
fn row_groups(batches: &[&RecordBatch], rows: usize) -> Vec<Vec<RecordBatch>> {
    let rows = rows.max(1);
    let mut groups = vec![Vec::new()];
    let mut filled = 0;
    for batch in batches {
        let mut offset = 0;
        while offset < batch.num_rows() {
            if filled == rows {
                groups.push(Vec::new());
                filled = 0;
            }
            let take = (batch.num_rows() - offset).min(rows - filled);
            if let Some(group) = groups.last_mut() {
                group.push(batch.slice(offset, take));
            }
            offset += take;
            filled += take;
        }
    }
    groups.retain(|g| !g.is_empty());
    groups
}

/// A decoded Parquet file.
#[derive(Debug)]
pub struct Decoded {
    /// The Arrow schema stored in the file.
    pub schema: SchemaRef,
    /// Its rows.
    pub batches: Vec<RecordBatch>,
    /// Its key-value metadata.
    pub metadata: Vec<KeyValue>,
}

impl Decoded {
    /// The value of metadata key `key`, if set.
    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_deref())
    }
}

/// Reads a whole Parquet file; with `rows == false` only the footer is decoded.
pub fn decode(bytes: Vec<u8>, rows: bool, context: &str) -> Result<Decoded> {
    let err = |e| LakeError::parquet(format!("reading {context}"), e);
    let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes)).map_err(err)?;
    let file_meta = builder.metadata().file_metadata();
    let metadata = file_meta.key_value_metadata().cloned().unwrap_or_default();
    let schema = builder.schema().clone();
    let batches = if rows {
        builder
            .build()
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| LakeError::arrow(format!("reading {context}"), e))?
    } else {
        Vec::new()
    };
    Ok(Decoded {
        schema,
        batches,
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::EventChunks;
    use crate::fixtures::event;
    use crate::schema;

    /// Regression guard for the parallel encoder: same rows, metadata and row groups as
    /// the plain `ArrowWriter`, with batches that straddle row-group boundaries.
    #[test]
    fn parallel_encoding_writes_the_same_file_as_sequential() {
        let events: Vec<_> = (0..2_500)
            .map(|i| event(["a", "b"][i % 2], 1_000 + i as i64, (i % 700) as f64))
            .collect();
        let chunks: Vec<_> = events
            .chunks(300)
            .flat_map(|c| EventChunks::from_events(c).unwrap())
            .filter(|c| &*c.service == "a")
            .collect();
        let batches: Vec<&RecordBatch> = chunks.iter().map(|c| &c.batch).collect();
        let opts = EncodeOptions {
            zstd_level: 1,
            row_group_rows: 500,
        };
        let seq = encode_all(schema::events_schema(), batches.clone(), &opts, vec![], "t").unwrap();
        for threads in [1, 2, 3] {
            let par = encode_all_parallel(
                schema::events_schema(),
                &batches,
                &opts,
                vec![],
                "t",
                threads,
            )
            .unwrap();
            let groups = |f: &[u8]| {
                ParquetRecordBatchReaderBuilder::try_new(Bytes::from(f.to_vec()))
                    .unwrap()
                    .metadata()
                    .num_row_groups()
            };
            assert_eq!((groups(&seq), groups(&par)), (3, 3));
            let (a, b) = (
                decode(seq.clone(), true, "seq").unwrap(),
                decode(par, true, "par").unwrap(),
            );
            assert_eq!(a.schema, b.schema);
            assert_eq!(a.metadata, b.metadata);
            let rows = |d: &Decoded| arrow::compute::concat_batches(&d.schema, &d.batches).unwrap();
            assert_eq!(rows(&a), rows(&b), "{threads} threads");
            assert_eq!(rows(&a).num_rows(), 1_250);
        }
    }
}
