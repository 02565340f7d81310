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
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One line: the record's type (its Avro full name) and the record.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", content = "record")]
enum Line {
    #[serde(rename = "bank.nbo.TransactionEvent")]
    Transaction(TransactionEvent),
    #[serde(rename = "bank.nbo.ClickstreamEvent")]
    Clickstream(ClickstreamEvent),
    #[serde(rename = "bank.nbo.AppEvent")]
    App(AppEvent),
    #[serde(rename = "bank.nbo.SocialEvent")]
    Social(SocialEvent),
    #[serde(rename = "bank.nbo.FeedbackEvent")]
    Feedback(FeedbackEvent),
    #[serde(rename = "bank.nbo.PartnerEvent")]
    Partner(PartnerEvent),
    #[serde(rename = "bank.nbo.CustomerProfile")]
    Profile(CustomerProfile),
    #[serde(rename = "bank.nbo.OfferResponse")]
    OfferResponse(OfferResponse),
    #[serde(rename = "bank.nbo.ErasureRequest")]
    Erasure(ErasureRequest),
}

/// The same line, borrowed, for writing without a copy.
#[derive(Serialize)]
#[serde(tag = "type", content = "record")]
enum LineRef<'a> {
    #[serde(rename = "bank.nbo.TransactionEvent")]
    Transaction(&'a TransactionEvent),
    #[serde(rename = "bank.nbo.ClickstreamEvent")]
    Clickstream(&'a ClickstreamEvent),
    #[serde(rename = "bank.nbo.AppEvent")]
    App(&'a AppEvent),
    #[serde(rename = "bank.nbo.SocialEvent")]
    Social(&'a SocialEvent),
    #[serde(rename = "bank.nbo.FeedbackEvent")]
    Feedback(&'a FeedbackEvent),
    #[serde(rename = "bank.nbo.PartnerEvent")]
    Partner(&'a PartnerEvent),
    #[serde(rename = "bank.nbo.CustomerProfile")]
    Profile(&'a CustomerProfile),
    #[serde(rename = "bank.nbo.OfferResponse")]
    OfferResponse(&'a OfferResponse),
    #[serde(rename = "bank.nbo.ErasureRequest")]
    Erasure(&'a ErasureRequest),
}

impl<'a> LineRef<'a> {
    /// The line of a built-in record; none for a declared source's.
    fn of(event: &'a Event) -> Option<Self> {
        Some(match event {
            Event::Transaction(e) => LineRef::Transaction(e),
            Event::Clickstream(e) => LineRef::Clickstream(e),
            Event::App(e) => LineRef::App(e),
            Event::Social(e) => LineRef::Social(e),
            Event::Feedback(e) => LineRef::Feedback(e),
            Event::Partner(e) => LineRef::Partner(e),
            Event::Profile(e) => LineRef::Profile(e),
            Event::OfferResponse(e) => LineRef::OfferResponse(e),
            Event::Erasure(e) => LineRef::Erasure(e),
            Event::Declared(_) => return None,
        })
    }
}

impl From<Line> for Event {
    fn from(line: Line) -> Self {
        match line {
            Line::Transaction(e) => Event::Transaction(e),
            Line::Clickstream(e) => Event::Clickstream(e),
            Line::App(e) => Event::App(e),
            Line::Social(e) => Event::Social(e),
            Line::Feedback(e) => Event::Feedback(e),
            Line::Partner(e) => Event::Partner(e),
            Line::Profile(e) => Event::Profile(e),
            Line::OfferResponse(e) => Event::OfferResponse(e),
            Line::Erasure(e) => Event::Erasure(e),
        }
    }
}

/// A declared source's line (see the module docs).
#[derive(Serialize, Deserialize)]
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

    /// The event, if the line names a declared source; `Err` says why its record is refused.
    fn event(self, codec: &Codec) -> Option<Result<Event, String>> {
        let source = codec
            .declared_sources()
            .find(|d| d.full_name == self.ty || d.record == self.ty)?;
        Some(
            source
                .from_json(&self.key, &self.record)
                .map(|e| Event::Declared(Box::new(e))),
        )
    }
}

fn write_line(
    out: impl Write,
    event: &Event,
    sources: &[Arc<Declared>],
) -> Result<(), serde_json::Error> {
    if let Some(line) = LineRef::of(event) {
        return serde_json::to_writer(out, &line);
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
        let event = match serde_json::from_slice::<Line>(&self.line) {
            Ok(line) => Event::from(line),
            // Not a built-in record: a declared source's line, or a dead record with the
            // built-in parser's reason.
            Err(e) => match serde_json::from_slice::<DeclaredLine>(&self.line)
                .ok()
                .and_then(|line| line.event(codec))
            {
                Some(Ok(event)) => event,
                Some(Err(reason)) => return dead("json", reason),
                None => return dead("json", e.to_string()),
            },
        };
        match codec.check_recorded(&event, self.now_ms) {
            Ok(()) => Record::Event(event),
            Err(e) => dead(e.kind(), e.to_string()),
        }
    }
}
