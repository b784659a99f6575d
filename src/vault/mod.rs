//! The vault facade: opening and creating, and the operations that tie crypto, keys, storage,
//! policy, audit and rights together. Every destruction goes through [`erasure`](crate::erasure).

mod backup;
mod credentials;
mod group_commit;
mod holds;
mod migrate;
mod open;
mod records;
mod scoped;
mod subject_text;
mod typed;

pub use credentials::MAX_SECRET_LEN;
pub use migrate::MigrationReport;
pub use open::VaultBuilder;
pub use records::{Stats, VerifyReport};
pub use scoped::ScopedVault;
pub(crate) use subject_text::{StoredDisclosure, StoredHold, StoredRequest};

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use jiff::Timestamp;

use crate::audit::{Draft, Trail};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::ids::{SubjectId, SubjectRef};
use crate::keys::{Identity, Keys};
use crate::model::check_text;
use crate::policy::Policy;
use crate::storage::engine::{LockGuard, LockMode, SharedLock};
use crate::storage::entries::SubjectState;
use crate::storage::{Durability, Store, Txn, layout};
use group_commit::{Announced, GroupCommit};

/// A durable commit waiting for its group: a transaction and its audit entries.
type DurableJob = (Txn, Vec<Draft>);

/// A write being prepared ([`Vault::begin_write`]); [`Write::commit`] commits it.
pub(crate) struct Write<'a> {
    vault: &'a Vault,
    announced: Option<Announced<'a, DurableJob>>,
}

impl Write<'_> {
    /// Commits the prepared transaction with its audit entries; durable unless the vault
    /// defers syncs.
    pub(crate) fn commit(self, txn: Txn, drafts: Vec<Draft>) -> Result<()> {
        match self.announced {
            Some(a) => self.vault.commit_durable(Some(a), txn, drafts),
            None => self.vault.commit(txn, drafts),
        }
    }
}

/// A vault. Cheap to clone (clones share one open vault) and safe to share across threads.
///
/// Each handle carries an actor name that the audit trail records; [`Vault::as_actor`] gives a
/// handle for another actor.
#[derive(Clone)]
pub struct Vault {
    pub(crate) inner: Arc<Inner>,
    pub(crate) actor: Arc<str>,
    /// The role of the principal a [`ScopedVault`](crate::ScopedVault) acts for; `None` on the
    /// host's administrative handle.
    pub(crate) role: Option<Arc<str>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("dir", &self.inner.dir)
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

const SUBJECT_LOCKS: usize = 64;

pub(crate) struct Inner {
    /// The vault directory (empty for a vault on a shared store).
    pub(crate) dir: PathBuf,
    /// The directory's lock file (none for a shared store, which other processes open too).
    _lock: Option<File>,
    pub(crate) store: Store,
    pub(crate) keys: Keys,
    pub(crate) trail: Trail,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) policy: RwLock<Option<Arc<Policy>>>,
    subject_locks: Vec<Mutex<()>>,
    /// Set by `close`, which has already written the checkpoint.
    closed: std::sync::atomic::AtomicBool,
    /// Orders destruction with everything it must not interleave with: a destruction (erasure,
    /// sweep ratchet, ledger replay, rotation, backup) holds it alone from its plan to its commit;
    /// writes, holds, restrictions, consents, requests and disclosures share it from the lookup
    /// of their subject to their commit ([`Vault::no_destruction`]).
    destruction: RwLock<()>,
    /// Durable commits waiting to be written together (group commit).
    durable_commits: GroupCommit<DurableJob>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Best effort: write buffered audit entries and a checkpoint. Errors cannot be reported
        // from drop; `Vault::close` reports them. After a close, only what a clone buffered
        // while the close ran is left to write.
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) && !self.trail.has_pending() {
            return;
        }
        let _ = self.trail.commit(&self.store, Txn::new(), Vec::new());
        let _ = self.keys.checkpoint(&self.store);
    }
}

