//! Root-key rotation, backups, restores and the erasure ledger.
//!
//! A backup is a consistent copy of the whole vault: it opens with the root secret of its day
//! and holds everything that was readable then, including what has been erased since. Restore it
//! with the current erasure ledger ([`Vault::export_ledger`]), and [`Vault::restore`] checks the
//! ledger against the backup (same vault, authentic, not older than the backup) and re-applies
//! every erasure in it before it returns the vault: nothing erased comes back. Restoring without
//! a ledger must be asked for by name ([`LedgerChoice::BringErasedDataBack`]).

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use super::Vault;
use super::open::{root_key, store_dir};
use crate::audit::AuditOp;
use crate::crypto::{self, KdfParams, RootSecret, SecretKey, derive_passphrase_key};
use crate::erasure::{LedgerEntry, Plan, Scope};
use crate::error::{LedgerError, OpenError, Result};
use crate::keys::{Job, Ring, RootKeys};
use crate::ledger::{LedgerChoice, LedgerDocument};
use crate::storage::engine::{Engine, EngineOp};
use crate::storage::private_fs;
use crate::storage::sled_engine::SledEngine;
use crate::storage::vault_file::{self, KdfSpec};
use crate::storage::{Txn, layout};

impl Vault {
    /// Replaces the root secret. Every subject key is rewrapped under new shard keys (records
    /// are not re-encrypted); the key ring is sealed under the new root key. Afterwards the old
    /// secret opens nothing in the current files. `kdf`: new Argon2id costs (default: keep).
    /// A new passphrase needs at least [`DEFAULT_MIN_PASSPHRASE_LEN`](crate::DEFAULT_MIN_PASSPHRASE_LEN)
    /// characters ([`rotate_root_with_min_len`](Self::rotate_root_with_min_len) sets another
    /// minimum).
    pub fn rotate_root(&self, new_secret: RootSecret, kdf: Option<KdfParams>) -> Result<()> {
        self.operation("rotate_root", || {
            self.rotate_root_with_min_len(new_secret, kdf, crate::DEFAULT_MIN_PASSPHRASE_LEN)
        })
    }

    /// [`rotate_root`](Self::rotate_root), refusing a new passphrase of fewer than `min_len`
    /// characters ([`InputError::PassphraseTooShort`](crate::InputError::PassphraseTooShort))
    /// before anything changes.
    pub fn rotate_root_with_min_len(
        &self,
        new_secret: RootSecret,
        kdf: Option<KdfParams>,
        min_len: usize,
    ) -> Result<()> {
        self.operation("rotate_root_with_min_len", || {
            new_secret.check_len(min_len)?;
            let _d = self.exclusive_destruction()?;
            let vault_id = *self.keys().ring().vault_id();
            let (root, spec) = match &new_secret {
                RootSecret::Passphrase(p) => {
                    let params = kdf.unwrap_or_else(|| self.current_kdf().unwrap_or_default());
                    let salt: [u8; 16] = crypto::random_array();
                    (
                        derive_passphrase_key(p, &salt, &params)?,
                        KdfSpec::Passphrase { salt, params },
                    )
                }
                RootSecret::RawKey(k) => (SecretKey::from_bytes(**k), KdfSpec::RawKey),
            };
            let store = self.store();
            let trail = &self.inner.trail;
            let drafts = vec![self.draft(AuditOp::KeyRotation)];
            self.keys()
                .rotate_root(store, RootKeys::derive(&root, &vault_id), spec, |t| {
                    trail.commit(store, t, drafts)
                })
        })
    }

    fn current_kdf(&self) -> Option<KdfParams> {
        match vault_file::read(self.dir()).ok()?.kdf {
            KdfSpec::Passphrase { params, .. } => Some(params),
            KdfSpec::RawKey => None,
        }
    }

    /// Writes a consistent copy of the live vault into `dest` (a new or empty directory).
    /// Writers wait while it runs; readers do not.
    ///
    /// The backup is sealed under an epoch key of its own. With the built-in slot source that
    /// key is in the backup's own `keys.slot`: the backup is the past, readable with the root
    /// secret of its day for as long as it exists. With a host's source the key is in the
    /// source, and [`Vault::backup_expiring`] has the sweep destroy it.
    pub fn backup(&self, dest: &Path) -> Result<()> {
        self.operation("backup", || self.backup_until(dest, None))
    }

