//! pdvault on PostgreSQL against PostgreSQL itself, on the server `PDVAULT_BENCH_POSTGRES` names
//! (a `postgres://` URL). A report, with plain timings: nothing here fails on a time.
//!
//! Two floors, each a table `(key bytea primary key, value bytea not null)` in a schema of the
//! benchmark's own, keys `subject (16) || record (16)`: "raw PostgreSQL" stores the 256-byte values
//! as they are; "raw PostgreSQL + AEAD" seals each with XChaCha20-Poly1305 (a random 24-byte nonce)
//! before the insert and opens it after the select. pdvault runs in a vault of its own schema, with
//! the test KDF and `Durability::Immediate`.
//!
//! - Batched put: batches of 1,000 records of 256 B spread over 100 subjects, interleaved (record
//!   `i` of a batch belongs to subject `i % 100`), with random 16-byte record ids. A floor's batch is
//!   one transaction of one `INSERT ... SELECT FROM UNNEST(...)` (as the vault's engine writes);
//!   pdvault's is one `put_many` of the 1,000 items. One unmeasured batch first (it creates
//!   pdvault's subjects); the systems take turns batch by batch. µs per record; target:
//!   pdvault ≤ 2× raw + AEAD.
//! - Random get of the records stored by the puts: a floor's is one prepared single-row `SELECT`
//!   by key on a connection it holds; pdvault's is `Vault::get` for the purpose the records carry.
//!   µs per get; target: pdvault ≤ 2× raw + AEAD.
//! - Durable put throughput with 1, 2 and 4 processes: each process (this binary re-executed, its
//!   role in `PDVAULT_BENCH_PG_CHILD`) opens the vault with its own handle and puts single records
//!   (`Vault::put`, 256 B, to one of 256 existing subjects at random) from 4 threads for a fixed
//!   time, starting together when the parent says so on their stdin, and prints its count on
//!   stdout. Puts per second in all, the mean of two runs of each count (1, 2, 4, then 4, 2, 1);
//!   target: 4 processes ≥ 2.5× 1 process. The same with single-row autocommitted `INSERT`s into
//!   a raw table is printed beside it, for information: what the server and the machine allow.
//! - Erasure: 100 subjects of 1,000 records each (100,000 records, loaded in interleaved batches of
//!   1,000) in a vault and in a raw + AEAD table; for 10 subjects, after one unmeasured, pdvault's
//!   `erase_subject` against deleting the subject's rows from the table
//!   (`DELETE ... WHERE key >= $1 AND key < $2` over its key range, one committed transaction).
//!   Median ms; target: raw delete ≥ 10× pdvault's erasure.
//!
//! Prints the figures as it goes, each with the CPU time this process spent on it (client-side
//! work: pdvault's own, or the floor's driver and cipher; the rest is the server and waiting),
//! then a table with each ratio and "target met" or "target NOT met". Drops the schemas it
//! created at the end.
//!
//! `PDVAULT_BENCH_POSTGRES=postgres://user@host:port/db cargo bench --features postgres --bench
//! postgres`; `PDVAULT_BENCH_QUICK=1` runs small counts (a few seconds: a smoke run; erasure then
//! in 20 subjects of 100 records). Without `PDVAULT_BENCH_POSTGRES` it says so and exits 0, or 1
//! under CI (`CI` set).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use pdvault::{
    Category, Durability, KdfParams, Purpose, RecordId, RecordMeta, RootSecret, SubjectId, Vault,
    VaultBuilder,
};
use postgres::{Client, NoTls, Statement};

use common::median;

const URL_ENV: &str = "PDVAULT_BENCH_POSTGRES";
/// Set in a writer child process: `pdvault` or `raw`, what it writes to.
const CHILD_ROLE_ENV: &str = "PDVAULT_BENCH_PG_CHILD";
/// A writer child's schema.
const CHILD_SCHEMA_ENV: &str = "PDVAULT_BENCH_PG_SCHEMA";
/// How long a writer child writes, in milliseconds.
const CHILD_MILLIS_ENV: &str = "PDVAULT_BENCH_PG_MILLIS";

