//! Storage: the only code that knows how bytes lie on disk.
//!
//! - [`engine`]: the engine interface; [`sled_engine`] implements it on sled 0.34 (the only file
//!   that names sled), [`mem_engine`] in memory with fault injection for tests,
//!   [`postgres_engine`] on PostgreSQL tables (feature `postgres`; not used by the vault yet).
//!   `engine_suite` (tests) is one set of engine properties, run against every engine.
//! - [`layout`]: the key space (one table tag byte, then fixed-width big-endian fields).
//! - [`codec`]: value encoding (a format byte, then bincode 2), with limits.
//! - [`entries`]: the stored entries that belong to no other module.
//! - [`members`]: the member lists of key groups, in chunks of record ids.
//! - [`vault_file`]: the small vault file holding the header and the sealed key ring.
//! - [`row_cache`]: decoded subject states, kept coherent with commits.
//! - [`private_fs`]: private directories (`0700`) and files (`0600`), for every file the vault
//!   creates.
//!
//! [`Store`] adds the vault's own integrity check to the engine: every commit also updates a
//! manifest (a count and a keyed multiset hash of all entries) in the same atomic batch, and
//! concurrent syncs share one flush. It may not decrypt anything, nor decide policy.
//!
//! A store that several processes share (an engine with [`Coordination`](engine::Coordination))
//! keeps no manifest, caches no rows and never halts: the manifest exists because sled loses
//! data silently, and one row that every commit of every process rewrites would serialise them
//! all; PostgreSQL has its own WAL and page checksums, reports what it loses, and a lost
//! connection is an error of one call, after which the next one reconnects.

pub(crate) mod codec;
pub(crate) mod engine;
#[cfg(test)]
mod engine_suite;
pub(crate) mod entries;
pub(crate) mod layout;
#[cfg(test)]
pub(crate) mod mem_engine;
pub(crate) mod members;
#[cfg(feature = "postgres")]
pub(crate) mod postgres_engine;
pub(crate) mod private_fs;
mod row_cache;
pub(crate) mod sled_engine;
pub(crate) mod timestamp;
pub(crate) mod vault_file;

use std::num::NonZeroUsize;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::crypto::{SecretKey, keyed_hash};
use crate::error::StorageError;
use engine::{Engine, EngineOp, KvIter};
use entries::Manifest;
use row_cache::{Lookup, RowCache};

/// Decoded rows of the cached tables kept in memory (a subject state is a few hundred bytes).
const CACHED_ROWS: NonZeroUsize = NonZeroUsize::new(4096).unwrap();

/// The memory the store may use to cache its pages unless the host says otherwise (64 MiB).
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// When an acknowledged write is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Every write call returns only after its data is synced to disk. Concurrent writers share
    /// syncs (group commit). The default.
    #[default]
    Immediate,
    /// Writes are synced in the background every `flush_every_ms` milliseconds, and at
    /// [`Vault::flush`](crate::Vault::flush) and close. A crash loses at most that window of
    /// acknowledged writes. Faster; an explicit choice. Erasures are always synced.
    Deferred {
        /// The background flush period.
        flush_every_ms: u64,
    },
}

/// The engine's op for one write of a [`Txn`]: `fresh` marks a key the writer knows is absent.
fn engine_op(key: Vec<u8>, value: Option<Vec<u8>>, fresh: bool) -> EngineOp {
    match value {
        Some(v) if fresh => EngineOp::Insert(key, v),
        Some(v) => EngineOp::Put(key, v),
        None => EngineOp::Delete(key),
    }
}

/// A set of writes applied atomically.
#[derive(Default)]
pub(crate) struct Txn {
    ops: Vec<(Vec<u8>, Option<Vec<u8>>, bool)>,
}

impl Txn {
    pub(crate) fn new() -> Self {
        Txn::default()
    }

    /// Writes `value` at `key`.
    pub(crate) fn put<T: Serialize + ?Sized>(&mut self, key: Vec<u8>, value: &T) {
        self.ops.push((key, Some(codec::encode(value)), false));
    }

