//! The stored encoding of [`CustomerState`] (format 8, and format 7, which `state.write_format`
//! can still ask for) byte for byte: Redis holds state across releases, so moving or regrouping
//! the state's types must leave these bytes as they are. What formats 4 to 7 wrote still reads
//! (`migrate.rs`, `format7.rs`).

use super::*;
use crate::customer::{
    AlertRecord, AppliedOffset, ContactHistory, OfferRecord, OutboxEntry, Verdict,
};
use crate::event::{
    AlertLabel, ContactChannel, DecisionOutcome, LifecycleStage, OfferResponseKind, ProductCategory,
};
use crate::features::{Aggregation, Tiles};
use crate::output::{Decision, DecisionAudit};

/// What format 4 wrote for [`every_field_set`].
const FORMAT_4: &str = "0401070101000000000000000440010a03044d41535301f80a0100020001010a6f666665722d6361726402026f31d00f010301a01f0107616c6572742d61880e01880e01c00c0001010406a01f0114010104060102016100014507616c6572742d6104060100010178010166000000000000f03f880e0100010d6f666665722d6361726440763200026f32b8170000010a616c6572742d61407633ec0e";

/// What format 5 wrote for [`every_field_set`].
const FORMAT_5: &str = "0501070101000000000000000440010a03044d41535301f80a0100020001010a6f666665722d6361726402026f31d00f010301a01f01000000000000d03f0107616c6572742d61880e01880e01c00c0001010406a01f0114010104060102016100014507616c6572742d6104060100010178010166000000000000f03f880e0100010d6f666665722d6361726440763200026f32b8170000000000000000000000010a616c6572742d61407633ec0e";

/// What format 6 wrote for [`every_field_set`].
const FORMAT_6: &str = "0601070101000000000000000440010a03044d41535301f80a0100020001010a6f666665722d6361726402026f31d00f010301a01f01000000000000d03f0107616c6572742d61880e04616c2d3104010001880e01c00c0001010406a01f0114010104060102016100014507616c6572742d6104060100010178010166000000000000f03f880e0100010d6f666665722d6361726440763200026f32b8170000000000000000000000010a616c6572742d61407633ec0e000600";

/// A state with every stored field set (and `next_retire_at`, which is not stored).
fn every_field_set() -> CustomerState {
    let mut tiles = Tiles::new(Aggregation::Sum);
    tiles.add(Aggregation::Sum, 60_000, 1_000, 2.5, 0);
    CustomerState {
        features: vec![(7, tiles)],
        profile: Some(ProfileState {
            updated_at: 5,
            lifecycle_stage: LifecycleStage::Mature,
            segment: "MASS".into(),
            credit_score: Some(700),
            consent_marketing: true,
            consent_profiling: false,
            contact_channels: vec![ContactChannel::Email, ContactChannel::Sms],
        }),
        history: ContactHistory::from_records(
            vec![OfferRecord {
                rule_id: "offer-card".into(),
                product: ProductCategory::CreditCard,
                offer_id: "o1".into(),
                at: 1_000,
                response: Some(OfferResponseKind::Declined),
                responded_at: Some(2_000),
                counted: 1,
                configured: 0.25,
            }],
            vec![AlertRecord {
                rule_id: "alert-a".into(),
                at: 900,
                alert_id: "al-1".into(),
                version: 2,
                label: Some(AlertLabel::ConfirmedRisk),
                challengers: vec![
                    (3, Verdict::Alerted),
                    (4, Verdict::Silent),
                    (5, Verdict::Cooling),
                ],
            }],
        ),
        last_high_alert_at: Some(900),
        last_complaint_at: Some(800),
        last_negative_social_at: None,
        applied: vec![AppliedOffset {
            kind: 1,
            partition: 2,
            offset: 3,
        }],
        max_event_time: 2_000,
        next_retire_at: 99,
        erased_before: Some(10),
        outbox: vec![OutboxEntry {
            kind: 1,
            partition: 2,
            offset: 3,
            decisions: vec![Decision::Audit(DecisionAudit {
                audit_id: "a".into(),
                customer_id: String::new(),
                trigger_event_id: "E".into(),
                rule_id: "alert-a".into(),
                rule_version: 2,
                ruleset_version: 3,
                outcome: DecisionOutcome::Alerted,
                decision_id: None,
                reasons: vec!["x".into()],
                features: [("f", 1.0)].into_iter().collect(),
                decided_at: 900,
                shadow_outcome: Some(DecisionOutcome::Offered),
                features_as_of: Some(950),
                propensity: Some(0.5),
                rolled_up: None,
            })],
        }],
        shadow: ContactHistory::from_records(
            vec![OfferRecord {
                rule_id: "offer-card@v2".into(),
                product: ProductCategory::Loan,
                offer_id: "o2".into(),
                at: 1_500,
                response: None,
                responded_at: None,
                counted: 0,
                configured: 0.0,
            }],
            vec![AlertRecord {
                rule_id: "alert-a@v3".into(),
                at: 950,
                alert_id: String::new(),
                version: 3,
                label: None,
                challengers: Vec::new(),
            }],
        ),
        rollups: Default::default(),
        hash: None,
    }
}

