//! The key hierarchy: the key ring (a random master secret and one key per shard), the wrapped
//! identity and data keys in the store, the bounded cache of unwrapped keys, and the ratchet that
//! destroys keys so that no current file can bring them back.
//!
//! ```text
//! root secret ──Argon2id / raw──▶ root key ─┬─▶ ring key (seals the key ring in vault.pdv)
//!                                           └─▶ key-check value (tells a wrong key from damage)
//! key ring (vault.pdv, each version written over the copy before the current one):
//!   master secret ─┬─▶ blind-index key ─▶ subject index (keyed hash of the identifier)
//!                  ├─▶ audit key ─▶ audit chain
//!                  ├─▶ manifest key ─▶ store manifest hash
//!                  └─▶ ledger key ─▶ authentication code of exported erasure ledgers
//!   shard keys [4096] ─▶ wrap identity keys (by blind index) and data keys (by subject reference)
//! identity key (per subject) ─▶ seals the subject reference in its index entry
//! data key (per subject, category, generation) ─▶ seals payloads
//! ```
//!
//! Destroying a key means: replace the key of its shard, rewrap every other key of that shard
//! under the new shard key, and replace the vault file. The old shard key then exists nowhere:
//! a copy of the store files taken before (sled keeps removed values until its garbage
//! collection) holds the destroyed key wrapped under a shard key that is gone.
//!
//! A shared store keeps the ring in two levels, so that a ratchet writes a few KiB instead of
//! the whole ring: the vault file row holds the master secret and 64 chunk keys, and each of
//! 64 chunk rows holds 64 shard keys sealed under its chunk key. A ratchet gives every chunk it
//! touches a new chunk key; the old chunk key was only ever in ring rows sealed under epoch keys
//! the ratchet destroys, so the old versions of the chunk row (dead tuples, WAL, backups) open
//! nowhere.
//!
//! This module may not read records or decide what to destroy; it only does what it is told.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use lru::LruCache;

use crate::crypto::{self, DataKey, SecretKey, derive_subkey, keyed_hash};
use crate::error::{IntegrityError, OpenError, Result, StorageError};
use crate::ids::{BlindIndex, SubjectId, SubjectRef};
use crate::keysource::{EpochId, KeySource, KeySourceError, SlotSource};
use crate::storage::entries::{IndexEntry, JournalEntry, WrappedKey};
use crate::storage::layout::{self, IndexAddr, SHARDS};
use crate::storage::vault_file::{self, KdfSpec, RingPlain, VaultFileBody};
use crate::storage::{Store, Txn};

const CTX_SLOT: &str = "pdvault 2026-12 epoch key slots";
const CTX_CHECK: &str = "pdvault 2026-11 key check";
const CTX_INDEX: &str = "pdvault 2026-11 blind index";
const CTX_AUDIT: &str = "pdvault 2026-11 audit chain";
const CTX_MANIFEST: &str = "pdvault 2026-11 store manifest";
const CTX_INDEX_ADDRESS: &str = "pdvault 2026-12 index address";
const CTX_LEDGER: &str = "pdvault 2026-11 ledger document";

/// How many shard keys a chunk of a shared store's ring holds, and how many chunks there are.
const CHUNK_SHARDS: usize = 64;
const CHUNKS: usize = SHARDS as usize / CHUNK_SHARDS;

/// The key group of a subject's own key (not a category: categories are kebab-case).
pub(crate) const SUBJECT_GROUP: &str = "$subject";

/// How many unwrapped data keys the cache holds.
pub(crate) const CACHE_CAPACITY: usize = 8192;

/// What the root key gives: the key that seals the built-in source's epoch keys and the
/// key-check value.
pub(crate) struct RootKeys {
    pub(crate) slot_key: SecretKey,
    pub(crate) key_check: [u8; 32],
}

impl Clone for RootKeys {
    fn clone(&self) -> Self {
        RootKeys {
            slot_key: SecretKey::from_bytes(*self.slot_key.expose()),
            key_check: self.key_check,
        }
    }
}

impl RootKeys {
    pub(crate) fn derive(root: &SecretKey, vault_id: &[u8; 16]) -> Self {
        let check = derive_subkey(root, CTX_CHECK);
        RootKeys {
            slot_key: derive_subkey(root, CTX_SLOT),
            key_check: keyed_hash(&check, &[vault_id]),
        }
    }
}

/// Where a vault's epoch keys live: the built-in slot file (whose sealing key follows the root
/// key), or a source the host gave.
#[derive(Clone, Debug)]
pub(crate) enum EpochKeys {
    Slot(Arc<SlotSource>),
    Host(Arc<dyn KeySource>),
    /// Rows of a shared store's own table: nothing is really destroyed.
    #[cfg(feature = "postgres")]
    Table(Arc<crate::keysource::table::TableSource>),
}

impl EpochKeys {
    pub(crate) fn source(&self) -> &dyn KeySource {
        match self {
            EpochKeys::Slot(s) => s.as_ref(),
            EpochKeys::Host(h) => h.as_ref(),
            #[cfg(feature = "postgres")]
            EpochKeys::Table(t) => t.as_ref(),
        }
    }

    /// The source whose epoch keys are rows of the store the ring lives in: a ratchet writes
    /// the new epoch key, the ring and the old epoch key's removal in one transaction.
    #[cfg(feature = "postgres")]
    fn in_the_store(&self) -> Option<&crate::keysource::table::TableSource> {
        match self {
            EpochKeys::Table(t) => Some(t),
            _ => None,
        }
    }

    #[cfg(not(feature = "postgres"))]
    fn in_the_store(&self) -> Option<&Never> {
        None
    }

    /// Follows a new root key (the built-in sources seal their epoch keys under it).
    fn set_slot_key(&self, slot_key: &SecretKey) {
        match self {
            EpochKeys::Slot(s) => s.set_slot_key(slot_key),
            EpochKeys::Host(_) => {}
            #[cfg(feature = "postgres")]
            EpochKeys::Table(t) => t.set_slot_key(slot_key),
        }
    }
}

/// Where the sealed key ring lives: the vault file of a directory, or a row of a store that
/// several processes share (written in the same transaction as the ratchet that changed it, with
/// the generation every process checks its caches against).
pub(crate) enum RingHome {
    Dir(PathBuf),
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Store,
}

/// Stands for the store's own epoch-key rows in a build without a shared store.
#[cfg(not(feature = "postgres"))]
enum Never {}

#[cfg(not(feature = "postgres"))]
impl Never {
    fn stage_epoch(&self, _: EpochId) -> (Vec<u8>, Vec<u8>) {
        match *self {}
    }
    fn end_staging(&self) {
        match *self {}
    }
    fn epochs(&self) -> Result<Vec<EpochId>, KeySourceError> {
        match *self {}
    }
}

/// Epochs of backups have the top bit of their sequence set: the vault's own cleanup of epochs
/// never touches them.
pub(crate) const BACKUP_EPOCH: u64 = 1 << 63;

pub(crate) fn key_source_error(e: KeySourceError) -> crate::Error {
    match e {
        KeySourceError::EpochNotFound(epoch) => OpenError::EpochDestroyed(epoch.to_string()).into(),
        e => crate::Error::KeySource(e),
    }
}

struct Shard {
    generation: u64,
    secret: SecretKey,
    key: DataKey,
    /// Keys the addresses of the shard's index entries (and identity keys).
    index_key: SecretKey,
}

impl Shard {
    fn new(generation: u64, secret: SecretKey) -> Self {
        let key = DataKey::new(&secret);
        let index_key = derive_subkey(&secret, CTX_INDEX_ADDRESS);
        Shard {
            generation,
            secret,
            key,
            index_key,
        }
    }

    fn index_addr(&self, shard: u16, blind: &BlindIndex) -> IndexAddr {
        IndexAddr {
            shard,
            addr: keyed_hash(&self.index_key, &[&blind.0]),
        }
    }

    fn wrap(&self, vault_id: &[u8; 16], addr: &[u8], key: &SecretKey) -> WrappedKey {
        WrappedKey {
            shard_gen: self.generation,
            sealed: crypto::seal(
                &self.key,
                &wrap_ad(vault_id, addr, self.generation),
                key.expose(),
            ),
        }
    }
}

/// The key of a chunk of a shared store's ring.
struct ChunkKey {
    generation: u64,
    secret: SecretKey,
}

impl ChunkKey {
    fn fresh(generation: u64) -> Self {
        ChunkKey {
            generation,
            secret: SecretKey::random(),
        }
    }
}