const PASSPHRASE: &str = "bench-postgres-passphrase";
const PURPOSE: &str = "service";
const VALUE_LEN: usize = 256;
const NONCE_LEN: usize = 24;
/// Records per batch, for every system.
const BATCH: usize = 1000;
/// Subjects the put workload spreads its batches over.
const PUT_SUBJECTS: usize = 100;
const PROCESS_COUNTS: [usize; 3] = [1, 2, 4];
const THREADS_PER_PROCESS: usize = 4;
/// Subjects the pdvault writers pick from (created before they start).
const WRITER_SUBJECTS: usize = 256;
/// The raw table the raw writers insert into.
const WRITES_TABLE: &str = "writes_kv";

/// The counts of one run.
struct Sizes {
    /// Measured put batches per system (after one unmeasured).
    put_batches: usize,
    /// Measured gets per system (after as many unmeasured).
    gets: usize,
    /// How long the writers of one throughput run write.
    writers_for: Duration,
    erase_subjects: usize,
    /// Records per subject of the erasure vault.
    erase_records: usize,
    /// Measured erasures (after one unmeasured).
    erasures: usize,
}

impl Sizes {
    fn full() -> Sizes {
        Sizes {
            put_batches: 10,
            gets: 5000,
            writers_for: Duration::from_secs(5),
            erase_subjects: 100,
            erase_records: 1000,
            erasures: 10,
        }
    }

    fn quick() -> Sizes {
        Sizes {
            put_batches: 2,
            gets: 300,
            writers_for: Duration::from_millis(500),
            erase_subjects: 20,
            erase_records: 100,
            erasures: 3,
        }
    }
}

/// The CPU time this process has used, all threads (`/proc/self/stat`, in clock ticks taken as
/// 10 ms; zero where there is no such file).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command's closing parenthesis, utime and stime are the 12th and 13th fields.
    let ticks: u64 = stat.rsplit_once(')').map_or(0, |(_, fields)| {
        fields
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|f| f.parse::<u64>().ok())
            .sum()
    });
    Duration::from_millis(ticks * 10)
}

/// Wall-clock time and this process's CPU time (the client's side of the work).
#[derive(Clone, Copy, Default)]
struct Spent {
    wall: Duration,
    cpu: Duration,
}

impl std::ops::AddAssign for Spent {
    fn add_assign(&mut self, other: Spent) {
        self.wall += other.wall;
        self.cpu += other.cpu;
    }
}

impl Spent {
    /// µs of wall-clock time and of CPU time per one of `n` operations.
    fn per_op_us(self, n: usize) -> (f64, f64) {
        let us = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
        (us(self.wall), us(self.cpu))
    }
}

/// Runs `f` and times it.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Spent) {
    let (cpu, start) = (process_cpu(), Instant::now());
    let out = f();
    let wall = start.elapsed();
    (
        out,
        Spent {
            wall,
            cpu: process_cpu().saturating_sub(cpu),
        },
    )
}

fn random_value() -> Vec<u8> {
    rand::random::<[u8; VALUE_LEN]>().to_vec()
}

/// A data subject as both sides see it: pdvault's identifier, and the raw tables' key prefix.
struct Subject {
    id: SubjectId,
    /// Below `u128::MAX`, so that the prefix after it is one more.
    prefix: u128,
}

impl Subject {
    fn many(tag: &str, n: usize) -> Vec<Subject> {
        (0..n)
            .map(|i| Subject {
                id: SubjectId::new(format!("{tag}-{i}@example.com")).expect("a subject id"),
                prefix: rand::random::<u128>() >> 1,
            })
            .collect()
    }

    fn key(&self, record: &[u8; 16]) -> Vec<u8> {
        [&self.prefix.to_be_bytes()[..], record].concat()
    }

