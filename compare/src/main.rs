//! The side-by-side comparison: the same workloads, in one process, on pdvault, raw sled with
//! plaintext values, sled with a naive XChaCha20-Poly1305 seal per value, and SQLite with
//! SQLCipher (rusqlite, bundled, OpenSSL vendored). Every figure is printed per operation and as
//! a ratio to raw sled and to SQLCipher, then checked against the performance targets.
//!
//! `cargo run --release --manifest-path compare/Cargo.toml`
//!
//! Environment: `PDVAULT_COMPARE_RECORDS` (default 100000, the 256 B data set),
//! `PDVAULT_COMPARE_RECORDS_4K` (default 25000), `PDVAULT_COMPARE_ROUNDS` (default 5; every
//! figure is the median of the rounds, and each round measures every engine in turn, so that a
//! machine slowing down for a while slows all of them), `PDVAULT_COMPARE_CACHE_MB` (default 1024,
//! sled's default: the page cache of every engine, sled's, pdvault's and SQLite's alike),
//! `PDVAULT_COMPARE_STRICT=1` (exit non-zero
//! on a missed target), `PDVAULT_COMPARE_ONLY=<engine>` (one engine, for a profiler; with
//! `PDVAULT_COMPARE_DURABLE=1` only its durable writers).

mod engines;

use std::time::{Duration, Instant};

use engines::{AeadSled, Engine, PdVault, RawSled, SqlCipher};

/// Makes an engine over a fresh directory.
type MakeEngine = dyn Fn(&std::path::Path) -> Box<dyn Engine>;

/// Records per subject; also the batch of every insert (one durable commit each).
const PER_SUBJECT: usize = 1000;
/// Random reads per get round.
const GETS: usize = 20_000;
/// Records each concurrent writer makes durable, one at a time.
const DURABLE_PUTS: usize = 500;
const WRITERS: usize = 8;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A cheap deterministic generator (xorshift) for the random reads.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Per-operation medians of one engine.
#[derive(Default, Clone, Debug)]
struct Figures {
    insert_256: Duration,
    get_256: Duration,
    scan_1000: Duration,
    delete_subject: Duration,
    insert_4k: Duration,
    get_4k: Duration,
}

fn per_op(d: Duration, ops: usize) -> Duration {
    d / ops.max(1) as u32
}

/// Inserts `subjects` subjects of `PER_SUBJECT` records of `len` bytes, then makes `GETS` random
/// gets; returns the time per insert and per get.
fn insert_then_get(
    e: &mut dyn Engine,
    subjects: usize,
    len: usize,
    fill: u8,
    seed: u64,
) -> (Duration, Duration) {
    let payload = vec![fill; len];
    let t = Instant::now();
    for s in 0..subjects {
        e.insert_subject(s, PER_SUBJECT, &payload);
    }
    let insert = per_op(t.elapsed(), subjects * PER_SUBJECT);
    let mut rng = Rng(seed);
    let t = Instant::now();
    for _ in 0..GETS {
        let v = e.get(rng.below(subjects), rng.below(PER_SUBJECT));
        assert_eq!(v.len(), len);
    }
    (insert, per_op(t.elapsed(), GETS))
}

/// Runs the record workloads once on one engine, over fresh stores (`round` seeds the gets).
fn measure_round(make: &MakeEngine, n: usize, n4k: usize, round: usize) -> Figures {
    let mut f = Figures::default();
    {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut e = make(dir.path());
        let subjects = n / PER_SUBJECT;
        let seed = 0x9e37_79b9_7f4a_7c15 ^ round as u64;
        (f.insert_256, f.get_256) = insert_then_get(&mut *e, subjects, 256, 0xa5, seed);
        let scans = subjects.min(20);
        let t = Instant::now();
        for s in 0..scans {
            assert_eq!(e.scan(s), PER_SUBJECT * 256);
        }
        f.scan_1000 = per_op(t.elapsed(), scans);
        let deletes = subjects.min(10);
        let t = Instant::now();
        for s in (subjects - deletes)..subjects {
            e.delete_subject(s);
        }
        f.delete_subject = per_op(t.elapsed(), deletes);
    }
    {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut e = make(dir.path());
        let subjects = (n4k / PER_SUBJECT).max(1);
        let seed = 0x2545_f491_4f6c_dd1d ^ round as u64;
        (f.insert_4k, f.get_4k) = insert_then_get(&mut *e, subjects, 4096, 0x5a, seed);
    }
    f
}