/// A chunk a chunked write gives a new key: the chunk, its new key, its row sealed under it.
struct NewChunk {
    chunk: u16,
    key: ChunkKey,
    row: Vec<u8>,
}

/// How a ring is written: whole (the vault file of a directory), or in chunks (a shared store),
/// `changed` naming the chunks whose shard keys changed since the stored version (`None`: all).
pub(crate) enum RingLayout {
    Whole,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Chunked {
        changed: Option<BTreeSet<u16>>,
    },
}

/// A sealed ring: the vault file's contents, and the rows to write in the same transaction (a
/// shared store's changed chunks, and its epoch-key rows when the store holds them).
pub(crate) struct SealedRing {
    pub(crate) header: VaultFileBody,
    /// `(key, Some(value))` to put, `(key, None)` to delete.
    pub(crate) rows: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// The chunk rows of a shared store's ring, by chunk, as read with the vault file row.
#[derive(Default)]
pub(crate) struct StoredChunks(HashMap<u16, Vec<u8>>);

/// The unsealed key ring.
pub(crate) struct Ring {
    master: SecretKey,
    shards: Vec<Shard>,
    /// The chunk keys of a shared store's ring (unused for a directory's).
    chunks: Vec<ChunkKey>,
    /// Whether the store holds every chunk under the keys in `chunks` (false for a new ring, a
    /// copy, or one read whole): if not, the next chunked write writes them all.
    chunks_stored: bool,
    root: RootKeys,
    epochs: EpochKeys,
    header: VaultFileBody,
}

fn ring_ad(vault_id: &[u8; 16], generation: u64) -> Vec<u8> {
    let mut ad = b"pdvault/ring/".to_vec();
    ad.extend_from_slice(vault_id);
    ad.extend_from_slice(&generation.to_be_bytes());
    ad
}

/// The associated data of the ring key sealed by the key source: the vault file it belongs to.
fn ring_key_ad(vault_id: &[u8; 16], generation: u64, epoch: &EpochId) -> Vec<u8> {
    let mut ad = b"pdvault/ring-key/".to_vec();
    ad.extend_from_slice(vault_id);
    ad.extend_from_slice(&generation.to_be_bytes());
    ad.extend_from_slice(&epoch.to_bytes());
    ad
}

fn chunk_ad(vault_id: &[u8; 16], chunk: u16, generation: u64) -> Vec<u8> {
    let mut ad = b"pdvault/ring-chunk/".to_vec();
    ad.extend_from_slice(vault_id);
    ad.extend_from_slice(&chunk.to_be_bytes());
    ad.extend_from_slice(&generation.to_be_bytes());
    ad
}

fn wrap_ad(vault_id: &[u8; 16], addr: &[u8], shard_gen: u64) -> Vec<u8> {
    let mut ad = b"pdvault/key/".to_vec();
    ad.extend_from_slice(vault_id);
    ad.extend_from_slice(&shard_gen.to_be_bytes());
    ad.extend_from_slice(addr);
    ad
}

impl Ring {
    /// A new ring for a new vault.
    pub(crate) fn create(
        root: RootKeys,
        vault_id: [u8; 16],
        kdf: KdfSpec,
        epochs: EpochKeys,
    ) -> Self {
        let header = VaultFileBody {
            vault_id,
            kdf,
            key_check: root.key_check,
            generation: 0,
            checkpoint: Default::default(),
            source_kind: epochs.source().info().kind,
            key_namespace: vault_id,
            epoch: [0; 16],
            sealed_ring_key: Vec::new(),
            sealed_ring: Vec::new(),
        };
        let shards = (0..SHARDS)
            .map(|_| Shard::new(0, SecretKey::random()))
            .collect();
        Ring {
            master: SecretKey::random(),
            shards,
            chunks: fresh_chunks(),
            chunks_stored: false,
            root,
            epochs,
            header,
        }
    }

    /// Unseals the ring of an existing vault: its ring key from the key source, under the epoch
    /// the vault file names; then the ring. The caller has checked the key-check value. An epoch
    /// key that is gone is [`OpenError::EpochDestroyed`]; a source that cannot answer is
    /// [`crate::Error::KeySource`]: neither reads as anything erased. `chunks`: a shared
    /// store's chunk rows (a ring of chunk keys opens only with them; one read whole, as a
    /// directory's and the first shared stores' were, needs none).
    pub(crate) fn unseal(
        root: RootKeys,
        header: VaultFileBody,
        epochs: EpochKeys,
        chunks: Option<&StoredChunks>,
    ) -> Result<Self> {
        let epoch = EpochId::from_bytes(header.epoch);
        let ring_key = epochs
            .source()
            .unseal(
                &epoch,
                &ring_key_ad(&header.vault_id, header.generation, &epoch),
                &header.sealed_ring_key,
            )
            .map_err(key_source_error)?;
        let ring_key: [u8; 32] = ring_key
            .as_slice()
            .try_into()
            .map_err(|_| OpenError::HeaderDamaged("the ring key has the wrong length"))?;
        let plain = crypto::open(
            &DataKey::new(&SecretKey::from_bytes(ring_key)),
            &ring_ad(&header.vault_id, header.generation),
            &header.sealed_ring,
        )
        .map_err(|_| OpenError::HeaderDamaged("the key ring fails its integrity check"))?;
        let plain = zeroize::Zeroizing::new(plain);
        let ring = vault_file::decode_ring(&plain)
            .map_err(|_| OpenError::HeaderDamaged("the key ring does not decode"))?;
        let (shards, chunks, chunks_stored) = match (ring.shards.len(), chunks) {
            (n, _) if n == SHARDS as usize => (
                ring.shards
                    .iter()
                    .map(|(g, k)| Shard::new(*g, SecretKey::from_bytes(*k)))
                    .collect(),
                fresh_chunks(),
                false,
            ),
            (CHUNKS, Some(stored)) => {
                let chunks: Vec<ChunkKey> = ring
                    .shards
                    .iter()
                    .map(|(g, k)| ChunkKey {
                        generation: *g,
                        secret: SecretKey::from_bytes(*k),
                    })
                    .collect();
                let mut shards = Vec::with_capacity(SHARDS as usize);
                for (c, key) in chunks.iter().enumerate() {
                    shards.extend(open_chunk(&header.vault_id, c as u16, key, stored)?);
                }
                (shards, chunks, true)
            }
            _ => {
                return Err(OpenError::HeaderDamaged(
                    "the key ring has the wrong number of shards",
                )
                .into());
            }
        };
        Ok(Ring {
            master: SecretKey::from_bytes(ring.master),
            shards,
            chunks,
            chunks_stored,
            root,
            epochs,
            header,
        })
    }

    /// The vault's epoch keys.
    pub(crate) fn epochs(&self) -> &EpochKeys {
        &self.epochs
    }

    /// Makes `root` (derived with `kdf`) the ring's root key, the built-in sources' epoch keys
    /// sealed under it from now on; returns the previous ones.
    fn install_root(&mut self, root: RootKeys, kdf: KdfSpec) -> (RootKeys, KdfSpec) {
        self.epochs.set_slot_key(&root.slot_key);
        (
            std::mem::replace(&mut self.root, root),
            std::mem::replace(&mut self.header.kdf, kdf),
        )
    }

    /// A copy of this ring (the same vault, the same keys), for a copy of the vault in another
    /// store; [`Ring::retarget`] it before writing it.
    pub(crate) fn duplicate(&self) -> Ring {
        let copy = |k: &SecretKey| SecretKey::from_bytes(*k.expose());
        Ring {
            master: copy(&self.master),
            shards: self
                .shards
                .iter()
                .map(|s| Shard::new(s.generation, copy(&s.secret)))
                .collect(),
            chunks: fresh_chunks(),
            chunks_stored: false,
            root: self.root.clone(),
            epochs: self.epochs.clone(),
            header: self.header.clone(),
        }
    }

    /// What the root key gives (for a copy's new key-slot file).
    pub(crate) fn root_keys(&self) -> &RootKeys {
        &self.root
    }

    /// Files the vault's epoch keys in another source, under another name, from the next write
    /// of the vault file on (a restored copy of a backup).
    pub(crate) fn retarget(&mut self, epochs: EpochKeys, namespace: [u8; 16]) {
        self.header.source_kind = epochs.source().info().kind;
        self.header.key_namespace = namespace;
        self.epochs = epochs;
    }

