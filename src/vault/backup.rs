//! Root-key rotation, backups, restores and the erasure ledger.
//!
//! A backup is a consistent copy of the whole vault: it opens with the root secret of its day
//! and holds everything that was readable then, including what has been erased since. Restore it
//! with the current erasure ledger ([`Vault::export_ledger`]), and [`Vault::restore`] re-applies
//! every erasure in the ledger before it returns the vault: nothing erased comes back.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use super::Vault;
use super::open::{root_key, store_dir};
use crate::audit::AuditOp;
use crate::crypto::{self, KdfParams, RootSecret, SecretKey, derive_passphrase_key};
use crate::erasure::{LedgerEntry, Plan, Scope};
use crate::error::{InputError, OpenError, Result};
use crate::keys::RootKeys;
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
        self.rotate_root_with_min_len(new_secret, kdf, crate::DEFAULT_MIN_PASSPHRASE_LEN)
    }

    /// [`rotate_root`](Self::rotate_root), refusing a new passphrase of fewer than `min_len`
    /// characters ([`InputError::PassphraseTooShort`]) before anything changes.
    pub fn rotate_root_with_min_len(
        &self,
        new_secret: RootSecret,
        kdf: Option<KdfParams>,
        min_len: usize,
    ) -> Result<()> {
        new_secret.check_len(min_len)?;
        let _d = self
            .inner
            .destruction
            .write()
            .unwrap_or_else(|p| p.into_inner());
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
    }

    fn current_kdf(&self) -> Option<KdfParams> {
        match vault_file::read(self.dir()).ok()?.kdf {
            KdfSpec::Passphrase { params, .. } => Some(params),
            KdfSpec::RawKey => None,
        }
    }

    /// Writes a consistent copy of the live vault into `dest` (a new or empty directory).
    /// Writers wait while it runs; readers do not.
    pub fn backup(&self, dest: &Path) -> Result<()> {
        if dest.join(vault_file::FILE_NAME).exists()
            || (dest.exists() && fs::read_dir(dest)?.next().is_some())
        {
            return Err(OpenError::AlreadyExists(dest.to_path_buf()).into());
        }
        let _d = self
            .inner
            .destruction
            .write()
            .unwrap_or_else(|p| p.into_inner());
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
        private_fs::copy_file(
            &self.dir().join(vault_file::FILE_NAME),
            &dest.join(vault_file::FILE_NAME),
        )?;
        vault_file::sync_dir(dest)?;
        Ok(())
    }

    /// Writes the erasure ledger as a JSON array. It holds no personal data.
    pub fn export_ledger(&self, out: &mut dyn Write) -> Result<()> {
        let ledger = self.ledger()?;
        serde_json::to_writer_pretty(&mut *out, &ledger)
            .map_err(|e| InputError::Encoding(crate::error::json_error(&e)))?;
        out.write_all(b"\n")?;
        Ok(())
    }

    /// Parses a ledger written by [`Vault::export_ledger`].
    pub fn parse_ledger(input: &mut dyn Read) -> Result<Vec<LedgerEntry>> {
        serde_json::from_reader(input).map_err(|e| {
            InputError::Document(format!("ledger: {}", crate::error::json_error(&e))).into()
        })
    }

    /// Restores a backup into `to` (a new directory), opens it, and re-applies every erasure of
    /// `ledger` before returning it. Holds and everything else come back as they were.
    pub fn restore(
        from: &Path,
        to: &Path,
        secret: RootSecret,
        ledger: Option<&[LedgerEntry]>,
    ) -> Result<Vault> {
        // Check the secret against the backup before copying anything.
        let header = vault_file::read(from)?;
        let root = root_key(&header.kdf, &secret)?;
        if !super::open::constant_time_eq(
            &RootKeys::derive(&root, &header.vault_id).key_check,
            &header.key_check,
        ) {
            return Err(OpenError::WrongKey.into());
        }
        if to.join(vault_file::FILE_NAME).exists()
            || (to.exists() && fs::read_dir(to)?.next().is_some())
        {
            return Err(OpenError::AlreadyExists(to.to_path_buf()).into());
        }
        copy_dir(from, to)?;
        let _ = fs::remove_file(to.join("LOCK"));
        let vault = Vault::builder(to).open(secret)?;
        if let Some(ledger) = ledger {
            vault.apply_ledger(ledger)?;
        }
        Ok(vault)
    }

    /// Re-applies the erasures of a ledger: what they destroyed is destroyed here too, whatever
    /// holds this copy still has (the erasures already passed the guard when they happened).
    pub fn apply_ledger(&self, ledger: &[LedgerEntry]) -> Result<usize> {
        let _d = self
            .inner
            .destruction
            .write()
            .unwrap_or_else(|p| p.into_inner());
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
    }
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
