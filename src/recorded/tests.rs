use super::*;
use crate::generator::personas::EventFactory;

const START: i64 = 1_700_000_000_000;
const NOW: i64 = 1_800_000_000_000;

fn events(n: usize) -> Vec<Event> {
    let mut factory = EventFactory::new(50, 7, START);
    (0..n).map(|_| factory.next_event()).collect()
}

fn read_all(path: &Path) -> Vec<Record> {
    let codec = Codec::with_defaults().unwrap();
    let mut reader = RecordReader::open(path, &codec, NOW).unwrap();
    let mut out = Vec::new();
    while let Some(r) = reader.next_record(&codec) {
        out.push(r.unwrap());
    }
    out
}

#[test]
fn the_union_schema_parses_and_names_every_input_record_once() {
    let text = union::union_schema_json().unwrap();
    let schema = apache_avro::Schema::parse_str(&text).unwrap();
    let apache_avro::Schema::Union(union) = schema else {
        panic!("not a union");
    };
    assert_eq!(union.variants().len(), EventKind::ALL.len());
    assert_eq!(text.matches("\"name\":\"ProductCategory\"").count(), 1);
}

#[test]
fn both_formats_give_back_every_event_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let written = events(3_000);
    for (name, format) in [("e.avro", Format::Avro), ("e.jsonl", Format::Jsonl)] {
        let path = dir.path().join(name);
        let mut w = RecordWriter::create(&path, format).unwrap();
        for e in &written {
            w.write(e).unwrap();
        }
        assert!(w.finish().unwrap() > 0);
        assert_eq!(Format::detect(&path).unwrap(), format);
        let read: Vec<Event> = read_all(&path)
            .into_iter()
            .map(|r| match r {
                Record::Event(e) => e,
                Record::Dead(d) => panic!("{format:?}: dead record {d:?}"),
            })
            .collect();
        assert_eq!(read, written, "{format:?}");
    }
}

#[test]
fn the_avro_file_is_readable_by_apache_avro() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.avro");
    let mut w = RecordWriter::create(&path, Format::Avro).unwrap();
    for e in &events(500) {
        w.write(e).unwrap();
    }
    w.finish().unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let n = apache_avro::Reader::new(file)
        .unwrap()
        .inspect(|v| assert!(v.is_ok(), "{v:?}"))
        .count();
    assert_eq!(n, 500);
}

#[test]
fn a_bad_json_line_is_dead_and_reading_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.jsonl");
    let evs = events(3);
    let mut text = String::new();
    text.push_str(&jsonl::to_line(&evs[0], &[]).unwrap());
    text.push_str("\n{\"type\":\"bank.nbo.Nothing\",\"record\":{}}\nnot json\n\n");
    text.push_str(&jsonl::to_line(&evs[1], &[]).unwrap());
    text.push('\n');
    std::fs::write(&path, text).unwrap();
    let read = read_all(&path);
    assert_eq!(read.len(), 4);
    assert_eq!(read[0], Record::Event(evs[0].clone()));
    assert!(matches!(&read[1], Record::Dead(d) if d.reason == "json" && d.position == "line 2"));
    assert!(matches!(&read[2], Record::Dead(d) if d.position == "line 3"));
    assert_eq!(read[3], Record::Event(evs[1].clone()));
}

#[test]
fn an_avro_file_with_a_damaged_block_loses_that_block_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.avro");
    let mut w = RecordWriter::create(&path, Format::Avro).unwrap();
    let written = events(5_000);
    for e in &written {
        w.write(e).unwrap();
    }
    w.finish().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 40].fill(0xff);
    std::fs::write(&path, bytes).unwrap();
    let read = read_all(&path);
    let good = read
        .iter()
        .filter(|r| matches!(r, Record::Event(_)))
        .count() as u64;
    let dead: u64 = read
        .iter()
        .map(|r| match r {
            Record::Dead(d) => d.count,
            Record::Event(_) => 0,
        })
        .sum();
    assert!((1..2_000).contains(&dead), "dead {dead}");
    assert!(good > 3_000, "good {good}");
    let last = read
        .iter()
        .rev()
        .find_map(|r| match r {
            Record::Event(e) => Some(e),
            Record::Dead(_) => None,
        })
        .unwrap();
    assert_eq!(last, written.last().unwrap(), "read on to the end");
}

#[test]
fn a_file_that_is_neither_format_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.bin");
    std::fs::write(&path, b"\x00\x01\x02").unwrap();
    let err = Format::detect(&path).unwrap_err().to_string();
    assert!(err.contains("generate --out"), "{err}");
}