/// What format 7 writes for [`every_field_set`].
const FORMAT_7: &str = "0701070101000000000000000440010a03044d41535301f80a0100020001010a6f666665722d6361726402026f31d00f010301a01f01000000000000d03f0107616c6572742d61880e04616c2d3104010003060108000a0201880e01c00c0001010406a01f0114010104060102016100014507616c6572742d6104060100010178010166000000000000f03f880e010001ec0e01000000000000e03f010d6f666665722d6361726440763200026f32b8170000000000000000000000010a616c6572742d61407633ec0e00060000";

/// What format 8 writes for [`every_field_set`].
const FORMAT_8: &str = "080701070101009103010a03044d41535301f80a0100020001010a6f666665722d6361726402026f31d00f010301a01f01000000000000d03f0107616c6572742d61880e04616c2d3104010003060108000a0201880e01c00c0001010406a01f0114010104060102016100014507616c6572742d6104060100010178010166000000000000f03f880e010001ec0e01000000000000e03f010d6f666665722d6361726440763200026f32b8170000000000000000000000010a616c6572742d61407633ec0e00060000";

/// The body `format` writes for `state`: after its format byte, before its trailer.
fn body(format: u8, state: &CustomerState) -> Vec<u8> {
    match format {
        format7::FORMAT_7 => format7::write(state, Vec::new()).unwrap(),
        _ => postcard::to_allocvec(state).unwrap(),
    }
}

/// What a release of `format` from before the trailer reads from a stored value.
fn read_by_earlier_release(format: u8, stored: &[u8]) -> CustomerState {
    assert_eq!(stored[0], format);
    match format {
        format7::FORMAT_7 => format7::read(&stored[1..]).unwrap().0,
        _ => postcard::from_bytes(&stored[1..]).unwrap(),
    }
}

#[test]
fn format_8_is_written_byte_for_byte_as_before() {
    let state = every_field_set();
    assert_eq!(hex::encode(state.to_bytes().unwrap()), FORMAT_8);
}

#[test]
fn format_7_is_written_byte_for_byte_as_before_when_asked_for() {
    let state = every_field_set();
    assert_eq!(hex::encode(state.to_bytes_as(7, 0).unwrap()), FORMAT_7);
}

/// Format 8 is format 7 with the tiles packed: the same bytes before and after them.
#[test]
fn format_8_differs_from_format_7_only_in_the_packed_tiles() {
    let state = every_field_set();
    let (v7, v8) = (
        hex::decode(FORMAT_7).unwrap(),
        hex::decode(FORMAT_8).unwrap(),
    );
    let tiles_7 = postcard::to_allocvec(&state.features).unwrap();
    let mut packed = Vec::new();
    crate::features::packed::encode(&state.features, &mut packed);
    let tiles_8 = postcard::to_allocvec(&serde_bytes_of(&packed)).unwrap();
    assert_eq!(&v7[1..1 + tiles_7.len()], &tiles_7[..]);
    assert_eq!(&v8[1..1 + tiles_8.len()], &tiles_8[..]);
    assert_eq!(&v7[1 + tiles_7.len()..], &v8[1 + tiles_8.len()..]);
    assert!(tiles_8.len() < tiles_7.len());
}

