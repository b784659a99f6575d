//! The four stores under comparison, behind one small interface. Subjects are numbered; record
//! `i` of subject `s` is the `i`-th record inserted for it.

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

/// One store under comparison.
pub trait Engine: Sync {
    /// Inserts `n` records for subject `s`, made durable together (one sync).
    fn insert_subject(&mut self, s: usize, n: usize, payload: &[u8]);
    /// Reads record `i` of subject `s`.
    fn get(&self, s: usize, i: usize) -> Vec<u8>;
    /// Reads (and decrypts) every record of subject `s`; the bytes read.
    fn scan(&self, s: usize) -> usize;
    /// Deletes (erases) every record of subject `s`, durably.
    fn delete_subject(&mut self, s: usize);
    /// Inserts one record for subject `s` and makes it durable before returning.
    fn durable_put(&self, s: usize, payload: &[u8]);
}

/// Keys of the sled engines: subject (8 bytes, big-endian) then record number (8 bytes).
fn sled_key(s: usize, i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&(s as u64).to_be_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
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

/// sled with plaintext values: the floor.
pub struct RawSled {
    db: sled::Db,
    next: AtomicU64,
}

impl RawSled {
    pub fn new(dir: &Path) -> Self {
        RawSled {
            db: open_sled(dir),
            next: AtomicU64::new(SINGLE_BASE),
        }
    }
}

impl Engine for RawSled {
    fn insert_subject(&mut self, s: usize, n: usize, payload: &[u8]) {
        for i in 0..n as u64 {
            self.db.insert(sled_key(s, i), payload).expect("insert");
        }
        self.db.flush().expect("flush");
    }
    fn get(&self, s: usize, i: usize) -> Vec<u8> {
        self.db
            .get(sled_key(s, i as u64))
            .expect("get")
            .expect("present")
            .to_vec()
    }
    fn scan(&self, s: usize) -> usize {
        self.db
            .scan_prefix((s as u64).to_be_bytes())
            .map(|r| r.expect("scan").1.to_vec().len())
            .sum()
    }
    fn delete_subject(&mut self, s: usize) {
        delete_prefix(&self.db, s);
    }
    fn durable_put(&self, s: usize, payload: &[u8]) {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.db.insert(sled_key(s, i), payload).expect("insert");
        self.db.flush().expect("flush");
    }
}

fn delete_prefix(db: &sled::Db, s: usize) {
    let mut batch = sled::Batch::default();
    for k in db.scan_prefix((s as u64).to_be_bytes()).keys() {
        batch.remove(k.expect("scan"));
    }
    db.apply_batch(batch).expect("apply");
    db.flush().expect("flush");
}

/// sled with one XChaCha20-Poly1305 seal per value under one key, a random nonce each: the cost
/// of encryption at rest with nothing else (no per-subject keys, no erasure, no audit).
pub struct AeadSled {
    db: sled::Db,
    cipher: XChaCha20Poly1305,
    next: AtomicU64,
}

impl AeadSled {
    pub fn new(dir: &Path) -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        AeadSled {
            db: open_sled(dir),
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
    fn insert_subject(&mut self, s: usize, n: usize, payload: &[u8]) {
        for i in 0..n as u64 {
            let k = sled_key(s, i);
            self.db
                .insert(k, seal(&self.cipher, &k, payload))
                .expect("insert");
        }
        self.db.flush().expect("flush");
    }
    fn get(&self, s: usize, i: usize) -> Vec<u8> {
        let k = sled_key(s, i as u64);
        let v = self.db.get(k).expect("get").expect("present");
        open(&self.cipher, &k, &v)
    }
    fn scan(&self, s: usize) -> usize {
        self.db
            .scan_prefix((s as u64).to_be_bytes())
            .map(|r| {
                let (k, v) = r.expect("scan");
                open(&self.cipher, &k, &v).len()
            })
            .sum()
    }
    fn delete_subject(&mut self, s: usize) {
        delete_prefix(&self.db, s);
    }
    fn durable_put(&self, s: usize, payload: &[u8]) {
        let k = sled_key(s, self.next.fetch_add(1, Ordering::Relaxed));
        self.db
            .insert(k, seal(&self.cipher, &k, payload))
            .expect("insert");
        self.db.flush().expect("flush");
    }
}

/// SQLite with SQLCipher: WAL, synchronous=FULL (a commit is durable), a transaction per batch.
pub struct SqlCipher {
    conn: Mutex<rusqlite::Connection>,
    next: AtomicU64,
}

impl SqlCipher {
    pub fn new(dir: &Path) -> Self {
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
        conn.execute_batch(
            "CREATE TABLE records (id INTEGER PRIMARY KEY, subject INTEGER NOT NULL, payload BLOB NOT NULL);
             CREATE INDEX records_subject ON records(subject);",
        )
        .expect("schema");
        SqlCipher {
            conn: Mutex::new(conn),
            next: AtomicU64::new(SINGLE_BASE),
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn row_id(s: usize, i: u64) -> i64 {
    (s as u64 * PER_SUBJECT as u64 * 10 + i) as i64
}

impl Engine for SqlCipher {
    fn insert_subject(&mut self, s: usize, n: usize, payload: &[u8]) {
        let mut conn = self.conn();
        let tx = conn.transaction().expect("begin");
        {
            let mut st = tx
                .prepare_cached("INSERT INTO records (id, subject, payload) VALUES (?1, ?2, ?3)")
                .expect("prepare");
            for i in 0..n as u64 {
                st.execute(rusqlite::params![row_id(s, i), s as i64, payload])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    fn get(&self, s: usize, i: usize) -> Vec<u8> {
        let conn = self.conn();
        let mut st = conn
            .prepare_cached("SELECT payload FROM records WHERE id = ?1")
            .expect("prepare");
        st.query_row([row_id(s, i as u64)], |r| r.get::<_, Vec<u8>>(0))
            .expect("get")
    }
    fn scan(&self, s: usize) -> usize {
        let conn = self.conn();
        let mut st = conn
            .prepare_cached("SELECT payload FROM records WHERE subject = ?1")
            .expect("prepare");
        st.query_map([s as i64], |r| r.get::<_, Vec<u8>>(0))
            .expect("scan")
            .map(|v| v.expect("row").len())
            .sum()
    }
    fn delete_subject(&mut self, s: usize) {
        self.conn()
            .execute("DELETE FROM records WHERE subject = ?1", [s as i64])
            .expect("delete");
    }
    fn durable_put(&self, s: usize, payload: &[u8]) {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.conn()
            .prepare_cached("INSERT INTO records (id, subject, payload) VALUES (?1, ?2, ?3)")
            .expect("prepare")
            .execute(rusqlite::params![i as i64, s as i64, payload])
            .expect("insert");
    }
}

/// pdvault with its default (immediate) durability: every call returns after its sync.
pub struct PdVault {
    vault: Vault,
    subjects: Vec<SubjectId>,
    records: Vec<Vec<RecordId>>,
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
    fn insert_subject(&mut self, s: usize, n: usize, payload: &[u8]) {
        while self.subjects.len() <= s {
            let i = self.subjects.len();
            self.subjects
                .push(SubjectId::new(format!("subject-{i}@example.com")).expect("an id"));
            self.records.push(Vec::new());
        }
        let subject = &self.subjects[s];
        let ids = self
            .vault
            .put_many((0..n).map(|_| (subject, self.meta(), payload)))
            .expect("put_many");
        self.records[s].extend(ids);
    }
    fn get(&self, s: usize, i: usize) -> Vec<u8> {
        self.vault
            .get(&self.subjects[s], self.records[s][i], &self.purpose)
            .expect("get")
            .payload
    }
    fn scan(&self, s: usize) -> usize {
        // Streamed, as the other engines' scans are: each record is decrypted, handed over and
        // dropped (`read_all` collects them into a Vec).
        let mut bytes = 0;
        self.vault
            .read_each(&self.subjects[s], &self.purpose, |r| {
                bytes += r.payload.len();
                std::ops::ControlFlow::Continue(())
            })
            .expect("read_each");
        bytes
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
