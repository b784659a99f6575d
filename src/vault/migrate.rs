//! Copying a vault into another store: a directory into PostgreSQL and back
//! ([`Vault::migrate`]). The copy is the same vault (its id, keys, records, holds, requests,
//! ledger and policy), its key ring sealed under an epoch key of the destination's source, its
//! audit trail re-chained into the destination's layout; then it is opened and verified.
//!
//! This module owns which rows travel and how; what the rows mean stays with their modules.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use super::open::{Existing, VaultBuilder, flush_period, take_lock};
use super::{Vault, VerifyReport};
use crate::audit::{AuditEntry, AuditOp, Draft, Trail};
use crate::crypto::{self, RootSecret};
use crate::error::{OpenError, Result};
use crate::keys::{EpochKeys, Job, Keys, Ring, RingHome};
use crate::keysource::SlotSource;
#[cfg(feature = "postgres")]
use crate::storage::engine::Engine;
use crate::storage::sled_engine::SledEngine;
use crate::storage::{Store, Txn, layout, private_fs, vault_file};

/// Rows copied per commit.
const BATCH_ROWS: usize = 2048;

/// What [`Vault::migrate`] copied, and the copy's verification.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct MigrationReport {
    /// Rows of the vault copied (records, keys, holds, requests, …), audit entries aside.
    pub rows: u64,
    /// Audit entries copied (re-chained in the destination; the trail notes the migration).
    pub audit_entries: u64,
    /// The copy's verification, run after opening it.
    pub verify: VerifyReport,
}

/// Whether a row of the source travels as it is: every table but the audit trail (re-chained),
/// and the named singletons that are the vault's own, not its store's (the manifest, the vault
/// file's row, the generation, epoch keys, audit chain heads, ratchet journals, backups).
fn travels(key: &[u8]) -> bool {
    match key.first().and_then(|b| layout::Table::from_byte(*b)) {
        Some(layout::Table::Audit) | None => false,
        Some(layout::Table::Meta) => {
            let name = &key[1..];
            let own = [
                layout::MANIFEST,
                layout::VAULT_FILE,
                layout::GENERATION,
                layout::AUDIT_HEAD,
                layout::AUDIT_ANCHOR,
                layout::AUDIT_CHAINS,
                "audit-chain-anchor",
                "journal/",
                "backup/",
            ];
            let epoch_keys = layout::epoch_keys();
            !own.iter().any(|n| name.starts_with(n.as_bytes())) && !key.starts_with(&epoch_keys)
        }
        Some(_) => true,
    }
}

/// A destination being filled: its store, where its ring goes, its epoch keys.
struct Destination {
    store: Store,
    home: RingHome,
    epochs: EpochKeys,
    namespace: [u8; 16],
    /// The directory's lock, for a directory (released before the copy is opened).
    _lock: Option<std::fs::File>,
}

impl Vault {
    /// Copies this vault into the store `to` names (a new directory, or a PostgreSQL database
    /// without a vault: `Vault::builder_postgres`, feature `postgres`), with `to`'s key source, then opens the copy
    /// with `secret` (this vault's root secret) and verifies it. No destruction and no write runs
    /// in any process while it copies; reads go on.
    ///
    /// The copy is the same vault under the same keys, its epoch keys filed under a name of their
    /// own; this vault is left as it was. **It still holds everything**: erasures made in the copy
    /// do not reach it. Destroy it once the copy verifies (`pdvault migrate --retire-source`
    /// destroys its epoch keys, which makes every copy of it unreadable).
    pub fn migrate(
        &self,
        to: VaultBuilder,
        secret: RootSecret,
    ) -> Result<(Vault, MigrationReport)> {
        self.operation("migrate", || {
            let _alone = self.exclusive_destruction()?;
            let ring = self.keys().ring().duplicate();
            let cleanup = match &to.postgres_target() {
                Some(_) => None,
                None => Some(Existing::note(&to.dir)?),
            };
            let copied = self.copy_into(&to, ring);
            let (rows, audit_entries) = match copied {
                Ok(n) => n,
                Err(e) => {
                    if let Some(c) = cleanup {
                        c.remove_the_rest();
                    }
                    return Err(e);
                }
            };
            let copy = to.open(secret)?;
            let verify = copy.verify()?;
            Ok((
                copy,
                MigrationReport {
                    rows,
                    audit_entries,
                    verify,
                },
            ))
        })
    }

    /// Destroys every epoch key of this vault in its source, then closes it: every copy of it
    /// (its files, the database's history) is then sealed under keys that exist nowhere, as
    /// far as its source destroys ([`crate::ErasureGuarantee`]). For the source of a verified
    /// migration. Irreversible.
    pub fn retire(self) -> Result<usize> {
        let _alone = self.exclusive_destruction()?;
        let ring = self.keys().ring();
        let source = ring.epochs().source();
        let mut n = 0;
        for e in source.epochs().map_err(crate::keys::key_source_error)? {
            source
                .destroy_epoch(&e)
                .map_err(crate::keys::key_source_error)?;
            n += 1;
        }
        drop(ring);
        self.inner
            .closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(n)
    }

