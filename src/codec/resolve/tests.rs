//! The transcoder against apache-avro's own resolution (`from_avro_datum` with a reader schema),
//! the reference: for each writer/reader pair, a datum written with the writer and transcoded must
//! read (with the reader schema) as the value apache-avro resolves it to.

#![allow(deprecated)] // apache-avro's one-call datum functions are the simplest reference here.

use super::*;
use apache_avro::types::Value;

fn schema(json: &str) -> Schema {
    Schema::parse_str(json).unwrap()
}

/// Writes `value` with `writer`, then checks transcode + read-as-reader == apache-avro's resolution.
fn agrees(writer: &str, reader: &str, value: Value) -> Value {
    let (w, r) = (schema(writer), schema(reader));
    let bytes = apache_avro::to_avro_datum(&w, value).unwrap();
    let expected = apache_avro::from_avro_datum(&w, &mut &bytes[..], Some(&r)).unwrap();
    let Resolution::Transcode(t) = resolve(&w, &r).unwrap() else {
        panic!("expected a transcoding");
    };
    let mut out = Vec::new();
    t.transcode(&bytes, &mut out).unwrap();
    let got = apache_avro::from_avro_datum(&r, &mut &out[..], None).unwrap();
    assert_eq!(got, expected);
    got
}

fn fails(writer: &str, reader: &str, value: Value) -> TranscodeError {
    let (w, r) = (schema(writer), schema(reader));
    let bytes = apache_avro::to_avro_datum(&w, value).unwrap();
    let Resolution::Transcode(t) = resolve(&w, &r).unwrap() else {
        panic!("expected a transcoding");
    };
    t.transcode(&bytes, &mut Vec::new()).unwrap_err()
}

fn rec(fields: &[(&str, Value)]) -> Value {
    Value::Record(
        fields
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect(),
    )
}

const V1: &str = r#"{"type":"record","name":"Txn","fields":[
  {"name":"id","type":"string"},
  {"name":"amount","type":"long"},
  {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["CARD","CASH"],"default":"CARD"}},
  {"name":"country","type":["null","string"],"default":null}]}"#;

/// v2 as a producer team would ship it: fields reordered, a new optional field, a new symbol.
const V2: &str = r#"{"type":"record","name":"Txn","fields":[
  {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["CARD","CASH","WALLET"],"default":"CARD"}},
  {"name":"country","type":["null","string"],"default":null},
  {"name":"amount","type":"long"},
  {"name":"id","type":"string"},
  {"name":"device","type":["null","string"],"default":null}]}"#;

#[test]
fn identical_schemas_take_the_fast_path() {
    assert!(matches!(
        resolve(&schema(V1), &schema(V1)).unwrap(),
        Resolution::Identity
    ));
}

#[test]
fn a_v2_writer_reads_as_v1_reordered_new_field_dropped_new_symbol_defaulted() {
    let v = rec(&[
        ("kind", Value::Enum(2, "WALLET".into())),
        (
            "country",
            Value::Union(1, Box::new(Value::String("GB".into()))),
        ),
        ("amount", Value::Long(1234)),
        ("id", Value::String("e-1".into())),
        (
            "device",
            Value::Union(1, Box::new(Value::String("watch".into()))),
        ),
    ]);
    let got = agrees(V2, V1, v);
    assert_eq!(
        got,
        rec(&[
            ("id", Value::String("e-1".into())),
            ("amount", Value::Long(1234)),
            ("kind", Value::Enum(0, "CARD".into())),
            (
                "country",
                Value::Union(1, Box::new(Value::String("GB".into())))
            ),
        ])
    );
}

#[test]
fn a_v1_writer_reads_as_v2_with_defaults() {
    let v = rec(&[
        ("id", Value::String("e-2".into())),
        ("amount", Value::Long(-5)),
        ("kind", Value::Enum(1, "CASH".into())),
        ("country", Value::Union(0, Box::new(Value::Null))),
    ]);
    agrees(V1, V2, v);
}

