//! Recorded events: the input stream kept in a file instead of Kafka, for `generate --out` and
//! `backtest`. Two formats, both readable by other tools:
//!
//! - **Avro object container file** ([`avro`]): the schema is a union of the twelve input record
//!   schemas of `avro_schemas/` (in [`EventKind::ALL`] order), the codec `null`; any Avro library
//!   reads it (`avro-tools tojson`, Python `fastavro`, Spark).
//! - **JSON lines** ([`jsonl`]): one object per line, `{"type":"bank.nbo.TransactionEvent",
//!   "record":{...}}`, the record's fields as in its Avro schema (enum symbols as strings,
//!   nullable fields as `null` or the value, times as epoch milliseconds). Sources declared in
//!   `[[source]]` are written here too, as `{"type":"<full name>","key":"<customer>","record":{...}}`
//!   (the Avro format's union holds the built-in records only).
//!
//! Readers never stop at a bad record: it comes out as a [`DeadRecord`] with a reason, and
//! reading goes on with the next line (JSON) or the next readable record or block (Avro).

pub mod avro;
pub mod jsonl;
pub mod union;

use crate::codec::Codec;
use crate::event::{Event, EventKind};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The first four bytes of every Avro object container file.
pub const AVRO_MAGIC: &[u8; 4] = b"Obj\x01";

/// A recorded-events file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Avro object container file, schema = union of the input records.
    Avro,
    /// JSON lines, one `{"type": ..., "record": {...}}` per line.
    Jsonl,
}

impl Format {
    /// The format a file name implies: `.avro` → Avro, `.jsonl`/`.json` → JSON lines.
    pub fn from_extension(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "avro" => Some(Format::Avro),
            "jsonl" | "json" | "ndjson" => Some(Format::Jsonl),
            _ => None,
        }
    }

    /// The format of an existing file: Avro if it starts with `Obj\x01`, otherwise JSON lines
    /// if the extension says so or the first non-blank byte is `{`.
    pub fn detect(path: &Path) -> Result<Format, RecordedError> {
        let mut head = [0u8; 64];
        let mut file = std::fs::File::open(path).map_err(|e| RecordedError::io(path, e))?;
        let n = read_up_to(&mut file, &mut head).map_err(|e| RecordedError::io(path, e))?;
        if head[..n].starts_with(AVRO_MAGIC) {
            return Ok(Format::Avro);
        }
        let first = head[..n].iter().find(|b| !b.is_ascii_whitespace());
        if Format::from_extension(path) == Some(Format::Jsonl) || first == Some(&b'{') {
            return Ok(Format::Jsonl);
        }
        Err(RecordedError::Unrecognised(path.to_path_buf()))
    }

    /// The name used in reports and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Avro => "avro",
            Format::Jsonl => "jsonl",
        }
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The Avro full name of an input record (`bank.nbo.TransactionEvent`), as the union branch and
/// the JSON `type` carry it.
pub fn full_name(kind: EventKind) -> String {
    format!("{NAMESPACE}.{}", kind.record_name())
}

/// [`full_name`], made once per built-in record.
pub(crate) fn full_name_str(kind: EventKind) -> &'static str {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES
        .get_or_init(|| EventKind::ALL.iter().map(|k| full_name(*k)).collect())
        .get(kind.index())
        .map_or("", String::as_str)
}

/// Namespace of every record in `avro_schemas/`.
pub const NAMESPACE: &str = "bank.nbo";

/// The input kind of a record name, with or without the `bank.nbo.` namespace.
pub fn kind_of(name: &str) -> Option<EventKind> {
    let short = name.strip_prefix("bank.nbo.").unwrap_or(name);
    EventKind::ALL
        .into_iter()
        .find(|k| k.record_name() == short)
}

/// One item read from a recorded file.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A decoded, validated event.
    Event(Event),
    /// Records that could not be used (one, or the rest of an unreadable Avro block).
    Dead(DeadRecord),
}

/// Records that could not be used, with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadRecord {
    /// How many records this stands for (more than one when an Avro block could not be read past
    /// a bad record: records in a block are not delimited).
    pub count: u64,
    /// Stable code: a `DecodeError::kind` (`avro_decode`, `invalid_field`, ...) or `json`,
    /// `unknown_type`, `corrupt_block`, `truncated_block`.
    pub reason: &'static str,
    /// Where: `line 12` or `block 3 record 7` (`byte 123456`).
    pub position: String,
    /// What was wrong, in words.
    pub detail: String,
}