    /// The subject's keys are those from the first (included) to the second (excluded).
    fn key_range(&self) -> (Vec<u8>, Vec<u8>) {
        (
            self.prefix.to_be_bytes().to_vec(),
            (self.prefix + 1).to_be_bytes().to_vec(),
        )
    }
}

/// One record of a workload: its subject (an index), a random record id and its value.
struct Item {
    subject: usize,
    record: [u8; 16],
    value: Vec<u8>,
}

/// `n` records interleaved over `subjects` subjects: record `i` belongs to subject
/// `i % subjects`.
fn batch(subjects: usize, n: usize) -> Vec<Item> {
    (0..n)
        .map(|i| Item {
            subject: i % subjects,
            record: rand::random(),
            value: random_value(),
        })
        .collect()
}

fn meta() -> RecordMeta {
    RecordMeta::new(Category::Contact).purpose(Purpose::new(PURPOSE).expect("a purpose"))
}

fn vault_builder(url: &str, schema: &str) -> VaultBuilder {
    Vault::builder_postgres(url)
        .postgres_schema(schema)
        .kdf(KdfParams::insecure_for_tests())
        .durability(Durability::Immediate)
}

/// One `put_many` of `items`; the record ids, in order.
fn vault_put_batch(vault: &Vault, subjects: &[Subject], items: &[Item]) -> Vec<RecordId> {
    vault
        .put_many(
            items
                .iter()
                .map(|it| (&subjects[it.subject].id, meta(), &it.value[..])),
        )
        .expect("put_many")
}

/// A floor: a table `(key bytea primary key, value bytea not null)` with its prepared
/// statements, its values sealed under a random key (the AEAD floor) or stored as they are.
struct RawTable {
    insert: Statement,
    select: Statement,
    delete_range: Statement,
    cipher: Option<XChaCha20Poly1305>,
}

impl RawTable {
    fn create(client: &mut Client, schema: &str, name: &str, sealed: bool) -> RawTable {
        let table = format!("\"{schema}\".{name}");
        client
            .batch_execute(&format!(
                "CREATE TABLE {table} (key bytea PRIMARY KEY, value bytea NOT NULL)"
            ))
            .expect("create a raw table");
        let mut prepare = |sql: String| client.prepare(&sql).expect("prepare");
        RawTable {
            insert: prepare(format!(
                "INSERT INTO {table} (key, value) SELECT * FROM UNNEST($1::bytea[], $2::bytea[])"
            )),
            select: prepare(format!("SELECT value FROM {table} WHERE key = $1")),
            delete_range: prepare(format!("DELETE FROM {table} WHERE key >= $1 AND key < $2")),
            cipher: sealed.then(|| XChaCha20Poly1305::new(&Key::from(rand::random::<[u8; 32]>()))),
        }
    }

    /// `nonce || ciphertext || tag`, or the value itself.
    fn seal(&self, value: &[u8]) -> Vec<u8> {
        let Some(cipher) = &self.cipher else {
            return value.to_vec();
        };
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = cipher
            .encrypt(&XNonce::from(nonce), value)
            .expect("seal a value");
        [&nonce[..], &sealed].concat()
    }

    fn open(&self, stored: Vec<u8>) -> Vec<u8> {
        let Some(cipher) = &self.cipher else {
            return stored;
        };
        let (nonce, sealed) = stored.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).expect("a nonce");
        cipher.decrypt(&nonce, sealed).expect("open a value")
    }

    /// Inserts `items` in one transaction, one statement.
    fn put_batch(&self, client: &mut Client, subjects: &[Subject], items: &[Item]) {
        let keys: Vec<Vec<u8>> = items
            .iter()
            .map(|it| subjects[it.subject].key(&it.record))
            .collect();
        let values: Vec<Vec<u8>> = items.iter().map(|it| self.seal(&it.value)).collect();
        let mut txn = client.transaction().expect("begin");
        txn.execute(&self.insert, &[&keys, &values])
            .expect("insert a batch");
        txn.commit().expect("commit");
    }

    fn get(&self, client: &mut Client, key: &[u8]) -> Vec<u8> {
        let row = client.query_one(&self.select, &[&key]).expect("select");
        self.open(row.get(0))
    }

    /// Deletes the subject's rows in one committed transaction; how many.
    fn delete_subject(&self, client: &mut Client, subject: &Subject) -> u64 {
        let (from, to) = subject.key_range();
        let mut txn = client.transaction().expect("begin");
        let n = txn
            .execute(&self.delete_range, &[&from, &to])
            .expect("delete a subject's rows");
        txn.commit().expect("commit");
        n
    }
}