    /// Writes `value` at a `key` the caller knows to be absent (a fresh random id): saves reading
    /// the old value for the manifest.
    pub(crate) fn put_new<T: Serialize + ?Sized>(&mut self, key: Vec<u8>, value: &T) {
        self.ops.push((key, Some(codec::encode(value)), true));
    }

    /// Writes bytes already encoded at `key`.
    pub(crate) fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push((key, Some(value), false));
    }

    /// Writes bytes already encoded at a `key` the caller knows to be absent.
    pub(crate) fn put_raw_new(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push((key, Some(value), true));
    }

    /// Removes `key`.
    pub(crate) fn delete(&mut self, key: Vec<u8>) {
        self.ops.push((key, None, false));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The number of writes.
    pub(crate) fn len(&self) -> usize {
        self.ops.len()
    }

    pub(crate) fn append(&mut self, mut other: Txn) {
        self.ops.append(&mut other.ops);
    }
}

struct SyncState {
    durable: Manifest,
    flushing: bool,
    error: Option<String>,
}

/// The typed store over an engine.
pub(crate) struct Store {
    engine: Box<dyn Engine>,
    manifest_key: SecretKey,
    committed: Mutex<Manifest>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    durability: Durability,
    /// Why the store stopped writing: set by the first write or flush the engine failed. After
    /// a failed write the engine's state is not to be trusted (sled 0.34 can wait forever in a
    /// later flush after a failed one), so nothing more is written until the vault is reopened,
    /// which recovers from what is on disk.
    halted: std::sync::OnceLock<String>,
    /// Decoded rows of the tables [`layout::is_cached`] names.
    cache: RowCache,
    /// Whether other processes share the engine (no manifest, no row cache, no halt).
    shared: bool,
    /// Set by [`Store::close`]: reads and writes fail with [`StorageError::Closed`] from then on;
    /// only the audit entries a clone buffered while the vault closed are still written.
    closed: std::sync::atomic::AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn xor(acc: &mut [u8; 32], h: &[u8; 32]) {
    for (a, b) in acc.iter_mut().zip(h) {
        *a ^= b;
    }
}

impl Store {
    /// Wraps an engine; reads its manifest.
    pub(crate) fn new(
        engine: Box<dyn Engine>,
        manifest_key: SecretKey,
        durability: Durability,
    ) -> Result<Self, StorageError> {
        let shared = engine.coordination().is_some();
        let manifest = match engine.get(&layout::meta(layout::MANIFEST))? {
            Some(_) if shared => Manifest::default(),
            Some(b) => codec::decode(&b, "manifest")?,
            None => Manifest::default(),
        };
        Ok(Store {
            engine,
            manifest_key,
            committed: Mutex::new(manifest),
            sync: Mutex::new(SyncState {
                durable: manifest,
                flushing: false,
                error: None,
            }),
            synced: Condvar::new(),
            durability,
            halted: std::sync::OnceLock::new(),
            cache: RowCache::new(CACHED_ROWS),
            shared,
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The locks of a store other processes share; `None` when this process owns it.
    pub(crate) fn coordination(&self) -> Option<&dyn engine::Coordination> {
        self.engine.coordination()
    }

    /// Whether other processes share this store.
    pub(crate) fn is_shared(&self) -> bool {
        self.shared
    }

    pub(crate) fn durability(&self) -> Durability {
        self.durability
    }

    fn entry_hash(&self, key: &[u8], value: &[u8]) -> [u8; 32] {
        keyed_hash(
            &self.manifest_key,
            &[key, layout::manifest_part(key, value)],
        )
    }

    /// Reads and decodes one entry.
    pub(crate) fn get<T: DeserializeOwned>(
        &self,
        key: &[u8],
        what: &'static str,
    ) -> Result<Option<T>, StorageError> {
        self.get_with(key, |b| codec::decode(&b, what))
    }

    /// Reads one entry and decodes it with `decode` (which may keep the buffer).
    pub(crate) fn get_with<T>(
        &self,
        key: &[u8],
        decode: impl FnOnce(Vec<u8>) -> Result<T, StorageError>,
    ) -> Result<Option<T>, StorageError> {
        self.check_open()?;
        self.engine.get(key)?.map(decode).transpose()
    }

    /// Closes the store for reads ([`StorageError::Closed`]).
    pub(crate) fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn check_open(&self) -> Result<(), StorageError> {
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StorageError::Closed);
        }
        Ok(())
    }

    /// The engine's scan of `prefix`, or only the error of a closed store.
    fn engine_scan(&self, prefix: &[u8]) -> KvIter<'_> {
        match self.check_open() {
            Ok(()) => self.engine.scan_prefix(prefix),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    /// Reads one entry of a cached table ([`layout::is_cached`]), shared: decoded once and then
    /// served from memory until a commit writes or deletes it.
    pub(crate) fn get_shared<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
        key: &[u8],
        what: &'static str,
    ) -> Result<Option<Arc<T>>, StorageError> {
        debug_assert!(layout::is_cached(key));
        self.check_open()?;
        if self.shared {
            // Another process may have changed it since.
            return Ok(self.get::<T>(key, what)?.map(Arc::new));
        }
        let epoch = match self.cache.lookup(key) {
            Lookup::Hit(row) => return Ok(Some(row)),
            Lookup::Miss(epoch) => epoch,
        };
        let Some(row) = self.get::<T>(key, what)?.map(Arc::new) else {
            return Ok(None);
        };
        self.cache.fill(key, epoch, row.clone());
        Ok(Some(row))
    }

    /// Several raw entries, read at one moment.
    pub(crate) fn get_many_raw(
        &self,
        keys: &[&[u8]],
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        self.check_open()?;
        self.engine.get_many(keys)
    }

    /// Whether a key exists.
    pub(crate) fn contains(&self, key: &[u8]) -> Result<bool, StorageError> {
        self.check_open()?;
        Ok(self.engine.get(key)?.is_some())
    }

    /// Every entry under a prefix, decoded.
    pub(crate) fn scan<'a, T: DeserializeOwned + 'a>(
        &'a self,
        prefix: &[u8],
        what: &'static str,
    ) -> impl Iterator<Item = Result<(Vec<u8>, T), StorageError>> + use<'a, T> {
        self.scan_with(prefix, move |v| codec::decode(&v, what))
    }

