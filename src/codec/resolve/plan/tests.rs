//! The plan against the authority: for each writer/reader pair, a datum written with the writer
//! must decode along the plan into the value the transcoder + typed decoder give.

#![allow(deprecated)] // apache-avro's one-call datum writer is the simplest reference here.

use super::compile;
use crate::codec::resolve::{resolve, Resolution};
use apache_avro::types::Value;
use apache_avro::Schema;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, PartialEq, Deserialize)]
enum Kind {
    #[serde(rename = "CARD")]
    Card,
    #[serde(rename = "CASH")]
    Cash,
}

#[derive(Debug, PartialEq, Deserialize)]
struct Inner {
    a: i32,
    b: Option<String>,
}

#[derive(Debug, PartialEq, Deserialize)]
struct Txn {
    id: String,
    amount: i64,
    kind: Kind,
    country: Option<String>,
    tags: Vec<String>,
    attrs: BTreeMap<String, f64>,
    inner: Inner,
    ok: bool,
    ratio: f32,
}

const READER: &str = r#"{"type":"record","name":"Txn","fields":[
  {"name":"id","type":"string"},
  {"name":"amount","type":"long"},
  {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["CARD","CASH"],"default":"CARD"}},
  {"name":"country","type":["null","string"],"default":null},
  {"name":"tags","type":{"type":"array","items":"string"}},
  {"name":"attrs","type":{"type":"map","values":"double"}},
  {"name":"inner","type":{"type":"record","name":"Inner","fields":[
    {"name":"a","type":"int"},{"name":"b","type":["null","string"]}]}},
  {"name":"ok","type":"boolean"},
  {"name":"ratio","type":"float"}]}"#;

/// Fields reversed, an int where the reader has a long, symbols inserted first, and fields the
/// reader lacks of every shape (skipped in place, nested ones too).
const WRITER: &str = r#"{"type":"record","name":"Txn","fields":[
  {"name":"ratio","type":"float"},
  {"name":"ok","type":"boolean"},
  {"name":"extra_rec","type":{"type":"record","name":"X","fields":[
    {"name":"x","type":{"type":"array","items":["null","long"]}},
    {"name":"m","type":{"type":"map","values":"bytes"}},
    {"name":"f","type":{"type":"fixed","name":"F","size":3}},
    {"name":"e","type":{"type":"enum","name":"E","symbols":["P","Q"]}},
    {"name":"d","type":"double"}]}},
  {"name":"inner","type":{"type":"record","name":"Inner","fields":[
    {"name":"extra","type":"string"},{"name":"b","type":["null","string"]},{"name":"a","type":"int"}]}},
  {"name":"attrs","type":{"type":"map","values":"double"}},
  {"name":"tags","type":{"type":"array","items":"string"}},
  {"name":"device","type":["null","string"],"default":null},
  {"name":"country","type":["null","string"],"default":null},
  {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["WALLET","CASH","CARD"],"default":"CARD"}},
  {"name":"amount","type":"int"},
  {"name":"id","type":"string"}]}"#;

fn written(kind: (u32, &str), amount: i32) -> Value {
    let rec = |fields: Vec<(&str, Value)>| {
        Value::Record(fields.into_iter().map(|(n, v)| (n.into(), v)).collect())
    };
    let some = |v: Value| Value::Union(1, Box::new(v));
    rec(vec![
        ("ratio", Value::Float(0.5)),
        ("ok", Value::Boolean(true)),
        (
            "extra_rec",
            rec(vec![
                (
                    "x",
                    Value::Array(vec![
                        some(Value::Long(7)),
                        Value::Union(0, Box::new(Value::Null)),
                    ]),
                ),
                (
                    "m",
                    Value::Map([("k".to_string(), Value::Bytes(vec![1, 2]))].into()),
                ),
                ("f", Value::Fixed(3, vec![9, 9, 9])),
                ("e", Value::Enum(1, "Q".into())),
                ("d", Value::Double(2.5)),
            ]),
        ),
        (
            "inner",
            rec(vec![
                ("extra", Value::String("skip me".into())),
                ("b", some(Value::String("bee".into()))),
                ("a", Value::Int(-3)),
            ]),
        ),
        (
            "attrs",
            Value::Map(
                [
                    ("x".to_string(), Value::Double(1.5)),
                    ("y".to_string(), Value::Double(-2.0)),
                ]
                .into(),
            ),
        ),
        (
            "tags",
            Value::Array(vec![Value::String("t1".into()), Value::String("t2".into())]),
        ),
        ("device", some(Value::String("phone".into()))),
        ("country", Value::Union(0, Box::new(Value::Null))),
        ("kind", Value::Enum(kind.0, kind.1.into())),
        ("amount", Value::Int(amount)),
        ("id", Value::String("e-1".into())),
    ])
}

