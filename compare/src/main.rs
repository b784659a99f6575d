//! The side-by-side comparison: the same workloads, in one process, on pdvault, raw sled with
//! plaintext values, sled with a naive XChaCha20-Poly1305 seal per value (the floor), and SQLite
//! with SQLCipher (rusqlite, bundled, OpenSSL vendored). Two workloads: per subject (each batch
//! one subject's records, numbered in order) and interleaved (each batch of 1,000 records spread
//! over all the subjects, random 16-byte record ids, rows found by (subject, record)). Every figure
//! is printed per operation and as a ratio to raw sled, to the floor and to SQLCipher, one table
//! per workload, then checked against the performance targets.
//!
//! `cargo run --release --manifest-path compare/Cargo.toml`
//!
//! `pdvault-compare --ops OP ENGINE N` (OP: put, get, scan, erase (N subjects, each once); ENGINE: pdvault, floor, raw,
//! sqlcipher, sqlcipher-without-rowid) sets up an interleaved store of `PDVAULT_OPS_RECORDS` records (default 20,000), then
//! performs N of the operation inside `measured_loop`, the one function `compare/instructions.sh`
//! has callgrind count.
//!
//! Environment: `PDVAULT_COMPARE_RECORDS` (default 100000, the 256 B data set of each workload),
//! `PDVAULT_COMPARE_RECORDS_4K` (default 25000, per subject only), `PDVAULT_COMPARE_ROUNDS`
//! (default 5; every figure is the median of the rounds, and each round measures every engine in
//! turn, so that a machine slowing down for a while slows all of them), `PDVAULT_COMPARE_CACHE_MB`
//! (default 1024, sled's default: the page cache of every engine, sled's, pdvault's and SQLite's
//! alike), `PDVAULT_COMPARE_STRICT=1` (exit non-zero on a missed target), `PDVAULT_COMPARE_ONLY=<engine>`
//! (one engine, for a profiler; with `PDVAULT_COMPARE_DURABLE=1` only its durable writers).

mod engines;

use std::time::{Duration, Instant};

use engines::{AeadSled, Engine, PdVault, RawSled, Rec, SqlCipher, SqlTable, Workload};

/// Makes an engine over a fresh directory, laid out for a workload.
type MakeEngine = dyn Fn(&std::path::Path, Workload) -> Box<dyn Engine>;

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

/// A cheap deterministic generator (xorshift) for the random reads, ids and shuffles.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn id(&mut self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next().to_be_bytes());
        id[8..].copy_from_slice(&self.next().to_be_bytes());
        id
    }
}

/// `per_subject` records for each of `subjects` subjects, in the order they are inserted, their
/// ordinals from `first` on. Per subject: subject by subject, numbered from 0 (from `first` for
/// the later ones). Interleaved: random ids, the whole set shuffled, so that each batch of
/// [`PER_SUBJECT`] holds records of every subject.
fn records(w: Workload, subjects: usize, per_subject: usize, first: usize, seed: u64) -> Vec<Rec> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(subjects * per_subject);
    for subject in 0..subjects {
        for i in 0..per_subject {
            let id = match w {
                Workload::PerSubject => ((first + i) as u128).to_be_bytes(),
                Workload::Interleaved => rng.id(),
            };
            out.push(Rec { subject, n: 0, id });
        }
    }
    if w == Workload::Interleaved {
        for i in (1..out.len()).rev() {
            out.swap(i, rng.below(i + 1));
        }
    }
    for (n, r) in out.iter_mut().enumerate() {
        r.n = first + n;
    }
    out
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Per-operation medians of one engine on one workload (4 KiB: per subject only).
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

/// Inserts `recs` in batches of [`PER_SUBJECT`] with payloads of `len` bytes, then makes `GETS`
/// random gets; returns the time per insert and per get.
fn insert_then_get(
    e: &mut dyn Engine,
    recs: &[Rec],
    len: usize,
    fill: u8,
    seed: u64,
) -> (Duration, Duration) {
    let payload = vec![fill; len];
    let t = Instant::now();
    for batch in recs.chunks(PER_SUBJECT) {
        e.insert_batch(batch, &payload);
    }
    let insert = per_op(t.elapsed(), recs.len());
    let mut rng = Rng(seed);
    let t = Instant::now();
    for _ in 0..GETS {
        let v = e.get(&recs[rng.below(recs.len())]);
        assert_eq!(v.len(), len);
    }
    (insert, per_op(t.elapsed(), GETS))
}

