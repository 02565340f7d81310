//! Fuzz target: arbitrary bytes into `Codec::decode`, which must never panic, allocate without
//! bound or accept a record its validation forbids.
//!
//! Input layout (tests/fuzz_seeds.rs writes and checks the seeds in fuzz/seeds/decode/ with it):
//! - byte 0, the selector: bits 0-3 the record kind (`EventKind::ALL[n]` for n < 10; n ≥ 10 selects
//!   the Schema Registry codec and kind `EventKind::ALL[n - 10]`, where TransactionEvent's id 1 names
//!   the v2 writer of tests/fixtures/schemas, so its records go through the transcoder, and every
//!   other kind's id names its reader schema), bit 4 plain framing (else Confluent), bits 5-6 the Kafka key (0: none; else byte 1 gives its length, capped by
//!   what is left, and the key bytes follow), bit 7 also run `decode_datum_prefix` (the recorded
//!   file reader's path) on the payload;
//! - the rest: the record's value (an empty rest is an empty payload).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nbo_stream::codec::{Codec, CodecOptions, Framing};
use nbo_stream::event::EventKind;
use std::sync::OnceLock;

/// The decoder's clock: a fixed "now" (2027-01-15) so that runs are reproducible.
const NOW_MS: i64 = 1_800_000_000_000;

/// A compatible TransactionEvent v2: fields reordered, a new optional field, enum indexes moved.
const TRANSACTION_V2: &str =
    include_str!("../../tests/fixtures/schemas/transaction_event_v2.avsc");

fn codecs() -> &'static (Codec, Codec, Codec) {
    static CODECS: OnceLock<(Codec, Codec, Codec)> = OnceLock::new();
    CODECS.get_or_init(|| {
        let confluent = Codec::with_defaults().expect("the contract's schemas parse");
        let plain = Codec::new(&CodecOptions {
            input_framing: [Framing::Plain; nbo_stream::event::BUILTIN_KINDS],
            ..CodecOptions::default()
        })
        .expect("the contract's schemas parse");
        let registry = Codec::new(&CodecOptions {
            registry: true,
            ..CodecOptions::default()
        })
        .expect("the contract's schemas parse");
        for (i, kind) in EventKind::ALL.into_iter().enumerate() {
            let reader = nbo_stream::codec::schemas::for_kind(kind).text;
            let writer = if kind == EventKind::Transaction { TRANSACTION_V2 } else { reader };
            registry.add_writer(kind, i as u32 + 1, Some(writer));
        }
        (confluent, plain, registry)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(selector & 0x0f);
    let kind = EventKind::ALL[n % EventKind::ALL.len()];
    let (confluent, plain, registry) = codecs();
    let codec = if n >= EventKind::ALL.len() {
        registry
    } else if selector & 0x10 != 0 {
        plain
    } else {
        confluent
    };
    let (key, payload) = if selector & 0x60 == 0 {
        (None, rest)
    } else {
        match rest.split_first() {
            Some((&len, rest)) => {
                let (key, payload) = rest.split_at(usize::from(len).min(rest.len()));
                (Some(key), payload)
            }
            None => (Some(&rest[..0]), rest),
        }
    };
    if let Ok(event) = codec.decode(kind, key, Some(payload), NOW_MS) {
        // Anything accepted is keyed by its own customer id: the co-partitioning contract.
        assert_eq!(key, Some(event.customer_id().as_bytes()));
        assert_eq!(event.kind(), kind);
    }
    if selector & 0x80 != 0 {
        if let Ok((event, used)) = codec.decode_datum_prefix(kind, payload) {
            assert!(used <= payload.len());
            assert_eq!(event.kind(), kind);
            let _ = codec.check_recorded(&event, NOW_MS);
        }
    }
});
