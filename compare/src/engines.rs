//! The four stores under comparison, behind one small interface, and the two ways the workloads
//! lay records out in them ([`Workload`]). The driver names every record with a [`Rec`]: its
//! subject's number, its ordinal in the store and a 16-byte record id; each engine turns that into
//! its own key.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use pdvault::{
    Category, Durability, KdfParams, Purpose, RecordId, RecordMeta, RootSecret, SubjectId, Vault,
};
use rand::Rng;

use crate::PER_SUBJECT;

/// How the records of a workload are named and laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Each batch holds one subject's records, numbered 0, 1, 2, …; sled keys are subject (8 B)
    /// ‖ record number (8 B); SQLCipher has an integer primary key and an index on the subject.
    PerSubject,
    /// Each batch holds the records of many subjects, interleaved, with random 16-byte record ids;
    /// sled keys are subject (16 B) ‖ record (16 B); SQLCipher's table has the primary key
    /// (subject, record), as a rowid table or `WITHOUT ROWID` ([`SqlTable`]).
    Interleaved,
}

/// One record as the driver names it.
#[derive(Clone, Copy, Debug)]
pub struct Rec {
    /// The subject's number.
    pub subject: usize,
    /// The record's ordinal in the store (insertion order): where pdvault keeps the id it chose.
    pub n: usize,
    /// The record's id: its number, big-endian, in [`Workload::PerSubject`]; random bytes in
    /// [`Workload::Interleaved`].
    pub id: [u8; 16],
}

/// The 16-byte id of subject `s` in [`Workload::Interleaved`]: well spread (splitmix64), as a
/// random UUID would be, and the same in every engine.
pub fn subject_bytes(s: usize) -> [u8; 16] {
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let a = mix((s as u64).wrapping_add(0x9e37_79b9_7f4a_7c15));
    let b = mix(a ^ 0x5851_f42d_4c95_7f2d);
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&a.to_be_bytes());
    out[8..].copy_from_slice(&b.to_be_bytes());
    out
}

/// One store under comparison.
pub trait Engine: Sync {
    /// Inserts the records of `batch`, each with `payload`, made durable together (one sync).
    fn insert_batch(&mut self, batch: &[Rec], payload: &[u8]);
    /// Reads one record.
    fn get(&self, r: &Rec) -> Vec<u8>;
    /// Reads (and decrypts) every record of subject `s`, collecting them as pdvault's `read_all`
    /// does; the bytes read.
    fn scan(&self, s: usize) -> usize;
    /// Deletes (erases) every record of subject `s`, durably.
    fn delete_subject(&mut self, s: usize);
    /// Inserts one record for subject `s` and makes it durable before returning.
    fn durable_put(&self, s: usize, payload: &[u8]);
}

/// A sled key: at most 32 bytes, on the stack.
struct SledKey {
    bytes: [u8; 32],
    len: usize,
}