/// The schemas of one run, dropped with it.
struct Schemas {
    url: String,
    tag: String,
    names: Vec<String>,
}

impl Schemas {
    fn new(url: &str) -> Schemas {
        Schemas {
            url: url.to_owned(),
            tag: format!("{:08x}", rand::random::<u32>()),
            names: Vec::new(),
        }
    }

    /// A new schema's name (the vault creates its own; a raw one is created by the caller).
    fn name(&mut self, what: &str) -> String {
        let name = format!("pdvbench_{}_{what}", self.tag);
        self.names.push(name.clone());
        name
    }
}

impl Drop for Schemas {
    fn drop(&mut self) {
        let Ok(mut client) = Client::connect(&self.url, NoTls) else {
            eprintln!("could not connect to drop the schemas {:?}", self.names);
            return;
        };
        for name in &self.names {
            if let Err(e) =
                client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
            {
                eprintln!("could not drop schema {name}: {e}");
            }
        }
    }
}

/// What the floors and pdvault hold after the put measurement, for the gets.
struct Stored {
    subjects: Vec<Subject>,
    items: Vec<(Item, RecordId)>,
}

const SYSTEMS: [&str; 3] = ["raw PostgreSQL", "raw PostgreSQL + AEAD", "pdvault"];

/// µs per operation (wall-clock, and this process's CPU), for the raw floor, the AEAD floor and
/// pdvault, in that order.
type PerOp = [(f64, f64); 3];

/// [`PerOp`] of a record in batched puts; what the systems then hold.
fn measure_puts(
    client: &mut Client,
    floors: [&RawTable; 2],
    vault: &Vault,
    sizes: &Sizes,
) -> (PerOp, Stored) {
    let subjects = Subject::many("put", PUT_SUBJECTS);
    let mut items = Vec::new();
    let mut total = [Spent::default(); 3];
    for round in 0..=sizes.put_batches {
        let batch = batch(PUT_SUBJECTS, BATCH);
        let mut ids = Vec::new();
        for turn in 0..3 {
            let system = (round + turn) % 3;
            let took = match system {
                2 => {
                    let (got, took) = timed(|| vault_put_batch(vault, &subjects, &batch));
                    ids = got;
                    took
                }
                floor => timed(|| floors[floor].put_batch(client, &subjects, &batch)).1,
            };
            if round > 0 {
                total[system] += took;
            }
        }
        items.extend(batch.into_iter().zip(ids));
    }
    let records = sizes.put_batches * BATCH;
    (
        total.map(|t| t.per_op_us(records)),
        Stored { subjects, items },
    )
}

/// [`PerOp`] of a random get of the stored records.
fn measure_gets(
    client: &mut Client,
    floors: [&RawTable; 2],
    vault: &Vault,
    stored: &Stored,
    sizes: &Sizes,
) -> PerOp {
    let purpose = Purpose::new(PURPOSE).expect("a purpose");
    const ROUNDS: usize = 5;
    let per_round = sizes.gets.div_ceil(ROUNDS);
    let mut total = [Spent::default(); 3];
    // One unmeasured round first.
    for round in 0..=ROUNDS {
        for turn in 0..3 {
            let system = (round + turn) % 3;
            let picks: Vec<&(Item, RecordId)> = (0..per_round)
                .map(|_| &stored.items[rand::random_range(0..stored.items.len())])
                .collect();
            let took = timed(|| {
                for (item, id) in &picks {
                    let subject = &stored.subjects[item.subject];
                    let value = match system {
                        2 => vault.get(&subject.id, *id, &purpose).expect("get").payload,
                        floor => floors[floor].get(client, &subject.key(&item.record)),
                    };
                    assert_eq!(
                        value, item.value,
                        "{} read back what it stored",
                        SYSTEMS[system]
                    );
                }
            })
            .1;
            if round > 0 {
                total[system] += took;
            }
        }
    }
    total.map(|t| t.per_op_us(ROUNDS * per_round))
}