    /// The epoch the vault file is sealed under.
    pub(crate) fn epoch(&self) -> EpochId {
        EpochId::from_bytes(self.header.epoch)
    }

    /// Destroys every epoch key of the vault but the current one (backups' epochs aside): what a
    /// crash between making an epoch and destroying the previous one left behind.
    pub(crate) fn retire_old_epochs(&self) -> Result<usize> {
        let current = self.epoch();
        let source = self.epochs.source();
        let mut n = 0;
        for e in source.epochs().map_err(key_source_error)? {
            if e != current && !self.is_backup_epoch(&e) {
                source.destroy_epoch(&e).map_err(key_source_error)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Whether an epoch of the vault's source belongs to a backup, and so is not the vault's to
    /// destroy: only in a host's source, which backups share (a backup of the built-in source has
    /// a slot file of its own, and the vault's own slot file holds nothing of backups).
    fn is_backup_epoch(&self, e: &EpochId) -> bool {
        matches!(self.epochs, EpochKeys::Host(_)) && e.seq & BACKUP_EPOCH != 0
    }

    /// How many epoch keys of the vault itself its source holds (one, once open).
    pub(crate) fn live_epochs(&self) -> Result<usize> {
        Ok(self
            .epochs
            .source()
            .epochs()
            .map_err(key_source_error)?
            .into_iter()
            .filter(|e| !self.is_backup_epoch(e) || *e == self.epoch())
            .count())
    }

    pub(crate) fn vault_id(&self) -> &[u8; 16] {
        &self.header.vault_id
    }

    pub(crate) fn subkey(&self, job: Job) -> SecretKey {
        derive_subkey(
            &self.master,
            match job {
                Job::Index => CTX_INDEX,
                Job::Audit => CTX_AUDIT,
                Job::Manifest => CTX_MANIFEST,
                Job::Ledger => CTX_LEDGER,
            },
        )
    }

    fn wrap(&self, addr: &[u8], key: &SecretKey) -> WrappedKey {
        self.shards[layout_shard(addr) as usize].wrap(self.vault_id(), addr, key)
    }

    /// Where the index entry and identity key of a blind index are, under the current key of
    /// its shard.
    pub(crate) fn index_addr(&self, blind: &BlindIndex) -> IndexAddr {
        let shard = layout::shard_of(&blind.0);
        self.shards[shard as usize].index_addr(shard, blind)
    }

    pub(crate) fn unwrap(&self, addr: &[u8], w: &WrappedKey) -> Result<SecretKey, IntegrityError> {
        let shard = &self.shards[layout_shard(addr) as usize];
        if shard.generation != w.shard_gen {
            return Err(IntegrityError);
        }
        let plain = zeroize::Zeroizing::new(crypto::open(
            &shard.key,
            &wrap_ad(self.vault_id(), addr, w.shard_gen),
            &w.sealed,
        )?);
        let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| IntegrityError)?;
        Ok(SecretKey::from_bytes(bytes))
    }

    /// The vault file's contents with this ring sealed under a fresh ring key, itself sealed by
    /// `source` under `epoch` (which exists there, or is staged), laid out as `layout` says;
    /// with the chunked layout, the new keys of the changed chunks and their rows. Its checkpoint
    /// is the caller's to set: it is not sealed (the ring's associated data binds the vault and
    /// the generation).
    fn sealed_header(
        &self,
        source: &dyn KeySource,
        epoch: EpochId,
        layout: &RingLayout,
    ) -> Result<(VaultFileBody, Vec<NewChunk>)> {
        self.sealed_ring(layout).seal_key(source, epoch)
    }

    /// [`Ring::sealed_ring`], with `beside` run on a thread of its own meanwhile (here, after
    /// it, when the system refuses a thread); returns what both give.
    fn sealed_ring_while<T: Send>(
        &self,
        beside: impl FnOnce() -> std::result::Result<T, KeySourceError> + Send,
        layout: &RingLayout,
    ) -> (std::result::Result<T, KeySourceError>, UnkeyedHeader) {
        // Taken by whichever runs it: the thread, or this one if the thread never started.
        let beside = std::sync::Mutex::new(Some(beside));
        let run = || {
            let f = beside.lock().unwrap_or_else(|p| p.into_inner()).take();
            f.map(|f| f())
        };
        std::thread::scope(|scope| {
            let thread = std::thread::Builder::new()
                .name("pdvault-epoch".into())
                .spawn_scoped(scope, run)
                .ok();
            let unkeyed = self.sealed_ring(layout);
            let done = match thread.map(|t| t.join()) {
                Some(Err(_)) => Some(Err(KeySourceError::Failed(
                    "making the new epoch key panicked".into(),
                ))),
                Some(Ok(done)) => done,
                None => None,
            };
            let done = done.or_else(run).unwrap_or_else(|| {
                Err(KeySourceError::Failed(
                    "making the new epoch key did not run".into(),
                ))
            });
            (done, unkeyed)
        })
    }

    /// This ring sealed under a fresh ring key, the next generation's vault file but for the
    /// ring key's seal under an epoch key: the work of [`Ring::sealed_header`] that no epoch key
    /// takes part in (most of it: the ring is most of the file), so that it can be done while
    /// the new epoch key is being made.
    fn sealed_ring(&self, layout: &RingLayout) -> UnkeyedHeader {
        let key_of = |s: &Shard| (s.generation, *s.secret.expose());
        let mut new_chunks = Vec::new();
        let plain = match layout {
            RingLayout::Whole => RingPlain {
                master: *self.master.expose(),
                shards: self.shards.iter().map(key_of).collect(),
            },
            RingLayout::Chunked { changed } => {
                let mut keys = Vec::with_capacity(CHUNKS);
                for (c, key) in self.chunks.iter().enumerate() {
                    let c = c as u16;
                    let rewrite = !self.chunks_stored
                        || changed.as_ref().is_none_or(|changed| changed.contains(&c));
                    if !rewrite {
                        keys.push((key.generation, *key.secret.expose()));
                        continue;
                    }
                    let next = ChunkKey::fresh(key.generation + 1);
                    let shards: Vec<(u64, [u8; 32])> = self.shards
                        [c as usize * CHUNK_SHARDS..(c as usize + 1) * CHUNK_SHARDS]
                        .iter()
                        .map(key_of)
                        .collect();
                    let row = crypto::seal(
                        &DataKey::new(&next.secret),
                        &chunk_ad(self.vault_id(), c, next.generation),
                        &crate::storage::codec::encode_keys(None, &shards),
                    );
                    keys.push((next.generation, *next.secret.expose()));
                    new_chunks.push(NewChunk {
                        chunk: c,
                        key: next,
                        row,
                    });
                }
                RingPlain {
                    master: *self.master.expose(),
                    shards: keys,
                }
            }
        };
        let encoded = vault_file::encode_ring(&plain);
        let mut header = self.header.without_ring();
        header.generation += 1;
        header.key_check = self.root.key_check;
        let ring_key = SecretKey::random();
        header.sealed_ring = crypto::seal(
            &DataKey::new(&ring_key),
            &ring_ad(&header.vault_id, header.generation),
            &encoded,
        );
        UnkeyedHeader {
            header,
            ring_key,
            chunks: new_chunks,
        }
    }

    /// Writes a backup's vault file into `dest`: this ring, sealed under an epoch key of the
    /// backup's own — in a new slot file in `dest` for the built-in source, or a backup epoch in
    /// the host's source (which the vault's own cleanup leaves alone, and the sweep destroys when
    /// the backup expires) — so that the live vault's ratchets do not make the backup unreadable.
    pub(crate) fn write_backup_file(
        &self,
        dest: &std::path::Path,
        checkpoint: crate::storage::entries::Manifest,
    ) -> Result<EpochId> {
        let vault_id = *self.vault_id();
        let epoch = EpochId {
            seq: BACKUP_EPOCH | self.epoch().seq,
            nonce: crypto::random_array(),
        };
        let mut header = match &self.epochs {
            EpochKeys::Slot(_) => {
                let slot = SlotSource::create(dest, vault_id, &self.root.slot_key)?;
                slot.create_epoch(epoch).map_err(key_source_error)?;
                self.sealed_header(&slot, epoch, &RingLayout::Whole)?.0
            }
            EpochKeys::Host(host) => {
                host.create_epoch(epoch).map_err(key_source_error)?;
                self.sealed_header(host.as_ref(), epoch, &RingLayout::Whole)?
                    .0
            }
            #[cfg(feature = "postgres")]
            EpochKeys::Table(_) => {
                return Err(OpenError::NotSupported(
                    "a backup of a vault on PostgreSQL (back the database up, or `pdvault migrate` it into a directory)",
                )
                .into());
            }
        };
        header.checkpoint = checkpoint;
        vault_file::write(dest, &header)?;
        Ok(epoch)
    }

    /// Writes the vault file with this ring, sealed afresh under a new epoch key; then destroys
    /// every older epoch key of the vault.
    pub(crate) fn write_file(
        &mut self,
        dir: &std::path::Path,
        checkpoint: crate::storage::entries::Manifest,
    ) -> Result<()> {
        self.reseal(
            || Ok(checkpoint),
            RingLayout::Whole,
            |sealed| Ok(vault_file::write(dir, &sealed.header)?),
        )
    }

    /// [`Ring::write_file`] at the checkpoint of everything `store` has committed, once that is
    /// durable. The store's flush runs on a thread of its own beside the new epoch key's
    /// creation and the ring's sealing, which do not depend on it (an erasure waits on the
    /// longer of the two, not on both); the file is written only after the flush returned.
    pub(crate) fn write_file_once_durable(
        &mut self,
        dir: &std::path::Path,
        store: &Store,
    ) -> Result<()> {
        std::thread::scope(|scope| {
            // Without a thread (the system refused one), the flush runs here, when it is needed.
            let flush = std::thread::Builder::new()
                .name("pdvault-flush".into())
                .spawn_scoped(scope, || store.sync_all())
                .ok();
            // The vault file is opened, and its current copy checked, while the flush may still
            // be under way: neither depends on it.
            let generation = self.header.generation + 1;
            let in_place = std::cell::Cell::new(None);
            let durable = || {
                in_place.set(vault_file::InPlace::open(dir, generation)?);
                match flush.map(|f| f.join()) {
                    None => Ok(store.sync_all()?),
                    Some(Ok(flushed)) => Ok(flushed?),
                    Some(Err(_)) => Err(StorageError::engine("the store's flush panicked").into()),
                }
            };
            self.reseal(durable, RingLayout::Whole, |sealed| {
                Ok(vault_file::write_to(in_place.take(), dir, &sealed.header)?)
            })
        })
    }

    /// Seals this ring afresh under a new epoch key and has `write` store it (the vault file, or
    /// a shared store's rows) with the checkpoint `checkpoint` gives, which it asks for only once
    /// the ring is sealed; then destroys every older epoch key of the vault. When the
    /// store holds the epoch keys too, the new key's row and the old keys' removal are among the
    /// rows `write` stores: one transaction instead of three.
    pub(crate) fn reseal(
        &mut self,
        checkpoint: impl FnOnce() -> Result<crate::storage::entries::Manifest>,
        layout: RingLayout,
        write: impl FnOnce(&SealedRing) -> Result<()>,
    ) -> Result<()> {
        let old = self.epoch();
        let epoch = EpochId {
            seq: (old.seq & !BACKUP_EPOCH) + 1,
            nonce: crypto::random_array(),
        };
        let in_store = self.epochs.in_the_store();
        let mut rows = Vec::new();
        let unkeyed = match in_store {
            Some(table) => {
                let (key, value) = table.stage_epoch(epoch);
                rows.push((key, Some(value)));
                self.sealed_ring(&layout)
            }
            // A new epoch key, durable in its source before anything is sealed under it. The
            // ring is sealed under its fresh ring key meanwhile (a source on the disk syncs the
            // new key): only the ring key is sealed under the epoch key, once it exists.
            None => {
                let (created, unkeyed) =
                    self.sealed_ring_while(|| self.epochs.source().create_epoch(epoch), &layout);
                created.map_err(key_source_error)?;
                unkeyed
            }
        };
        crate::pause::point(crate::pause::EPOCH_CREATED);
        let staged: Result<_> = (|| {
            let (mut header, chunks) = unkeyed.seal_key(self.epochs.source(), epoch)?;
            // The ring is sealed before the store says what is durable.
            header.checkpoint = checkpoint()?;
            if let Some(table) = in_store {
                for e in table.epochs().map_err(key_source_error)? {
                    rows.push((layout::epoch_key(&e.to_bytes()), None));
                }
            }
            for new in &chunks {
                rows.push((layout::ring_chunk(new.chunk), Some(new.row.clone())));
            }
            let sealed = SealedRing { header, rows };
            write(&sealed)?;
            Ok((sealed.header, chunks))
        })();
        if let Some(table) = in_store {
            table.end_staging();
        }
        let (header, chunks) = staged?;
        self.header = header;
        if let RingLayout::Chunked { .. } = layout {
            for new in chunks {
                self.chunks[new.chunk as usize] = new.key;
            }
            self.chunks_stored = true;
        }
        crate::pause::point(crate::pause::EPOCH_SWITCHED);
        if in_store.is_some() {
            return Ok(());
        }
        // Every copy of the vault file written before now is sealed under an older epoch: destroy
        // them all (the one before this, and any a crash left behind).
        let source = self.epochs.source();
        source.destroy_epoch(&old).map_err(key_source_error)?;
        for e in source.epochs().map_err(key_source_error)? {
            if e != epoch && !self.is_backup_epoch(&e) {
                source.destroy_epoch(&e).map_err(key_source_error)?;
            }
        }
        Ok(())
    }

    /// The ring a newer vault file of the same vault holds (another process ratcheted it).
    pub(crate) fn reloaded(&self, header: VaultFileBody, chunks: &StoredChunks) -> Result<Ring> {
        if header.vault_id != self.header.vault_id {
            return Err(OpenError::HeaderDamaged("the stored key ring is another vault's").into());
        }
        if header.key_check != self.root.key_check {
            // Going on with the old root would seal the next ring under it.
            return Err(OpenError::RootRotated.into());
        }
        Ring::unseal(self.root.clone(), header, self.epochs.clone(), Some(chunks))
    }

    /// The generation of the vault file this ring was read from or written as.
    pub(crate) fn file_generation(&self) -> u64 {
        self.header.generation
    }

    pub(crate) fn checkpoint(&self) -> crate::storage::entries::Manifest {
        self.header.checkpoint
    }
}

/// A vault file's next version with its ring sealed under `ring_key`, which is not yet sealed
/// under an epoch key ([`Ring::sealed_ring`]).
struct UnkeyedHeader {
    header: VaultFileBody,
    ring_key: SecretKey,
    chunks: Vec<NewChunk>,
}

impl UnkeyedHeader {
    /// The vault file's contents: the ring key sealed by `source` under `epoch`, which exists
    /// there (or is staged).
    fn seal_key(
        self,
        source: &dyn KeySource,
        epoch: EpochId,
    ) -> Result<(VaultFileBody, Vec<NewChunk>)> {
        let mut header = self.header;
        header.source_kind = source.info().kind;
        header.epoch = epoch.to_bytes();
        header.sealed_ring_key = source
            .seal(
                &epoch,
                &ring_key_ad(&header.vault_id, header.generation, &epoch),
                self.ring_key.expose(),
            )
            .map_err(key_source_error)?;
        Ok((header, self.chunks))
    }
}

/// The jobs of the master secret's subkeys.
pub(crate) enum Job {
    Index,
    Audit,
    Manifest,
    /// Authenticates exported erasure ledgers (the master secret survives root rotation, so a
    /// backup of the same vault checks a ledger exported later).
    Ledger,
}

/// The shard of a key address (the bytes after the table tag start with the shard).
fn layout_shard(addr: &[u8]) -> u16 {
    u16::from_be_bytes([addr[1], addr[2]])
}

/// Unwrapped data keys by (subject, category): the current generation and its key.
type DataKeyCache = LruCache<GroupKey, (u32, Arc<DataKey>)>;

/// A (subject, category) key group, as [`DataKeyCache`] and [`Purge`] hold it. Looked up by
/// its borrowed parts ([`GroupParts`]), so that finding a read's key allocates nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GroupKey {
    subject: SubjectRef,
    category: Box<str>,
}

impl GroupKey {
    pub(crate) fn new(subject: SubjectRef, category: &str) -> Self {
        GroupKey {
            subject,
            category: category.into(),
        }
    }
}

/// A key group's parts, borrowed: what a [`GroupKey`] is found by. Hashed ([`hash_group`]) and
/// compared as a `GroupKey` is.
trait GroupParts {
    fn parts(&self) -> (&SubjectRef, &str);
}

impl GroupParts for GroupKey {
    fn parts(&self) -> (&SubjectRef, &str) {
        (&self.subject, &self.category)
    }
}

impl GroupParts for (SubjectRef, &str) {
    fn parts(&self) -> (&SubjectRef, &str) {
        (&self.0, self.1)
    }
}

impl<'a> std::borrow::Borrow<dyn GroupParts + 'a> for GroupKey {
    fn borrow(&self) -> &(dyn GroupParts + 'a) {
        self
    }
}

/// A group is hashed by its subject only: a subject reference is random (the vault draws it),
/// and the few groups of one subject are told apart by comparing their categories.
fn hash_group<H: std::hash::Hasher>(g: &(impl GroupParts + ?Sized), h: &mut H) {
    h.write_u128(u128::from_le_bytes(*g.parts().0.as_bytes()));
}

impl std::hash::Hash for GroupKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        hash_group(self, h)
    }
}