    /// Every entry under a prefix, decoded with `decode` (which may keep the buffer).
    pub(crate) fn scan_with<'a, T: 'a, D>(
        &'a self,
        prefix: &[u8],
        decode: D,
    ) -> impl Iterator<Item = Result<(Vec<u8>, T), StorageError>> + use<'a, T, D>
    where
        D: Fn(Vec<u8>) -> Result<T, StorageError> + 'a,
    {
        self.engine_scan(prefix).map(move |r| {
            let (k, v) = r?;
            Ok((k, decode(v)?))
        })
    }

    /// Every key under a prefix.
    pub(crate) fn scan_keys<'a>(
        &'a self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<Vec<u8>, StorageError>> + 'a {
        self.engine_scan(prefix).map(|r| r.map(|(k, _)| k))
    }

    /// Every raw entry in `[start, end)`.
    pub(crate) fn range_raw(&self, start: &[u8], end: &[u8]) -> KvIter<'_> {
        match self.check_open() {
            Ok(()) => self.engine.range(start, end),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    /// Every raw entry under a prefix.
    pub(crate) fn scan_raw(&self, prefix: &[u8]) -> KvIter<'_> {
        self.engine_scan(prefix)
    }

    /// Applies a transaction atomically; returns its commit sequence number.
    pub(crate) fn commit(&self, txn: Txn) -> Result<u64, StorageError> {
        self.commit_with(txn, |_| (), |_| ())
    }