/// Format 7 as written now stores every kind of tile as the derived encoding of the features
/// did (what a release from before format 8 reads), leaving out features without tiles.
#[test]
fn format_7_stores_every_kind_of_tile_as_releases_before_format_8_read_it() {
    let aggs = [
        Aggregation::Count,
        Aggregation::Avg,
        Aggregation::Min,
        Aggregation::Max,
        Aggregation::DistinctCount,
        Aggregation::Last,
        Aggregation::DecayedSum {
            half_life_ms: 3_600_000,
        },
    ];
    let mut state = every_field_set();
    for (i, agg) in aggs.into_iter().enumerate() {
        let mut tiles = Tiles::new(agg);
        for (t, v) in [(1_000, 38.41), (90_000, -0.0), (200_000, f64::NAN)] {
            tiles.add(agg, 60_000, t, v, t as u32);
        }
        state.features.push((10 + i as u32, tiles));
    }
    let mut text = Tiles::new(Aggregation::LastText);
    text.add_text(60_000, 5, "GB");
    state.features.push((20, text));
    state.features.push((21, Tiles::new(Aggregation::Sum)));
    let held: Vec<_> = state.features[..state.features.len() - 1].to_vec();
    let derived = postcard::to_allocvec(&held).unwrap();
    let bytes = state.to_bytes_as(7, 0).unwrap();
    assert_eq!(&bytes[1..1 + derived.len()], &derived[..]);
    let back = CustomerState::from_bytes(&bytes).unwrap();
    assert_eq!(postcard::to_allocvec(&back.features).unwrap(), derived);
    let packed = CustomerState::from_bytes(&state.to_bytes().unwrap()).unwrap();
    assert_eq!(postcard::to_allocvec(&packed.features).unwrap(), derived);
}

/// A byte string as serde writes one (postcard: its length, then the bytes).
fn serde_bytes_of(bytes: &[u8]) -> impl serde::Serialize + '_ {
    struct Bytes<'a>(&'a [u8]);
    impl serde::Serialize for Bytes<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
    Bytes(bytes)
}

#[test]
fn formats_7_and_8_read_back_as_written() {
    let written = CustomerState {
        next_retire_at: 0,
        ..every_field_set()
    };
    for stored in [FORMAT_7, FORMAT_8] {
        let read = CustomerState::from_bytes(&hex::decode(stored).unwrap()).unwrap();
        assert_eq!(read, written);
    }
}

#[test]
fn a_format_this_release_does_not_write_is_refused() {
    let err = every_field_set().to_bytes_as(6, 0).unwrap_err();
    assert!(
        err.to_string().contains("not one this release writes"),
        "{err}"
    );
}

/// The trailer (what the hash was written with) follows the body: a reader of the format that
/// predates it reads the body and stops, and this release reads it back.
#[test]
fn a_trailer_reads_back_and_an_earlier_release_reads_as_before_without_it() {
    let state = CustomerState {
        hash: Some(crate::customer::HashWritten {
            features: 0x1234_5678,
            whole_at: 1_800_000_000_000,
        }),
        next_retire_at: 0,
        ..every_field_set()
    };
    for (format, plain) in [(7, FORMAT_7), (8, FORMAT_8)] {
        let bytes = state.to_bytes_as(format, 0).unwrap();
        assert_eq!(
            hex::encode(&bytes),
            format!("{plain}f8acd1910180c0e285e368")
        );
        assert_eq!(CustomerState::from_bytes(&bytes).unwrap(), state);
        let without = CustomerState {
            hash: None,
            ..state.clone()
        };
        assert_eq!(read_by_earlier_release(format, &bytes), without);
        // A trailer that does not read (cut short: its last byte says more follow) is dropped;
        // the state is kept.
        let mut cut = bytes.clone();
        *cut.last_mut().unwrap() = 0xff;
        assert_eq!(CustomerState::from_bytes(&cut).unwrap(), without);
    }
}

/// A state with open cooldown roll-ups and a roll-up record in its outbox
/// (`operator.audit_rollup`).
fn with_rollups(state: CustomerState) -> CustomerState {
    let mut state = CustomerState {
        rollups: {
            let mut r = crate::customer::Rollups::default();
            r.suppressed(("alert-a", 2, 3), "E1", 900, 60_000);
            r.suppressed(("alert-a", 2, 3), "E2", 950, 60_000);
            r
        },
        next_retire_at: 0,
        ..state
    };
    let Decision::Audit(audit) = &state.outbox[0].decisions[0] else {
        unreachable!("every_field_set's outbox holds an audit")
    };
    let rolled = DecisionAudit {
        rolled_up: Some(crate::output::RolledUp {
            count: 3,
            last_trigger_event_id: "E9".into(),
            last_decided_at: 990,
        }),
        ..audit.clone()
    };
    state.outbox[0].decisions.push(Decision::Audit(rolled));
    state
}