    /// A backup ([`Vault::backup`]) whose epoch key the sweep destroys once `expires_at` has
    /// passed: from then on it cannot be restored, not even with the root secret of its day
    /// ([`OpenError::BackupExpired`]). Needs a key source where destruction happens outside the
    /// backup's files (a PKCS#11 token, a KMS): with the built-in slot source the backup's key
    /// travels with the backup, and this is refused ([`OpenError::NotSupported`]).
    pub fn backup_expiring(&self, dest: &Path, expires_at: jiff::Timestamp) -> Result<()> {
        self.operation("backup_expiring", || {
            self.backup_until(dest, Some(expires_at))
        })
    }

    fn backup_until(&self, dest: &Path, expires_at: Option<jiff::Timestamp>) -> Result<()> {
        if self.store().is_shared() {
            return Err(OpenError::NotSupported(
                "a backup of a vault on PostgreSQL (back the database up, or `pdvault migrate` it into a directory)",
            )
            .into());
        }
        let host = matches!(self.keys().ring().epochs(), crate::keys::EpochKeys::Host(_));
        if expires_at.is_some() && !host {
            return Err(OpenError::NotSupported(
                "expiring backups with the built-in slot source (a backup's key travels with it); use a key source that destroys keys itself",
            )
            .into());
        }
        if dest.join(vault_file::FILE_NAME).exists()
            || (dest.exists() && fs::read_dir(dest)?.next().is_some())
        {
            return Err(OpenError::AlreadyExists(dest.to_path_buf()).into());
        }
        let _d = self.exclusive_destruction()?;
        self.commit_synced(Txn::new(), vec![self.draft(AuditOp::Backup)])?;
        self.keys().checkpoint(self.store())?;
        private_fs::create_dir_all(dest)?;
        let engine = SledEngine::open(&store_dir(dest), None, crate::storage::DEFAULT_CACHE_BYTES)?;
        let mut ops = Vec::with_capacity(10_000);
        for r in self.store().scan_raw(&[]) {
            let (k, v) = r?;
            ops.push(EngineOp::Put(k, v));
            if ops.len() >= 10_000 {
                engine.apply(std::mem::take(&mut ops))?;
            }
        }
        engine.apply(ops)?;
        engine.flush()?;
        drop(engine);
        // The backup's vault file is sealed under an epoch key of its own (see
        // `Ring::write_backup_file`): the live vault's ratchets destroy only its own epochs.
        let ring = self.keys().ring();
        let epoch = ring.write_backup_file(dest, ring.checkpoint())?;
        drop(ring);
        vault_file::sync_dir(dest)?;
        if host {
            let mut txn = Txn::new();
            txn.put(
                layout::backup(&epoch.to_bytes()),
                &BackupEntry { expires_at },
            );
            let d = self.draft(AuditOp::Backup).note(match expires_at {
                Some(t) => format!("{epoch}, expires {t}"),
                None => format!("{epoch}"),
            });
            self.commit_synced(txn, vec![d])?;
        }
        Ok(())
    }

    /// Destroys the epoch keys of the backups that have expired at `now`; returns how many.
    pub(crate) fn expire_backups(&self, now: jiff::Timestamp) -> Result<u64> {
        let mut expired = Vec::new();
        for r in self
            .store()
            .scan::<BackupEntry>(&layout::backups(), "backup entry")
        {
            let (k, b) = r?;
            if b.expires_at.is_some_and(|t| t <= now) {
                expired.push(k);
            }
        }
        if expired.is_empty() {
            return Ok(0);
        }
        let _d = self.exclusive_destruction()?;
        let mut txn = Txn::new();
        let mut drafts = Vec::new();
        for k in &expired {
            let bytes: [u8; 16] = k[k.len() - 16..]
                .try_into()
                .map_err(|_| crate::StorageError::Malformed("backup key"))?;
            let epoch = crate::keysource::EpochId::from_bytes(bytes);
            self.keys()
                .ring()
                .epochs()
                .source()
                .destroy_epoch(&epoch)
                .map_err(crate::keys::key_source_error)?;
            txn.delete(k.clone());
            drafts.push(
                self.draft(AuditOp::KeyDestruction)
                    .note(format!("backup {epoch}")),
            );
        }
        self.commit_synced(txn, drafts)?;
        Ok(expired.len() as u64)
    }

    /// Writes the erasure ledger as a JSON document (format `pdvault-ledger`, version 1): the
    /// entries, the vault id, their count and an authentication code under a key of this vault
    /// (see [`crate::ledger`]). It holds no personal data.
    pub fn export_ledger(&self, out: &mut dyn Write) -> Result<()> {
        self.operation("export_ledger", || self.ledger_document()?.write_json(out))
    }

