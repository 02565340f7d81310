//! JSON lines: one `{"type":"bank.nbo.<Record>","record":{...}}` object per line. The record's
//! fields are those of its Avro schema, enum symbols as strings, nullable fields as `null` or the
//! value, times as epoch milliseconds. A source declared in `[[source]]` is written as
//! `{"type":"<its full name>","key":"<customer id>","record":{...}}`: its customer is the Kafka
//! key, not a field. Blank lines are skipped; any other line that does not parse or validate is a
//! [`DeadRecord`] naming its line.

use super::{DeadRecord, Record, RecordedError};
use crate::catalog::Declared;
use crate::codec::Codec;
use crate::event::*;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A built-in record's line, borrowed for writing: its Avro full name and the record.
#[derive(Serialize)]
struct LineOut<'a, T> {
    #[serde(rename = "type")]
    ty: &'a str,
    record: &'a T,
}

/// Any line as read: `type` names the record (built in or declared), `key` is a declared
/// source's customer, and `record` is parsed once its type is known.
#[derive(Deserialize)]
struct LineIn<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    #[serde(default)]
    key: Option<String>,
    #[serde(borrow)]
    record: &'a RawValue,
}

macro_rules! lines {
    ($($variant:ident($ty:ident)),+ $(,)?) => {
        /// Writes a built-in record's line; `None` for a declared source's event.
        fn write_builtin(out: impl Write, event: &Event) -> Option<Result<(), serde_json::Error>> {
            let ty = super::full_name_str(event.kind());
            Some(match event {
                $(Event::$variant(e) => serde_json::to_writer(out, &LineOut { ty, record: e }),)+
                Event::Declared(_) => return None,
            })
        }

        /// Reads the `record` of a built-in record's line.
        fn read_builtin(kind: EventKind, record: &RawValue) -> Result<Event, String> {
            match kind {
                $(EventKind::$variant => serde_json::from_str::<$ty>(record.get())
                    .map(Event::$variant)
                    .map_err(|e| e.to_string()),)+
                EventKind::Declared(_) => Err("a declared source has no built-in struct".into()),
            }
        }
    };
}
builtin_records!(lines);

/// A declared source's line (see the module docs).
#[derive(Serialize)]
struct DeclaredLine {
    #[serde(rename = "type")]
    ty: String,
    key: String,
    record: serde_json::Map<String, serde_json::Value>,
}

impl DeclaredLine {
    fn of(event: &Event, sources: &[Arc<Declared>]) -> Option<Self> {
        let Event::Declared(e) = event else {
            return None;
        };
        let source = sources.iter().find(|d| d.id == e.source)?;
        Some(Self {
            ty: source.full_name.to_string(),
            key: e.customer_id.to_string(),
            record: source.to_json(e),
        })
    }

    /// The event of a line naming a declared source of `codec`'s configuration; `None` when the
    /// line names none, `Err` saying why its record is refused.
    fn event(line: &LineIn<'_>, codec: &Codec) -> Option<Result<Event, String>> {
        let source = codec
            .declared_sources()
            .find(|d| d.full_name == line.ty || d.record == line.ty)?;
        let Some(key) = &line.key else {
            return Some(Err(format!(
                "a {} line needs its \"key\": the customer id",
                source.record
            )));
        };
        let record: serde_json::Map<String, serde_json::Value> =
            match serde_json::from_str(line.record.get()) {
                Ok(record) => record,
                Err(e) => return Some(Err(e.to_string())),
            };
        Some(
            source
                .from_json(key, &record)
                .map(|e| Event::Declared(Box::new(e))),
        )
    }
}

fn write_line(
    out: impl Write,
    event: &Event,
    sources: &[Arc<Declared>],
) -> Result<(), serde_json::Error> {
    let mut out = out;
    if let Some(written) = write_builtin(&mut out, event) {
        return written;
    }
    let line = DeclaredLine::of(event, sources).ok_or_else(|| {
        <serde_json::Error as serde::ser::Error>::custom("the event's source is not declared")
    })?;
    serde_json::to_writer(out, &line)
}

