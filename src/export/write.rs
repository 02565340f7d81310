//! Writing training rows: Parquet (Snappy-compressed, a row group per
//! [`PARQUET_BATCH_ROWS`]) or JSON lines.
//!
//! The columns, in order: `audit_id`, `decision_id`, `customer_key`, `decided_at`, `rule_id`,
//! `rule_version`, `outcome`, `features_as_of`, `propensity`, `label`, `label_at`,
//! `label_final`, then `feature_<name>` for every feature of the feature set, sorted by name.
//! Times are UTC milliseconds (Parquet: `TIMESTAMP(MILLIS, UTC)`). In JSON lines the features
//! are one object, `features`, holding the values the decision used.

use super::rows::{Columns, TrainingRow};
use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int32Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

/// Rows per Parquet row group (and per batch held in memory).
pub const PARQUET_BATCH_ROWS: usize = 64 * 1024;

/// The prefix of a feature's column.
pub const FEATURE_PREFIX: &str = "feature_";

/// The two formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Apache Parquet.
    Parquet,
    /// One JSON object per line.
    JsonLines,
}

impl Format {
    /// The format a file name asks for: `.jsonl` or `.json` is JSON lines, anything else Parquet.
    pub fn for_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl" | "json" | "ndjson") => Format::JsonLines,
            _ => Format::Parquet,
        }
    }
}

/// Somewhere rows go.
pub trait RowSink {
    /// Writes one row.
    fn write(&mut self, row: TrainingRow) -> anyhow::Result<()>;
    /// Writes what is buffered and closes the file.
    fn finish(self: Box<Self>) -> anyhow::Result<()>;
}

/// A sink for `format` writing `path` (created or replaced).
pub fn sink(format: Format, path: &Path, columns: &Columns) -> anyhow::Result<Box<dyn RowSink>> {
    let file =
        File::create(path).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    Ok(match format {
        Format::Parquet => Box::new(ParquetSink::new(file, columns)?),
        Format::JsonLines => Box::new(JsonLinesSink {
            out: BufWriter::new(file),
            columns: columns.clone(),
        }),
    })
}

/// The Arrow schema of the rows (see the module documentation).
pub fn schema(columns: &Columns) -> SchemaRef {
    let time = || DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let mut fields = vec![
        Field::new("audit_id", DataType::Utf8, false),
        Field::new("decision_id", DataType::Utf8, true),
        Field::new("customer_key", DataType::Utf8, false),
        Field::new("decided_at", time(), false),
        Field::new("rule_id", DataType::Utf8, false),
        Field::new("rule_version", DataType::Int32, false),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("features_as_of", time(), false),
        Field::new("propensity", DataType::Float64, true),
        Field::new("label", DataType::Utf8, true),
        Field::new("label_at", time(), true),
        Field::new("label_final", DataType::Boolean, false),
    ];
    for name in &columns.features {
        fields.push(Field::new(
            format!("{FEATURE_PREFIX}{name}"),
            DataType::Float64,
            true,
        ));
    }
    Arc::new(Schema::new(fields))
}

struct ParquetSink {
    writer: ArrowWriter<File>,
    schema: SchemaRef,
    rows: Vec<TrainingRow>,
}

impl ParquetSink {
    fn new(file: File, columns: &Columns) -> anyhow::Result<Self> {
        let schema = schema(columns);
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(PARQUET_BATCH_ROWS))
            .build();
        Ok(Self {
            writer: ArrowWriter::try_new(file, schema.clone(), Some(properties))?,
            schema,
            rows: Vec::with_capacity(1024),
        })
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let batch = batch(&self.schema, &self.rows)?;
        self.writer.write(&batch)?;
        self.rows.clear();
        Ok(())
    }
}

impl RowSink for ParquetSink {
    fn write(&mut self, row: TrainingRow) -> anyhow::Result<()> {
        self.rows.push(row);
        if self.rows.len() >= PARQUET_BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> anyhow::Result<()> {
        self.flush()?;
        self.writer.close()?;
        Ok(())
    }
}

/// The rows as one Arrow batch of `schema`.
fn batch(schema: &SchemaRef, rows: &[TrainingRow]) -> anyhow::Result<RecordBatch> {
    let n = rows.len();
    let text = |f: &dyn Fn(&TrainingRow) -> Option<&str>| -> ArrayRef {
        let mut b = StringBuilder::with_capacity(n, n * 16);
        for r in rows {
            b.append_option(f(r));
        }
        Arc::new(b.finish())
    };
    let time = |f: &dyn Fn(&TrainingRow) -> Option<i64>| -> ArrayRef {
        let mut b = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
        for r in rows {
            b.append_option(f(r));
        }
        Arc::new(b.finish())
    };
    let number = |f: &dyn Fn(&TrainingRow) -> Option<f64>| -> ArrayRef {
        let mut b = Float64Builder::with_capacity(n);
        for r in rows {
            b.append_option(f(r));
        }
        Arc::new(b.finish())
    };
    let mut versions = Int32Builder::with_capacity(n);
    let mut finals = BooleanBuilder::with_capacity(n);
    for r in rows {
        versions.append_value(r.rule_version);
        finals.append_value(r.label_final);
    }
    let mut arrays: Vec<ArrayRef> = vec![
        text(&|r| Some(&r.audit_id)),
        text(&|r| r.decision_id.as_deref()),
        text(&|r| Some(&r.customer_key)),
        time(&|r| Some(r.decided_at)),
        text(&|r| Some(&r.rule_id)),
        Arc::new(versions.finish()),
        text(&|r| Some(r.outcome)),
        time(&|r| Some(r.features_as_of)),
        number(&|r| r.propensity),
        text(&|r| r.label),
        time(&|r| r.label_at),
        Arc::new(finals.finish()),
    ];
    let features = schema.fields().len() - arrays.len();
    for i in 0..features {
        arrays.push(number(&|r| r.features[i]));
    }
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

struct JsonLinesSink {
    out: BufWriter<File>,
    columns: Columns,
}

impl RowSink for JsonLinesSink {
    fn write(&mut self, row: TrainingRow) -> anyhow::Result<()> {
        let features: serde_json::Map<String, serde_json::Value> = self
            .columns
            .features
            .iter()
            .zip(&row.features)
            .filter_map(|(name, v)| v.map(|v| (name.to_string(), v.into())))
            .collect();
        let line = serde_json::json!({
            "audit_id": row.audit_id,
            "decision_id": row.decision_id,
            "customer_key": row.customer_key,
            "decided_at": row.decided_at,
            "rule_id": row.rule_id,
            "rule_version": row.rule_version,
            "outcome": row.outcome,
            "features_as_of": row.features_as_of,
            "propensity": row.propensity,
            "label": row.label,
            "label_at": row.label_at,
            "label_final": row.label_final,
            "features": features,
        });
        serde_json::to_writer(&mut self.out, &line)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> anyhow::Result<()> {
        self.out.flush()?;
        Ok(())
    }
}