/// A recorded file cannot be read or written at all (bad records are [`Record::Dead`] instead).
#[derive(Debug, thiserror::Error)]
pub enum RecordedError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Neither an Avro container nor JSON lines.
    #[error("{0}: not an Avro object container file (no `Obj\\x01` header) nor JSON lines (.jsonl); record one with `nbo-stream generate --out FILE.avro`")]
    Unrecognised(PathBuf),
    /// The Avro header is unusable (bad metadata, unsupported codec, unknown schema).
    #[error("{path}: {reason}")]
    Header {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The union schema of the input records could not be built (a defect in this build).
    #[error("input union schema: {0}")]
    Schema(String),
    /// A record could not be written (a defect: records are built by this program).
    #[error("writing {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl RecordedError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        RecordedError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Writes events to a recorded file in either format.
pub enum RecordWriter {
    /// Avro object container file.
    Avro(Box<avro::AvroFileWriter>),
    /// JSON lines.
    Jsonl(jsonl::JsonlWriter),
}

impl RecordWriter {
    /// Creates (truncates) `path` and writes its header, for built-in records.
    pub fn create(path: &Path, format: Format) -> Result<Self, RecordedError> {
        Self::create_with(path, format, &[])
    }

    /// As [`RecordWriter::create`], for built-in records and those of `sources` (JSON lines
    /// only: an Avro recorded file holds the built-in records).
    pub fn create_with(
        path: &Path,
        format: Format,
        sources: &[std::sync::Arc<crate::catalog::Declared>],
    ) -> Result<Self, RecordedError> {
        Ok(match format {
            Format::Avro => RecordWriter::Avro(Box::new(avro::AvroFileWriter::create(path)?)),
            Format::Jsonl => RecordWriter::Jsonl(jsonl::JsonlWriter::create(path, sources)?),
        })
    }

    /// Appends one event.
    pub fn write(&mut self, event: &Event) -> Result<(), RecordedError> {
        match self {
            RecordWriter::Avro(w) => w.write(event),
            RecordWriter::Jsonl(w) => w.write(event),
        }
    }

    /// Flushes everything to disk; returns the file size in bytes.
    pub fn finish(self) -> Result<u64, RecordedError> {
        match self {
            RecordWriter::Avro(w) => w.finish(),
            RecordWriter::Jsonl(w) => w.finish(),
        }
    }
}

/// Reads a recorded file of either format, in file order.
pub enum RecordReader {
    /// Avro object container file.
    Avro(avro::AvroFileReader),
    /// JSON lines.
    Jsonl(jsonl::JsonlReader),
}

impl RecordReader {
    /// Opens `path` (format detected, see [`Format::detect`]). `codec` decodes and validates each
    /// record as the pipeline would; `now_ms` bounds event times as the pipeline's clock does.
    pub fn open(path: &Path, codec: &Codec, now_ms: i64) -> Result<Self, RecordedError> {
        Ok(match Format::detect(path)? {
            Format::Avro => RecordReader::Avro(avro::AvroFileReader::open(path, codec, now_ms)?),
            Format::Jsonl => RecordReader::Jsonl(jsonl::JsonlReader::open(path, codec, now_ms)?),
        })
    }

    /// The format being read.
    pub fn format(&self) -> Format {
        match self {
            RecordReader::Avro(_) => Format::Avro,
            RecordReader::Jsonl(_) => Format::Jsonl,
        }
    }

    /// The next record; `None` at the end; `Err` only when the file itself cannot be read.
    pub fn next_record(&mut self, codec: &Codec) -> Option<Result<Record, RecordedError>> {
        match self {
            RecordReader::Avro(r) => r.next_record(codec),
            RecordReader::Jsonl(r) => r.next_record(codec),
        }
    }

    /// Bytes of the file consumed so far (for progress).
    pub fn bytes_read(&self) -> u64 {
        match self {
            RecordReader::Avro(r) => r.bytes_read(),
            RecordReader::Jsonl(r) => r.bytes_read(),
        }
    }
}

#[cfg(test)]
mod tests;
