//! The writer schemas a registry-framed topic has carried, by topic and schema id, each resolved
//! once against the topic's reader schema ([`super::resolve`]) and kept for the life of the
//! process. Records look their writer up without a lock (a copy-on-write map: writers are added
//! a few times a day at most, and read for every record).

use super::resolve::{self, Resolution, TranscodeError, Transcoder};
use super::DecodeError;
use crate::event::EventKind;
use arc_swap::ArcSwap;
use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::sync::{Arc, Mutex};

/// How records of one writer schema are decoded.
#[derive(Debug)]
pub enum WriterResolution {
    /// Same schema as the reader: decoded directly.
    Identity,
    /// Transcoded to the reader schema first.
    Transcode(Transcoder),
    /// Decoded straight from the writer's bytes into the reader's struct, by field and symbol
    /// name ([`resolve::by_name`]) along a plan compiled for the writer ([`resolve::plan`]); a
    /// record that fails that way is decoded again through the transcoder, whose result or error
    /// stands.
    Direct {
        /// How the writer's bytes are read into the struct.
        plan: resolve::Plan,
        /// The authoritative path, for the records the direct decode fails on.
        fallback: Transcoder,
    },
    /// Never readable (a schema that does not parse or cannot be resolved): every record is
    /// dead-lettered with this error.
    Refused(DecodeError),
    /// The registry did not know the id: records are dead-lettered (`unknown_schema_id`) until
    /// `until`, when the id is asked again (a registry follower may not have seen a new
    /// registration yet; a mistaken 404 must not refuse an id for the life of the process).
    Unknown {
        /// The error records get meanwhile.
        error: DecodeError,
        /// When the id is fetched again.
        until: std::time::Instant,
    },
}

/// How long an id the registry did not know is refused before it is asked again.
pub const UNKNOWN_ID_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

/// Most unknown ids remembered: garbage ids (unframed Avro read as Confluent framing) cannot grow
/// the map without bound; past it, expired entries are dropped.
const MAX_UNKNOWN: usize = 10_000;

/// What [`super::Codec::add_writer`] decided, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriterOutcome {
    /// The writer is the reader schema.
    Identity,
    /// The writer differs and resolves to the reader schema.
    Resolved,
    /// The registry does not know the id.
    Unknown,
    /// The writer can never be read as the reader schema; the reason.
    Incompatible(String),
}

impl WriterOutcome {
    /// A short, stable label (`nbo_schema_writers_total{resolution}`).
    pub fn label(&self) -> &'static str {
        match self {
            WriterOutcome::Identity => "identity",
            WriterOutcome::Resolved => "resolved",
            WriterOutcome::Unknown => "unknown",
            WriterOutcome::Incompatible(_) => "incompatible",
        }
    }
}

type Key = (u8, u32);

/// Writer resolutions by (topic kind, schema id).
#[derive(Default)]
pub(super) struct Writers {
    map: ArcSwap<FxHashMap<Key, Arc<WriterResolution>>>,
    /// Serialises inserts (copy, add, swap), so that none is lost.
    insert: Mutex<()>,
}

impl Writers {
    /// Whether writer `id` of `kind`'s topic needs (again) to be fetched.
    pub(super) fn needs_fetch(&self, kind: EventKind, id: u32) -> bool {
        self.with(kind, id, |w| match w {
            None => true,
            Some(WriterResolution::Unknown { until, .. }) => *until <= std::time::Instant::now(),
            Some(_) => false,
        })
    }

    /// Calls `f` with the resolution of writer `id` on `kind`'s topic, if known.
    #[inline]
    pub(super) fn with<R>(
        &self,
        kind: EventKind,
        id: u32,
        f: impl FnOnce(Option<&WriterResolution>) -> R,
    ) -> R {
        let map = self.map.load();
        f(map.get(&(kind.index() as u8, id)).map(|w| &**w))
    }

    /// Adds resolutions, all in one swap of the map.
    pub(super) fn insert(&self, items: Vec<(EventKind, u32, WriterResolution)>) {
        // A poisoned lock only means another insert panicked; the map itself is intact.
        let _guard = self.insert.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = FxHashMap::clone(&self.map.load());
        for (kind, id, resolution) in items {
            next.insert((kind.index() as u8, id), Arc::new(resolution));
        }
        let unknown = |w: &WriterResolution| matches!(w, WriterResolution::Unknown { .. });
        if next.values().filter(|w| unknown(w)).count() > MAX_UNKNOWN {
            let now = std::time::Instant::now();
            next.retain(
                |_, w| !matches!(**w, WriterResolution::Unknown { until, .. } if until <= now),
            );
        }
        self.map.store(Arc::new(next));
    }
}

/// Resolves one writer schema text (or its absence from the registry) against `reader`.
///
/// `typed` says whether the reader is a built-in struct, which a writer may be decoded into
/// directly ([`WriterResolution::Direct`]); a declared source's records are transcoded.
pub(super) fn resolve_writer(
    reader: &apache_avro::Schema,
    typed: bool,
    id: u32,
    schema: Option<&str>,
) -> (WriterResolution, WriterOutcome) {
    let Some(text) = schema else {
        let error = DecodeError::UnknownSchemaId {
            id,
            expected: "an id the schema registry knows".into(),
        };
        let until = std::time::Instant::now() + UNKNOWN_ID_RETRY;
        return (
            WriterResolution::Unknown { error, until },
            WriterOutcome::Unknown,
        );
    };
    let refuse = |reason: String| {
        (
            WriterResolution::Refused(DecodeError::IncompatibleSchema {
                id,
                reason: reason.clone(),
            }),
            WriterOutcome::Incompatible(reason),
        )
    };
    let writer = match apache_avro::Schema::parse_str(text) {
        Ok(w) => w,
        Err(e) => return refuse(format!("the writer schema does not parse: {e}")),
    };
    match resolve::resolve(&writer, reader) {
        Ok(Resolution::Identity) => (WriterResolution::Identity, WriterOutcome::Identity),
        Ok(Resolution::Transcode(fallback)) => {
            // A writer the plan does not cover (a union other than `null` with one type, a
            // rarer logical type) is transcoded: slower, the same values.
            let direct = (typed && resolve::by_name(&writer, reader))
                .then(|| resolve::plan::compile(&writer, reader))
                .flatten();
            let resolution = match direct {
                Some(plan) => WriterResolution::Direct { plan, fallback },
                None => WriterResolution::Transcode(fallback),
            };
            (resolution, WriterOutcome::Resolved)
        }
        Err(e) => refuse(e.0),
    }
}

/// The decode error for a record that did not transcode.
pub(super) fn decode_error(e: TranscodeError, id: u32) -> DecodeError {
    match e {
        TranscodeError::Malformed(m) => DecodeError::Avro(format!("writer schema {id}: {m}")),
        TranscodeError::Trailing(n) => DecodeError::TrailingBytes(n),
        TranscodeError::UnknownEnumSymbol(m) => {
            DecodeError::UnknownEnumSymbol(format!("writer schema {id}: {m}"))
        }
        TranscodeError::Unreadable(reason) => DecodeError::IncompatibleSchema { id, reason },
    }
}

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Calls `f` with this thread's cleared transcoding buffer.
pub(super) fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        s.clear();
        let result = f(&mut s);
        if s.capacity() > 1024 * 1024 {
            // An inflated record: give the memory back rather than keep it per thread.
            *s = Vec::new();
        }
        result
    })
}
