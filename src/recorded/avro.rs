//! Avro object container files of input records.
//!
//! Writing uses apache-avro's `Writer` (the reference implementation) with a union of the twelve
//! input record schemas, so any Avro tool reads the file. Reading is this module's own loop over
//! the container's blocks (header, then `count`, `size`, data, 16-byte sync marker per block),
//! decoding each datum with the pipeline's [`Codec`]: as fast as the consumer path, and able to go
//! on after damage. A record that does not decode loses the rest of its block (records in a block
//! are not delimited); a block whose sync marker is wrong is skipped up to the next marker.

use super::union::{branch_kind, union_schema, Branch};
use super::{DeadRecord, Record, RecordedError, AVRO_MAGIC};
use crate::codec::Codec;
use crate::event::*;
use serde_json::Value as Json;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};

/// Why a declared source's record cannot be written to an Avro recorded file: its union holds
/// the built-in records only.
fn declared_not_recordable(event: &Event) -> String {
    format!(
        "event {} is of a declared source; Avro recorded files hold the built-in records only: \
         write JSON lines (a .jsonl file) to record declared sources",
        event.event_id()
    )
}

/// Block size the writer aims at: larger blocks cost less framing and read faster.
const BLOCK_BYTES: usize = 1 << 16;

/// Writes an Avro object container file of input records.
pub struct AvroFileWriter {
    path: PathBuf,
    writer: apache_avro::Writer<'static, BufWriter<std::fs::File>>,
}

impl AvroFileWriter {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> Result<Self, RecordedError> {
        let schema = union_schema()?;
        let file = std::fs::File::create(path).map_err(|e| RecordedError::io(path, e))?;
        let writer = apache_avro::Writer::builder()
            .schema(schema)
            .writer(BufWriter::with_capacity(1 << 16, file))
            .block_size(BLOCK_BYTES)
            .build()
            .map_err(|e| RecordedError::Write {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            writer,
        })
    }

    /// Appends one event.
    pub fn write(&mut self, event: &Event) -> Result<(), RecordedError> {
        let branch = Branch::of(event).ok_or_else(|| RecordedError::Write {
            path: self.path.clone(),
            reason: declared_not_recordable(event),
        })?;
        self.writer
            .append_ser(branch)
            .map(drop)
            .map_err(|e| RecordedError::Write {
                path: self.path.clone(),
                reason: e.to_string(),
            })
    }

    /// Writes the last block and flushes to disk; returns the file size.
    pub fn finish(self) -> Result<u64, RecordedError> {
        let path = self.path;
        let write_err = |reason: String| RecordedError::Write {
            path: path.clone(),
            reason,
        };
        let out = self
            .writer
            .into_inner()
            .map_err(|e| write_err(e.to_string()))?;
        let file = out
            .into_inner()
            .map_err(|e| RecordedError::io(&path, e.into_error()))?;
        file.sync_all().map_err(|e| RecordedError::io(&path, e))?;
        let meta = file.metadata().map_err(|e| RecordedError::io(&path, e))?;
        Ok(meta.len())
    }
}

/// Largest block accepted: far above what writers produce (apache-avro: 16 KB by default), low
/// enough that a damaged size field cannot make the reader allocate without bound.
const MAX_BLOCK_BYTES: u64 = 256 << 20;

/// Reads an Avro object container file of input records (the union this module writes, or a
/// single input record schema, e.g. one topic's dump).
pub struct AvroFileReader {
    path: PathBuf,
    input: Lookahead<std::fs::File>,
    /// Union branch → input kind (`None`: a type that is not an input record).
    branches: Vec<Option<EventKind>>,
    /// The file holds one record type, not a union.
    single: Option<EventKind>,
    sync: [u8; 16],
    pending: VecDeque<Record>,
    block_no: u64,
    now_ms: i64,
}

