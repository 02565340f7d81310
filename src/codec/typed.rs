//! A built-in record's datum read into its typed struct: with the schema it was written in
//! (`serde_avro_fast`), or along a plan compiled for its writer ([`super::resolve::Plan`]); one
//! decoder per built-in record, expanded from the list of records (`event::builtin_records!`).

use super::{resolve, DecodeError};
use crate::event::{Event, EventKind};
use serde::de::DeserializeOwned;
use serde_avro_fast::Schema;

/// What reads one datum into a built-in record's struct: the schema it was written with, or a
/// plan compiled for its writer.
pub(super) trait Datum {
    /// Decodes all of `body` into a `T`.
    fn datum<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, DecodeError>;
}

impl Datum for Schema {
    #[inline]
    fn datum<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, DecodeError> {
        datum(body, self)
    }
}

impl Datum for resolve::Plan {
    #[inline]
    fn datum<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, DecodeError> {
        self.read(body)
            .map_err(|e| DecodeError::Avro(e.to_string()))
    }
}

macro_rules! typed_decoders {
    ($($variant:ident($ty:ident)),+ $(,)?) => {
        /// Decodes a datum of a built-in record `kind` with `schema` (or plan) into its struct,
        /// fields and enum symbols matched by name.
        #[inline]
        pub(super) fn typed(kind: EventKind, body: &[u8], schema: &impl Datum) -> Result<Event, DecodeError> {
            match kind {
                $(EventKind::$variant => schema.datum(body).map(Event::$variant),)+
                EventKind::Declared(_) => Err(DecodeError::Avro(
                    "a declared source has no built-in struct".into(),
                )),
            }
        }

        /// Decodes a built-in record's datum from the front of `body`; returns the event and the
        /// number of bytes left after it.
        pub(super) fn typed_prefix(
            kind: EventKind,
            body: &[u8],
            schema: &Schema,
        ) -> Result<(Event, usize), DecodeError> {
            match kind {
                $(EventKind::$variant => prefix(body, schema, Event::$variant),)+
                EventKind::Declared(_) => Err(DecodeError::Avro(
                    "a declared source has no built-in struct".into(),
                )),
            }
        }
    };
}
crate::event::builtin_records!(typed_decoders);

/// Longest array or map accepted in an input record; bounds what hostile bytes can allocate.
pub(crate) const MAX_SEQ_LEN: usize = 10_000;

fn datum<T: DeserializeOwned>(body: &[u8], schema: &Schema) -> Result<T, DecodeError> {
    use serde_avro_fast::de::{read::SliceRead, DeserializerConfig, DeserializerState};
    use std::io::Read;
    let mut config = DeserializerConfig::new(schema);
    config.max_seq_size = MAX_SEQ_LEN;
    let mut state = DeserializerState::with_config(SliceRead::new(body), config);
    let value =
        T::deserialize(state.deserializer()).map_err(|e| DecodeError::Avro(e.to_string()))?;
    let mut rest = Vec::new();
    // Reading the remainder of an in-memory slice cannot fail; an error would mean no bytes.
    let trailing = state.into_reader().read_to_end(&mut rest).unwrap_or(0);
    if trailing > 0 {
        return Err(DecodeError::TrailingBytes(trailing));
    }
    Ok(value)
}

/// Deserializes one datum from the front of `body`; returns it (wrapped) and the bytes left over.
fn prefix<T: DeserializeOwned>(
    body: &[u8],
    schema: &Schema,
    wrap: impl FnOnce(T) -> Event,
) -> Result<(Event, usize), DecodeError> {
    use serde_avro_fast::de::{read::SliceRead, DeserializerConfig, DeserializerState};
    use std::io::BufRead;
    let mut config = DeserializerConfig::new(schema);
    config.max_seq_size = MAX_SEQ_LEN;
    let mut state = DeserializerState::with_config(SliceRead::new(body), config);
    let value =
        T::deserialize(state.deserializer()).map_err(|e| DecodeError::Avro(e.to_string()))?;
    // The remainder of an in-memory slice is always available; an error would mean no bytes.
    let rest = state.into_reader().fill_buf().map_or(0, |r| r.len());
    Ok((wrap(value), rest))
}