#[test]
fn numbers_promote_and_strings_and_bytes_interchange() {
    let writer = r#"{"type":"record","name":"R","fields":[
      {"name":"a","type":"int"},{"name":"b","type":"int"},{"name":"c","type":"long"},
      {"name":"d","type":"float"},{"name":"e","type":"string"},{"name":"f","type":"bytes"},
      {"name":"g","type":"int"}]}"#;
    let reader = r#"{"type":"record","name":"R","fields":[
      {"name":"a","type":"long"},{"name":"b","type":"double"},{"name":"c","type":"float"},
      {"name":"d","type":"double"},{"name":"e","type":"bytes"},{"name":"f","type":"string"},
      {"name":"g","type":"float"}]}"#;
    agrees(
        writer,
        reader,
        rec(&[
            ("a", Value::Int(-70_000)),
            ("b", Value::Int(i32::MAX)),
            ("c", Value::Long(1 << 40)),
            ("d", Value::Float(1.5)),
            ("e", Value::String("héllo".into())),
            ("f", Value::Bytes(b"bytes".to_vec())),
            ("g", Value::Int(7)),
        ]),
    );
}

#[test]
fn unions_resolve_on_either_side() {
    let writer = r#"{"type":"record","name":"R","fields":[
      {"name":"a","type":"long"},{"name":"b","type":["null","int"]},{"name":"c","type":["int","string"]}]}"#;
    let reader = r#"{"type":"record","name":"R","fields":[
      {"name":"a","type":["null","long"]},{"name":"b","type":["null","long"]},{"name":"c","type":["string","double"]}]}"#;
    for (b, c) in [
        (
            Value::Union(0, Box::new(Value::Null)),
            Value::Union(0, Box::new(Value::Int(3))),
        ),
        (
            Value::Union(1, Box::new(Value::Int(9))),
            Value::Union(1, Box::new(Value::String("x".into()))),
        ),
    ] {
        agrees(
            writer,
            reader,
            rec(&[("a", Value::Long(42)), ("b", b), ("c", c)]),
        );
    }
}

#[test]
fn nested_records_arrays_and_maps_with_defaults() {
    let writer = r#"{"type":"record","name":"R","fields":[
      {"name":"items","type":{"type":"array","items":{"type":"record","name":"I","fields":[
        {"name":"q","type":"int"},{"name":"sku","type":"string"}]}}},
      {"name":"tags","type":{"type":"map","values":"int"}}]}"#;
    let reader = r#"{"type":"record","name":"R","fields":[
      {"name":"tags","type":{"type":"map","values":"long"}},
      {"name":"items","type":{"type":"array","items":{"type":"record","name":"I","fields":[
        {"name":"sku","type":"string"},{"name":"q","type":"double"},
        {"name":"unit","type":"string","default":"EA"}]}}}]}"#;
    let item = |q, sku: &str| rec(&[("q", Value::Int(q)), ("sku", Value::String(sku.into()))]);
    agrees(
        writer,
        reader,
        rec(&[
            (
                "items",
                Value::Array(vec![item(1, "a"), item(2, "b"), item(3, "c")]),
            ),
            (
                "tags",
                Value::Map(
                    [
                        ("x".to_string(), Value::Int(1)),
                        ("y".to_string(), Value::Int(-2)),
                    ]
                    .into(),
                ),
            ),
        ]),
    );
}

#[test]
fn an_unknown_symbol_without_an_enum_default_fails_that_record_only() {
    let writer = r#"{"type":"enum","name":"E","symbols":["A","B","C"]}"#;
    let reader = r#"{"type":"enum","name":"E","symbols":["A","B"]}"#;
    let (w, r) = (schema(writer), schema(reader));
    let Resolution::Transcode(t) = resolve(&w, &r).unwrap() else {
        panic!()
    };
    let mut out = Vec::new();
    t.transcode(
        &apache_avro::to_avro_datum(&w, Value::Enum(1, "B".into())).unwrap(),
        &mut out,
    )
    .unwrap();
    assert_eq!(out, vec![2]); // index 1, zig-zag
    let err = fails(writer, reader, Value::Enum(2, "C".into()));
    assert!(matches!(err, TranscodeError::UnknownEnumSymbol(m) if m.contains("C")));
}