impl AsRef<[u8]> for SledKey {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The key of record `id` of subject `s` in the sled engines, and the prefix of the subject's
/// keys.
fn sled_key(w: Workload, s: usize, id: &[u8; 16]) -> SledKey {
    let mut k = sled_prefix(w, s);
    let rest: &[u8] = match w {
        Workload::PerSubject => &id[8..],
        Workload::Interleaved => id,
    };
    k.bytes[k.len..k.len + rest.len()].copy_from_slice(rest);
    k.len += rest.len();
    k
}

fn sled_prefix(w: Workload, s: usize) -> SledKey {
    let mut bytes = [0u8; 32];
    let len = match w {
        Workload::PerSubject => {
            bytes[..8].copy_from_slice(&(s as u64).to_be_bytes());
            8
        }
        Workload::Interleaved => {
            bytes[..16].copy_from_slice(&subject_bytes(s));
            16
        }
    };
    SledKey { bytes, len }
}

/// The page cache every engine may use: `PDVAULT_COMPARE_CACHE_MB` (default 1024 MiB, sled's
/// own default), so that no engine reads from its files for want of memory another has.
pub fn cache_bytes() -> u64 {
    let mb: u64 = std::env::var("PDVAULT_COMPARE_CACHE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    mb << 20
}

fn open_sled(dir: &Path) -> sled::Db {
    sled::Config::new()
        .path(dir.join("sled"))
        .cache_capacity(cache_bytes())
        .open()
        .expect("open sled")
}

/// Record numbers of durable single puts start here, clear of the batches.
const SINGLE_BASE: u64 = 1 << 40;

/// The id of the next durable single put.
fn single_id(next: &AtomicU64) -> [u8; 16] {
    u128::from(next.fetch_add(1, Ordering::Relaxed)).to_be_bytes()
}

/// sled with plaintext values.
pub struct RawSled {
    db: sled::Db,
    workload: Workload,
    next: AtomicU64,
}

impl RawSled {
    pub fn new(dir: &Path, workload: Workload) -> Self {
        RawSled {
            db: open_sled(dir),
            workload,
            next: AtomicU64::new(SINGLE_BASE),
        }
    }
}

impl Engine for RawSled {
    fn insert_batch(&mut self, batch: &[Rec], payload: &[u8]) {
        for r in batch {
            self.db
                .insert(sled_key(self.workload, r.subject, &r.id), payload)
                .expect("insert");
        }
        self.db.flush().expect("flush");
    }
    fn get(&self, r: &Rec) -> Vec<u8> {
        self.db
            .get(sled_key(self.workload, r.subject, &r.id))
            .expect("get")
            .expect("present")
            .to_vec()
    }
    fn scan(&self, s: usize) -> usize {
        let all: Vec<Vec<u8>> = self
            .db
            .scan_prefix(sled_prefix(self.workload, s))
            .map(|r| r.expect("scan").1.to_vec())
            .collect();
        all.iter().map(Vec::len).sum()
    }
    fn delete_subject(&mut self, s: usize) {
        delete_prefix(&self.db, sled_prefix(self.workload, s));
    }
    fn durable_put(&self, s: usize, payload: &[u8]) {
        let k = sled_key(self.workload, s, &single_id(&self.next));
        self.db.insert(k, payload).expect("insert");
        self.db.flush().expect("flush");
    }
}

fn delete_prefix(db: &sled::Db, prefix: SledKey) {
    let mut batch = sled::Batch::default();
    for k in db.scan_prefix(prefix).keys() {
        batch.remove(k.expect("scan"));
    }
    db.apply_batch(batch).expect("apply");
    db.flush().expect("flush");
}

/// sled with one XChaCha20-Poly1305 seal per value under one key, a random nonce each: the cost
/// of encryption at rest with nothing else (no per-subject keys, no erasure, no audit). The floor.
pub struct AeadSled {
    db: sled::Db,
    workload: Workload,
    cipher: XChaCha20Poly1305,
    next: AtomicU64,
}

impl AeadSled {
    pub fn new(dir: &Path, workload: Workload) -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        AeadSled {
            db: open_sled(dir),
            workload,
            cipher: XChaCha20Poly1305::new(&Key::from(key)),
            next: AtomicU64::new(SINGLE_BASE),
        }
    }
}

/// `nonce || ciphertext || tag`, bound to the key it is stored under.
fn seal(cipher: &XChaCha20Poly1305, ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 24];
    rand::rng().fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(24 + plaintext.len() + 16);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_inout_detached(&XNonce::from(nonce), ad, (&mut out[24..]).into())
        .expect("seal");
    out.extend_from_slice(&tag);
    out
}

fn open(cipher: &XChaCha20Poly1305, ad: &[u8], sealed: &[u8]) -> Vec<u8> {
    let (nonce, rest) = sealed.split_at(24);
    let (ct, tag) = rest.split_at(rest.len() - 16);
    let mut buf = ct.to_vec();
    cipher
        .decrypt_inout_detached(
            &XNonce::try_from(nonce).expect("nonce"),
            ad,
            buf.as_mut_slice().into(),
            &Tag::try_from(tag).expect("tag"),
        )
        .expect("open");
    buf
}