impl AvroFileReader {
    /// Opens `path` and reads the header: magic, metadata (schema, codec), sync marker.
    pub fn open(path: &Path, _codec: &Codec, now_ms: i64) -> Result<Self, RecordedError> {
        let file = std::fs::File::open(path).map_err(|e| RecordedError::io(path, e))?;
        let mut input = Lookahead::new(file);
        let header_err = |reason: String| RecordedError::Header {
            path: path.to_path_buf(),
            reason,
        };
        let head = input
            .fill(4)
            .map_err(|e| RecordedError::io(path, e))?
            .to_vec();
        if !head.starts_with(AVRO_MAGIC) {
            return Err(RecordedError::Unrecognised(path.to_path_buf()));
        }
        input.consume(4);
        let meta = read_metadata(&mut input).map_err(|e| match e {
            HeaderFault::Io(e) => RecordedError::io(path, e),
            HeaderFault::Bad(why) => header_err(why),
        })?;
        match meta.get("avro.codec").map(|c| c.as_slice()) {
            None | Some(b"null") => {}
            Some(other) => {
                return Err(header_err(format!(
                    "codec `{}` is not supported; write the file with the `null` codec (as `nbo-stream generate --out` does)",
                    String::from_utf8_lossy(other)
                )))
            }
        }
        let schema = meta
            .get("avro.schema")
            .ok_or_else(|| header_err("no avro.schema in the header".into()))?;
        let schema: Json = serde_json::from_slice(schema)
            .map_err(|e| header_err(format!("avro.schema is not JSON: {e}")))?;
        let (branches, single) = match &schema {
            Json::Array(items) => (
                items
                    .iter()
                    .map(|b| branch_kind(b).map_err(&header_err))
                    .collect::<Result<Vec<_>, _>>()?,
                None,
            ),
            record => match branch_kind(record).map_err(&header_err)? {
                Some(kind) => (Vec::new(), Some(kind)),
                None => {
                    return Err(header_err(
                        "the schema is neither a union of input records nor an input record".into(),
                    ))
                }
            },
        };
        let sync_bytes = input.fill(16).map_err(|e| RecordedError::io(path, e))?;
        let sync: [u8; 16] = sync_bytes
            .get(..16)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| header_err("the header ends before its sync marker".into()))?;
        input.consume(16);
        Ok(Self {
            path: path.to_path_buf(),
            input,
            branches,
            single,
            sync,
            pending: VecDeque::new(),
            block_no: 0,
            now_ms,
        })
    }

    /// Bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.input.consumed
    }

    /// The next record, `None` at the end of the file.
    pub fn next_record(&mut self, codec: &Codec) -> Option<Result<Record, RecordedError>> {
        loop {
            if let Some(record) = self.pending.pop_front() {
                return Some(Ok(record));
            }
            match self.read_block(codec) {
                Ok(true) => continue,
                Ok(false) => return None,
                Err(e) => return Some(Err(RecordedError::io(&self.path, e))),
            }
        }
    }

    fn dead(&mut self, count: u64, reason: &'static str, position: String, detail: String) {
        self.pending.push_back(Record::Dead(DeadRecord {
            count,
            reason,
            position,
            detail,
        }));
    }

    /// Reads one block into `pending`; `false` at the end of the file.
    fn read_block(&mut self, codec: &Codec) -> std::io::Result<bool> {
        let at = self.input.consumed;
        self.block_no += 1;
        let block = self.block_no;
        let window = self.input.fill(20)?;
        if window.is_empty() {
            return Ok(false);
        }
        let header = read_long(window).and_then(|(count, a)| {
            let (size, b) = read_long(&window[a..])?;
            Some((count, size, a + b))
        });
        let plausible = header.filter(|&(count, size, _)| {
            count > 0 && size > 0 && count <= size && (size as u64) <= MAX_BLOCK_BYTES
        });
        let Some((count, size, head_len)) = plausible else {
            let tail = window.len() < 20 && header.is_none();
            let reason = if tail {
                "truncated_block"
            } else {
                "corrupt_block"
            };
            self.dead(
                1,
                reason,
                format!("block {block} (byte {at})"),
                "unreadable block header; skipped to the next sync marker".into(),
            );
            self.input.consume(1);
            self.resync()?;
            return Ok(true);
        };
        let total = head_len + size as usize + 16;
        let window = self.input.fill(total)?;
        if window.len() < total {
            let n = window.len();
            self.dead(
                count as u64,
                "truncated_block",
                format!("block {block} (byte {at})"),
                format!("the file ends inside the block ({n} of {total} bytes)"),
            );
            self.input.consume(n);
            return Ok(true);
        }
        if window[total - 16..total] != self.sync {
            self.dead(
                count as u64,
                "corrupt_block",
                format!("block {block} (byte {at})"),
                "sync marker mismatch: the block's size or data is damaged; skipped to the next sync marker".into(),
            );
            self.input.consume(1);
            self.resync()?;
            return Ok(true);
        }
        let data = window[head_len..total - 16].to_vec();
        self.input.consume(total);
        self.decode_block(codec, &data, count as u64, block, at);
        Ok(true)
    }

    fn decode_block(&mut self, codec: &Codec, data: &[u8], count: u64, block: u64, at: u64) {
        let mut rest = data;
        for i in 0..count {
            let position = || format!("block {block} record {} (byte {at})", i + 1);
            let kind = match self.single {
                Some(kind) => Ok(kind),
                None => match read_long(rest) {
                    Some((index, n)) => {
                        rest = &rest[n..];
                        usize::try_from(index)
                            .ok()
                            .and_then(|i| self.branches.get(i).copied())
                            .ok_or(("avro_decode", format!("union index {index} out of range")))
                            .and_then(|k| {
                                k.ok_or((
                                    "unknown_type",
                                    format!("union branch {index} is not an input record"),
                                ))
                            })
                    }
                    None => Err(("avro_decode", "bad union index".into())),
                },
            };
            let decoded = kind.and_then(|kind| {
                codec
                    .decode_datum_prefix(kind, rest)
                    .map_err(|e| (e.kind(), e.to_string()))
            });
            match decoded {
                Ok((event, used)) => {
                    rest = &rest[used..];
                    match codec.check_recorded(&event, self.now_ms) {
                        Ok(()) => self.pending.push_back(Record::Event(event)),
                        Err(e) => self.dead(1, e.kind(), position(), e.to_string()),
                    }
                }
                Err((reason, detail)) => {
                    let lost = count - i;
                    let detail = if lost > 1 {
                        format!("{detail}; the {} records after it in the block cannot be located and are lost too", lost - 1)
                    } else {
                        detail
                    };
                    self.dead(lost, reason, position(), detail);
                    return;
                }
            }
        }
    }

    /// Skips to just after the next sync marker (or to the end of the file).
    fn resync(&mut self) -> std::io::Result<()> {
        loop {
            let window = self.input.fill(1 << 16)?;
            if window.len() < 16 {
                let n = window.len();
                self.input.consume(n);
                return Ok(());
            }
            if let Some(i) = window.windows(16).position(|w| w == self.sync) {
                self.input.consume(i + 16);
                return Ok(());
            }
            let n = window.len() - 15;
            self.input.consume(n);
        }
    }
}

