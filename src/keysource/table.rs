//! The epoch keys of a vault on a shared store that has no key source of its own: rows of the
//! store itself, each epoch key sealed under the root key's slot key. Destroying one deletes its
//! row, which PostgreSQL keeps in dead tuples, its WAL, replicas and backups: erasure on such a
//! vault is logical only ([`ErasureGuarantee::LogicalOnly`]) against someone who has the
//! database's history and the passphrase. A PKCS#11 token ([`Pkcs11Source`](crate::keysource))
//! is what makes it real there.
//!
//! A ratchet does not go through [`KeySource::create_epoch`] and [`KeySource::destroy_epoch`]
//! here (each its own commit): it stages the new epoch key's row ([`TableSource::stage_epoch`])
//! and the old rows' deletion in the transaction that writes the ring sealed under it.
//!
//! This module knows the rows it owns (`layout::epoch_key`) and nothing else of the store.

use std::sync::{Arc, Mutex, MutexGuard};

use zeroize::Zeroizing;

use super::{EpochId, ErasureGuarantee, KeySource, KeySourceError, SourceInfo};
use crate::crypto::{self, DataKey, SecretKey};
use crate::storage::engine::{Engine, EngineOp};
use crate::storage::layout;

/// Epoch keys in rows of the shared store.
pub(crate) struct TableSource {
    engine: Arc<dyn Engine>,
    vault_id: [u8; 16],
    key: Mutex<DataKey>,
    /// An epoch key whose row is staged in a ratchet's transaction, not yet committed: what
    /// [`KeySource::seal`] uses for that epoch until [`TableSource::end_staging`].
    staged: Mutex<Option<(EpochId, SecretKey)>>,
}

impl std::fmt::Debug for TableSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableSource").finish_non_exhaustive()
    }
}

fn failed(e: crate::error::StorageError) -> KeySourceError {
    KeySourceError::Unreachable(format!("the store's epoch-key rows: {e}"))
}

fn row_ad(vault_id: &[u8; 16], epoch: &EpochId) -> Vec<u8> {
    let mut ad = b"pdvault/table-epoch/".to_vec();
    ad.extend_from_slice(vault_id);
    ad.extend_from_slice(&epoch.to_bytes());
    ad
}

impl TableSource {
    pub(crate) fn new(engine: Arc<dyn Engine>, vault_id: [u8; 16], slot_key: &SecretKey) -> Self {
        TableSource {
            engine,
            vault_id,
            key: Mutex::new(DataKey::new(slot_key)),
            staged: Mutex::new(None),
        }
    }

    /// A new epoch key as the row to write in the same transaction as the ring sealed under it
    /// (key, sealed value): the key and the ring are durable together, or neither is. Sealing
    /// under `epoch` works from now on, without the row.
    pub(crate) fn stage_epoch(&self, epoch: EpochId) -> (Vec<u8>, Vec<u8>) {
        let secret = SecretKey::random();
        let row = self.sealed_row(&epoch, &secret);
        *self.staged_slot() = Some((epoch, secret));
        (layout::epoch_key(&epoch.to_bytes()), row)
    }

    /// Forgets the staged epoch key (its transaction committed, or failed).
    pub(crate) fn end_staging(&self) {
        *self.staged_slot() = None;
    }

    fn staged_slot(&self) -> MutexGuard<'_, Option<(EpochId, SecretKey)>> {
        self.staged.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sealed_row(&self, epoch: &EpochId, secret: &SecretKey) -> Vec<u8> {
        crypto::seal(&self.key(), &row_ad(&self.vault_id, epoch), secret.expose())
    }

    fn key(&self) -> MutexGuard<'_, DataKey> {
        self.key.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seals epoch keys made from now on under a new root key's slot key. Existing ones stay
    /// sealed under the old one until they are destroyed (the next ratchet destroys them all).
    pub(crate) fn set_slot_key(&self, slot_key: &SecretKey) {
        *self.key() = DataKey::new(slot_key);
    }

    fn epoch_key(&self, epoch: &EpochId) -> Result<DataKey, KeySourceError> {
        if let Some((staged, secret)) = self.staged_slot().as_ref()
            && staged == epoch
        {
            return Ok(DataKey::new(secret));
        }
        let sealed = self
            .engine
            .get(&layout::epoch_key(&epoch.to_bytes()))
            .map_err(failed)?
            .ok_or(KeySourceError::EpochNotFound(*epoch))?;
        super::open_sealed_epoch_key(&self.key(), &row_ad(&self.vault_id, epoch), &sealed, epoch)
    }
}

impl KeySource for TableSource {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: "database".into(),
            location: "rows of the vault's own table".into(),
            guarantee: ErasureGuarantee::LogicalOnly,
        }
    }

    fn create_epoch(&self, epoch: EpochId) -> Result<(), KeySourceError> {
        let sealed = self.sealed_row(&epoch, &SecretKey::random());
        self.engine
            .apply(vec![EngineOp::Put(
                layout::epoch_key(&epoch.to_bytes()),
                sealed,
            )])
            .map_err(failed)
    }

    fn seal(&self, epoch: &EpochId, ad: &[u8], secret: &[u8]) -> Result<Vec<u8>, KeySourceError> {
        Ok(crypto::seal(&self.epoch_key(epoch)?, ad, secret))
    }

    fn unseal(
        &self,
        epoch: &EpochId,
        ad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeySourceError> {
        crypto::open(&self.epoch_key(epoch)?, ad, sealed)
            .map(Zeroizing::new)
            .map_err(|_| KeySourceError::Damaged(*epoch))
    }

    fn destroy_epoch(&self, epoch: &EpochId) -> Result<(), KeySourceError> {
        self.engine
            .apply(vec![EngineOp::Delete(layout::epoch_key(&epoch.to_bytes()))])
            .map_err(failed)
    }

    fn epochs(&self) -> Result<Vec<EpochId>, KeySourceError> {
        let mut out = Vec::new();
        for r in self.engine.scan_prefix(&layout::epoch_keys()) {
            let (k, _) = r.map_err(failed)?;
            let id: [u8; 16] = k[k.len() - 16..].try_into().map_err(|_| {
                KeySourceError::Failed("an epoch-key row of the wrong shape".into())
            })?;
            out.push(EpochId::from_bytes(id));
        }
        Ok(out)
    }
}