    fn copy_into(&self, to: &VaultBuilder, mut ring: Ring) -> Result<(u64, u64)> {
        let dest = destination(to, &ring)?;
        let store = &dest.store;
        let mut rows = 0u64;
        let mut txn = Txn::new();
        for r in self.store().scan_raw(&[]) {
            let (k, v) = r?;
            if !travels(&k) {
                continue;
            }
            txn.put_raw_new(k, v);
            rows += 1;
            if txn.len() >= BATCH_ROWS {
                store.commit(std::mem::take(&mut txn))?;
            }
        }
        store.commit(txn)?;
        // The trail, re-chained under the same key in the destination's layout.
        let trail = Trail::load(store, ring.subkey(Job::Audit))?;
        let entries = self.inner.trail.entries(self.store(), None, None)?;
        let audit_entries = entries.len() as u64;
        for chunk in entries.chunks(BATCH_ROWS) {
            trail.commit(store, Txn::new(), chunk.iter().map(as_draft).collect())?;
        }
        let note = format!("migrated: {rows} rows, {audit_entries} audit entries");
        let d = self.draft(AuditOp::Import).note(note.clone());
        trail.commit(store, Txn::new(), vec![d])?;
        self.commit_synced(Txn::new(), vec![self.draft(AuditOp::Export).note(note)])?;
        ring.retarget(dest.epochs.clone(), dest.namespace);
        match &dest.home {
            RingHome::Dir(dir) => {
                let durable = store.sync_all()?;
                ring.write_file(dir, durable)?;
            }
            RingHome::Store => {
                Keys::new(RingHome::Store, ring, 0).write_ring_to_store(store)?;
            }
        }
        Ok((rows, audit_entries))
    }
}

fn as_draft(e: &AuditEntry) -> Draft {
    Draft {
        at: e.at,
        actor: Arc::from(e.actor.as_str()),
        role: e.role.as_deref().map(Arc::from),
        op: e.op,
        subject: e.subject,
        category: e.category.clone().map(Into::into),
        record: e.record,
        note: e.note.as_deref().map(Into::into),
    }
}

/// An empty store for the copy: a new vault directory (its key-slot file made), or a PostgreSQL
/// database with no vault.
fn destination(to: &VaultBuilder, ring: &Ring) -> Result<Destination> {
    let vault_id = *ring.vault_id();
    #[cfg(feature = "postgres")]
    if to.postgres_target().is_some() {
        use crate::storage::engine::{Coordination, LockMode, SharedLock};
        let engine = super::open::shared::connect(to)?;
        let lock = engine.lock(SharedLock::Destruction, LockMode::Exclusive)?;
        if engine.get(&layout::meta(layout::VAULT_FILE))?.is_some()
            || engine.scan_prefix(&[]).next().is_some()
        {
            return Err(OpenError::AlreadyExists(super::open::shared::name(to)).into());
        }
        let namespace: [u8; 16] = crypto::random_array();
        let epochs =
            super::open::shared::epoch_keys(to, &engine, namespace, vault_id, ring.root_keys())?;
        let store = Store::new(Box::new(engine), ring.subkey(Job::Manifest), to.durability)?;
        drop(lock);
        return Ok(Destination {
            store,
            home: RingHome::Store,
            epochs,
            namespace,
            _lock: None,
        });
    }
    let dir: PathBuf = to.dir.clone();
    if dir.join(vault_file::FILE_NAME).exists() {
        return Err(OpenError::AlreadyExists(dir).into());
    }
    private_fs::create_dir_all(&dir)?;
    let store_dir = super::open::store_dir(&dir);
    if store_dir.exists() && std::fs::read_dir(&store_dir)?.next().is_some() {
        return Err(OpenError::AlreadyExists(dir).into());
    }
    let lock = take_lock(&dir, to.lock_wait)?;
    let (epochs, namespace) = match &to.key_source {
        Some(make) => {
            let namespace: [u8; 16] = crypto::random_array();
            (EpochKeys::Host(make(namespace)?), namespace)
        }
        None => (
            EpochKeys::Slot(Arc::new(SlotSource::create(
                &dir,
                vault_id,
                &ring.root_keys().slot_key,
            )?)),
            vault_id,
        ),
    };
    let engine = SledEngine::open(&store_dir, flush_period(to.durability), to.cache_bytes)?;
    Ok(Destination {
        store: Store::new(Box::new(engine), ring.subkey(Job::Manifest), to.durability)?,
        home: RingHome::Dir(dir),
        epochs,
        namespace,
        _lock: Some(lock),
    })
}
