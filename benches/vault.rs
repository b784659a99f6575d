//! Throughput of the everyday operations: put (256 B and 4 KiB under deferred durability, and one
//! durable put), a batch of 1000 puts, random gets of 256 B and 4 KiB, updates, listing, reading
//! (`read_all`, collected, and `read_each`, streamed; decrypted) and exporting a 1000-record subject, exporting a 10,000-record
//! subject, durable puts from 1 and 8 threads at once, rotating the root key of a vault of
//! 100,000 subjects, and opening a vault with the default Argon2id costs.
//!
//! `cargo bench --bench vault`

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pdvault::{
    Category, Durability, KdfParams, Purpose, RecordId, RecordMeta, RootSecret, SubjectId, Vault,
};

use common::{DEFERRED, Rng, create, fill, subject};

const SUBJECTS: usize = 1000;

fn meta() -> RecordMeta {
    RecordMeta::new(Category::Contact).purpose(Purpose::new("billing").expect("a purpose"))
}

/// A vault with `SUBJECTS` subjects that already hold a record each: the benchmarks measure
/// writes to known subjects, not the first write that creates one.
fn populated(dir: &std::path::Path, durability: Durability) -> (Vault, Vec<SubjectId>) {
    let vault = create(dir, durability);
    let subjects: Vec<SubjectId> = (0..SUBJECTS).map(|i| subject("put", i)).collect();
    vault
        .put_many(subjects.iter().map(|s| (s, meta(), b"seed".as_slice())))
        .expect("put_many");
    vault.flush().expect("flush");
    (vault, subjects)
}

fn put(c: &mut Criterion) {
    let mut g = c.benchmark_group("put");
    for size in [256usize, 4096] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (vault, subjects) = populated(dir.path(), DEFERRED);
        let payload = vec![0x42_u8; size];
        let mut i = 0usize;
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::new("deferred", size), |b| {
            b.iter(|| {
                i += 1;
                black_box(
                    vault
                        .put(&subjects[i % SUBJECTS], meta(), &payload)
                        .expect("put"),
                )
            })
        });
    }
    // The default durability: every put returns after its sync.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (vault, subjects) = populated(dir.path(), Durability::Immediate);
    let payload = vec![0x42_u8; 256];
    let mut i = 0usize;
    g.throughput(Throughput::Bytes(256));
    g.bench_function(BenchmarkId::new("durable_put", 256), |b| {
        b.iter(|| {
            i += 1;
            black_box(
                vault
                    .put(&subjects[i % SUBJECTS], meta(), &payload)
                    .expect("put"),
            )
        })
    });
    g.finish();
}

fn put_many(c: &mut Criterion) {
    let mut g = c.benchmark_group("put_many");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (vault, subjects) = populated(dir.path(), DEFERRED);
    let payload = vec![0x42_u8; 256];
    let mut round = 0usize;
    g.throughput(Throughput::Elements(1000));
    g.bench_function("1000x256", |b| {
        b.iter(|| {
            round += 1;
            let ids = vault
                .put_many(
                    (0..1000).map(|j| (&subjects[(round + j) % SUBJECTS], meta(), &payload[..])),
                )
                .expect("put_many");
            black_box(ids)
        })
    });
    g.finish();
}

/// A vault of 10,000 records of `size` bytes (100 subjects of 100 records), and their ids.
fn readable(dir: &std::path::Path, size: usize) -> (Vault, Vec<(SubjectId, RecordId)>) {
    let vault = create(dir, DEFERRED);
    let payload = vec![0x42_u8; size];
    let mut records = Vec::new();
    for s in 0..100 {
        let subject = subject("read", s);
        let ids = vault
            .put_many((0..100).map(|_| (&subject, meta(), &payload[..])))
            .expect("put_many");
        records.extend(ids.into_iter().map(|id| (subject.clone(), id)));
    }
    vault.flush().expect("flush");
    (vault, records)
}

fn get_and_update(c: &mut Criterion) {
    let billing = Purpose::new("billing").expect("a purpose");
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut g = c.benchmark_group("get");
    for size in [256usize, 4096] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (vault, records) = readable(dir.path(), size);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::new("random", size), |b| {
            b.iter(|| {
                let (s, id) = &records[rng.below(records.len())];
                black_box(vault.get(s, *id, &billing).expect("get"))
            })
        });
    }
    g.finish();

    let dir = tempfile::tempdir().expect("a temporary directory");
    let (vault, records) = readable(dir.path(), 256);
    let mut g = c.benchmark_group("update");
    let payload = vec![0x24_u8; 256];
    g.throughput(Throughput::Bytes(256));
    g.bench_function("random/256", |b| {
        b.iter(|| {
            let (s, id) = &records[rng.below(records.len())];
            vault.update(s, *id, &payload).expect("update")
        })
    });
    g.finish();
}