fn schemas() -> (Schema, Schema) {
    (
        Schema::parse_str(WRITER).unwrap(),
        Schema::parse_str(READER).unwrap(),
    )
}

/// What the authoritative path gives: transcode, then the typed decoder with the reader schema.
fn transcoded(writer: &Schema, reader: &Schema, bytes: &[u8]) -> Txn {
    let Resolution::Transcode(t) = resolve(writer, reader).unwrap() else {
        panic!("expected a transcoding");
    };
    let mut out = Vec::new();
    t.transcode(bytes, &mut out).unwrap();
    let fast: serde_avro_fast::Schema = READER.parse().unwrap();
    serde_avro_fast::from_datum_slice(&out, &fast).unwrap()
}

#[test]
fn a_reordered_writer_with_extra_fields_decodes_as_the_transcoder_reads_it() {
    let (w, r) = schemas();
    assert!(crate::codec::resolve::by_name(&w, &r));
    let plan = compile(&w, &r).expect("a plan");
    for (kind, amount) in [((2, "CARD"), 1234), ((1, "CASH"), i32::MIN)] {
        let bytes = apache_avro::to_avro_datum(&w, written(kind, amount)).unwrap();
        let direct: Txn = plan.read(&bytes).unwrap();
        assert_eq!(direct, transcoded(&w, &r, &bytes));
        assert_eq!(direct.amount, i64::from(amount));
        assert_eq!(
            direct.inner,
            Inner {
                a: -3,
                b: Some("bee".into())
            }
        );
        assert_eq!(direct.tags, ["t1", "t2"]);
    }
}

#[test]
fn a_symbol_the_reader_lacks_and_malformed_bytes_are_errors_not_panics() {
    let (w, r) = schemas();
    let plan = compile(&w, &r).unwrap();
    // WALLET: the reader lacks it; the transcoder applies the enum default instead.
    let wallet = apache_avro::to_avro_datum(&w, written((0, "WALLET"), 1)).unwrap();
    assert!(plan.read::<Txn>(&wallet).is_err());
    assert_eq!(transcoded(&w, &r, &wallet).kind, Kind::Card);
    let bytes = apache_avro::to_avro_datum(&w, written((2, "CARD"), 1)).unwrap();
    for end in 0..bytes.len() {
        assert!(plan.read::<Txn>(&bytes[..end]).is_err(), "cut at {end}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(plan.read::<Txn>(&longer).is_err());
    // Every single byte corrupted: an error or some value, never a panic.
    for i in 0..bytes.len() {
        for b in [0x00, 0x7f, 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[i] = b;
            let _ = plan.read::<Txn>(&bad);
        }
    }
}

#[test]
fn pairs_that_do_not_read_by_name_get_no_plan() {
    let record = |fields: &str| {
        Schema::parse_str(&format!(
            r#"{{"type":"record","name":"R","fields":[{fields}]}}"#
        ))
        .unwrap()
    };
    let reader = record(
        r#"{"name":"a","type":"long"},{"name":"o","type":["null","string"],"default":null}"#,
    );
    // A reader field filled from its default.
    assert!(compile(&record(r#"{"name":"a","type":"long"}"#), &reader).is_none());
    // Union branches swapped, or a union that is not null-or-one-type.
    let swapped = record(r#"{"name":"a","type":"long"},{"name":"o","type":["string","null"]}"#);
    assert!(compile(&swapped, &reader).is_none());
    let wide = record(r#"{"name":"a","type":"long"},{"name":"o","type":["null","string","long"]}"#);
    let wide_reader =
        record(r#"{"name":"a","type":"long"},{"name":"o","type":["null","string","long"]}"#);
    assert!(compile(&wide, &wide_reader).is_none());
    // A promotion other than int→long.
    let float = record(r#"{"name":"a","type":"float"},{"name":"o","type":["null","string"]}"#);
    let double = record(r#"{"name":"a","type":"double"},{"name":"o","type":["null","string"]}"#);
    assert!(compile(&float, &double).is_none());
    // The same writer as the reader has a plan.
    assert!(compile(&reader, &reader).is_some());
}