impl std::hash::Hash for dyn GroupParts + '_ {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        hash_group(self, h)
    }
}

impl PartialEq for dyn GroupParts + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn GroupParts + '_ {}

/// Keys in use: the ring, the caches, and the locks that keep key changes consistent.
pub(crate) struct Keys {
    home: RingHome,
    /// The store's generation (shared stores) that the ring and caches are current with.
    seen: std::sync::atomic::AtomicU64,
    ring: RwLock<Ring>,
    index_key: SecretKey,
    data: Mutex<DataKeyCache>,
    identities: Mutex<LruCache<BlindIndex, SubjectRef>>,
    /// Serializes the creation of subjects and keys.
    create: Mutex<()>,
    /// Shards whose ratchet journal rows a finished ratchet left in the store: removed by the
    /// next ratchet's batch, not by a commit of their own (a recovery at open skips and removes
    /// them, as it does those of a ratchet that crashed after its vault file was written).
    stale_journals: Mutex<BTreeSet<u16>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A subject as the key layer knows it.
pub(crate) struct Identity {
    pub(crate) subject: SubjectRef,
}

fn cache_capacity() -> NonZeroUsize {
    NonZeroUsize::new(CACHE_CAPACITY).unwrap_or(NonZeroUsize::MIN)
}

impl Keys {
    pub(crate) fn new(home: RingHome, ring: Ring, generation: u64) -> Self {
        let index_key = ring.subkey(Job::Index);
        Keys {
            home,
            seen: std::sync::atomic::AtomicU64::new(generation),
            ring: RwLock::new(ring),
            index_key,
            data: Mutex::new(LruCache::new(cache_capacity())),
            identities: Mutex::new(LruCache::new(cache_capacity())),
            create: Mutex::new(()),
            stale_journals: Mutex::new(BTreeSet::new()),
        }
    }

