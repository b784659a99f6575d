//! Credentials: secrets a subject authenticates with, kept only as Argon2id hashes.
//!
//! [`Vault::set_credential`] hashes the secret (Argon2id, a fresh random salt, the parameters of
//! `crypto::password`: 19 MiB, 2 passes, 1 lane) and stores the PHC string as the payload of a
//! record of category [`Category::Credential`], sealed like any payload under the subject's
//! data key; the clear secret is never stored. [`Vault::verify_credential`] checks a candidate
//! against it through argon2's verifier (a constant-time comparison of the outputs).
//!
//! Every other path refuses or leaves out a credential: `put`, `put_many`, `update`, `rectify`
//! and `import` refuse it ([`InputError::CredentialWrite`]); `get` refuses it
//! ([`AccessError::CredentialNotReadable`]); `read_all` and `read_each` leave it out; `export`
//! lists its metadata with `"payload": "withheld"`; `list` shows its metadata, as for any record.
//! Erasure, holds, retention and the sweep treat it as any record. To change a secret, set a new
//! credential and erase the old record ([`Vault::erase_record`]): an erased record's hash is
//! unrecoverable, where an overwritten version would stay in stale store pages until garbage
//! collection.

use zeroize::Zeroizing;

use super::Vault;
use crate::audit::AuditOp;
use crate::error::{AccessError, Error, InputError, Result, StorageError};
use crate::ids::{RecordId, SubjectId};
use crate::model::{Category, RecordMeta};
use crate::policy::roles::{Operation, Scope};

/// The longest secret [`Vault::set_credential`] and [`Vault::verify_credential`] take, in bytes.
pub const MAX_SECRET_LEN: usize = 4096;

fn check_secret(secret: &[u8]) -> Result<(), InputError> {
    if secret.is_empty() {
        return Err(InputError::Field {
            field: "secret",
            why: "empty",
        });
    }
    if secret.len() > MAX_SECRET_LEN {
        return Err(InputError::Field {
            field: "secret",
            why: "longer than 4096 bytes",
        });
    }
    Ok(())
}

impl Vault {
    /// Stores a credential of a subject (created on first write) as an Argon2id hash of
    /// `secret`; returns the record's id. `meta` must be of category [`Category::Credential`]
    /// (anything else is [`InputError::Field`]); its purposes, basis, source and collection time
    /// are kept as for any record. The secret (1 to [`MAX_SECRET_LEN`] bytes) is hashed with a
    /// fresh random salt; the PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) is sealed as the
    /// record's payload, and the secret itself is never stored. The write is audited as a `put`
    /// of a credential (never the value).
    ///
    /// Each call makes a new credential record: to change a secret, set the new one, then erase
    /// the old record with [`Vault::erase_record`].
    ///
    /// ```
    /// # fn main() -> pdvault::Result<()> {
    /// use pdvault::{Category, Purpose, RecordMeta, SubjectId};
    /// # let dir = tempfile::tempdir()?;
    /// # let vault = pdvault::Vault::builder(dir.path()).kdf(pdvault::KdfParams::insecure_for_tests())
    /// #     .create(pdvault::RootSecret::passphrase("pw-passphrase"))?;
    /// let alice = SubjectId::new("alice@example.com")?;
    /// let meta = RecordMeta::new(Category::Credential).purpose(Purpose::new("login")?);
    /// let id = vault.set_credential(&alice, meta, b"correct horse battery staple")?;
    /// assert!(vault.verify_credential(&alice, id, b"correct horse battery staple")?);
    /// assert!(!vault.verify_credential(&alice, id, b"Tr0ub4dor&3")?);
    /// assert!(vault.get(&alice, id, &Purpose::new("login")?).is_err()); // never read
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_credential(
        &self,
        subject: &SubjectId,
        meta: RecordMeta,
        secret: &[u8],
    ) -> Result<RecordId> {
        self.operation("set_credential", || {
            if meta.category != Category::Credential {
                return Err(InputError::Field {
                    field: "category",
                    why: "a credential's metadata must be of category credential",
                }
                .into());
            }
            check_secret(secret)?;
            // Refuse bad metadata before the hashing's work (the write checks it again).
            self.check_meta(&meta, self.now())?;
            let phc = crate::crypto::hash_secret(secret)?;
            let mut ids = self.insert_records(
                vec![(subject, RecordId::random(), 1, meta, phc.as_bytes())],
                AuditOp::Put,
                true,
            )?;
            ids.pop()
                .ok_or_else(|| StorageError::Malformed("empty batch").into())
        })
    }

    /// Whether `candidate` is the secret of the subject's credential `record`, checked through
    /// argon2's verifier (a constant-time comparison). Neither the hash nor the candidate leaves
    /// the call. The check is audited like a read of the record (the subject's reference, the
    /// category, the record, and whether it matched); never a value.
    ///
    /// Refused, and audited as a refusal, while processing of the subject or of the credential
    /// category is restricted ([`AccessError::Restricted`]: verifying a secret is processing
    /// it), and on a scoped handle whose role is not granted `read` on credentials. A record of
    /// another category is [`InputError::NotACredential`]; a candidate that is empty or longer
    /// than [`MAX_SECRET_LEN`] bytes is [`InputError::Field`]. The record's purposes and consents
    /// are not consulted: verifying is the one use a credential has, whatever purposes it lists
    /// (the policy's `[bases]` can require that credentials rest on contract).
    pub fn verify_credential(
        &self,
        subject: &SubjectId,
        record: RecordId,
        candidate: &[u8],
    ) -> Result<bool> {
        self.operation("verify_credential", || {
            check_secret(candidate)?;
            let (ident, meta, phc) = self.checked_read(|| {
                let ident = self.find(subject)?.subject;
                let (stored, key) = self.load(&ident, record)?;
                if stored.head.meta.category != Category::Credential {
                    return Err(InputError::NotACredential(record).into());
                }
                let state = self.state(&ident)?;
                if state.restricted
                    || state
                        .restricted_categories
                        .contains(Category::Credential.name())
                {
                    self.note_refusal(
                        Some(ident),
                        Some(&Category::Credential),
                        Some(record),
                        "verification of a credential refused: processing is restricted".to_owned(),
                    )?;
                    return Err(AccessError::Restricted { record }.into());
                }
                self.authorize(
                    Operation::Read,
                    Scope::Category(&Category::Credential, None),
                    Some(ident),
                    Some(record),
                )?;
                let phc = Zeroizing::new(self.open_record(&key, &ident, record, &stored)?);
                Ok::<_, Error>((ident, stored.head.meta, phc))
            })?;
            let phc = std::str::from_utf8(&phc).map_err(|_| crate::IntegrityError)?;
            let matched = crate::crypto::verify_secret(candidate, phc)?;
            self.inner.trail.note_read(
                self.store(),
                self.draft(AuditOp::Read)
                    .subject(ident)
                    .category_of(&meta.category)
                    .record(record)
                    .note(if matched {
                        "credential verified: match"
                    } else {
                        "credential verified: no match"
                    }),
            )?;
            Ok(matched)
        })
    }
}