enum HeaderFault {
    Io(std::io::Error),
    Bad(String),
}

/// The header's metadata map (`avro.schema`, `avro.codec`, ...).
fn read_metadata(
    input: &mut Lookahead<std::fs::File>,
) -> Result<HashMap<String, Vec<u8>>, HeaderFault> {
    let mut meta = HashMap::new();
    let mut seen = HashSet::new();
    loop {
        let mut count = take_long(input)?;
        if count == 0 {
            return Ok(meta);
        }
        if count < 0 {
            count = count
                .checked_neg()
                .ok_or(HeaderFault::Bad("bad map".into()))?;
            take_long(input)?; // block size in bytes, not needed
        }
        for _ in 0..count {
            let key = take_bytes(input)?;
            let value = take_bytes(input)?;
            let key = String::from_utf8_lossy(&key).into_owned();
            if !seen.insert(key.clone()) {
                return Err(HeaderFault::Bad(format!("metadata key {key} repeated")));
            }
            meta.insert(key, value);
        }
    }
}

fn take_long(input: &mut Lookahead<std::fs::File>) -> Result<i64, HeaderFault> {
    let window = input.fill(10).map_err(HeaderFault::Io)?;
    let (value, n) =
        read_long(window).ok_or(HeaderFault::Bad("bad number in the header".into()))?;
    input.consume(n);
    Ok(value)
}

fn take_bytes(input: &mut Lookahead<std::fs::File>) -> Result<Vec<u8>, HeaderFault> {
    let len = take_long(input)?;
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l as u64 <= MAX_BLOCK_BYTES)
        .ok_or(HeaderFault::Bad(format!("bad length {len} in the header")))?;
    let window = input.fill(len).map_err(HeaderFault::Io)?;
    if window.len() < len {
        return Err(HeaderFault::Bad("the header is cut short".into()));
    }
    let bytes = window[..len].to_vec();
    input.consume(len);
    Ok(bytes)
}

/// An Avro `long` (zig-zag varint) from the front of `bytes`, with the bytes it took.
fn read_long(bytes: &[u8]) -> Option<(i64, usize)> {
    let mut value: u64 = 0;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let decoded = ((value >> 1) as i64) ^ -((value & 1) as i64);
            return Some((decoded, i + 1));
        }
    }
    None
}

/// A buffered reader that can look ahead without consuming (to check a block's sync marker
/// before taking it, and to scan for the next marker after damage).
struct Lookahead<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    eof: bool,
    consumed: u64,
}

impl<R: Read> Lookahead<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            buf: Vec::with_capacity(1 << 17),
            start: 0,
            eof: false,
            consumed: 0,
        }
    }

    /// At least `n` bytes ahead, or fewer at the end of the file.
    fn fill(&mut self, n: usize) -> std::io::Result<&[u8]> {
        if self.buf.len() - self.start < n && !self.eof {
            self.buf.drain(..self.start);
            self.start = 0;
            let want = n.max(1 << 17);
            while self.buf.len() < want && !self.eof {
                let len = self.buf.len();
                self.buf.resize(want, 0);
                match self.inner.read(&mut self.buf[len..]) {
                    Ok(0) => {
                        self.buf.truncate(len);
                        self.eof = true;
                    }
                    Ok(k) => self.buf.truncate(len + k),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.buf.truncate(len),
                    Err(e) => {
                        self.buf.truncate(len);
                        return Err(e);
                    }
                }
            }
        }
        Ok(&self.buf[self.start..])
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.buf.len() - self.start);
        self.start += n;
        self.consumed += n as u64;
    }
}