/// A lock of this process, with the same lock among every process of a shared store. The
/// shared one is released first.
pub(crate) struct Guard<L> {
    _shared: Option<LockGuard>,
    _local: L,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Vault {
    /// A builder for creating or opening the vault in `dir`.
    pub fn builder(dir: impl AsRef<Path>) -> VaultBuilder {
        VaultBuilder::new(dir.as_ref())
    }

    /// A builder for the vault in the PostgreSQL database at `url` (feature `postgres`): a
    /// `postgres://user:password@host:port/db` URL or a `key=value` connection string. Any
    /// number of processes on any hosts open the same vault at once; erasure, holds, the sweep and
    /// the audit trail hold across them (README, "More than one process"). Without a
    /// [`key_source`](VaultBuilder::key_source) the epoch keys are rows of the database, and
    /// erasure is logical only against someone with the database's history and the passphrase.
    ///
    /// Calls block (the `postgres` client runs a runtime of its own, and panics inside a Tokio
    /// runtime): from async code, call the vault through `spawn_blocking`.
    ///
    /// ```no_run
    /// # #[cfg(feature = "postgres")]
    /// # fn main() -> pdvault::Result<()> {
    /// let vault = pdvault::Vault::builder_postgres("postgres://app@db.internal/app")
    ///     .postgres_schema("pdvault")
    ///     .open(pdvault::RootSecret::passphrase("correct horse battery staple"))?;
    /// # drop(vault);
    /// # Ok(())
    /// # }
    /// # #[cfg(not(feature = "postgres"))]
    /// # fn main() {}
    /// ```
    #[cfg(feature = "postgres")]
    pub fn builder_postgres(url: &str) -> VaultBuilder {
        VaultBuilder::new_postgres(url)
    }

    /// The same vault, with audit entries attributed to `actor`.
    pub fn as_actor(&self, actor: &str) -> Result<Vault> {
        check_text("actor", actor)?;
        Ok(Vault {
            inner: self.inner.clone(),
            actor: actor.into(),
            role: self.role.clone(),
        })
    }

    /// The actor this handle's operations are attributed to.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// The vault's directory (empty for a vault on PostgreSQL).
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The current time of the vault's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// Counters and timings of this vault's operations in this process since it was opened
    /// (all handles and clones together): calls, errors and time per operation; refusals,
    /// erasures, key destructions, sweeps and rotations recorded. With the `tracing` feature
    /// the same facts are spans and events ([`telemetry`](crate::telemetry)).
    ///
    /// ```
    /// # fn main() -> pdvault::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let vault = pdvault::Vault::builder(dir.path())
    /// #     .kdf(pdvault::KdfParams::insecure_for_tests())
    /// #     .create(pdvault::RootSecret::passphrase("correct horse battery staple"))?;
    /// let alice = pdvault::SubjectId::new("alice@example.com")?;
    /// vault.put(&alice, pdvault::RecordMeta::new(pdvault::Category::Profile), b"Alice")?;
    /// let puts = vault.metrics().operation("put").map_or(0, |m| m.calls);
    /// assert_eq!(puts, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn metrics(&self) -> crate::telemetry::Metrics {
        self.inner.trail.meter().snapshot()
    }

    /// Makes every write so far durable, including buffered audit entries of reads.
    pub fn flush(&self) -> Result<()> {
        self.operation("flush", || {
            if self.inner.trail.has_pending() {
                self.inner
                    .trail
                    .commit(&self.inner.store, Txn::new(), Vec::new())?;
            }
            self.inner.store.sync_all()?;
            Ok(())
        })
    }

    /// Flushes and writes a checkpoint that the next open checks the store against, and closes
    /// the vault for every clone of this handle: their later calls fail with
    /// [`StorageError::Closed`](crate::StorageError::Closed). Dropping the last handle flushes
    /// and checkpoints too, but cannot report errors.
    pub fn close(self) -> Result<()> {
        self.operation("close", || {
            self.inner.store.close();
            self.inner
                .closed
                .store(true, std::sync::atomic::Ordering::SeqCst);
            self.flush()?;
            self.inner.keys.checkpoint(&self.inner.store)?;
            Ok(())
        })
    }

    /// Starts what makes read audit entries durable: the per-read sync, or the background
    /// thread that writes them at least once per window. The thread holds no handle between
    /// its writes: it ends once the vault is closed or dropped.
    pub(crate) fn start_read_audit(&self, reads: open::ReadAudit) {
        self.inner.trail.set_durable_reads(reads.durable);
        if reads.durable {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("pdvault-audit".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(reads.window);
                    let Some(inner) = weak.upgrade() else {
                        return;
                    };
                    if inner.closed.load(std::sync::atomic::Ordering::SeqCst) {
                        return;
                    }
                    if inner.trail.has_pending() {
                        // An error here is the store's; the next write or flush reports it.
                        let _ = inner
                            .trail
                            .commit(&inner.store, Txn::new(), Vec::new())
                            .and_then(|_| Ok(inner.store.sync_all()?));
                    }
                }
            });
        if spawned.is_err() {
            // No thread to be had: every read is then made durable itself.
            self.inner.trail.set_durable_reads(true);
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    pub(crate) fn draft(&self, op: crate::audit::AuditOp) -> Draft {
        Draft::new(self.now(), self.actor.clone(), op).role(self.role.clone())
    }

    /// The policy in force, if any: the one given to the builder
    /// ([`VaultBuilder::policy`]) or set later ([`Vault::set_policy`]), as stored in the vault.
    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.inner
            .policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Commits a transaction with its audit entries; durable unless the vault defers syncs.
    pub(crate) fn commit(&self, txn: Txn, drafts: Vec<Draft>) -> Result<()> {
        if self.inner.store.durability() == Durability::Immediate {
            self.commit_durable(None, txn, drafts)
        } else {
            self.inner.trail.commit(&self.inner.store, txn, drafts)?;
            Ok(())
        }
    }

    /// Commits and always syncs (erasures, holds).
    pub(crate) fn commit_synced(&self, txn: Txn, drafts: Vec<Draft>) -> Result<()> {
        self.commit_durable(None, txn, drafts)
    }

    /// Starts a write whose transaction is about to be prepared: if the vault syncs every
    /// write, a durable commit group formed meanwhile waits for it ([`group_commit`]).
    pub(crate) fn begin_write(&self) -> Write<'_> {
        // On a shared store a write's preparation takes round trips to the server, and the server
        // shares its own log flushes among sessions: a group forms of what is queued, without
        // waiting for writes still being prepared.
        let announced = (self.inner.store.durability() == Durability::Immediate
            && !self.inner.store.is_shared())
        .then(|| self.inner.durable_commits.announce());
        Write {
            vault: self,
            announced,
        }
    }