    pub(crate) fn ring(&self) -> RwLockReadGuard<'_, Ring> {
        self.ring.read().unwrap_or_else(|p| p.into_inner())
    }

    fn ring_mut(&self) -> std::sync::RwLockWriteGuard<'_, Ring> {
        self.ring.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The blind index of an identifier.
    pub(crate) fn blind(&self, id: &SubjectId) -> BlindIndex {
        BlindIndex(keyed_hash(&self.index_key, &[id.as_bytes()]))
    }

    /// Finds a subject by identifier.
    ///
    /// A subject found in the store enters the identity cache while the ring is still read-locked:
    /// a ratchet (which purges the cache under the ring's write lock) is then either entirely
    /// before the load, which finds nothing, or entirely after the insertion, which it purges. A
    /// destroyed identity never comes back into the cache.
    pub(crate) fn find_subject(&self, store: &Store, id: &SubjectId) -> Result<Option<Identity>> {
        let blind = self.blind(id);
        if let Some(r) = lock(&self.identities).get(&blind) {
            return Ok(Some(Identity { subject: *r }));
        }
        let ring = self.ring();
        let at = ring.index_addr(&blind);
        let Some(entry) =
            store.get::<crate::storage::entries::IndexEntry>(&layout::index(&at), "index entry")?
        else {
            return Ok(None);
        };
        let addr = layout::identity_key(&at);
        let wrapped: WrappedKey = store.get(&addr, "identity key")?.ok_or(IntegrityError)?;
        let key = DataKey::new(&ring.unwrap(&addr, &wrapped)?);
        let plain = crypto::open(&key, &index_ad(ring.vault_id(), &blind), &entry.sealed_ref)?;
        let subject = SubjectRef::from_slice(&plain).ok_or(IntegrityError)?;
        crate::pause::point(crate::pause::KEY_LOADED);
        lock(&self.identities).put(blind, subject);
        drop(ring);
        Ok(Some(Identity { subject }))
    }

    /// Finds a subject, or creates it: its identity key, its subject key (group
    /// [`SUBJECT_GROUP`], which seals what must be destroyed with the subject), its index entry,
    /// and whatever `init` adds given the new reference and subject key.
    pub(crate) fn find_or_create_subject(
        &self,
        store: &Store,
        id: &SubjectId,
        init: impl FnOnce(&SubjectRef, &BlindIndex, &DataKey) -> Txn,
    ) -> Result<(Identity, bool)> {
        if let Some(found) = self.find_subject(store, id)? {
            return Ok((found, false));
        }
        let _guard = lock(&self.create);
        let blind = self.blind(id);
        // Among every process of a shared store too: two creations of one identifier would file
        // the second subject over the first one's index entry.
        let _shared = store
            .coordination()
            .map(|c| {
                c.lock(
                    crate::storage::engine::SharedLock::Create(blind.0[0] % 64),
                    crate::storage::engine::LockMode::Exclusive,
                )
            })
            .transpose()?;
        if let Some(found) = self.find_subject(store, id)? {
            return Ok((found, false));
        }
        let subject = SubjectRef::random();
        let identity_secret = SecretKey::random();
        let subject_secret = SecretKey::random();
        let subject_key = Arc::new(DataKey::new(&subject_secret));
        let mut txn = init(&subject, &blind, &subject_key);
        {
            let ring = self.ring();
            let at = ring.index_addr(&blind);
            let addr = layout::identity_key(&at);
            txn.put(addr.clone(), &ring.wrap(&addr, &identity_secret));
            let saddr = layout::data_key(&subject, SUBJECT_GROUP, 0);
            txn.put(saddr.clone(), &ring.wrap(&saddr, &subject_secret));
            let sealed_ref = crypto::seal(
                &DataKey::new(&identity_secret),
                &index_ad(ring.vault_id(), &blind),
                subject.as_bytes(),
            );
            let index = layout::index(&at);
            let wrapped_blind = ring.wrap(&index, &SecretKey::from_bytes(blind.0));
            txn.put(
                index,
                &crate::storage::entries::IndexEntry {
                    sealed_ref,
                    wrapped_blind,
                },
            );
            store.commit(txn)?;
        }
        lock(&self.identities).put(blind, subject);
        lock(&self.data).put(GroupKey::new(subject, SUBJECT_GROUP), (0, subject_key));
        Ok((Identity { subject }, true))
    }

    /// The associated data of a subject's sealed blind index.
    pub(crate) fn blind_ad(&self, subject: &SubjectRef) -> Vec<u8> {
        let mut ad = b"pdvault/blind/".to_vec();
        ad.extend_from_slice(self.ring().vault_id());
        ad.extend_from_slice(subject.as_bytes());
        ad
    }

    /// The current data key of a (subject, category) group, if it exists. A key loaded from the
    /// store enters the cache under the ring's read lock, as in [`Keys::find_subject`].
    pub(crate) fn data_key(
        &self,
        store: &Store,
        subject: &SubjectRef,
        category: &str,
    ) -> Result<Option<(u32, Arc<DataKey>)>> {
        if let Some(v) = lock(&self.data).get(&(*subject, category) as &dyn GroupParts) {
            return Ok(Some(v.clone()));
        }
        let ring = self.ring();
        let mut found = None;
        for r in
            store.scan::<WrappedKey>(&layout::data_keys_of_group(subject, category), "data key")
        {
            let (addr, w) = r?;
            let Some((_, _, generation)) = layout::parse_data_key(&addr) else {
                return Err(StorageError::Malformed("data key address").into());
            };
            found = Some((generation, addr, w));
        }
        let Some((generation, addr, w)) = found else {
            return Ok(None);
        };
        let key = Arc::new(DataKey::new(&ring.unwrap(&addr, &w)?));
        crate::pause::point(crate::pause::KEY_LOADED);
        lock(&self.data).put(GroupKey::new(*subject, category), (generation, key.clone()));
        drop(ring);
        Ok(Some((generation, key)))
    }