/// Calls `put` until `deadline`; how many times.
fn count_until(deadline: Instant, mut put: impl FnMut()) -> u64 {
    let mut n = 0;
    while Instant::now() < deadline {
        put();
        n += 1;
    }
    n
}

/// In a writer child: opens its own handle on the vault (or connections to the raw table), says
/// `ready`, waits for a line on stdin, writes single records from [`THREADS_PER_PROCESS`] threads
/// for the time it was given, and prints `puts=<n> secs=<s>`.
fn writer_child(role: &str) {
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set"));
    let url = env(URL_ENV);
    let schema = env(CHILD_SCHEMA_ENV);
    let writing_for = Duration::from_millis(
        env(CHILD_MILLIS_ENV)
            .parse()
            .expect("a number of milliseconds"),
    );
    enum Sink {
        Vault(Vault, Vec<SubjectId>),
        Raw(Vec<(Client, Statement)>),
    }
    let mut sink = match role {
        "pdvault" => Sink::Vault(
            vault_builder(&url, &schema)
                .open(RootSecret::passphrase(PASSPHRASE))
                .expect("open the vault"),
            Subject::many("writer", WRITER_SUBJECTS)
                .into_iter()
                .map(|s| s.id)
                .collect(),
        ),
        "raw" => Sink::Raw(
            (0..THREADS_PER_PROCESS)
                .map(|_| {
                    let mut c = Client::connect(&url, NoTls).expect("connect");
                    let insert = c
                        .prepare(&format!(
                            "INSERT INTO \"{schema}\".{WRITES_TABLE} (key, value) VALUES ($1, $2)"
                        ))
                        .expect("prepare");
                    (c, insert)
                })
                .collect(),
        ),
        role => panic!("unknown writer role {role}"),
    };
    println!("ready");
    std::io::stdout().flush().expect("stdout");
    let mut go = String::new();
    std::io::stdin()
        .read_line(&mut go)
        .expect("the parent's go");
    let start = Instant::now();
    let deadline = start + writing_for;
    let puts: u64 = std::thread::scope(|scope| {
        let threads: Vec<_> = match &mut sink {
            Sink::Vault(vault, subjects) => (0..THREADS_PER_PROCESS)
                .map(|_| {
                    let (vault, subjects) = (&*vault, &*subjects);
                    scope.spawn(move || {
                        count_until(deadline, || {
                            let s = &subjects[rand::random_range(0..subjects.len())];
                            vault.put(s, meta(), &random_value()).expect("put");
                        })
                    })
                })
                .collect(),
            Sink::Raw(clients) => clients
                .iter_mut()
                .map(|(client, insert)| {
                    scope.spawn(move || {
                        count_until(deadline, || {
                            let key = rand::random::<[u8; 32]>().to_vec();
                            client
                                .execute(&*insert, &[&key, &random_value()])
                                .expect("insert");
                        })
                    })
                })
                .collect(),
        };
        threads
            .into_iter()
            .map(|t| t.join().expect("a writer"))
            .sum()
    });
    let secs = start.elapsed().as_secs_f64();
    if let Sink::Vault(vault, _) = sink {
        vault.close().expect("close");
    }
    println!("puts={puts} secs={secs}");
}