/// One event of a built-in record, or of one of `sources`, as a JSON line (without the newline).
pub fn to_line(event: &Event, sources: &[Arc<Declared>]) -> Result<String, serde_json::Error> {
    let mut out = Vec::with_capacity(256);
    write_line(&mut out, event, sources)?;
    Ok(String::from_utf8(out).expect("serde_json writes UTF-8"))
}

/// Writes JSON lines.
pub struct JsonlWriter {
    path: PathBuf,
    out: BufWriter<std::fs::File>,
    sources: Vec<Arc<Declared>>,
}

impl JsonlWriter {
    /// Creates (truncates) `path`, to hold built-in records and those of `sources`.
    pub fn create(path: &Path, sources: &[Arc<Declared>]) -> Result<Self, RecordedError> {
        let file = std::fs::File::create(path).map_err(|e| RecordedError::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 16, file),
            sources: sources.to_vec(),
        })
    }

    /// Appends one event as a line.
    pub fn write(&mut self, event: &Event) -> Result<(), RecordedError> {
        write_line(&mut self.out, event, &self.sources).map_err(|e| RecordedError::Write {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        self.out
            .write_all(b"\n")
            .map_err(|e| RecordedError::io(&self.path, e))
    }

    /// Flushes to disk; returns the file size.
    pub fn finish(self) -> Result<u64, RecordedError> {
        let path = self.path;
        let file = self
            .out
            .into_inner()
            .map_err(|e| RecordedError::io(&path, e.into_error()))?;
        file.sync_all().map_err(|e| RecordedError::io(&path, e))?;
        let meta = file.metadata().map_err(|e| RecordedError::io(&path, e))?;
        Ok(meta.len())
    }
}

/// Reads JSON lines.
pub struct JsonlReader {
    path: PathBuf,
    input: BufReader<std::fs::File>,
    line: Vec<u8>,
    line_no: u64,
    bytes: u64,
    now_ms: i64,
}

impl JsonlReader {
    /// Opens `path`; `now_ms` bounds event times as the pipeline's clock does.
    pub fn open(path: &Path, _codec: &Codec, now_ms: i64) -> Result<Self, RecordedError> {
        let file = std::fs::File::open(path).map_err(|e| RecordedError::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            input: BufReader::with_capacity(1 << 16, file),
            line: Vec::with_capacity(512),
            line_no: 0,
            bytes: 0,
            now_ms,
        })
    }

    /// Bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// The next record, `None` at the end of the file.
    pub fn next_record(&mut self, codec: &Codec) -> Option<Result<Record, RecordedError>> {
        loop {
            self.line.clear();
            match self.input.read_until(b'\n', &mut self.line) {
                Ok(0) => return None,
                Ok(n) => self.bytes += n as u64,
                Err(e) => return Some(Err(RecordedError::io(&self.path, e))),
            }
            self.line_no += 1;
            if self.line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(Ok(self.parse(codec)));
        }
    }

    fn parse(&self, codec: &Codec) -> Record {
        let dead = |reason: &'static str, detail: String| {
            Record::Dead(DeadRecord {
                count: 1,
                reason,
                position: format!("line {}", self.line_no),
                detail,
            })
        };
        let line = match serde_json::from_slice::<LineIn>(&self.line) {
            Ok(line) => line,
            Err(e) => return dead("json", e.to_string()),
        };
        let read = match super::kind_of(&line.ty) {
            Some(kind) => Some(read_builtin(kind, line.record)),
            None => DeclaredLine::event(&line, codec),
        };
        let event = match read {
            Some(Ok(event)) => event,
            Some(Err(reason)) => return dead("json", reason),
            None => {
                return dead(
                    "json",
                    format!(
                        "unknown record type {:?}: neither a built-in record nor a source this \
                         configuration declares",
                        line.ty
                    ),
                )
            }
        };
        match codec.check_recorded(&event, self.now_ms) {
            Ok(()) => Record::Event(event),
            Err(e) => dead(e.kind(), e.to_string()),
        }
    }
}