#[test]
fn a_required_field_the_writer_lacks_is_incompatible_at_compile_time() {
    let writer = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#;
    let reader = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"b","type":"string"}]}"#;
    let err = resolve(&schema(writer), &schema(reader)).unwrap_err();
    assert!(
        err.0.contains("`b`") && err.0.contains("no default"),
        "{err}"
    );
    let narrowing = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;
    let err = resolve(&schema(writer), &schema(narrowing)).unwrap_err();
    assert!(err.0.contains("long cannot be read as int"), "{err}");
}

#[test]
fn a_writer_union_branch_the_reader_lacks_fails_only_records_that_take_it() {
    let writer = r#"["null","string"]"#;
    let reader = r#""string""#;
    let err = fails(writer, reader, Value::Union(0, Box::new(Value::Null)));
    assert!(matches!(err, TranscodeError::Unreadable(_)));
    agrees(
        writer,
        reader,
        Value::Union(1, Box::new(Value::String("ok".into()))),
    );
}

#[test]
fn hostile_bytes_are_errors_not_panics() {
    let (w, r) = (schema(V2), schema(V1));
    let Resolution::Transcode(t) = resolve(&w, &r).unwrap() else {
        panic!()
    };
    let good = apache_avro::to_avro_datum(
        &w,
        rec(&[
            ("kind", Value::Enum(0, "CARD".into())),
            ("country", Value::Union(0, Box::new(Value::Null))),
            ("amount", Value::Long(1)),
            ("id", Value::String("x".into())),
            ("device", Value::Union(0, Box::new(Value::Null))),
        ]),
    )
    .unwrap();
    for cut in 0..good.len() {
        assert!(t.transcode(&good[..cut], &mut Vec::new()).is_err());
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(
        t.transcode(&trailing, &mut Vec::new()),
        Err(TranscodeError::Trailing(1))
    );
    for bad in [
        vec![0x7f],
        vec![0xff; 12],
        vec![2, 9, 0xff, 0xff, 0xff, 0xff, 0x0f],
    ] {
        assert!(t.transcode(&bad, &mut Vec::new()).is_err());
    }
    // An array claiming more items than the limit.
    let arrays = schema(r#"{"type":"array","items":"int"}"#);
    let longs = schema(r#"{"type":"array","items":"long"}"#);
    let doubles = schema(r#"{"type":"array","items":"double"}"#);
    let mut huge = Vec::new();
    exec_varint(&mut huge, 1_000_000);
    for reader in [&longs, &doubles] {
        let Resolution::Transcode(t) = resolve(&arrays, reader).unwrap() else {
            panic!()
        };
        assert!(t.transcode(&huge, &mut Vec::new()).is_err());
    }
}

fn exec_varint(out: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[test]
fn a_block_count_near_the_limit_of_i64_is_an_error_not_an_overflow() {
    let writer = r#"{"type":"record","name":"R","fields":[{"name":"x","type":"long"},{"name":"n","type":{"type":"array","items":"null"}}]}"#;
    let reader = r#"{"type":"record","name":"R","fields":[{"name":"n","type":{"type":"array","items":"null"}}]}"#;
    let Resolution::Transcode(t) = resolve(&schema(writer), &schema(reader)).unwrap() else {
        panic!()
    };
    let mut b = vec![0u8];
    exec_varint(&mut b, 1);
    exec_varint(&mut b, i64::MAX);
    b.push(0);
    assert!(matches!(
        t.transcode(&b, &mut Vec::new()),
        Err(TranscodeError::Malformed(_))
    ));
}

#[test]
fn a_union_branch_of_the_same_type_wins_over_a_promotion() {
    let big = (1i64 << 53) + 1;
    for (writer, reader, value) in [
        (r#""long""#, r#"["null","double","long"]"#, Value::Long(big)),
        (
            r#"["null","long"]"#,
            r#"["null","double","long"]"#,
            Value::Union(1, Box::new(Value::Long(big))),
        ),
        (r#""int""#, r#"["null","long","int"]"#, Value::Int(7)),
        (
            r#""string""#,
            r#"["null","bytes","string"]"#,
            Value::String("s".into()),
        ),
    ] {
        let got = agrees(writer, reader, value);
        assert!(
            !matches!(got, Value::Union(_, ref v) if matches!(**v, Value::Double(_) | Value::Bytes(_))),
            "{got:?}"
        );
    }
}

#[test]
fn a_union_default_is_a_value_of_its_first_branch() {
    let writer = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#;
    for reader in [
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"d","type":["float","double"],"default":1.5}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"d","type":["bytes","string"],"default":"x"}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"d","type":["null","string"],"default":null}]}"#,
    ] {
        let got = agrees(writer, reader, rec(&[("a", Value::Long(3))]));
        let Value::Record(fields) = got else { panic!() };
        assert!(matches!(fields[1].1, Value::Union(0, _)), "{fields:?}");
    }
}

#[test]
fn an_exact_field_name_wins_over_a_reader_alias() {
    let writer = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"b","type":"long"}]}"#;
    let reader =
        r#"{"type":"record","name":"R","fields":[{"name":"b","type":"long","aliases":["a"]}]}"#;
    let got = agrees(
        writer,
        reader,
        rec(&[("a", Value::Long(1)), ("b", Value::Long(2))]),
    );
    assert_eq!(got, rec(&[("b", Value::Long(2))]));
    // With no field of its own name, the alias takes the writer's field (apache-avro does not
    // follow reader aliases, so the expected value is written out).
    let renamed = schema(
        r#"{"type":"record","name":"R","fields":[{"name":"c","type":"long","aliases":["a"]}]}"#,
    );
    let w = schema(writer);
    let Resolution::Transcode(t) = resolve(&w, &renamed).unwrap() else {
        panic!()
    };
    let bytes =
        apache_avro::to_avro_datum(&w, rec(&[("a", Value::Long(1)), ("b", Value::Long(2))]))
            .unwrap();
    let mut out = Vec::new();
    t.transcode(&bytes, &mut out).unwrap();
    let got = apache_avro::from_avro_datum(&renamed, &mut &out[..], None).unwrap();
    assert_eq!(got, rec(&[("c", Value::Long(1))]));
}

