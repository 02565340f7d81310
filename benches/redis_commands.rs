//! A checkpoint's Redis commands and their answers, on one core, as the state store writes
//! them to a standalone Redis:
//!
//! - `redis_commands/resp`: the writes of a checkpoint's chunk written as RESP into one reused
//!   buffer (`state::commands::transactions`, what `store` sends);
//! - `redis_commands/redis_rs`: the same commands built as `redis::Cmd`s in MULTI/EXEC pipelines
//!   of 32 customers and packed, as redis-rs sends them (Redis Cluster and TLS take this path;
//!   every write did before `state::resp`);
//! - `redis_answers/skip` and `redis_answers/redis_rs`: the answers Redis gives those commands
//!   (`+OK`, `+QUEUED` for each command, and each EXEC's array) walked by `resp::skip_reply`, or
//!   parsed into values by redis-rs.
//!
//! The writes are the customers that 5 batches of 2,000 generated events change (the starter
//! features and rules), each written whole (the larger case). Run:
//! `cargo bench --bench redis_commands`.

mod fixture;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fixture::{apply_batch, fixture};
use nbo_stream::state::commands::{self, TRANSACTION_CUSTOMERS};
use nbo_stream::state::resp::{skip_reply, PipelineCommands, Reply, Resp};
use nbo_stream::state::StateWrite;
use std::hint::black_box;

/// The same allocator as the binary (src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The writes of the customers 5 batches change.
fn writes() -> Vec<StateWrite> {
    let f = fixture(true, usize::MAX);
    let (mut next, mut offset) = (0usize, 0i64);
    let (mut decisions, mut dirtied) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        apply_batch(&f, &mut next, &mut offset, &mut decisions, &mut dirtied);
    }
    let mut cache = f.cache.lock().expect("cache lock");
    let mut writes = Vec::new();
    for id in &dirtied {
        if let Some(c) = cache.get_mut(id) {
            if c.dirty {
                c.dirty = false;
                let w = nbo_stream::worker::state_write(&f.operator, c, 86_400).expect("write");
                writes.push(w);
            }
        }
    }
    writes
}

/// What Redis answers `writes`' transactions: for each, `+OK` to MULTI, `+QUEUED` to each
/// command, and EXEC's array (a count for HSET, DEL and EXPIRE, `+OK` for SETEX).
fn answers(writes: &[StateWrite]) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut count = 0;
    for chunk in writes.chunks(TRANSACTION_CUSTOMERS) {
        let mut resp = Resp::default();
        for w in chunk {
            commands::customer_write(&mut resp, w);
        }
        let commands = resp.commands();
        out.extend_from_slice(b"+OK\r\n");
        out.extend(std::iter::repeat_n(&b"+QUEUED\r\n"[..], commands).flatten());
        out.extend_from_slice(format!("*{commands}\r\n").as_bytes());
        // SETEX is each customer's last command.
        for i in 0..commands {
            out.extend_from_slice(if i % 3 == 2 { b"+OK\r\n" } else { b":12\r\n" });
        }
        count += commands + 2;
    }
    (out, count)
}

fn commands(c: &mut Criterion) {
    let writes = writes();
    let bytes: usize = {
        let mut resp = Resp::default();
        commands::transactions(&mut resp, &writes);
        resp.bytes().len()
    };
    eprintln!(
        "{} customer writes, {} bytes of commands ({} a write)",
        writes.len(),
        bytes,
        bytes / writes.len().max(1)
    );
    let mut group = c.benchmark_group("redis_commands");
    group.throughput(Throughput::Elements(writes.len() as u64));
    let mut resp = Resp::default();
    group.bench_function("resp", |b| {
        b.iter(|| {
            resp.clear();
            commands::transactions(&mut resp, black_box(&writes));
            black_box(resp.bytes().len())
        })
    });
    group.bench_function("redis_rs", |b| {
        b.iter(|| {
            let mut sent = 0;
            for chunk in black_box(&writes).chunks(TRANSACTION_CUSTOMERS) {
                let mut pipe = redis::Pipeline::with_capacity(3 * chunk.len() + 2);
                pipe.atomic();
                let mut out = PipelineCommands::new(&mut pipe);
                for w in chunk {
                    commands::customer_write(&mut out, w);
                }
                sent += pipe.get_packed_pipeline().len();
            }
            black_box(sent)
        })
    });
    group.finish();

    let (input, count) = answers(&writes);
    let mut group = c.benchmark_group("redis_answers");
    group.throughput(Throughput::Elements(writes.len() as u64));
    group.bench_function("skip", |b| {
        b.iter(|| {
            let (mut at, mut errors) = (0, 0);
            for _ in 0..count {
                let (len, reply) = skip_reply(&input[at..]).expect("RESP").expect("whole");
                errors += usize::from(matches!(reply, Reply::Error(_)));
                at += len;
            }
            black_box(errors)
        })
    });
    group.bench_function("redis_rs", |b| {
        b.iter(|| {
            let mut parser = redis::Parser::new();
            let mut reader = &input[..];
            for _ in 0..count {
                black_box(parser.parse_value(&mut reader).expect("RESP"));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, commands);
criterion_main!(benches);