    /// The data key of one generation (for records not yet moved to the current one).
    pub(crate) fn data_key_gen(
        &self,
        store: &Store,
        subject: &SubjectRef,
        category: &str,
        generation: u32,
    ) -> Result<Option<Arc<DataKey>>> {
        if let Some((g, k)) = self.data_key(store, subject, category)?
            && g == generation
        {
            return Ok(Some(k));
        }
        let addr = layout::data_key(subject, category, generation);
        let Some(w) = store.get::<WrappedKey>(&addr, "data key")? else {
            return Ok(None);
        };
        Ok(Some(Arc::new(DataKey::new(
            &self.ring().unwrap(&addr, &w)?,
        ))))
    }

    /// Adds generation `gen` of a group's data key, committed with `txn`.
    pub(crate) fn add_data_key(
        &self,
        store: &Store,
        subject: &SubjectRef,
        category: &str,
        generation: u32,
        mut txn: Txn,
    ) -> Result<Arc<DataKey>> {
        let secret = SecretKey::random();
        {
            let ring = self.ring();
            let addr = layout::data_key(subject, category, generation);
            txn.put(addr.clone(), &ring.wrap(&addr, &secret));
            store.commit(txn)?;
        }
        let key = Arc::new(DataKey::new(&secret));
        lock(&self.data).put(GroupKey::new(*subject, category), (generation, key.clone()));
        Ok(key)
    }

    /// A fresh key not yet stored (for re-keying a group: stored by [`Keys::ratchet`]).
    pub(crate) fn fresh_key(
        &self,
        subject: &SubjectRef,
        category: &str,
        generation: u32,
    ) -> (Vec<u8>, SecretKey) {
        (
            layout::data_key(subject, category, generation),
            SecretKey::random(),
        )
    }

    /// Destroys keys: deletes `destroy` (key addresses), stores `create` (new keys), replaces the
    /// key of every shard touched, rewraps the rest of those shards, commits `txn` in the same
    /// batch, syncs, and replaces the vault file. When it returns, no current file holds a way to
    /// the destroyed keys. `purge` lists the cached groups and identities to forget.
    /// `commit` applies the batch (the caller chains its audit entries onto it).
    pub(crate) fn ratchet(
        &self,
        store: &Store,
        destroy: &[Vec<u8>],
        create: Vec<(Vec<u8>, SecretKey)>,
        txn: Txn,
        purge: &Purge,
        commit: impl FnOnce(Txn) -> Result<u64>,
    ) -> Result<()> {
        let mut ring = self.ring_mut();
        let shards: BTreeSet<u16> = destroy
            .iter()
            .chain(create.iter().map(|(a, _)| a))
            .map(|a| layout_shard(a))
            .collect();
        let result = self.rewrap_shards(
            store, &mut ring, &shards, destroy, create, txn, None, commit,
        );
        // Purge even on failure: a half-done ratchet is finished at the next open, and a key that
        // may be destroyed must not outlive it in memory.
        self.purge(purge);
        result
    }