#[test]
fn a_newer_reader_with_defaults_between_and_after_streams_in_order() {
    let writer = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"gone","type":"string"},{"name":"c","type":"long"}]}"#;
    let reader = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"b","type":"string","default":"B"},{"name":"c","type":"long"},{"name":"d","type":["null","long"],"default":null}]}"#;
    let (w, r) = (schema(writer), schema(reader));
    let Resolution::Transcode(t) = resolve(&w, &r).unwrap() else {
        panic!()
    };
    assert!(matches!(&t.op, compile::Op::Record(rec) if rec.in_order));
    agrees(
        writer,
        reader,
        rec(&[
            ("a", Value::Long(1)),
            ("gone", Value::String("x".into())),
            ("c", Value::Long(3)),
        ]),
    );
}

#[test]
fn a_schema_that_reuses_its_types_at_every_level_is_refused_not_expanded_for_ever() {
    // Level i is a record with two fields of level i + 1: 2^24 steps if expanded.
    let mut s =
        r#"{"type":"record","name":"L24","fields":[{"name":"v","type":"long"}]}"#.to_string();
    for i in (0..24).rev() {
        s = format!(
            r#"{{"type":"record","name":"L{i}","fields":[{{"name":"x","type":{s}}},{{"name":"y","type":"L{}"}}]}}"#,
            i + 1
        );
    }
    let writer = schema(&s);
    let reader = schema(&s.replace(
        r#""name":"v","type":"long""#,
        r#""name":"v","type":"double""#,
    ));
    let err = resolve(&writer, &reader).unwrap_err();
    assert!(err.0.contains("too large"), "{err}");
}