    /// The erasure ledger, authenticated as [`Vault::export_ledger`] writes it.
    pub fn ledger_document(&self) -> Result<LedgerDocument> {
        self.operation("ledger_document", || {
            let entries = self.ledger()?;
            let ring = self.keys().ring();
            Ok(LedgerDocument::seal(
                *ring.vault_id(),
                entries,
                &ring.subkey(Job::Ledger),
            ))
        })
    }

    /// Parses a ledger written by [`Vault::export_ledger`]. Refuses, each with its own
    /// [`LedgerError`]: the old bare JSON array, another format or version, a document cut
    /// short, and one that holds fewer or more entries than it states. Whether the ledger is
    /// authentic and belongs to the backup is checked by [`Vault::restore`].
    pub fn parse_ledger(input: &mut dyn Read) -> Result<LedgerDocument> {
        Ok(LedgerDocument::read(input)?)
    }

    /// Restores a backup into `to` (a new or empty directory) and opens it.
    ///
    /// With [`LedgerChoice::Apply`] (the normal path), the ledger must be the current erasure
    /// ledger of the backup's vault: it is refused if it belongs to another vault
    /// ([`LedgerError::OtherVault`]), fails its authentication code (an entry removed, added or
    /// changed: [`LedgerError::MacMismatch`]) or is older than the backup
    /// ([`LedgerError::OlderThanBackup`], [`LedgerError::Diverges`]). Every erasure of the ledger
    /// that the backup does not already hold is re-applied before the vault is returned. Holds
    /// and everything else come back as they were.
    ///
    /// With [`LedgerChoice::BringErasedDataBack`], the backup comes back as it was: **whatever
    /// was erased after the backup was taken is readable again**.
    ///
    /// A refused or failed restore leaves nothing in `to` (a directory that existed, empty,
    /// stays empty; one this call made is removed).
    pub fn restore(
        from: &Path,
        to: &Path,
        secret: RootSecret,
        ledger: LedgerChoice<'_>,
    ) -> Result<Vault> {
        // Check the secret, and the ledger's authenticity, against the backup before copying
        // anything.
        let (header, root_keys) = checked_backup(from, to, &secret)?;
        if let LedgerChoice::Apply(doc) = ledger {
            let epochs = super::open::epoch_keys(from, &header, &root_keys, None)?;
            let ring = Ring::unseal(root_keys, header, epochs, None)?;
            doc.verify(ring.vault_id(), &ring.subkey(Job::Ledger))?;
        }
        let existed = to.exists();
        let restored = restore_into(from, to, secret, ledger);
        if restored.is_err() {
            // The copy may hold erased data: remove it (the vault, if opened, is closed).
            let _ = fs::remove_dir_all(to);
            if existed {
                let _ = fs::create_dir(to);
            }
        }
        restored
    }

    /// Re-applies the erasures of a ledger: what they destroyed is destroyed here too, whatever
    /// holds this copy still has (the erasures already passed the guard when they happened).
    pub fn apply_ledger(&self, ledger: &[LedgerEntry]) -> Result<usize> {
        self.operation("apply_ledger", || {
            let _d = self.exclusive_destruction()?;
            let now = self.now();
            let mut applied = 0;
            // One plan per step: a later step sees what an earlier one destroyed.
            for e in ledger {
                let mut scopes = Vec::new();
                if e.subject_erased {
                    scopes.push(Scope::Subject);
                } else {
                    if !e.categories.is_empty() {
                        scopes.push(Scope::Groups(e.categories.clone()));
                    }
                    if !e.records.is_empty() {
                        scopes.push(Scope::Records(e.records.iter().copied().collect()));
                    }
                }
                for scope in scopes {
                    if !self.store().contains(&layout::subject(&e.subject))? {
                        break;
                    }
                    let mut plan = Plan::default();
                    plan.replay = true;
                    self.plan_destruction(&mut plan, e.subject, scope, now)?;
                    plan.add_draft(
                        self.draft(AuditOp::LedgerApply)
                            .subject(e.subject)
                            .note(format!("ledger entry {}", e.seq)),
                    );
                    self.execute(plan)?;
                }
                applied += 1;
            }
            Ok(applied)
        })
    }
}