/// The median of each figure over rounds.
fn medians(runs: &[Figures]) -> Figures {
    let pick = |g: fn(&Figures) -> Duration| median(runs.iter().map(g).collect());
    Figures {
        insert_256: pick(|f| f.insert_256),
        get_256: pick(|f| f.get_256),
        scan_1000: pick(|f| f.scan_1000),
        delete_subject: pick(|f| f.delete_subject),
        insert_4k: pick(|f| f.insert_4k),
        get_4k: pick(|f| f.get_4k),
    }
}

/// Throughput (records per second) of `writers` threads each making `DURABLE_PUTS` records
/// durable one at a time, on a fresh store.
fn durable_throughput(make: &MakeEngine, writers: usize) -> f64 {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut e = make(dir.path());
    for s in 0..writers {
        e.insert_subject(s, 10, &[1u8; 256]);
    }
    let e: &dyn Engine = &*e;
    let t = Instant::now();
    std::thread::scope(|scope| {
        for w in 0..writers {
            scope.spawn(move || {
                for _ in 0..DURABLE_PUTS {
                    e.durable_put(w, &[2u8; 256]);
                }
            });
        }
    });
    (writers * DURABLE_PUTS) as f64 / t.elapsed().as_secs_f64()
}

/// The median of some rates.
fn median_rate(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// Durable puts per second of each engine with 1 and with [`WRITERS`] threads: medians over
/// rounds, the engines measured in turn within each round.
fn durable_rates(makes: &[&MakeEngine], rounds: usize) -> Vec<(f64, f64)> {
    let mut rates = vec![(Vec::new(), Vec::new()); makes.len()];
    for _ in 0..rounds {
        for (make, (one, many)) in makes.iter().zip(&mut rates) {
            one.push(durable_throughput(*make, 1));
            many.push(durable_throughput(*make, WRITERS));
        }
    }
    rates
        .into_iter()
        .map(|(one, many)| (median_rate(one), median_rate(many)))
        .collect()
}

fn us(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.2} µs")
    }
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

struct Verdicts {
    missed: usize,
}

impl Verdicts {
    fn check(&mut self, what: &str, value: f64, met: bool, goal: &str) {
        if !met {
            self.missed += 1;
        }
        println!(
            "  {:<66} {:>8.2}x  {:<8} ({goal})",
            what,
            value,
            if met { "MET" } else { "NOT MET" }
        );
    }

    /// A ratio that must stay at or below `limit`.
    fn at_most(&mut self, what: &str, value: f64, limit: f64) {
        self.check(what, value, value <= limit, &format!("<= {limit}x"));
    }

    /// A ratio that must reach at least `limit`.
    fn at_least(&mut self, what: &str, value: f64, limit: f64) {
        self.check(what, value, value >= limit, &format!(">= {limit}x"));
    }
}