impl Engine for AeadSled {
    fn insert_batch(&mut self, batch: &[Rec], payload: &[u8]) {
        for r in batch {
            let k = sled_key(self.workload, r.subject, &r.id);
            let v = seal(&self.cipher, k.as_ref(), payload);
            self.db.insert(k, v).expect("insert");
        }
        self.db.flush().expect("flush");
    }
    fn get(&self, r: &Rec) -> Vec<u8> {
        let k = sled_key(self.workload, r.subject, &r.id);
        let v = self.db.get(k.as_ref()).expect("get").expect("present");
        open(&self.cipher, k.as_ref(), &v)
    }
    fn scan(&self, s: usize) -> usize {
        let all: Vec<Vec<u8>> = self
            .db
            .scan_prefix(sled_prefix(self.workload, s))
            .map(|r| {
                let (k, v) = r.expect("scan");
                open(&self.cipher, &k, &v)
            })
            .collect();
        all.iter().map(Vec::len).sum()
    }
    fn delete_subject(&mut self, s: usize) {
        delete_prefix(&self.db, sled_prefix(self.workload, s));
    }
    fn durable_put(&self, s: usize, payload: &[u8]) {
        let k = sled_key(self.workload, s, &single_id(&self.next));
        let v = seal(&self.cipher, k.as_ref(), payload);
        self.db.insert(k, v).expect("insert");
        self.db.flush().expect("flush");
    }
}

/// SQLite with SQLCipher: WAL, synchronous=FULL (a commit is durable), a transaction per batch.
pub struct SqlCipher {
    conn: Mutex<rusqlite::Connection>,
    workload: Workload,
    next: AtomicU64,
}

/// How SQLCipher's interleaved table keeps its rows (the per-subject table has an integer key,
/// which is its rowid, either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqlTable {
    /// `PRIMARY KEY (subject, record)`, as a service would declare it: SQLite keeps the rows in
    /// rowid order and (subject, record) in a second index.
    Rowid,
    /// The same key, `WITHOUT ROWID`: the rows live in the key's B-tree.
    WithoutRowid,
}

/// The statements of each layout: insert, get, scan, delete.
struct Sql {
    insert: &'static str,
    get: &'static str,
    scan: &'static str,
    delete: &'static str,
}

const PER_SUBJECT_SQL: Sql = Sql {
    insert: "INSERT INTO records (id, subject, payload) VALUES (?1, ?2, ?3)",
    get: "SELECT payload FROM records WHERE id = ?1",
    scan: "SELECT payload FROM records WHERE subject = ?1",
    delete: "DELETE FROM records WHERE subject = ?1",
};

const INTERLEAVED_SQL: Sql = Sql {
    insert: "INSERT INTO records (subject, record, payload) VALUES (?1, ?2, ?3)",
    get: "SELECT payload FROM records WHERE subject = ?1 AND record = ?2",
    scan: "SELECT payload FROM records WHERE subject = ?1",
    delete: "DELETE FROM records WHERE subject = ?1",
};

impl SqlCipher {
    pub fn new(dir: &Path, workload: Workload, table: SqlTable) -> Self {
        let conn = rusqlite::Connection::open(dir.join("records.db")).expect("open sqlite");
        conn.pragma_update(None, "key", "compare passphrase")
            .expect("key");
        conn.pragma_update(None, "journal_mode", "WAL")
            .expect("WAL");
        conn.pragma_update(None, "synchronous", "FULL")
            .expect("synchronous");
        // A negative cache size is in KiB.
        conn.pragma_update(None, "cache_size", -((cache_bytes() >> 10) as i64))
            .expect("cache size");
        let schema = match workload {
            Workload::PerSubject => {
                "CREATE TABLE records (id INTEGER PRIMARY KEY, subject INTEGER NOT NULL, payload BLOB NOT NULL);
                 CREATE INDEX records_subject ON records(subject);"
            }
            // The table a service would write: the rows are found by (subject, record), so that
            // is the primary key. With a rowid (SQLite's default), SQLite keeps the rows in the
            // rowid tree and (subject, record) in a second index. Without a rowid the rows live
            // in that key's B-tree: one tree written per insert, a get and a subject's scan in
            // one tree.
            Workload::Interleaved if table == SqlTable::Rowid => {
                "CREATE TABLE records (subject BLOB NOT NULL, record BLOB NOT NULL, payload BLOB NOT NULL,
                 PRIMARY KEY (subject, record));"
            }
            Workload::Interleaved => {
                "CREATE TABLE records (subject BLOB NOT NULL, record BLOB NOT NULL, payload BLOB NOT NULL,
                 PRIMARY KEY (subject, record)) WITHOUT ROWID;"
            }
        };
        conn.execute_batch(schema).expect("schema");
        SqlCipher {
            conn: Mutex::new(conn),
            workload,
            next: AtomicU64::new(SINGLE_BASE),
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sql(&self) -> &'static Sql {
        match self.workload {
            Workload::PerSubject => &PER_SUBJECT_SQL,
            Workload::Interleaved => &INTERLEAVED_SQL,
        }
    }

    /// Inserts one record with a prepared statement.
    fn insert_one(&self, st: &mut rusqlite::CachedStatement<'_>, r: &Rec, payload: &[u8]) {
        match self.workload {
            Workload::PerSubject => st.execute(rusqlite::params![
                row_id(r.subject, &r.id),
                r.subject as i64,
                payload
            ]),
            Workload::Interleaved => st.execute(rusqlite::params![
                &subject_bytes(r.subject)[..],
                &r.id[..],
                payload
            ]),
        }
        .expect("insert");
    }
}