/// Roll-ups go in the trailer, after the hash (a placeholder when it is not known): the body is
/// the format's own, so a release from before them reads the state, without them.
#[test]
fn rollups_ride_in_the_trailer_and_an_earlier_release_reads_past_them() {
    for hash in [
        None,
        Some(crate::customer::HashWritten {
            features: 0x1234_5678,
            whole_at: 1_800_000_000_000,
        }),
    ] {
        let state = CustomerState {
            hash,
            ..with_rollups(every_field_set())
        };
        for format in WRITE_FORMATS {
            let bytes = state.to_bytes_as(format, 0).unwrap();
            assert_eq!(CustomerState::from_bytes(&bytes).unwrap(), state);

            // The body is what the format writes for the same state without roll-ups: what an
            // earlier release reads, and the trailer it reads past.
            let plain = CustomerState {
                rollups: Default::default(),
                outbox: state.outbox.clone(),
                ..state.clone()
            };
            let mut plain = plain;
            if let Decision::Audit(a) = &mut plain.outbox[0].decisions[1] {
                a.rolled_up = None;
            }
            assert_eq!(
                read_by_earlier_release(format, &bytes),
                CustomerState {
                    hash: None,
                    ..plain.clone()
                }
            );
            let plain_bytes = plain.to_bytes_as(format, 0).unwrap();
            let body = body(format, &plain);
            assert_eq!(&bytes[1..1 + body.len()], &body[..]);
            assert_eq!(&plain_bytes[1..1 + body.len()], &body[..]);
            // What an earlier release takes for the hash: the one written, or the placeholder,
            // whose fingerprint no feature set has (the hash is then rewritten whole).
            let read_hash: crate::customer::HashWritten =
                postcard::from_bytes(&bytes[1 + body.len()..]).unwrap();
            assert_eq!(read_hash.features, hash.map_or(0, |h| h.features));

            // A roll-up part that does not read is dropped; the state and its hash are kept.
            let mut cut = bytes.clone();
            *cut.last_mut().unwrap() = 0xff;
            let read = CustomerState::from_bytes(&cut).unwrap();
            assert_eq!(read, CustomerState { hash, ..plain });
        }
    }
}

/// `state` as formats before 7 kept it: outbox audits without their features' as-of time and
/// propensity, alerts without their challengers' verdicts.
fn without_audit_as_of(mut state: CustomerState) -> CustomerState {
    let strip = |h: &ContactHistory| {
        let alerts = h
            .alerts()
            .iter()
            .map(|a| AlertRecord {
                challengers: Vec::new(),
                ..a.clone()
            })
            .collect();
        ContactHistory::from_records(h.offers().to_vec(), alerts)
    };
    state.history = strip(&state.history);
    state.shadow = strip(&state.shadow);
    for entry in &mut state.outbox {
        for decision in &mut entry.decisions {
            if let Decision::Audit(a) = decision {
                a.features_as_of = None;
                a.propensity = None;
            }
        }
    }
    state
}

#[test]
fn format_6_reads_with_audits_without_as_of() {
    let read = CustomerState::from_bytes(&hex::decode(FORMAT_6).unwrap()).unwrap();
    let written = CustomerState {
        next_retire_at: 0,
        ..every_field_set()
    };
    assert_eq!(read, without_audit_as_of(written));
}

/// `state` as formats before 6 kept it: alerts without their ids, versions and labels.
fn without_alert_ids(mut state: CustomerState) -> CustomerState {
    let strip = |h: &ContactHistory| {
        let alerts = h
            .alerts()
            .iter()
            .map(|a| AlertRecord {
                alert_id: String::new(),
                version: 0,
                label: None,
                ..a.clone()
            })
            .collect();
        ContactHistory::from_records(h.offers().to_vec(), alerts)
    };
    state.history = strip(&state.history);
    state.shadow = strip(&state.shadow);
    state
}

#[test]
fn format_5_reads_with_alerts_without_ids() {
    let read = CustomerState::from_bytes(&hex::decode(FORMAT_5).unwrap()).unwrap();
    let written = CustomerState {
        next_retire_at: 0,
        ..every_field_set()
    };
    assert_eq!(read, without_alert_ids(without_audit_as_of(written)));
}

#[test]
fn format_4_reads_with_nothing_counted() {
    let read = CustomerState::from_bytes(&hex::decode(FORMAT_4).unwrap()).unwrap();
    let mut written = CustomerState {
        next_retire_at: 0,
        ..every_field_set()
    };
    let offers = written.history.offers().to_vec();
    let uncounted = offers
        .into_iter()
        .map(|o| OfferRecord {
            counted: 0,
            configured: 0.0,
            ..o
        })
        .collect();
    written.history = ContactHistory::from_records(uncounted, written.history.alerts().to_vec());
    assert_eq!(read, without_alert_ids(without_audit_as_of(written)));
}