/// Copies the backup into `to`, opens it and re-applies the ledger's erasures that the backup
/// does not hold.
/// The backup's vault file and root keys, once the secret is checked against it and `to` is
/// known to be a new or empty directory: before anything is copied.
fn checked_backup(
    from: &Path,
    to: &Path,
    secret: &RootSecret,
) -> Result<(vault_file::VaultFileBody, RootKeys)> {
    let header = vault_file::read(from)?;
    let root = root_key(&header.kdf, secret)?;
    let root_keys = RootKeys::derive(&root, &header.vault_id);
    if !super::open::constant_time_eq(&root_keys.key_check, &header.key_check) {
        return Err(OpenError::WrongKey.into());
    }
    if to.join(vault_file::FILE_NAME).exists()
        || (to.exists() && fs::read_dir(to)?.next().is_some())
    {
        return Err(OpenError::AlreadyExists(to.to_path_buf()).into());
    }
    Ok((header, root_keys))
}

/// A backup whose epoch key is in the vault's host key source.
#[derive(serde::Serialize, serde::Deserialize)]
struct BackupEntry {
    #[serde(with = "crate::storage::timestamp::option")]
    expires_at: Option<jiff::Timestamp>,
}

/// Restores a backup whose epoch key is in a host's key source into `to`: the backup's ring is
/// unsealed through the source under the name the backup's vault files its keys under, then
/// written into `to` under a new epoch filed under a new name, so that the restored copy and the
/// vault it came from never destroy each other's epochs in the source they share. `open` opens
/// the restored copy.
pub(super) fn restore_through_source(
    from: &Path,
    to: &Path,
    secret: RootSecret,
    ledger: LedgerChoice<'_>,
    make: &dyn Fn([u8; 16]) -> Result<std::sync::Arc<dyn crate::KeySource>, crate::KeySourceError>,
    open: impl FnOnce(RootSecret) -> Result<Vault>,
) -> Result<Vault> {
    let (header, root_keys) = checked_backup(from, to, &secret)?;
    let backup_epoch = crate::keysource::EpochId::from_bytes(header.epoch);
    let live = make(header.key_namespace)?;
    let epochs = super::open::epoch_keys(from, &header, &root_keys, Some(live))?;
    let mut ring = Ring::unseal(root_keys, header, epochs, None).map_err(|e| match e {
        crate::Error::Open(OpenError::EpochDestroyed(_))
            if backup_epoch.seq & crate::keys::BACKUP_EPOCH != 0 =>
        {
            OpenError::BackupExpired.into()
        }
        e => e,
    })?;
    if let LedgerChoice::Apply(doc) = ledger {
        doc.verify(ring.vault_id(), &ring.subkey(Job::Ledger))?;
    }
    let existed = to.exists();
    let restored = (|| {
        copy_dir(from, to)?;
        let _ = fs::remove_file(to.join("LOCK"));
        let namespace: [u8; 16] = crypto::random_array();
        ring.retarget(crate::keys::EpochKeys::Host(make(namespace)?), namespace);
        let checkpoint = ring.checkpoint();
        ring.write_file(to, checkpoint)?;
        drop(ring);
        let vault = open(secret)?;
        if let LedgerChoice::Apply(doc) = ledger {
            let newer = newer_entries(&vault.ledger()?, doc.entries())?;
            vault.apply_ledger(newer)?;
        }
        Ok(vault)
    })();
    if restored.is_err() {
        let _ = fs::remove_dir_all(to);
        if existed {
            let _ = fs::create_dir(to);
        }
    }
    restored
}

fn restore_into(
    from: &Path,
    to: &Path,
    secret: RootSecret,
    ledger: LedgerChoice<'_>,
) -> Result<Vault> {
    copy_dir(from, to)?;
    let _ = fs::remove_file(to.join("LOCK"));
    let vault = Vault::builder(to).open(secret)?;
    if let LedgerChoice::Apply(doc) = ledger {
        let newer = newer_entries(&vault.ledger()?, doc.entries())?;
        vault.apply_ledger(newer)?;
    }
    Ok(vault)
}

/// The entries of `given` after the backup's own: the backup's ledger must be where `given`
/// starts (same entries, in order), or `given` is older than the backup or of another copy.
fn newer_entries<'a>(
    in_backup: &[LedgerEntry],
    given: &'a [LedgerEntry],
) -> Result<&'a [LedgerEntry], LedgerError> {
    if let Some((b, _)) = in_backup.iter().zip(given).find(|(b, g)| b != g) {
        return Err(LedgerError::Diverges { seq: b.seq });
    }
    given
        .get(in_backup.len()..)
        .ok_or(LedgerError::OlderThanBackup {
            in_backup: in_backup.len() as u64,
            in_ledger: given.len() as u64,
        })
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    private_fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            private_fs::copy_file(&entry.path(), &target)?;
        }
    }
    Ok(())
}