/// The payload of a selected row.
fn payload_column(row: &rusqlite::Row<'_>) -> rusqlite::Result<Vec<u8>> {
    row.get(0)
}

/// The integer key of a record in [`Workload::PerSubject`].
fn row_id(s: usize, id: &[u8; 16]) -> i64 {
    let i = u128::from_be_bytes(*id) as u64;
    (s as u64 * PER_SUBJECT as u64 * 10).wrapping_add(i) as i64
}

impl Engine for SqlCipher {
    fn insert_batch(&mut self, batch: &[Rec], payload: &[u8]) {
        let sql = self.sql();
        let mut conn = self.conn();
        let tx = conn.transaction().expect("begin");
        {
            let mut st = tx.prepare_cached(sql.insert).expect("prepare");
            for r in batch {
                self.insert_one(&mut st, r, payload);
            }
        }
        tx.commit().expect("commit");
    }
    fn get(&self, r: &Rec) -> Vec<u8> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(self.sql().get).expect("prepare");
        match self.workload {
            Workload::PerSubject => st.query_row([row_id(r.subject, &r.id)], |r| r.get(0)),
            Workload::Interleaved => st.query_row(
                rusqlite::params![&subject_bytes(r.subject)[..], &r.id[..]],
                |r| r.get(0),
            ),
        }
        .expect("get")
    }
    fn scan(&self, s: usize) -> usize {
        let conn = self.conn();
        let mut st = conn.prepare_cached(self.sql().scan).expect("prepare");
        let rows = match self.workload {
            Workload::PerSubject => st.query_map([s as i64], payload_column),
            Workload::Interleaved => st.query_map([&subject_bytes(s)[..]], payload_column),
        }
        .expect("scan");
        let all: Vec<Vec<u8>> = rows.map(|v| v.expect("row")).collect();
        all.iter().map(Vec::len).sum()
    }
    fn delete_subject(&mut self, s: usize) {
        let conn = self.conn();
        match self.workload {
            Workload::PerSubject => conn.execute(self.sql().delete, [s as i64]),
            Workload::Interleaved => conn.execute(self.sql().delete, [&subject_bytes(s)[..]]),
        }
        .expect("delete");
    }
    fn durable_put(&self, s: usize, payload: &[u8]) {
        let r = Rec {
            subject: s,
            n: usize::MAX,
            id: single_id(&self.next),
        };
        let conn = self.conn();
        let mut st = conn.prepare_cached(self.sql().insert).expect("prepare");
        self.insert_one(&mut st, &r, payload);
    }
}

/// pdvault with its default (immediate) durability: every call returns after its sync. Its
/// record ids are its own (random, chosen by `put_many`); it keeps them by the driver's ordinal.
pub struct PdVault {
    vault: Vault,
    subjects: Vec<SubjectId>,
    records: Vec<Option<RecordId>>,
    purpose: Purpose,
}