    /// Applies a transaction atomically. `prepare` runs under the commit lock before the batch is
    /// applied and may add to it (the audit chain does); `finish` runs under the same lock after
    /// it was applied, with what `prepare` returned.
    pub(crate) fn commit_with<R>(
        &self,
        mut txn: Txn,
        prepare: impl FnOnce(&mut Txn) -> R,
        finish: impl FnOnce(R),
    ) -> Result<u64, StorageError> {
        self.check_halted()?;
        if !txn.is_empty() {
            // A closed store still writes what its trail buffered (an empty batch the trail
            // adds its entries to), nothing else.
            self.check_open()?;
        }
        let mut committed = lock(&self.committed);
        let r = prepare(&mut txn);
        if self.shared {
            let ops = txn
                .ops
                .into_iter()
                .map(|(key, value, fresh)| engine_op(key, value, fresh))
                .collect();
            self.engine.apply(ops)?;
            committed.seq += 1;
            finish(r);
            return Ok(committed.seq);
        }
        let mut next = *committed;
        let mut ops = Vec::with_capacity(txn.ops.len() + 1);
        // Later ops on the same key see the earlier ones of this batch.
        let mut pending: std::collections::HashMap<Vec<u8>, Option<Vec<u8>>> =
            std::collections::HashMap::new();
        let mut cached = Vec::new();
        for (key, value, fresh) in txn.ops {
            if layout::is_cached(&key) {
                cached.push(key.clone());
            }
            let old = match pending.get(&key) {
                Some(v) => v.clone(),
                None if fresh => None,
                None => self.engine.get(&key)?,
            };
            if let Some(old) = &old {
                xor(&mut next.acc, &self.entry_hash(&key, old));
                next.entries -= 1;
            }
            if let Some(new) = &value {
                xor(&mut next.acc, &self.entry_hash(&key, new));
                next.entries += 1;
            }
            if !fresh {
                // Fresh keys are random ids, written once per batch.
                pending.insert(key.clone(), value.clone());
            }
            ops.push(engine_op(key, value, fresh));
        }
        next.seq += 1;
        ops.push(EngineOp::Put(
            layout::meta(layout::MANIFEST),
            codec::encode(&next),
        ));
        let applied = self.engine.apply(ops);
        self.cache.invalidate(&cached);
        applied.map_err(|e| self.halt(e))?;
        *committed = next;
        finish(r);
        Ok(next.seq)
    }

    fn check_halted(&self) -> Result<(), StorageError> {
        match self.halted.get() {
            Some(why) => Err(StorageError::Halted(why.clone())),
            None => Ok(()),
        }
    }

    /// Stops writing after the engine failed `e`; returns `e`.
    fn halt(&self, e: StorageError) -> StorageError {
        let _ = self.halted.set(e.to_string());
        e
    }

    /// The manifest of everything committed so far.
    pub(crate) fn manifest(&self) -> Manifest {
        *lock(&self.committed)
    }

    /// Makes every commit up to `seq` durable, sharing the flush with concurrent callers.
    /// Returns the manifest as of the durable point.
    pub(crate) fn sync_to(&self, seq: u64) -> Result<Manifest, StorageError> {
        let mut st = lock(&self.sync);
        loop {
            if st.durable.seq >= seq {
                return Ok(st.durable);
            }
            if !st.flushing {
                self.check_halted()?;
                st.flushing = true;
                drop(st);
                let snapshot = self.manifest();
                let result = self.engine.flush().map_err(|e| self.halt(e));
                st = lock(&self.sync);
                st.flushing = false;
                match result {
                    Ok(()) => {
                        if snapshot.seq > st.durable.seq {
                            st.durable = snapshot;
                        }
                        st.error = None;
                    }
                    Err(e) => {
                        st.error = Some(e.to_string());
                        self.synced.notify_all();
                        return Err(e);
                    }
                }
                self.synced.notify_all();
            } else {
                st = self.synced.wait(st).unwrap_or_else(|p| p.into_inner());
                if let Some(e) = &st.error {
                    return Err(StorageError::engine(format!("shared flush failed: {e}")));
                }
            }
        }
    }