    /// Commits durably; concurrent callers share one commit and one sync ([`group_commit`]).
    fn commit_durable(
        &self,
        announced: Option<Announced<'_, DurableJob>>,
        txn: Txn,
        drafts: Vec<Draft>,
    ) -> Result<()> {
        let ops = txn.len() + drafts.len();
        let notable = crate::telemetry::Meter::notable(&drafts);
        self.inner
            .durable_commits
            .submit(announced, (txn, drafts), ops, |group| {
                let (mut txn, mut drafts) = (Txn::new(), Vec::new());
                for (t, d) in group {
                    txn.append(t);
                    drafts.extend(d);
                }
                let seq = self.inner.trail.append(&self.inner.store, txn, drafts)?;
                self.inner.store.sync_to(seq)?;
                Ok(())
            })?;
        self.inner.trail.meter().count(notable);
        Ok(())
    }

    /// Runs the public operation `name` (a method's name): measured for [`Vault::metrics`] and,
    /// with the `tracing` feature, inside its span ([`telemetry`](crate::telemetry)).
    pub(crate) fn operation<T>(
        &self,
        name: &'static str,
        body: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        crate::telemetry::operation(self.inner.trail.meter(), name, body)
    }

    /// Shares the destruction lock: while the guard lives no destruction plans or commits, so
    /// what the caller writes (a record, a hold, a subject's state) is either seen by a later
    /// destruction's plan or written after an earlier destruction committed. Take it before
    /// looking the subject up, and hold it until the commit. On a shared store the lock is every
    /// process's, and taking it brings the ring and caches up to date.
    pub(crate) fn no_destruction(&self) -> Result<Guard<RwLockReadGuard<'_, ()>>> {
        let local = self
            .inner
            .destruction
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let shared = self.shared_lock(SharedLock::Destruction, LockMode::Shared)?;
        Ok(Guard {
            _shared: shared,
            _local: local,
        })
    }

    /// Takes the destruction lock alone, from a destruction's plan to its commit (on a shared
    /// store: alone among every process).
    pub(crate) fn exclusive_destruction(&self) -> Result<Guard<RwLockWriteGuard<'_, ()>>> {
        let local = self
            .inner
            .destruction
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let shared = self.shared_lock(SharedLock::Destruction, LockMode::Exclusive)?;
        Ok(Guard {
            _shared: shared,
            _local: local,
        })
    }

    /// On a shared store: takes `lock` among every process, then brings the ring and caches up
    /// to date. Nothing on a store this process owns.
    pub(crate) fn shared_lock(
        &self,
        lock: SharedLock,
        mode: LockMode,
    ) -> Result<Option<LockGuard>> {
        let Some(c) = self.store().coordination() else {
            return Ok(None);
        };
        let (guard, generation) =
            c.lock_then_read(lock, mode, Some(&layout::meta(layout::GENERATION)))?;
        let generation = match generation {
            Some(b) => crate::storage::codec::decode(&b, "store generation")?,
            None => 0,
        };
        self.refresh_to(generation)?;
        Ok(Some(guard))
    }

    /// Brings this process up to date with a shared store that another process changed: the
    /// ring and caches after a destruction, the policy after a change.
    pub(crate) fn refresh(&self) -> Result<()> {
        if !self.store().is_shared() {
            return Ok(());
        }
        self.refresh_to(crate::keys::stored_generation(self.store())?)
    }

    /// [`Vault::refresh`], the store's generation having just been read as `generation`.
    fn refresh_to(&self, generation: u64) -> Result<()> {
        if self.keys().refresh_to(self.store(), generation)? {
            let policy = open::stored_policy(self.store())?;
            *self.inner.policy.write().unwrap_or_else(|p| p.into_inner()) = policy.map(Arc::new);
        }
        Ok(())
    }

    /// Runs a read that takes no lock; on a shared store, checks afterwards that no destruction
    /// committed while it ran (the store's generation has not moved since the ring and caches it
    /// used were current) and runs it again if one did. A read that returns therefore saw the
    /// vault as it was before any destruction that had returned when it checked.
    pub(crate) fn checked_read<T>(&self, mut read: impl FnMut() -> Result<T>) -> Result<T> {
        if !self.store().is_shared() {
            return read();
        }
        let mut attempts = 0;
        loop {
            let seen = self.keys().generation();
            let result = read();
            if crate::keys::stored_generation(self.store())? == seen {
                return result;
            }
            attempts += 1;
            self.read_again(attempts)?;
        }
    }

    /// Before a read's next attempt (the `attempts`-th) after destructions moved the store's
    /// generation under it: brings the ring and caches up to date, or gives up after 16.
    pub(crate) fn read_again(&self, attempts: u32) -> Result<()> {
        if attempts >= 16 {
            return Err(crate::error::StorageError::engine(
                "the vault kept changing under a read (16 destructions meanwhile)",
            )
            .into());
        }
        self.refresh()
    }

    /// Locks one subject's state against concurrent read-modify-write (on a shared store, among
    /// every process).
    pub(crate) fn lock_subject(&self, s: &SubjectRef) -> Result<Guard<MutexGuard<'_, ()>>> {
        let i = s.as_bytes()[15] as usize % SUBJECT_LOCKS;
        let local = lock(&self.inner.subject_locks[i]);
        let shared = match self.store().coordination() {
            Some(c) => Some(c.lock(SharedLock::Subject(i as u8), LockMode::Exclusive)?),
            None => None,
        };
        Ok(Guard {
            _shared: shared,
            _local: local,
        })
    }

    /// Finds a subject by identifier. On a shared store, a lookup that fails while another
    /// process destroyed keys under it (its index entry read before that destruction committed,
    /// its identity key after; or its ring not yet current with the shard keys rotated) is read
    /// again once the ring is current: the subject erased meanwhile is then not found, not
    /// damaged. Nothing is read beyond the lookup when it succeeds.
    pub(crate) fn find(&self, id: &SubjectId) -> Result<Identity> {
        let mut attempts = 0;
        let found = loop {
            let seen = self.keys().generation();
            match self.keys().find_subject(self.store(), id) {
                Ok(found) => break found.ok_or_else(|| Error::SubjectNotFound)?,
                Err(e)
                    if !self.store().is_shared()
                        || crate::keys::stored_generation(self.store())? == seen =>
                {
                    return Err(e);
                }
                Err(_) => {
                    attempts += 1;
                    self.read_again(attempts)?;
                }
            }
        };
        crate::telemetry::subject_found(&found.subject);
        Ok(found)
    }

    /// A subject's state, shared (cached by the store until a commit writes it).
    pub(crate) fn state(&self, s: &SubjectRef) -> Result<Arc<SubjectState>> {
        Ok(self
            .store()
            .get_shared(&layout::subject_key(s), "subject state")?
            .unwrap_or_default())
    }

    /// A subject's state, to change and write back.
    pub(crate) fn state_to_change(&self, s: &SubjectRef) -> Result<SubjectState> {
        Ok(Arc::unwrap_or_clone(self.state(s)?))
    }

    pub(crate) fn new_inner(
        dir: PathBuf,
        lock_file: Option<File>,
        store: Store,
        keys: Keys,
        trail: Trail,
        clock: Arc<dyn Clock>,
        policy: Option<Policy>,
    ) -> Vault {
        let inner = Inner {
            dir,
            _lock: lock_file,
            store,
            keys,
            trail,
            clock,
            policy: RwLock::new(policy.map(Arc::new)),
            subject_locks: (0..SUBJECT_LOCKS).map(|_| Mutex::new(())).collect(),
            destruction: RwLock::new(()),
            durable_commits: GroupCommit::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
        };
        Vault {
            inner: Arc::new(inner),
            actor: "pdvault".into(),
            role: None,
        }
    }
}

#[cfg(test)]
pub(crate) use open::{root_key, store_dir};
#[cfg(test)]
pub(crate) use records::record_ad;
pub(crate) use records::seal_record;

#[cfg(test)]
mod epoch_crash;
#[cfg(test)]
mod races;
#[cfg(test)]
mod tests;