impl PdVault {
    pub fn new(dir: &Path) -> Self {
        let vault = Vault::builder(dir)
            .kdf(KdfParams::insecure_for_tests())
            .durability(Durability::Immediate)
            .cache_bytes(cache_bytes())
            .create(RootSecret::passphrase("compare passphrase"))
            .expect("create a vault");
        PdVault {
            vault,
            subjects: Vec::new(),
            records: Vec::new(),
            purpose: Purpose::new("billing").expect("a purpose"),
        }
    }

    fn meta(&self) -> RecordMeta {
        RecordMeta::new(Category::Contact).purpose(self.purpose.clone())
    }
}

impl Engine for PdVault {
    fn insert_batch(&mut self, batch: &[Rec], payload: &[u8]) {
        let top = batch.iter().map(|r| r.subject).max().unwrap_or(0);
        while self.subjects.len() <= top {
            let i = self.subjects.len();
            self.subjects
                .push(SubjectId::new(format!("subject-{i}@example.com")).expect("an id"));
        }
        let ids = self
            .vault
            .put_many(
                batch
                    .iter()
                    .map(|r| (&self.subjects[r.subject], self.meta(), payload)),
            )
            .expect("put_many");
        for (r, id) in batch.iter().zip(ids) {
            if self.records.len() <= r.n {
                self.records.resize(r.n + 1, None);
            }
            self.records[r.n] = Some(id);
        }
    }
    fn get(&self, r: &Rec) -> Vec<u8> {
        let id = self.records[r.n].expect("a record the driver inserted");
        self.vault
            .get(&self.subjects[r.subject], id, &self.purpose)
            .expect("get")
            .payload
    }
    fn scan(&self, s: usize) -> usize {
        self.vault
            .read_all(&self.subjects[s], &self.purpose)
            .expect("read_all")
            .iter()
            .map(|r| r.payload.len())
            .sum()
    }
    fn delete_subject(&mut self, s: usize) {
        self.vault.erase_subject(&self.subjects[s]).expect("erase");
    }
    fn durable_put(&self, s: usize, payload: &[u8]) {
        self.vault
            .put(&self.subjects[s], self.meta(), payload)
            .expect("put");
    }
}

/// The SQLCipher version compiled in.
pub fn sqlcipher_version() -> String {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let conn = rusqlite::Connection::open(dir.path().join("v.db")).expect("open sqlite");
    conn.pragma_update(None, "key", "v").expect("key");
    conn.query_row("PRAGMA cipher_version", [], |r| r.get::<_, String>(0))
        .unwrap_or_else(|_| "not compiled in".to_owned())
}

/// One XChaCha20-Poly1305 seal and open of 256 bytes (random nonce), median over batches.
pub fn seal_open_256() -> Duration {
    let cipher = XChaCha20Poly1305::new(&Key::from([7u8; 32]));
    let msg = [0u8; 256];
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for i in 0..20_000u32 {
            let ad = i.to_be_bytes();
            let sealed = seal(&cipher, &ad, &msg);
            std::hint::black_box(open(&cipher, &ad, &sealed));
        }
        times.push(t.elapsed() / 20_000);
    }
    crate::median(times)
}

/// One Argon2id derivation at m=19 MiB, t=2, p=1 (pdvault's default costs).
pub fn argon2_default() -> Duration {
    let params = argon2::Params::new(19 * 1024, 2, 1, Some(32)).expect("params");
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut times = Vec::new();
    for _ in 0..5 {
        let mut out = [0u8; 32];
        let t = Instant::now();
        a.hash_password_into(b"passphrase", b"a sixteen b salt", &mut out)
            .expect("argon2");
        times.push(t.elapsed());
    }
    crate::median(times)
}

/// Opening a vault created with the default KDF costs.
pub fn pdvault_open_default() -> Duration {
    let dir = tempfile::tempdir().expect("a temporary directory");
    Vault::builder(dir.path())
        .create(RootSecret::passphrase("compare passphrase"))
        .expect("create")
        .close()
        .expect("close");
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let v = Vault::builder(dir.path())
            .open(RootSecret::passphrase("compare passphrase"))
            .expect("open");
        times.push(t.elapsed());
        v.close().expect("close");
    }
    crate::median(times)
}