fn main() {
    let n = env_usize("PDVAULT_COMPARE_RECORDS", 100_000).max(PER_SUBJECT * 10);
    let n4k = env_usize("PDVAULT_COMPARE_RECORDS_4K", 25_000).max(PER_SUBJECT);
    let rounds = env_usize("PDVAULT_COMPARE_ROUNDS", 5).max(1);
    println!(
        "pdvault side-by-side: {n} records of 256 B and {n4k} of 4 KiB, {PER_SUBJECT} per subject, \
         inserted in durable batches of {PER_SUBJECT}; median of {rounds} rounds; {} CPUs",
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );
    println!(
        "SQLite {} (SQLCipher {}), WAL, synchronous=FULL, a transaction per batch",
        rusqlite::version(),
        engines::sqlcipher_version()
    );
    println!(
        "page cache of every engine: {} MiB (PDVAULT_COMPARE_CACHE_MB)",
        engines::cache_bytes() >> 20
    );

    type Make = fn(&std::path::Path) -> Box<dyn Engine>;
    let engines: [(&str, Make); 4] = [
        ("raw sled", |p| Box::new(RawSled::new(p))),
        ("sled + AEAD", |p| Box::new(AeadSled::new(p))),
        ("SQLCipher", |p| Box::new(SqlCipher::new(p))),
        ("pdvault", |p| Box::new(PdVault::new(p))),
    ];
    // `PDVAULT_COMPARE_ONLY=pdvault` (for a profiler) measures one engine, prints its figures
    // and stops.
    if let Ok(only) = std::env::var("PDVAULT_COMPARE_ONLY") {
        let (_, make) = engines
            .iter()
            .find(|(name, _)| name.replace(' ', "") == only.replace(' ', ""))
            .expect("PDVAULT_COMPARE_ONLY names an engine");
        // With `PDVAULT_COMPARE_DURABLE=1`, only its durable writers.
        if std::env::var("PDVAULT_COMPARE_DURABLE").as_deref() == Ok("1") {
            let (one, many) = durable_rates(&[make], rounds)[0];
            println!(
                "{only}: durable puts/s, 1 vs {WRITERS} threads: {one:.0} {many:.0} {:.2}x",
                many / one
            );
        } else {
            let runs: Vec<Figures> = (0..rounds)
                .map(|round| measure_round(make, n, n4k, round))
                .collect();
            println!("{only}: {:#?}", medians(&runs));
        }
        return;
    }
    // Round by round, each engine in turn: a machine that slows down for a while slows every
    // engine, not one.
    let mut runs: Vec<Vec<Figures>> = vec![Vec::new(); engines.len()];
    for round in 0..rounds {
        for ((name, make), runs) in engines.iter().zip(&mut runs) {
            eprintln!("round {}/{rounds}: measuring {name}…", round + 1);
            runs.push(measure_round(make, n, n4k, round));
        }
    }
    let [raw, aead, sqlc, pdv] = [0, 1, 2, 3].map(|i| medians(&runs[i]));

    type Row = (&'static str, fn(&Figures) -> Duration);
    let rows: [Row; 6] = [
        ("insert 256 B (batched, durable)", |f| f.insert_256),
        ("random get 256 B", |f| f.get_256),
        ("scan one subject, 1000 x 256 B, decrypted", |f| f.scan_1000),
        ("delete a 1000-record subject, durable", |f| {
            f.delete_subject
        }),
        ("insert 4 KiB (batched, durable)", |f| f.insert_4k),
        ("random get 4 KiB", |f| f.get_4k),
    ];
    println!();
    println!(
        "| workload (per op) | raw sled | sled + AEAD | SQLCipher | pdvault | pdvault / raw sled | pdvault / sled + AEAD | pdvault / SQLCipher |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (what, g) in rows {
        println!(
            "| {what} | {} | {} | {} | {} | {:.2}x | {:.2}x | {:.2}x |",
            us(g(&raw)),
            us(g(&aead)),
            us(g(&sqlc)),
            us(g(&pdv)),
            ratio(g(&pdv), g(&raw)),
            ratio(g(&pdv), g(&aead)),
            ratio(g(&pdv), g(&sqlc)),
        );
    }

    eprintln!("measuring the cipher, the KDF and concurrent durable writers…");
    let seal_open = engines::seal_open_256();
    let kdf = engines::argon2_default();
    let open_default = engines::pdvault_open_default();
    println!(
        "| XChaCha20-Poly1305 seal+open 256 B | | {} | | (same crate) | | | |",
        us(seal_open)
    );
    println!(
        "| Argon2id m=19 MiB, t=2, p=1 / pdvault open with it | | {} | | {} | | {:.2}x | |",
        us(kdf),
        us(open_default),
        ratio(open_default, kdf)
    );
    let makes: Vec<&MakeEngine> = engines.iter().map(|(_, make)| make as _).collect();
    let writers = durable_rates(&makes, rounds);
    for ((name, _), (one, many)) in engines.iter().zip(&writers) {
        println!(
            "| durable single puts/s, 1 vs {WRITERS} threads ({name}) | {one:.0} | {many:.0} | {:.2}x |",
            many / one
        );
    }

    println!();
    println!("Targets (from this run):");
    let mut v = Verdicts { missed: 0 };
    v.at_most(
        "batched insert 256 B vs sled + AEAD",
        ratio(pdv.insert_256, aead.insert_256),
        1.3,
    );
    v.at_most(
        "random get 256 B vs sled + AEAD",
        ratio(pdv.get_256, aead.get_256),
        1.3,
    );
    v.at_least(
        "SQLCipher insert 256 B / pdvault (speed-up)",
        ratio(sqlc.insert_256, pdv.insert_256),
        1.5,
    );
    v.at_least(
        "SQLCipher get 256 B / pdvault (speed-up)",
        ratio(sqlc.get_256, pdv.get_256),
        1.2,
    );
    v.at_most(
        "subject scan with decryption vs sled + AEAD",
        ratio(pdv.scan_1000, aead.scan_1000),
        1.5,
    );
    v.at_least(
        "SQLCipher delete 1000-record subject / pdvault erase",
        ratio(sqlc.delete_subject, pdv.delete_subject),
        20.0,
    );
    let (one, many) = writers[3];
    v.at_least(
        "pdvault 8 durable writers vs 1 (throughput)",
        many / one,
        4.0,
    );
    println!("  (erasure, sweep, open and memory scaling: `cargo bench --bench ratios`)");
    if v.missed > 0 {
        println!("{} target(s) not met", v.missed);
        if std::env::var_os("PDVAULT_COMPARE_STRICT").is_some() {
            std::process::exit(1);
        }
    }
}