    /// Makes everything committed so far durable.
    pub(crate) fn sync_all(&self) -> Result<Manifest, StorageError> {
        let seq = self.manifest().seq;
        self.sync_to(seq)
    }

    /// Recomputes the manifest from every entry and compares it with the stored one. Returns a
    /// description of the mismatch, if any.
    pub(crate) fn verify_manifest(&self) -> Result<Option<String>, StorageError> {
        if self.shared {
            return Ok(None);
        }
        // No commit while the check scans: it compares the entries with the manifest of the
        // same moment (the background audit writer commits whenever it likes).
        let committed = lock(&self.committed);
        let stored = *committed;
        let manifest_key = layout::meta(layout::MANIFEST);
        let mut acc = [0u8; 32];
        let mut entries = 0u64;
        for r in self.engine.scan_prefix(&[]) {
            let (k, v) = r?;
            if k == manifest_key {
                continue;
            }
            if k.first()
                .and_then(|b| layout::Table::from_byte(*b))
                .is_none()
            {
                return Ok(Some("an entry outside every known table".into()));
            }
            xor(&mut acc, &self.entry_hash(&k, &v));
            entries += 1;
        }
        if entries != stored.entries {
            return Ok(Some(format!(
                "the store holds {entries} entries, its manifest says {}",
                stored.entries
            )));
        }
        if acc != stored.acc {
            return Ok(Some(
                "the store's entries do not match its manifest hash".into(),
            ));
        }
        Ok(None)
    }

    /// Bytes on disk, where the engine can tell.
    #[allow(dead_code)]
    pub(crate) fn size_on_disk(&self) -> Option<u64> {
        self.engine.size_on_disk()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{RecordId, SubjectRef};
    use mem_engine::MemEngine;

    fn store() -> (MemEngine, Store) {
        let e = MemEngine::new();
        let s = Store::new(
            Box::new(e.clone()),
            SecretKey::from_bytes([9; 32]),
            Durability::Immediate,
        )
        .unwrap();
        (e, s)
    }

    fn put(s: &Store, name: &str) -> u64 {
        let mut t = Txn::new();
        t.put(layout::meta(name), &1u32);
        s.commit(t).unwrap()
    }

    /// A sync covers every commit made before it: syncing an earlier commit afterwards is free.
    #[test]
    fn a_sync_covers_every_earlier_commit() {
        let (e, s) = store();
        let (a, b) = (put(&s, "a"), put(&s, "b"));
        assert_eq!(s.sync_to(b).unwrap().seq, b);
        assert_eq!(s.sync_to(a).unwrap().seq, b);
        assert_eq!(e.flushes(), 1);
    }

    #[test]
    fn manifest_tracks_puts_overwrites_and_deletes() {
        let (_, s) = store();
        let mut t = Txn::new();
        t.put(layout::meta("a"), &1u32);
        t.put(layout::meta("b"), &2u32);
        s.commit(t).unwrap();
        let mut t = Txn::new();
        t.put(layout::meta("a"), &3u32);
        t.delete(layout::meta("b"));
        t.delete(layout::meta("zz"));
        s.commit(t).unwrap();
        assert_eq!(s.manifest().entries, 1);
        assert_eq!(s.manifest().seq, 2);
        assert_eq!(s.verify_manifest().unwrap(), None);
    }

    /// Commits made while the check scans (the background audit writer's, another thread's)
    /// are not damage: the check compares the store with its manifest at one moment.
    #[test]
    fn verify_while_another_thread_commits_finds_the_store_whole() {
        let (_, s) = store();
        let s = std::sync::Arc::new(s);
        let mut t = Txn::new();
        for i in 0..2_000 {
            t.put(layout::meta(&format!("seed-{i}")), &1u32);
        }
        s.commit(t).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (s, stop) = (s.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut t = Txn::new();
                    t.put_new(layout::meta(&format!("new-{i}")), &i);
                    t.put(layout::meta("head"), &i);
                    s.commit(t).unwrap();
                    i += 1;
                }
                i
            })
        };
        for _ in 0..50 {
            assert_eq!(s.verify_manifest().unwrap(), None);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(writer.join().unwrap() > 0, "the writer committed meanwhile");
    }

