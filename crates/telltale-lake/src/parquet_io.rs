//! Encoding record batches to Parquet bytes and back, shared by the writer and compaction.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
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
        Ok(WriterProperties::builder()
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
            .set_key_value_metadata(Some(kv))
            .build())
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