fn scan(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let vault = create(dir.path(), DEFERRED);
    let big = subject("scan", 0);
    fill(
        &vault,
        &big,
        &Category::Contact,
        1000,
        256,
        jiff::Timestamp::now(),
    );
    // Other subjects around it, so that the scan is of one subject's range, not the whole store.
    for i in 1..10 {
        fill(
            &vault,
            &subject("scan", i),
            &Category::Contact,
            1000,
            256,
            jiff::Timestamp::now(),
        );
    }
    vault.flush().expect("flush");

    let mut g = c.benchmark_group("subject_1000_records");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("list", |b| {
        b.iter(|| black_box(vault.list(&big).expect("list")))
    });
    let billing = Purpose::new("billing").expect("a purpose");
    g.bench_function("read_all_decrypted", |b| {
        b.iter(|| black_box(vault.read_all(&big, &billing).expect("read_all")))
    });
    g.bench_function("read_each_decrypted", |b| {
        b.iter(|| {
            let mut bytes = 0;
            vault
                .read_each(&big, &billing, |r| {
                    bytes += r.payload.len();
                    std::ops::ControlFlow::Continue(())
                })
                .expect("read_each");
            black_box(bytes)
        })
    });
    g.bench_function("export_to_sink", |b| {
        b.iter(|| black_box(vault.export(&big, &mut std::io::sink()).expect("export")))
    });
    g.finish();

    let large = subject("scan", 10);
    fill(
        &vault,
        &large,
        &Category::Contact,
        10_000,
        256,
        jiff::Timestamp::now(),
    );
    vault.flush().expect("flush");
    let mut g = c.benchmark_group("subject_10000_records");
    g.sample_size(10).throughput(Throughput::Elements(10_000));
    g.bench_function("export_to_sink", |b| {
        b.iter(|| black_box(vault.export(&large, &mut std::io::sink()).expect("export")))
    });
    g.finish();
}

/// Durable single puts from 1 and from 8 threads at once (immediate durability: each put returns
/// after its sync; concurrent puts share syncs). Throughput is in records.
fn durable_writers(c: &mut Criterion) {
    const PER_THREAD: usize = 50;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (vault, subjects) = populated(dir.path(), Durability::Immediate);
    let payload = vec![0x42_u8; 256];
    let mut g = c.benchmark_group("durable_writers");
    g.sample_size(10);
    for threads in [1usize, 8] {
        g.throughput(Throughput::Elements((threads * PER_THREAD) as u64));
        g.bench_function(BenchmarkId::from_parameter(threads), |b| {
            b.iter(|| {
                std::thread::scope(|scope| {
                    for t in 0..threads {
                        let (vault, subjects, payload) = (&vault, &subjects, &payload);
                        scope.spawn(move || {
                            for i in 0..PER_THREAD {
                                vault
                                    .put(
                                        &subjects[(t * PER_THREAD + i) % SUBJECTS],
                                        meta(),
                                        payload,
                                    )
                                    .expect("put");
                            }
                        });
                    }
                })
            })
        });
    }
    g.finish();
}

/// Rotating the root key of a vault of 100,000 subjects (one record each): every wrapped key is
/// rewrapped. The test KDF, so that the figure is the rotation's own work.
fn rotate_root(c: &mut Criterion) {
    const ROTATE_SUBJECTS: usize = 100_000;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let vault = create(dir.path(), DEFERRED);
    let subjects: Vec<SubjectId> = (0..ROTATE_SUBJECTS).map(|i| subject("rotate", i)).collect();
    for chunk in subjects.chunks(common::FILL_BATCH) {
        vault
            .put_many(chunk.iter().map(|s| (s, meta(), b"seed".as_slice())))
            .expect("put_many");
    }
    vault.flush().expect("flush");
    let mut g = c.benchmark_group("rotate_root");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(1))
        .throughput(Throughput::Elements(ROTATE_SUBJECTS as u64));
    let mut round = 0u64;
    g.bench_function(BenchmarkId::new("subjects", ROTATE_SUBJECTS), |b| {
        b.iter(|| {
            round += 1;
            vault
                .rotate_root(
                    RootSecret::passphrase(format!("rotated {round}")),
                    Some(KdfParams::insecure_for_tests()),
                )
                .expect("rotate")
        })
    });
    g.finish();
}

fn open(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    Vault::builder(dir.path())
        .kdf(KdfParams::default())
        .create(RootSecret::passphrase(common::PASSPHRASE))
        .expect("create a vault")
        .close()
        .expect("close");
    let mut g = c.benchmark_group("open");
    g.sample_size(10);
    // Opening derives the root key with Argon2id (19 MiB, 2 passes); closing is not measured.
    g.bench_function("default_kdf", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let v = Vault::builder(dir.path())
                    .open(RootSecret::passphrase(common::PASSPHRASE))
                    .expect("open");
                total += start.elapsed();
                v.close().expect("close");
            }
            total
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = put, put_many, get_and_update, scan, durable_writers, rotate_root, open
}
criterion_main!(benches);