/// Puts per second of `processes` writer children of `role` on `schema`, all writing at once.
fn writers_rate(url: &str, role: &str, schema: &str, processes: usize, sizes: &Sizes) -> f64 {
    let exe = std::env::current_exe().expect("the bench binary");
    let mut children: Vec<_> = (0..processes)
        .map(|_| {
            Command::new(&exe)
                .env(URL_ENV, url)
                .env(CHILD_ROLE_ENV, role)
                .env(CHILD_SCHEMA_ENV, schema)
                .env(CHILD_MILLIS_ENV, sizes.writers_for.as_millis().to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("start a writer")
        })
        .collect();
    let mut outputs: Vec<_> = children
        .iter_mut()
        .map(|c| BufReader::new(c.stdout.take().expect("the writer's stdout")))
        .collect();
    for out in &mut outputs {
        let mut line = String::new();
        out.read_line(&mut line).expect("the writer's ready");
        assert_eq!(line.trim(), "ready", "a writer failed before it was ready");
    }
    for child in &mut children {
        let mut stdin = child.stdin.take().expect("the writer's stdin");
        writeln!(stdin, "go").expect("tell a writer to go");
    }
    let mut rate = 0.0;
    for (mut child, mut out) in children.into_iter().zip(outputs) {
        let mut report = String::new();
        out.read_to_string(&mut report)
            .expect("the writer's report");
        assert!(child.wait().expect("wait").success(), "a writer failed");
        let field = |name: &str| -> f64 {
            report
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(name))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} in the writer's report {report:?}"))
        };
        rate += field("puts=") / field("secs=");
    }
    rate
}

/// Puts per second for each of [`PROCESS_COUNTS`]: pdvault's, then the raw table's.
fn measure_writers(
    url: &str,
    schemas: &mut Schemas,
    client: &mut Client,
    raw_schema: &str,
    sizes: &Sizes,
) -> [[f64; 3]; 2] {
    let schema = schemas.name("writers");
    let vault = vault_builder(url, &schema)
        .create(RootSecret::passphrase(PASSPHRASE))
        .expect("create the writers' vault");
    let subjects = Subject::many("writer", WRITER_SUBJECTS);
    let value = random_value();
    vault
        .put_many(subjects.iter().map(|s| (&s.id, meta(), &value[..])))
        .expect("create the writers' subjects");
    vault.close().expect("close");
    RawTable::create(client, raw_schema, WRITES_TABLE, false);
    // Two runs of each count, up then down, so that a drift in the machine's load weighs on
    // every count alike; the mean of the two.
    let rates = |role: &str, schema: &str| {
        let mut sum = [0.0; 3];
        for i in (0..3).chain((0..3).rev()) {
            let p = PROCESS_COUNTS[i];
            let rate = writers_rate(url, role, schema, p, sizes);
            println!("  {role}: {p} process(es) x {THREADS_PER_PROCESS} threads: {rate:.0} puts/s");
            sum[i] += rate;
        }
        sum.map(|s| s / 2.0)
    };
    [rates("pdvault", &schema), rates("raw", raw_schema)]
}

/// The erasure figures: median ms (wall-clock) and mean ms of this process's CPU.
struct Erasure {
    delete_ms: f64,
    delete_cpu_ms: f64,
    erase_ms: f64,
    erase_cpu_ms: f64,
}