/// Runs a workload once on one engine, over fresh stores (`round` seeds the ids and the gets).
fn measure_round(make: &MakeEngine, w: Workload, n: usize, n4k: usize, round: usize) -> Figures {
    let mut f = Figures::default();
    {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut e = make(dir.path(), w);
        let subjects = n / PER_SUBJECT;
        let seed = 0x9e37_79b9_7f4a_7c15 ^ round as u64;
        let recs = records(w, subjects, PER_SUBJECT, 0, seed);
        (f.insert_256, f.get_256) = insert_then_get(&mut *e, &recs, 256, 0xa5, seed);
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
    if w == Workload::PerSubject {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut e = make(dir.path(), w);
        let subjects = (n4k / PER_SUBJECT).max(1);
        let seed = 0x2545_f491_4f6c_dd1d ^ round as u64;
        let recs = records(w, subjects, PER_SUBJECT, 0, seed);
        (f.insert_4k, f.get_4k) = insert_then_get(&mut *e, &recs, 4096, 0x5a, seed);
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
    let mut e = make(dir.path(), Workload::PerSubject);
    e.insert_batch(
        &records(Workload::PerSubject, writers, 10, 0, 1),
        &[1u8; 256],
    );
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

/// What `--ops` measures.
enum Work {
    /// Inserts these records in batches of [`PER_SUBJECT`].
    Put(Vec<Rec>),
    /// Reads these records.
    Get(Vec<Rec>),
    /// Reads these subjects.
    Scan(Vec<usize>),
    /// Erases these subjects (each once).
    Erase(Vec<usize>),
}

impl Work {
    fn ops(&self) -> usize {
        match self {
            Work::Put(r) | Work::Get(r) => r.len(),
            Work::Scan(s) | Work::Erase(s) => s.len(),
        }
    }
}

/// The measured region of `--ops`: `compare/instructions.sh` has callgrind collect inside this
/// function only (`--toggle-collect=*measured_loop*`), so it must stay a function of its own.
#[inline(never)]
fn measured_loop(e: &mut dyn Engine, work: &Work, payload: &[u8]) -> usize {
    match work {
        Work::Put(recs) => {
            for batch in recs.chunks(PER_SUBJECT) {
                e.insert_batch(batch, payload);
            }
            recs.len() * payload.len()
        }
        Work::Get(recs) => recs.iter().map(|r| e.get(r).len()).sum(),
        Work::Scan(subjects) => subjects.iter().map(|&s| e.scan(s)).sum(),
        Work::Erase(subjects) => {
            for &s in subjects {
                e.delete_subject(s);
            }
            subjects.len()
        }
    }
}

/// `--ops OP ENGINE N`: an interleaved store of `PDVAULT_OPS_RECORDS` records of 256 B (1,000 per
/// subject), then N operations in [`measured_loop`].
fn ops_mode(engines: &[(&str, &str, Make)], args: &[String]) {
    let usage = "usage: pdvault-compare --ops put|get|scan|erase pdvault|floor|raw|sqlcipher|sqlcipher-without-rowid N";
    let [op, engine, n] = args else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let n: usize = n.parse().unwrap_or_else(|_| {
        eprintln!("{usage}");
        std::process::exit(2)
    });
    let Some((_, _, make)) = engines.iter().find(|(_, short, _)| short == engine) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    if !["put", "get", "scan", "erase"].contains(&op.as_str()) {
        eprintln!("{usage}");
        std::process::exit(2);
    }
    let setup = env_usize("PDVAULT_OPS_RECORDS", 20_000).max(PER_SUBJECT);
    let subjects = setup / PER_SUBJECT;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut e = make(dir.path(), Workload::Interleaved);
    let payload = vec![0xa5u8; 256];
    let recs = records(Workload::Interleaved, subjects, PER_SUBJECT, 0, 0x0dd_ba11);
    for batch in recs.chunks(PER_SUBJECT) {
        e.insert_batch(batch, &payload);
    }
    // sled splits an over-full node at the next access to it: one scan of every subject does
    // the setup's deferred splits before the count, so that the operations counted are not
    // charged for them (by how many, it varied with the background flusher's timing).
    for s in 0..subjects {
        std::hint::black_box(e.scan(s));
    }
    let mut rng = Rng(0x5eed_f00d);
    let work = match op.as_str() {
        "put" => {
            let mut more = records(
                Workload::Interleaved,
                subjects,
                n.div_ceil(subjects),
                recs.len(),
                0xfeed,
            );
            more.truncate(n);
            Work::Put(more)
        }
        "get" => Work::Get((0..n).map(|_| recs[rng.below(recs.len())]).collect()),
        "scan" => Work::Scan((0..n).map(|i| i % subjects).collect()),
        // Each subject erased once: at most every subject of the store.
        "erase" => Work::Erase((0..n.min(subjects)).collect()),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let t = Instant::now();
    let bytes = std::hint::black_box(measured_loop(&mut *e, &work, &payload));
    let took = t.elapsed();
    println!(
        "{op} {engine}: {} ops ({bytes} bytes) on {setup} records, {} per op",
        work.ops(),
        us(per_op(took, work.ops()))
    );
}

type Make = fn(&std::path::Path, Workload) -> Box<dyn Engine>;

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

    /// A ratio printed beside a target it is not judged by.
    fn inform(&self, what: &str, value: f64) {
        println!("  {what:<66} {value:>8.2}x  (for information)");
    }
}

/// One table of a workload: every engine measured on it (`names` and `figures` in the order of
/// [`ENGINES`], pdvault last), and pdvault's ratio to each of the others.
fn table(rows: &[Row], names: &[&str], figures: &[Figures]) {
    let (pdv, others) = figures.split_last().expect("pdvault's figures");
    let (_, other_names) = names.split_last().expect("pdvault's name");
    let head: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let vs: Vec<String> = other_names
        .iter()
        .map(|n| format!("pdvault / {n}"))
        .collect();
    println!(
        "| workload (per op) | {} | {} |",
        head.join(" | "),
        vs.join(" | ")
    );
    println!("|---{}|", "|---".repeat(head.len() + vs.len()));
    for (what, g) in rows {
        let cells: Vec<String> = figures.iter().map(|f| us(g(f))).collect();
        let ratios: Vec<String> = others
            .iter()
            .map(|f| format!("{:.2}x", ratio(g(pdv), g(f))))
            .collect();
        println!(
            "| {what} | {} | {} |",
            cells.join(" | "),
            ratios.join(" | ")
        );
    }
}

type Row = (&'static str, fn(&Figures) -> Duration);
const ROWS_256: [Row; 4] = [
    ("insert 256 B (batched, durable)", |f| f.insert_256),
    ("random get 256 B", |f| f.get_256),
    (
        "scan one subject, 1000 x 256 B, decrypted (read_all)",
        |f| f.scan_1000,
    ),
    ("delete a 1000-record subject, durable", |f| {
        f.delete_subject
    }),
];
const ROWS_4K: [Row; 2] = [
    ("insert 4 KiB (batched, durable)", |f| f.insert_4k),
    ("random get 4 KiB", |f| f.get_4k),
];

/// Every engine, by name and short name. SQLCipher's interleaved table is measured both ways: a
/// rowid table (SQLite's default for the declared key) and `WITHOUT ROWID`; the per-subject
/// table has an integer key, its rowid, so the second is measured on the interleaved workload
/// only.
const ENGINES: [(&str, &str, Make); 5] = [
    ("raw sled", "raw", |p, w| Box::new(RawSled::new(p, w))),
    ("sled + AEAD (floor)", "floor", |p, w| {
        Box::new(AeadSled::new(p, w))
    }),
    ("SQLCipher", "sqlcipher", |p, w| {
        Box::new(SqlCipher::new(p, w, SqlTable::Rowid))
    }),
    (
        "SQLCipher WITHOUT ROWID",
        "sqlcipher-without-rowid",
        |p, w| Box::new(SqlCipher::new(p, w, SqlTable::WithoutRowid)),
    ),
    ("pdvault", "pdvault", |p, _| Box::new(PdVault::new(p))),
];
/// Where the engines the targets name are in [`ENGINES`] (raw sled is first).
const FLOOR: usize = 1;
const SQLCIPHER: usize = 2;
const SQLCIPHER_WITHOUT_ROWID: usize = 3;
const PDVAULT: usize = 4;

/// Whether an engine is measured on a workload.
fn measured(engine: usize, w: Workload) -> bool {
    engine != SQLCIPHER_WITHOUT_ROWID || w == Workload::Interleaved
}

fn main() {
    let engines = ENGINES;
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--ops") {
        ops_mode(&engines, &args[1..]);
        return;
    }
    let n = env_usize("PDVAULT_COMPARE_RECORDS", 100_000).max(PER_SUBJECT * 10);
    let n4k = env_usize("PDVAULT_COMPARE_RECORDS_4K", 25_000).max(PER_SUBJECT);
    let rounds = env_usize("PDVAULT_COMPARE_ROUNDS", 5).max(1);
    let workloads = [Workload::PerSubject, Workload::Interleaved];
    println!(
        "pdvault side-by-side: {n} records of 256 B ({} subjects of {PER_SUBJECT}) per workload, \
         and {n4k} of 4 KiB per subject, inserted in durable batches of {PER_SUBJECT}; \
         median of {rounds} rounds; {} CPUs",
        n / PER_SUBJECT,
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );
    println!(
        "SQLite {} (SQLCipher {}), WAL, synchronous=FULL, a transaction per batch; interleaved \
         table: PRIMARY KEY (subject, record), with a rowid (SQLite's default) and WITHOUT ROWID",
        rusqlite::version(),
        engines::sqlcipher_version(),
    );
    println!(
        "page cache of every engine: {} MiB (PDVAULT_COMPARE_CACHE_MB)",
        engines::cache_bytes() >> 20
    );

    // `PDVAULT_COMPARE_ONLY=pdvault` (for a profiler) measures one engine, prints its figures
    // and stops.
    if let Ok(only) = std::env::var("PDVAULT_COMPARE_ONLY") {
        let (_, _, make) = engines
            .iter()
            .find(|(name, short, _)| {
                name.replace(' ', "") == only.replace(' ', "") || *short == only
            })
            .expect("PDVAULT_COMPARE_ONLY names an engine");
        let make: &MakeEngine = make;
        // With `PDVAULT_COMPARE_DURABLE=1`, only its durable writers.
        if std::env::var("PDVAULT_COMPARE_DURABLE").as_deref() == Ok("1") {
            let (one, many) = durable_rates(&[make], rounds)[0];
            println!(
                "{only}: durable puts/s, 1 vs {WRITERS} threads: {one:.0} {many:.0} {:.2}x",
                many / one
            );
        } else {
            for w in workloads {
                let runs: Vec<Figures> = (0..rounds)
                    .map(|round| measure_round(make, w, n, n4k, round))
                    .collect();
                println!("{only}, {w:?}: {:#?}", medians(&runs));
            }
        }
        return;
    }
    // Round by round, each workload and each engine in turn: a machine that slows down for a
    // while slows every engine, not one.
    let mut runs: Vec<Vec<Vec<Figures>>> = vec![vec![Vec::new(); engines.len()]; workloads.len()];
    for round in 0..rounds {
        for (w, runs) in workloads.iter().zip(&mut runs) {
            for (i, ((name, _, make), runs)) in engines.iter().zip(runs.iter_mut()).enumerate() {
                if !measured(i, *w) {
                    continue;
                }
                eprintln!("round {}/{rounds}: measuring {name}, {w:?}…", round + 1);
                runs.push(measure_round(make, *w, n, n4k, round));
            }
        }
    }
    // Per workload, the medians of each engine measured on it, and their names.
    let tables: Vec<(Vec<&str>, Vec<Figures>)> = workloads
        .iter()
        .zip(&runs)
        .map(|(w, runs)| {
            (0..engines.len())
                .filter(|&i| measured(i, *w))
                .map(|i| (engines[i].0, medians(&runs[i])))
                .unzip()
        })
        .collect();
    let (per, inter) = (&runs[0], &runs[1]);
    let median_of = |runs: &[Vec<Figures>], i: usize| medians(&runs[i]);

    println!();
    println!("Per subject (each batch one subject's 1,000 records, numbered in order):");
    println!();
    let rows: Vec<Row> = ROWS_256.iter().chain(&ROWS_4K).copied().collect();
    table(&rows, &tables[0].0, &tables[0].1);

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
    // Durable single puts on the per-subject layout (every engine but the second SQLCipher
    // table, which is the first one there).
    let writing: Vec<usize> = (0..engines.len())
        .filter(|&i| measured(i, Workload::PerSubject))
        .collect();
    let makes: Vec<&MakeEngine> = writing.iter().map(|&i| &engines[i].2 as _).collect();
    let writers = durable_rates(&makes, rounds);
    for (&i, (one, many)) in writing.iter().zip(&writers) {
        let name = engines[i].0;
        println!(
            "| durable single puts/s, 1 vs {WRITERS} threads ({name}) | {one:.0} | {many:.0} | {:.2}x |",
            many / one
        );
    }

    println!();
    println!(
        "Interleaved (each batch of 1,000 records spread over the {} subjects, random 16-byte \
         record ids, rows found by (subject, record)):",
        n / PER_SUBJECT
    );
    println!();
    table(&ROWS_256, &tables[1].0, &tables[1].1);

    println!();
    println!("Targets (from this run; instructions: compare/instructions.sh):");
    let mut v = Verdicts { missed: 0 };
    let (aead, pdv) = (&median_of(per, FLOOR), &median_of(per, PDVAULT));
    v.at_most(
        "per subject: batched insert 256 B vs the floor",
        ratio(pdv.insert_256, aead.insert_256),
        1.5,
    );
    v.at_most(
        "per subject: random get 256 B vs the floor",
        ratio(pdv.get_256, aead.get_256),
        1.5,
    );
    v.at_most(
        "per subject: subject scan with decryption vs the floor",
        ratio(pdv.scan_1000, aead.scan_1000),
        1.3,
    );
    let (aead, pdv) = (&median_of(inter, FLOOR), &median_of(inter, PDVAULT));
    let (sqlc, sqlc_tree) = (
        &median_of(inter, SQLCIPHER),
        &median_of(inter, SQLCIPHER_WITHOUT_ROWID),
    );
    v.at_most(
        "interleaved: batched insert 256 B vs the floor",
        ratio(pdv.insert_256, aead.insert_256),
        1.5,
    );
    v.at_least(
        "interleaved: SQLCipher insert 256 B / pdvault (speed-up)",
        ratio(sqlc.insert_256, pdv.insert_256),
        1.0,
    );
    v.at_least(
        "interleaved: SQLCipher WITHOUT ROWID insert 256 B / pdvault",
        ratio(sqlc_tree.insert_256, pdv.insert_256),
        1.0,
    );
    v.at_most(
        "interleaved: random get 256 B vs the floor",
        ratio(pdv.get_256, aead.get_256),
        1.5,
    );
    v.at_most(
        "interleaved: subject scan with decryption vs the floor",
        ratio(pdv.scan_1000, aead.scan_1000),
        1.3,
    );
    v.at_least(
        "interleaved: SQLCipher delete 1000-record subject / pdvault erase",
        ratio(sqlc.delete_subject, pdv.delete_subject),
        20.0,
    );
    v.inform(
        "interleaved: SQLCipher WITHOUT ROWID delete / pdvault erase",
        ratio(sqlc_tree.delete_subject, pdv.delete_subject),
    );
    let (one, many) = *writers.last().expect("pdvault's writers");
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