    /// Re-keys every shard under a new root key: the old root secret opens nothing afterwards.
    pub(crate) fn rotate_root(
        &self,
        store: &Store,
        root: RootKeys,
        kdf: KdfSpec,
        commit: impl FnOnce(Txn) -> Result<u64>,
    ) -> Result<()> {
        let mut ring = self.ring_mut();
        let all: BTreeSet<u16> = (0..SHARDS).collect();
        self.rewrap_shards(
            store,
            &mut ring,
            &all,
            &[],
            Vec::new(),
            Txn::new(),
            Some((root, kdf)),
            commit,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn rewrap_shards(
        &self,
        store: &Store,
        ring: &mut Ring,
        shards: &BTreeSet<u16>,
        destroy: &[Vec<u8>],
        create: Vec<(Vec<u8>, SecretKey)>,
        mut txn: Txn,
        new_root: Option<(RootKeys, KdfSpec)>,
        commit: impl FnOnce(Txn) -> Result<u64>,
    ) -> Result<()> {
        let destroy: HashSet<&[u8]> = destroy.iter().map(|a| a.as_slice()).collect();
        let mut next: Vec<(u16, Shard)> = Vec::with_capacity(shards.len());
        let vault_id = *ring.vault_id();
        for &s in shards {
            let old = &ring.shards[s as usize];
            let new = Shard::new(old.generation + 1, SecretKey::random());
            // Index entries move to addresses keyed under the new shard key (their identity keys
            // with them): stale copies of the old addresses then match no identifier, even with
            // every current secret. Entries whose identity key is destroyed are not carried over.
            let mut moved: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
            for r in store.scan::<IndexEntry>(&layout::index_of_shard(s), "index entry") {
                let (key, entry) = r?;
                let at = layout::parse_index(&key).ok_or(StorageError::Malformed("index key"))?;
                let identity = layout::identity_key(&at);
                if destroy.contains(identity.as_slice()) {
                    continue;
                }
                let blind = BlindIndex(*ring.unwrap(&key, &entry.wrapped_blind)?.expose());
                let next = new.index_addr(s, &blind);
                let next_key = layout::index(&next);
                let wrapped_blind = new.wrap(&vault_id, &next_key, &SecretKey::from_bytes(blind.0));
                txn.delete(key);
                txn.put(
                    next_key,
                    &IndexEntry {
                        sealed_ref: entry.sealed_ref,
                        wrapped_blind,
                    },
                );
                moved.insert(identity, layout::identity_key(&next));
            }
            for r in store.scan::<WrappedKey>(&layout::keys_of_shard(s), "wrapped key") {
                let (addr, w) = r?;
                if destroy.contains(addr.as_slice()) {
                    txn.delete(addr);
                    continue;
                }
                let secret = ring.unwrap(&addr, &w)?;
                let addr = match moved.remove(&addr) {
                    Some(next) => {
                        txn.delete(addr);
                        next
                    }
                    None => addr,
                };
                let rewrapped = new.wrap(&vault_id, &addr, &secret);
                txn.put(addr, &rewrapped);
            }
            let journal = JournalEntry {
                next_gen: new.generation,
                sealed_next: crypto::seal(
                    &old.key,
                    &journal_ad(&vault_id, s, new.generation),
                    new.secret.expose(),
                ),
            };
            if matches!(self.home, RingHome::Dir(_)) {
                txn.put(layout::journal(s), &journal);
            }
            next.push((s, new));
        }
        for (addr, secret) in &create {
            let s = layout_shard(addr);
            let Some((_, shard)) = next.iter().find(|(n, _)| *n == s) else {
                return Err(StorageError::Malformed("new key outside the ratcheted shards").into());
            };
            txn.put(
                addr.clone(),
                &WrappedKey {
                    shard_gen: shard.generation,
                    sealed: crypto::seal(
                        &shard.key,
                        &wrap_ad(&vault_id, addr, shard.generation),
                        secret.expose(),
                    ),
                },
            );
        }
        let dir = match &self.home {
            RingHome::Store => {
                return self.commit_ratchet_in_store(store, ring, next, txn, new_root, commit);
            }
            RingHome::Dir(dir) => dir,
        };
        // The journal rows earlier ratchets left go with this batch (those of its own shards
        // are overwritten by it).
        let stale = std::mem::take(&mut *lock(&self.stale_journals));
        for s in stale.difference(shards) {
            txn.delete(layout::journal(*s));
        }
        commit(txn)?;
        // The ring changes in memory before the store is durable: the file that holds it is
        // written only once it is, and until then the journal rows finish the change at the
        // next open (a failed flush halts the store).
        for (s, shard) in next {
            ring.shards[s as usize] = shard;
        }
        if let Some((root, kdf)) = new_root {
            // New epoch keys are sealed under the new root's slot key from now on; the old epoch,
            // sealed under the old one, is destroyed by the write below.
            ring.install_root(root, kdf);
        }
        ring.write_file_once_durable(dir, store)?;
        // Its journal rows are stale now: the next ratchet removes them.
        lock(&self.stale_journals).extend(shards);
        Ok(())
    }

    /// A ratchet of a shared store: the new ring, sealed under a new epoch key, is written in the
    /// same transaction as the rewrapped keys, with the store's generation advanced, so that no
    /// process sees one without the other and every process's next check finds the change. No
    /// journal is needed: there is no second write to finish.
    fn commit_ratchet_in_store(
        &self,
        store: &Store,
        ring: &mut Ring,
        next: Vec<(u16, Shard)>,
        mut txn: Txn,
        new_root: Option<(RootKeys, KdfSpec)>,
        commit: impl FnOnce(Txn) -> Result<u64>,
    ) -> Result<()> {
        let mut old_shards = Vec::with_capacity(next.len());
        let mut changed = BTreeSet::new();
        for (s, shard) in next {
            changed.insert(s / CHUNK_SHARDS as u16);
            old_shards.push((s, std::mem::replace(&mut ring.shards[s as usize], shard)));
        }
        let old_root = new_root.map(|(root, kdf)| ring.install_root(root, kdf));
        let mut generation = 0;
        let layout = RingLayout::Chunked {
            changed: Some(changed),
        };
        let written = ring.reseal(
            || Ok(Default::default()),
            layout,
            |sealed| {
                generation = stage_ring(store, &mut txn, sealed)?;
                commit(txn).map(|_| ())
            },
        );
        match written {
            Ok(()) => {
                self.seen
                    .store(generation, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            }
            Err(e) => {
                // This process goes on with the ring it had (the next check reloads the stored
                // one if the commit did land after all).
                for (s, shard) in old_shards {
                    ring.shards[s as usize] = shard;
                }
                if let Some((root, kdf)) = old_root {
                    ring.install_root(root, kdf);
                }
                Err(e)
            }
        }
    }

    /// Writes the ring of a new shared-store vault (or one rewritten outside a ratchet).
    pub(crate) fn write_ring_to_store(&self, store: &Store) -> Result<()> {
        let mut ring = self.ring_mut();
        let mut generation = 0;
        let layout = RingLayout::Chunked { changed: None };
        ring.reseal(
            || Ok(Default::default()),
            layout,
            |sealed| {
                let mut txn = Txn::new();
                generation = stage_ring(store, &mut txn, sealed)?;
                store.commit(txn)?;
                Ok(())
            },
        )?;
        self.seen
            .store(generation, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// On a shared store: adds the next generation to `txn` (for a change every process must
    /// see, other than a ratchet); the caller notes it once committed.
    pub(crate) fn advance_generation(&self, store: &Store, txn: &mut Txn) -> Result<Option<u64>> {
        if !store.is_shared() {
            return Ok(None);
        }
        let generation = stored_generation(store)? + 1;
        txn.put(layout::meta(layout::GENERATION), &generation);
        Ok(Some(generation))
    }

    /// Records a generation this process committed itself (its ring and caches are current).
    pub(crate) fn note_generation(&self, generation: u64) {
        self.seen
            .store(generation, std::sync::atomic::Ordering::SeqCst);
    }

    /// The store generation this process's ring and caches are current with.
    pub(crate) fn generation(&self) -> u64 {
        self.seen.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Brings the ring and caches up to date with a shared store whose generation was just read
    /// as `generation`: if another process advanced it (a destruction, a new policy), reloads the
    /// ring and forgets every cached key and identity. Returns whether the generation had moved.
    /// Nothing to do for a store one process owns.
    pub(crate) fn refresh_to(&self, store: &Store, generation: u64) -> Result<bool> {
        if !store.is_shared() {
            return Ok(false);
        }
        if generation == self.generation() {
            return Ok(false);
        }
        let mut attempt = 0;
        loop {
            let (header, chunks) = stored_ring(store)?;
            let mut ring = self.ring_mut();
            if header.generation == ring.file_generation() {
                break;
            }
            match ring.reloaded(header, &chunks) {
                Ok(new) => {
                    *ring = new;
                    break;
                }
                // Destroyed by a newer ratchet since the row was read: read it again.
                Err(crate::Error::Open(OpenError::EpochDestroyed(_))) if attempt < 8 => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
        {
            // Under the ring's write lock, as every fill of the caches holds its read lock.
            let _ring = self.ring_mut();
            lock(&self.data).clear();
            lock(&self.identities).clear();
            self.seen
                .store(generation, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(true)
    }

    /// Completes a ratchet a crash interrupted: the store holds keys rewrapped under the next
    /// shard key, sealed in the journal under the current one.
    pub(crate) fn recover(&self, store: &Store) -> Result<bool> {
        let mut ring = self.ring_mut();
        let vault_id = *ring.vault_id();
        let mut changed = false;
        let mut clear = Txn::new();
        for r in store.scan::<JournalEntry>(&layout::journal_prefix(), "ratchet journal") {
            let (k, j) = r?;
            clear.delete(k.clone());
            let s = u16::from_be_bytes([k[k.len() - 2], k[k.len() - 1]]);
            if s >= SHARDS {
                return Err(StorageError::Malformed("journal shard").into());
            }
            let cur = &ring.shards[s as usize];
            if cur.generation + 1 != j.next_gen {
                continue; // already applied
            }
            let plain = zeroize::Zeroizing::new(crypto::open(
                &cur.key,
                &journal_ad(&vault_id, s, j.next_gen),
                &j.sealed_next,
            )?);
            let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| IntegrityError)?;
            ring.shards[s as usize] = Shard::new(j.next_gen, SecretKey::from_bytes(bytes));
            changed = true;
        }
        if clear.is_empty() {
            return Ok(false);
        }
        if changed {
            let durable = store.sync_all()?;
            if let RingHome::Dir(dir) = &self.home {
                ring.write_file(dir, durable)?;
            }
        }
        store.commit(clear)?;
        Ok(changed)
    }

    /// Writes the vault file with a fresh checkpoint (at close).
    /// Nothing for a shared store, which has no checkpoint.
    pub(crate) fn checkpoint(&self, store: &Store) -> Result<()> {
        let RingHome::Dir(dir) = &self.home else {
            return Ok(());
        };
        self.ring_mut().write_file_once_durable(dir, store)
    }

    /// Forgets cached keys and identities.
    pub(crate) fn purge(&self, purge: &Purge) {
        if !purge.subjects.is_empty() || !purge.groups.is_empty() {
            let mut data = lock(&self.data);
            let victims: Vec<GroupKey> = data
                .iter()
                .map(|(k, _)| k)
                .filter(|k| purge.subjects.contains(&k.subject) || purge.groups.contains(*k))
                .cloned()
                .collect();
            for v in victims {
                data.pop(&v);
            }
        }
        let mut ids = lock(&self.identities);
        for b in &purge.identities {
            ids.pop(b);
        }
    }

    /// How many unwrapped data keys of a subject are cached (for tests of purging).
    #[cfg(test)]
    pub(crate) fn cached_keys_of(&self, subject: &SubjectRef) -> usize {
        lock(&self.data)
            .iter()
            .filter(|(k, _)| k.subject == *subject)
            .count()
    }

    /// The complement of a shard's current key (for tests that look for the key in memory
    /// without holding a copy of it themselves).
    #[cfg(test)]
    pub(crate) fn shard_key_complement(&self, shard: u16) -> [u8; 32] {
        let ring = self.ring();
        let key = ring.shards[shard as usize].secret.expose();
        std::array::from_fn(|i| !key[i])
    }

    /// Where a subject's index entry and identity key are now.
    pub(crate) fn index_addr(&self, blind: &BlindIndex) -> IndexAddr {
        self.ring().index_addr(blind)
    }
}

/// The generation of a shared store: advanced by every destruction and policy change.
pub(crate) fn stored_generation(store: &Store) -> Result<u64> {
    Ok(store
        .get::<u64>(&layout::meta(layout::GENERATION), "store generation")?
        .unwrap_or(0))
}

/// The vault file's contents and the ring's chunks as a shared store holds them, from rows of
/// one scan of `meta(VAULT_FILE)` (one statement: the row and its chunks as one snapshot had
/// them). `None`: no vault there.
pub(crate) fn read_stored_ring(
    rows: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StorageError>>,
) -> Result<Option<(VaultFileBody, StoredChunks)>> {
    let file_key = layout::meta(layout::VAULT_FILE);
    let chunk_prefix = &layout::ring_chunk(0)[..file_key.len() + b"/chunk/".len()];
    let mut header = None;
    let mut chunks = StoredChunks::default();
    for r in rows {
        let (key, value) = r?;
        if key == file_key {
            header = Some(vault_file::decode(&value)?);
        } else if key.len() == chunk_prefix.len() + 2 && key.starts_with(chunk_prefix) {
            let c = u16::from_be_bytes([key[key.len() - 2], key[key.len() - 1]]);
            chunks.0.insert(c, value);
        }
    }
    Ok(header.map(|h| (h, chunks)))
}

fn stored_ring(store: &Store) -> Result<(VaultFileBody, StoredChunks)> {
    read_stored_ring(store.scan_raw(&layout::meta(layout::VAULT_FILE)))?
        .ok_or_else(|| StorageError::Malformed("the shared store lost its vault file row").into())
}

/// Adds the sealed ring, the rows that go with it and the next generation to `txn`; returns
/// that generation.
pub(crate) fn stage_ring(store: &Store, txn: &mut Txn, sealed: &SealedRing) -> Result<u64> {
    let generation = stored_generation(store)? + 1;
    txn.put_raw(
        layout::meta(layout::VAULT_FILE),
        vault_file::encode(&sealed.header),
    );
    for (key, value) in &sealed.rows {
        match value {
            Some(v) => txn.put_raw(key.clone(), v.clone()),
            None => txn.delete(key.clone()),
        }
    }
    txn.put(layout::meta(layout::GENERATION), &generation);
    Ok(generation)
}

fn fresh_chunks() -> Vec<ChunkKey> {
    (0..CHUNKS).map(|_| ChunkKey::fresh(0)).collect()
}

/// The shard keys of chunk `c` of a shared store's ring, opened with its key.
fn open_chunk(
    vault_id: &[u8; 16],
    c: u16,
    key: &ChunkKey,
    stored: &StoredChunks,
) -> Result<Vec<Shard>> {
    let row = stored.0.get(&c).ok_or(OpenError::HeaderDamaged(
        "a chunk of the key ring is missing",
    ))?;
    let plain = zeroize::Zeroizing::new(
        crypto::open(
            &DataKey::new(&key.secret),
            &chunk_ad(vault_id, c, key.generation),
            row,
        )
        .map_err(|_| {
            OpenError::HeaderDamaged("a chunk of the key ring fails its integrity check")
        })?,
    );
    let shards: Vec<(u64, [u8; 32])> = crate::storage::codec::decode(&plain, "key ring chunk")
        .map_err(|_| OpenError::HeaderDamaged("a chunk of the key ring does not decode"))?;
    if shards.len() != CHUNK_SHARDS {
        return Err(OpenError::HeaderDamaged("a chunk of the key ring has the wrong size").into());
    }
    Ok(shards
        .iter()
        .map(|(g, k)| Shard::new(*g, SecretKey::from_bytes(*k)))
        .collect())
}

/// What to forget from the caches after a ratchet.
#[derive(Default)]
pub(crate) struct Purge {
    pub(crate) subjects: HashSet<SubjectRef>,
    pub(crate) groups: HashSet<GroupKey>,
    pub(crate) identities: Vec<BlindIndex>,
}

fn index_ad(vault_id: &[u8; 16], blind: &BlindIndex) -> Vec<u8> {
    let mut ad = b"pdvault/index/".to_vec();
    ad.extend_from_slice(vault_id);
    ad.extend_from_slice(&blind.0);
    ad
}

fn journal_ad(vault_id: &[u8; 16], shard: u16, generation: u64) -> Vec<u8> {
    let mut ad = b"pdvault/journal/".to_vec();
    ad.extend_from_slice(vault_id);
    ad.extend_from_slice(&shard.to_be_bytes());
    ad.extend_from_slice(&generation.to_be_bytes());
    ad
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new ring on the built-in slot source in `dir`, and a copy of its root keys.
    fn ring_in(dir: &std::path::Path) -> (Ring, RootKeys, EpochKeys) {
        let vault_id = crypto::random_array();
        let root = RootKeys::derive(&SecretKey::random(), &vault_id);
        let slot = SlotSource::create(dir, vault_id, &root.slot_key).unwrap();
        let epochs = EpochKeys::Slot(Arc::new(slot));
        let ring = Ring::create(root.clone(), vault_id, KdfSpec::RawKey, epochs.clone());
        (ring, root, epochs)
    }

    /// Reseals `ring` as `layout` says; the vault file's contents and the rows written with it.
    type Rows = Vec<(Vec<u8>, Vec<u8>)>;

    fn reseal(ring: &mut Ring, layout: RingLayout) -> (VaultFileBody, Rows) {
        let mut out = None;
        ring.reseal(
            || Ok(Default::default()),
            layout,
            |sealed| {
                let rows = sealed
                    .rows
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.clone().expect("no deletes without store epochs"),
                        )
                    })
                    .collect();
                out = Some((sealed.header.clone(), rows));
                Ok(())
            },
        )
        .unwrap();
        out.unwrap()
    }

    fn chunks_of(rows: &[(Vec<u8>, Vec<u8>)]) -> StoredChunks {
        StoredChunks(
            rows.iter()
                .map(|(k, v)| {
                    (
                        u16::from_be_bytes([k[k.len() - 2], k[k.len() - 1]]),
                        v.clone(),
                    )
                })
                .collect(),
        )
    }

    fn shard_keys(ring: &Ring) -> Vec<(u64, [u8; 32])> {
        ring.shards
            .iter()
            .map(|s| (s.generation, *s.secret.expose()))
            .collect()
    }

    fn chunk_of(c: u16) -> Vec<u8> {
        layout::ring_chunk(c)
    }

    #[test]
    fn a_chunked_ring_writes_the_chunks_that_changed_and_refuses_a_stale_one() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut ring, root, epochs) = ring_in(tmp.path());

        // Whole, as a directory's vault file (and a shared store before chunks) holds it.
        let (whole, rows) = reseal(&mut ring, RingLayout::Whole);
        assert!(rows.is_empty());
        assert!(whole.sealed_ring.len() > SHARDS as usize * 32);
        let read = Ring::unseal(root.clone(), whole, epochs.clone(), None).unwrap();
        assert_eq!(shard_keys(&read), shard_keys(&ring));

        // A ring read whole writes every chunk at its first chunked write, whatever changed.
        let mut ring = read;
        let changed = Some(BTreeSet::from([3]));
        let (first, rows) = reseal(&mut ring, RingLayout::Chunked { changed });
        assert_eq!(rows.len(), CHUNKS);
        assert!(
            first.sealed_ring.len() < 4096,
            "{}",
            first.sealed_ring.len()
        );
        let mut stored = chunks_of(&rows);
        let read =
            Ring::unseal(root.clone(), first.clone(), epochs.clone(), Some(&stored)).unwrap();
        assert_eq!(shard_keys(&read), shard_keys(&ring));

        // A new key for shard 70 (chunk 1): only chunk 1 is written, under a new chunk key.
        let mut ring = read;
        ring.shards[70] = Shard::new(ring.shards[70].generation + 1, SecretKey::random());
        let changed = Some(BTreeSet::from([1]));
        let (second, rows) = reseal(&mut ring, RingLayout::Chunked { changed });
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, chunk_of(1));
        let stale = stored.0.insert(1, rows[0].1.clone()).unwrap();
        assert_ne!(stale, rows[0].1);
        let read =
            Ring::unseal(root.clone(), second.clone(), epochs.clone(), Some(&stored)).unwrap();
        assert_eq!(shard_keys(&read), shard_keys(&ring));

        // The chunk as it was before (a dead tuple, the WAL, a backup) beside the current ring
        // row opens nothing; nor does a chunk missing, or one moved to another chunk's place.
        let mut with_stale = StoredChunks(stored.0.clone());
        with_stale.0.insert(1, stale);
        let damaged = |chunks: &StoredChunks| match Ring::unseal(
            root.clone(),
            second.clone(),
            epochs.clone(),
            Some(chunks),
        ) {
            Err(crate::Error::Open(OpenError::HeaderDamaged(why))) => why,
            Err(e) => panic!("{e:?}"),
            Ok(_) => panic!("the ring opened"),
        };
        assert!(damaged(&with_stale).contains("integrity"));
        let mut missing = StoredChunks(stored.0.clone());
        missing.0.remove(&5);
        assert!(damaged(&missing).contains("missing"));
        let mut moved = StoredChunks(stored.0.clone());
        let two = moved.0[&2].clone();
        moved.0.insert(5, two);
        assert!(damaged(&moved).contains("integrity"));
        // A ring of chunk keys does not open as a directory's, without its chunks.
        assert!(Ring::unseal(root, second, epochs, None).is_err());
    }
}