/// [`Erasure`] of pdvault's `erase_subject` and of the raw delete of one subject's rows, in a
/// vault and a raw + AEAD table of interleaved subjects.
fn measure_erasure(
    url: &str,
    schemas: &mut Schemas,
    client: &mut Client,
    raw_schema: &str,
    sizes: &Sizes,
) -> Erasure {
    let vault = vault_builder(url, &schemas.name("erase"))
        .create(RootSecret::passphrase(PASSPHRASE))
        .expect("create the erasure vault");
    let table = RawTable::create(client, raw_schema, "erase_kv", true);
    let subjects = Subject::many("erase", sizes.erase_subjects);
    let total = sizes.erase_subjects * sizes.erase_records;
    let (_, vault_load) = timed(|| {
        for _ in 0..total / BATCH {
            let batch = batch(sizes.erase_subjects, BATCH);
            table.put_batch(client, &subjects, &batch);
            vault_put_batch(&vault, &subjects, &batch);
        }
    });
    println!(
        "  loaded {total} records ({} subjects x {}) into both in {:.1} s",
        sizes.erase_subjects,
        sizes.erase_records,
        vault_load.wall.as_secs_f64()
    );
    let (mut raw, mut pdv) = (Vec::new(), Vec::new());
    // One unmeasured subject first; the two take turns going first.
    for (i, subject) in subjects.iter().take(sizes.erasures + 1).enumerate() {
        let mut delete = || {
            let (n, took) = timed(|| table.delete_subject(client, subject));
            assert_eq!(
                n as usize, sizes.erase_records,
                "the raw delete found the rows"
            );
            took
        };
        let erase = || {
            let (report, took) = timed(|| vault.erase_subject(&subject.id).expect("erase"));
            assert!(report.subject_erased, "{report:?}");
            took
        };
        let (d, e) = if i % 2 == 0 {
            (delete(), erase())
        } else {
            let e = erase();
            (delete(), e)
        };
        if i > 0 {
            raw.push(d);
            pdv.push(e);
        }
    }
    vault.close().expect("close");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median_ms = |v: &[Spent]| ms(median(&mut v.iter().map(|s| s.wall).collect::<Vec<_>>()));
    let cpu_ms = |v: &[Spent]| ms(v.iter().map(|s| s.cpu).sum::<Duration>()) / v.len() as f64;
    Erasure {
        delete_ms: median_ms(&raw),
        delete_cpu_ms: cpu_ms(&raw),
        erase_ms: median_ms(&pdv),
        erase_cpu_ms: cpu_ms(&pdv),
    }
}

enum Target {
    AtMost(f64),
    AtLeast(f64),
    /// No target: for information.
    None,
}

/// A line of the final table.
struct Row {
    what: String,
    figures: String,
    ratio_of: &'static str,
    ratio: f64,
    target: Target,
}

fn print_table(rows: &[Row]) {
    let verdict = |r: &Row| match r.target {
        Target::AtMost(t) if r.ratio <= t => (format!("<= {t}x"), "target met"),
        Target::AtMost(t) => (format!("<= {t}x"), "target NOT met"),
        Target::AtLeast(t) if r.ratio >= t => (format!(">= {t}x"), "target met"),
        Target::AtLeast(t) => (format!(">= {t}x"), "target NOT met"),
        Target::None => ("-".to_owned(), "(for information)"),
    };
    let line = |a: &str, b: &str, c: &str, d: &str, e: &str, f: &str| {
        println!("{a:<44} {b:<44} {c:<24} {d:>7} {e:>7}  {f}")
    };
    line(
        "measurement",
        "figures",
        "ratio of",
        "ratio",
        "target",
        "verdict",
    );
    for r in rows {
        let (target, verdict) = verdict(r);
        line(
            &r.what,
            &r.figures,
            r.ratio_of,
            &format!("{:.2}x", r.ratio),
            &target,
            verdict,
        );
    }
}

