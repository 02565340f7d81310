use super::*;
use crate::features::Aggregation;
use proptest::prelude::*;

/// Bit-exact equality: `Tiles`' own `==` says `NaN != NaN` and `0.0 == -0.0`.
fn bits(features: &[(u32, Tiles)]) -> Vec<u8> {
    postcard::to_allocvec(features).unwrap()
}

/// Encodes, decodes, and checks that what reads back is what held a tile, bit for bit.
fn round_trip(features: &[(u32, Tiles)]) -> Vec<u8> {
    let mut out = Vec::new();
    encode(features, &mut out);
    let back = decode(&out).unwrap();
    let held: Vec<_> = features
        .iter()
        .filter(|(_, t)| !t.is_empty())
        .cloned()
        .collect();
    assert_eq!(bits(&back), bits(&held));
    out
}

fn every_kind() -> Vec<(u32, Tiles)> {
    let mut features = Vec::new();
    let events = [
        (1_796_000_000_000, 38.41),
        (1_796_000_600_000, 4_833.709_999_999_999),
        (1_796_003_600_000, -1_324.120_000_000_000_1),
        (1_796_090_000_000, 0.0),
    ];
    let aggs = [
        Aggregation::Count,
        Aggregation::Sum,
        Aggregation::Avg,
        Aggregation::Min,
        Aggregation::Max,
        Aggregation::DistinctCount,
        Aggregation::Last,
        Aggregation::DecayedSum {
            half_life_ms: 86_400_000,
        },
    ];
    for (id, agg) in aggs.into_iter().enumerate() {
        let mut t = Tiles::new(agg);
        for (i, (time, value)) in events.iter().enumerate() {
            t.add(agg, 3_600_000, *time, *value, 1_000 + 77 * i as u32);
        }
        features.push((id as u32 * 3, t));
    }
    let mut text = Tiles::new(Aggregation::LastText);
    text.add_text(60_000, 1_796_000_000_000, "GB");
    text.add_text(60_000, 1_796_000_900_000, "Zürich");
    features.push((40_000, text));
    features
}

#[test]
fn every_kind_of_tile_reads_back_bit_for_bit_and_smaller_than_format_7() {
    let features = every_kind();
    let packed = round_trip(&features);
    let before = bits(&features).len();
    assert!(
        packed.len() * 4 < before * 3,
        "packed {} bytes against {before}",
        packed.len()
    );
}

#[test]
fn features_without_tiles_are_left_out() {
    let mut features = every_kind();
    features.insert(1, (99, Tiles::new(Aggregation::Sum)));
    let mut out = Vec::new();
    encode(&features, &mut out);
    let back = decode(&out).unwrap();
    assert_eq!(back.len(), features.len() - 1);
    assert!(back.iter().all(|(id, _)| *id != 99));
}

#[test]
fn numbers_that_are_not_short_decimals_are_kept_whole() {
    for v in [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        f64::MIN_POSITIVE,
        f64::MAX,
        1e300,
        0.1 + 0.2,
        (1u64 << 53) as f64,
    ] {
        let mut sum = Tiles::new(Aggregation::Sum);
        sum.add(Aggregation::Sum, 60_000, 0, v, 0);
        round_trip(&[(1, sum)]);
    }
}

#[test]
fn cents_take_three_bytes_not_eight() {
    let mut out = Vec::new();
    number(&mut out, 38.41);
    assert_eq!(out.len(), 3, "{out:?}");
    out.clear();
    number(&mut out, 4_833.709_999_999_999);
    assert_eq!(out.len(), 9);
}

#[test]
fn what_does_not_read_is_an_error() {
    let mut out = Vec::new();
    encode(&every_kind(), &mut out);
    for cut in 0..out.len() {
        assert!(decode(&out[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = out.clone();
    longer.push(0);
    assert!(decode(&longer).is_err());
    // An unknown kind.
    assert!(decode(&[1, 1, 9, 0]).is_err());
    // A count of a billion features in four bytes.
    assert!(decode(&[0x80, 0x94, 0xeb, 0xdc, 0x03]).is_err());
}

fn any_number() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        (-10_000_000i64..10_000_000, 0u32..7).prop_map(|(n, s)| n as f64 / 10f64.powi(s as i32)),
        (-1_000_000i64..1_000_000).prop_map(|n| n as f64),
    ]
}

proptest! {
    #[test]
    fn any_tiles_read_back_bit_for_bit(
        sums in proptest::collection::vec((any::<i64>(), any_number()), 0..6),
        counts in proptest::collection::vec((-2_000_000i64..30_000_000, any::<u32>()), 0..6),
        lasts in proptest::collection::vec((any::<i64>(), any::<i64>(), any_number()), 0..4),
        avgs in proptest::collection::vec((any::<i64>(), any_number(), any::<u32>()), 0..4),
        hashes in proptest::collection::vec(any::<u32>(), 1..10),
        text in "\\PC{0,12}",
    ) {
        let mut hashes = hashes;
        hashes.sort_unstable();
        hashes.dedup();
        let features = vec![
            (0, Tiles::Sum(sums.iter().copied().collect())),
            (1, Tiles::Count(counts.iter().copied().collect())),
            (2, Tiles::Last(lasts.iter().copied().collect())),
            (u32::MAX, Tiles::Avg(avgs.iter().copied().collect())),
            (4, Tiles::Decayed(sums.iter().copied().collect())),
            (5, Tiles::Min(sums.iter().copied().collect())),
            (6, Tiles::Distinct([(i64::MIN, hashes.clone()), (i64::MAX, hashes)].into_iter().collect())),
            (7, Tiles::LastText([(3, -4, text.as_str().into())].into_iter().collect())),
        ];
        round_trip(&features);
    }

    #[test]
    fn any_bytes_read_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode(&bytes);
    }
}
