//! Heap allocations per event on the worker's hot path, in steady state: a counting global
//! allocator around the binary's (mimalloc) counts every allocation and reallocation while
//! batches of 2,000 events go through each stage, after warm-up batches have grown every
//! reusable buffer:
//!
//! - **decode + apply**: Confluent Avro records decoded, applied to the cached customers, rules
//!   and decisions (`worker::apply_decoded`, as `operator/decisions_batch` measures its time);
//! - **state writes**: each changed customer's write built, its state encoded and the delta of
//!   its feature hash (`worker::state_write`);
//! - **Redis commands**: the commands of each write, as RESP into the buffer a connection keeps
//!   (`state::commands::transactions`);
//! - **outputs**: every offer, alert and audit record Avro-encoded into one reused buffer, as the
//!   sink does.
//!
//! It prints; it times nothing. Run: `cargo bench --bench allocations` (or `cargo test --bench
//! allocations`: the counts are the same unoptimised). The goal (issue 27) is at most 2
//! allocations per event in all.

mod fixture;

use fixture::{apply_batch, fixture, Fixture, BATCH};
use nbo_stream::output::Decision;
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts allocations (reallocations apart) and the bytes asked for, around mimalloc.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static REALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        REALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(
            new_size.saturating_sub(layout.size()) as u64,
            Ordering::Relaxed,
        );
        // SAFETY: as above.
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations, reallocations and bytes since the last reading.
#[derive(Default, Clone, Copy)]
struct Counts {
    allocs: u64,
    reallocs: u64,
    bytes: u64,
}

fn read() -> Counts {
    Counts {
        allocs: ALLOCS.load(Ordering::Relaxed),
        reallocs: REALLOCS.load(Ordering::Relaxed),
        bytes: BYTES.load(Ordering::Relaxed),
    }
}

fn since(before: Counts) -> Counts {
    let now = read();
    Counts {
        allocs: now.allocs - before.allocs,
        reallocs: now.reallocs - before.reallocs,
        bytes: now.bytes - before.bytes,
    }
}

/// The stages, in order.
const STAGES: [&str; 4] = [
    "decode + apply",
    "state writes",
    "Redis commands",
    "outputs",
];

/// One batch through every stage; adds each stage's counts to `totals`.
fn one_batch(
    f: &Fixture,
    next: &mut usize,
    offset: &mut i64,
    buffers: &mut Buffers,
    totals: &mut [Counts; 4],
) -> u64 {
    let Buffers {
        decisions,
        dirtied,
        writes,
        encoded,
        resp,
    } = buffers;
    decisions.clear();
    dirtied.clear();
    writes.clear();
    encoded.clear();
    let mut stage = |i: usize, before: Counts| {
        let c = since(before);
        totals[i].allocs += c.allocs;
        totals[i].reallocs += c.reallocs;
        totals[i].bytes += c.bytes;
    };

    let before = read();
    let applied = apply_batch(f, next, offset, decisions, dirtied);
    stage(0, before);

    let before = read();
    {
        let mut cache = f.cache.lock().expect("cache lock");
        for id in dirtied.iter() {
            if let Some(c) = cache.get_mut(id) {
                if c.dirty {
                    c.dirty = false;
                    writes.push(
                        nbo_stream::worker::state_write(&f.operator, c, 86_400).expect("write"),
                    );
                }
            }
        }
    }
    stage(1, before);

    let before = read();
    // As `RedisStore::store` writes them to a standalone Redis: RESP into the connection's
    // buffer, kept from one call to the next.
    resp.clear();
    nbo_stream::state::commands::transactions(resp, writes);
    std::hint::black_box(resp.bytes());
    stage(2, before);

    let before = read();
    // As `Sink::publish` does: one buffer, each record encoded into it in turn (librdkafka copies
    // it into its queue).
    for d in decisions.iter() {
        match d {
            Decision::Offer(o) => f.codec.encode_into("NextBestOffer", o, encoded),
            Decision::Alert(a) => f.codec.encode_into("RiskAlert", a, encoded),
            Decision::Audit(a) => f.codec.encode_into("DecisionAudit", a, encoded),
        }
        .expect("encode");
        std::hint::black_box(&*encoded);
    }
    stage(3, before);
    applied
}

/// Buffers a batch reuses.
#[derive(Default)]
struct Buffers {
    decisions: Vec<Decision>,
    dirtied: Vec<nbo_stream::event::Text>,
    writes: Vec<nbo_stream::state::StateWrite>,
    encoded: Vec<u8>,
    resp: nbo_stream::state::resp::Resp,
}

fn main() {
    // `cargo test --bench allocations` passes test-harness flags; a quick run then.
    let quick = std::env::args().any(|a| a == "--quick" || a == "--test" || a == "--bench")
        && !std::env::args().any(|a| a == "--full");
    let (warm, measured) = if quick { (5, 10) } else { (20, 50) };
    eprintln!("building the fixture (100,000 customers, the starter features and rules)...");
    let f = fixture(true, usize::MAX);
    let (mut next, mut offset) = (0usize, 0i64);
    let mut buffers = Buffers::default();
    let mut ignored = [Counts::default(); 4];
    for _ in 0..warm {
        one_batch(&f, &mut next, &mut offset, &mut buffers, &mut ignored);
    }
    let mut totals = [Counts::default(); 4];
    let mut events = 0u64;
    let mut decisions = 0u64;
    for _ in 0..measured {
        events += one_batch(&f, &mut next, &mut offset, &mut buffers, &mut totals);
        decisions += buffers.decisions.len() as u64;
    }
    let per = |n: u64| n as f64 / events.max(1) as f64;
    println!(
        "allocations per event, steady state: {measured} batches of {BATCH} records ({events} events applied, {:.2} decisions per event)",
        per(decisions)
    );
    println!(
        "  {:<16} {:>12} {:>14} {:>16}",
        "stage", "allocations", "reallocations", "bytes allocated"
    );
    let mut all = Counts::default();
    for (name, c) in STAGES.iter().zip(&totals) {
        println!(
            "  {name:<16} {:>12.2} {:>14.2} {:>16.0}",
            per(c.allocs),
            per(c.reallocs),
            per(c.bytes)
        );
        all.allocs += c.allocs;
        all.reallocs += c.reallocs;
        all.bytes += c.bytes;
    }
    println!(
        "  {:<16} {:>12.2} {:>14.2} {:>16.0}",
        "all",
        per(all.allocs),
        per(all.reallocs),
        per(all.bytes)
    );
}
