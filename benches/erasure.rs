//! Erasure and retention at scale.
//!
//! - `erase_subject/{10,1000,100000}`: erasing a subject of that many records. Crypto-shredding
//!   destroys keys, not records, so the time should hardly depend on the count. An erasure is a
//!   one-shot per subject: every iteration erases a fresh subject, filled (with `put_many` in
//!   batches of 10,000, under deferred durability, and flushed) outside the measured time, after
//!   a ballast subject that makes every iteration write 100,000 records whatever the size (a
//!   sync just after a large write is slower). One iteration per sample.
//! - `sweep_100_due/{10000,100000}`: a sweep that finds 100 records past their retention in a
//!   vault of 10,000 vs 100,000 records. The target is stated for 1,000,000 records; that takes
//!   minutes to set up, so it is opt-in: `PDVAULT_BENCH_LARGE=1` uses 1,000,000 instead of 100,000
//!   (`cargo bench --bench ratios` sweeps 1,000,000 records with 1% due). Every
//!   iteration adds 100 fresh access-log records collected a year ago (policy: access-log max
//!   3 months) to 100 subjects of the bulk, whose other records are usage (no rule).
//!
//! Criterion does not assert: the medians and their ratios are printed at the end of each group,
//! and `cargo bench --bench ratios` checks the targets.

mod common;

use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use pdvault::{Category, ManualClock};

use common::{
    DEFERRED, add_due, create, create_with_policy, fill, fill_sweep_bulk, median, subject, t0,
};

const SWEEP_DUE: usize = 100;

/// Records written before each measured erasure, whatever the subject's size: an erasure's sync
/// is slower just after a large write (sled's and the kernel's write-back), so every size is
/// measured after the same volume of writes, the subject's own records plus a ballast subject.
const WRITES_PER_ITERATION: usize = 100_000;

fn erase_subject(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let vault = create(dir.path(), DEFERRED);
    let mut g = c.benchmark_group("erase_subject");
    // One iteration per sample (and one of warm-up): each costs 100,000 records to set up.
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(1));
    let mut medians = Vec::new();
    let mut next = 0usize;
    for n in [10usize, 1000, 100_000] {
        g.throughput(Throughput::Elements(n as u64));
        let mut times = Vec::new();
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let ballast = subject("ballast", next);
                    let s = subject("erase", next);
                    next += 1;
                    let now = jiff::Timestamp::now();
                    fill(
                        &vault,
                        &ballast,
                        &Category::Contact,
                        WRITES_PER_ITERATION - n,
                        64,
                        now,
                    );
                    fill(&vault, &s, &Category::Contact, n, 64, now);
                    // Durable before the clock starts: the erasure's own sync is measured, not
                    // the flush of its setup.
                    vault.flush().expect("flush");
                    let start = Instant::now();
                    let report = vault.erase_subject(&s).expect("erase_subject");
                    let t = start.elapsed();
                    assert!(report.subject_erased);
                    times.push(t);
                    total += t;
                    if n < WRITES_PER_ITERATION {
                        vault.erase_subject(&ballast).expect("erase the ballast");
                    }
                }
                total
            })
        });
        medians.push((n, median(&mut times)));
    }
    g.finish();
    for (n, m) in &medians {
        println!("erase_subject {n:>6} records: median {m:?}");
    }
    let ratio = medians[2].1.as_secs_f64() / medians[0].1.as_secs_f64();
    println!("erase_subject 100000 vs 10 records: ratio {ratio:.2} (target <= 2.0)");
}

fn sweep(c: &mut Criterion) {
    let large = if std::env::var("PDVAULT_BENCH_LARGE").as_deref() == Ok("1") {
        1_000_000
    } else {
        100_000
    };
    let mut g = c.benchmark_group(format!("sweep_{SWEEP_DUE}_due"));
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    let mut medians = Vec::new();
    for total in [10_000usize, large] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let clock = ManualClock::new(t0());
        let vault = create_with_policy(dir.path(), DEFERRED, &clock);
        fill_sweep_bulk(&vault, total);
        vault.flush().expect("flush");
        let mut times = Vec::new();
        g.throughput(Throughput::Elements(SWEEP_DUE as u64));
        g.bench_with_input(BenchmarkId::from_parameter(total), &total, |b, _| {
            b.iter_custom(|iters| {
                let mut sum = Duration::ZERO;
                for _ in 0..iters {
                    add_due(&vault, SWEEP_DUE);
                    vault.flush().expect("flush");
                    let start = Instant::now();
                    let report = vault.sweep().expect("sweep");
                    let t = start.elapsed();
                    // Each due record is the only one of its group: destroyed as a category.
                    assert_eq!(
                        report.erased + report.categories_erased,
                        SWEEP_DUE as u64,
                        "{report:?}"
                    );
                    times.push(t);
                    sum += t;
                }
                sum
            })
        });
        medians.push((total, median(&mut times)));
    }
    g.finish();
    for (n, m) in &medians {
        println!("sweep {SWEEP_DUE} due of {n:>7} records: median {m:?}");
    }
    let ratio = medians[1].1.as_secs_f64() / medians[0].1.as_secs_f64();
    println!(
        "sweep {} vs {} records: ratio {ratio:.2} (target <= 2.0)",
        medians[1].0, medians[0].0
    );
}

criterion_group!(benches, erase_subject, sweep);
criterion_main!(benches);