    #[test]
    fn verify_detects_a_changed_or_missing_entry() {
        let (e, s) = store();
        let mut t = Txn::new();
        t.put(layout::meta("a"), &1u32);
        t.put(layout::meta("b"), &2u32);
        s.commit(t).unwrap();
        e.apply(vec![EngineOp::Put(layout::meta("a"), codec::encode(&5u32))])
            .unwrap();
        assert!(s.verify_manifest().unwrap().is_some());
        e.apply(vec![
            EngineOp::Put(layout::meta("a"), codec::encode(&1u32)),
            EngineOp::Delete(layout::meta("b")),
        ])
        .unwrap();
        assert!(s.verify_manifest().unwrap().is_some());
    }

    /// A record is hashed into the manifest by its key and tag: an older version restored
    /// behind the store's back (another tag), or the row moved, is found; a change before the
    /// tag is left to opening the record, whose associated data binds those bytes.
    #[test]
    fn the_manifest_hashes_a_record_by_its_key_and_tag() {
        let (e, s) = store();
        let (subject, id) = (SubjectRef([1; 16]), RecordId([2; 16]));
        let row = |tag: u8| {
            let mut v = vec![7u8; 100];
            v.extend_from_slice(&[tag; crate::crypto::TAG_LEN]);
            v
        };
        let mut t = Txn::new();
        t.put_raw_new(layout::record(&subject, &id), row(1));
        s.commit(t).unwrap();
        let mut t = Txn::new();
        t.put_raw(layout::record(&subject, &id), row(2));
        s.commit(t).unwrap();
        assert_eq!(s.verify_manifest().unwrap(), None);
        e.apply(vec![EngineOp::Put(layout::record(&subject, &id), row(1))])
            .unwrap();
        assert!(s.verify_manifest().unwrap().is_some(), "an older version");
        let mut before_tag = row(2);
        before_tag[3] ^= 1;
        e.apply(vec![EngineOp::Put(
            layout::record(&subject, &id),
            before_tag,
        )])
        .unwrap();
        assert_eq!(
            s.verify_manifest().unwrap(),
            None,
            "left to the record's tag"
        );
        e.apply(vec![
            EngineOp::Delete(layout::record(&subject, &id)),
            EngineOp::Put(layout::record(&SubjectRef([3; 16]), &id), row(2)),
        ])
        .unwrap();
        assert!(s.verify_manifest().unwrap().is_some(), "moved");
    }

    #[test]
    fn group_commit_survives_crash_and_reports_failure() {
        let (e, s) = store();
        let mut t = Txn::new();
        t.put(layout::meta("a"), &1u32);
        let seq = s.commit(t).unwrap();
        s.sync_to(seq).unwrap();
        let mut t = Txn::new();
        t.put(layout::meta("b"), &1u32);
        s.commit(t).unwrap();
        e.crash();
        assert!(e.get(&layout::meta("a")).unwrap().is_some());
        assert!(e.get(&layout::meta("b")).unwrap().is_none());
        e.fail_after(0);
        let mut t = Txn::new();
        t.put(layout::meta("c"), &1u32);
        assert!(s.commit(t).is_err());
        assert!(e.get(&layout::meta("c")).unwrap().is_none());
        // After a failed write the store writes nothing more, even once the engine would.
        let mut t = Txn::new();
        t.put(layout::meta("d"), &1u32);
        assert!(matches!(s.commit(t), Err(StorageError::Halted(_))));
        assert!(matches!(s.sync_all(), Err(StorageError::Halted(_))));
        assert!(e.get(&layout::meta("d")).unwrap().is_none());
    }
}