fn main() {
    if let Ok(role) = std::env::var(CHILD_ROLE_ENV) {
        writer_child(&role);
        return;
    }
    let Ok(url) = std::env::var(URL_ENV) else {
        eprintln!("{URL_ENV} is not set (a postgres:// URL of a server to benchmark on)");
        let code = if std::env::var_os("CI").is_some() {
            1
        } else {
            0
        };
        std::process::exit(code);
    };
    let quick = std::env::var("PDVAULT_BENCH_QUICK").as_deref() == Ok("1");
    let sizes = if quick { Sizes::quick() } else { Sizes::full() };
    let mut client = Client::connect(&url, NoTls).expect("connect to PDVAULT_BENCH_POSTGRES");
    let setting = |client: &mut Client, name: &str| -> String {
        client
            .query_one(&format!("SHOW {name}"), &[])
            .map(|r| r.get(0))
            .unwrap_or_else(|_| "?".to_owned())
    };
    println!(
        "pdvault on PostgreSQL ({}; server: fsync {}, synchronous_commit {}, {} CPUs here){}",
        setting(&mut client, "server_version"),
        setting(&mut client, "fsync"),
        setting(&mut client, "synchronous_commit"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if quick { ", QUICK run" } else { "" },
    );

    let mut schemas = Schemas::new(&url);
    let raw_schema = schemas.name("raw");
    client
        .batch_execute(&format!("CREATE SCHEMA \"{raw_schema}\""))
        .expect("create the raw schema");
    let raw = RawTable::create(&mut client, &raw_schema, "raw_kv", false);
    let aead = RawTable::create(&mut client, &raw_schema, "aead_kv", true);
    let vault = vault_builder(&url, &schemas.name("vault"))
        .create(RootSecret::passphrase(PASSPHRASE))
        .expect("create the vault");
    let mut rows = Vec::new();
    let ratio_row = |what: String, per_op: &PerOp, unit: &str, target| {
        let wall = per_op.map(|(wall, _)| wall);
        let ratio = wall[2] / wall[1];
        for (system, (wall, cpu)) in SYSTEMS.iter().zip(per_op) {
            println!("  {system}: {wall:.1} {unit} (this process's CPU: {cpu:.1} {unit})");
        }
        Row {
            what,
            figures: format!("{:.1} / {:.1} / {:.1} {unit}", wall[0], wall[1], wall[2]),
            ratio_of: "pdvault / raw+AEAD",
            ratio,
            target,
        }
    };

    println!("batched put ({} x {BATCH} records)...", sizes.put_batches);
    let (puts, stored) = measure_puts(&mut client, [&raw, &aead], &vault, &sizes);
    rows.push(ratio_row(
        format!("put_many {BATCH} x {VALUE_LEN} B, {PUT_SUBJECTS} subjects"),
        &puts,
        "µs/rec",
        Target::AtMost(2.0),
    ));

    println!("random get ({} per system)...", sizes.gets);
    let gets = measure_gets(&mut client, [&raw, &aead], &vault, &stored, &sizes);
    rows.push(ratio_row(
        format!("random get {VALUE_LEN} B"),
        &gets,
        "µs/get",
        Target::AtMost(2.0),
    ));
    vault.close().expect("close");

    println!(
        "durable single puts, {THREADS_PER_PROCESS} threads per process, {:.1} s each...",
        sizes.writers_for.as_secs_f64()
    );
    let [pdv, raw_writes] = measure_writers(&url, &mut schemas, &mut client, &raw_schema, &sizes);
    let scaling = |what: &str, rates: [f64; 3], target| Row {
        what: format!("{what} (1/2/4 processes)"),
        figures: format!("{:.0} / {:.0} / {:.0} puts/s", rates[0], rates[1], rates[2]),
        ratio_of: "4 processes / 1",
        ratio: rates[2] / rates[0],
        target,
    };
    rows.push(scaling("pdvault durable put", pdv, Target::AtLeast(2.5)));
    rows.push(scaling("raw single-row INSERT", raw_writes, Target::None));

    println!(
        "erasure of a {}-record subject among {} subjects...",
        sizes.erase_records, sizes.erase_subjects
    );
    let Erasure {
        delete_ms,
        delete_cpu_ms,
        erase_ms,
        erase_cpu_ms,
    } = measure_erasure(&url, &mut schemas, &mut client, &raw_schema, &sizes);
    println!(
        "  medians of {}: raw delete {delete_ms:.2} ms (this process's CPU: {delete_cpu_ms:.2} \
         ms), pdvault erase_subject {erase_ms:.2} ms (CPU {erase_cpu_ms:.2} ms)",
        sizes.erasures
    );
    rows.push(Row {
        what: format!(
            "erase {}-record subject of {}",
            sizes.erase_records, sizes.erase_subjects
        ),
        figures: format!("raw delete {delete_ms:.2} / pdvault {erase_ms:.2} ms"),
        ratio_of: "raw delete / pdvault",
        ratio: delete_ms / erase_ms,
        target: Target::AtLeast(10.0),
    });

    println!();
    print_table(&rows);
}
