//! Records: put, get, update, list, counts and the full verification.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use serde::Serialize;

use super::Vault;
use crate::audit::{AuditOp, AuditReport, Draft};
use crate::crypto::{self, DataKey};
use crate::error::AccessError;
use crate::error::{Error, InputError, Result, StorageError};
use crate::ids::{RecordId, SubjectId, SubjectRef};
use crate::model::{Category, MAX_PAYLOAD_LEN, Purpose, Record, RecordInfo, RecordMeta};
use crate::policy::roles::{Operation, Scope};
use crate::rights::access;
use crate::storage::entries::{
    DueKind, EncodedRecord, RecordEntry, RecordHead, StoredRecord, SubjectState, WrappedKey,
    encode_record,
};
use crate::storage::{Txn, codec, layout, members};

/// Counts without personal data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Subjects in the vault (including those pending erasure).
    pub subjects: u64,
    /// Subjects with an erasure pending.
    pub subjects_pending_erasure: u64,
    /// Readable records.
    pub records: u64,
    /// Records per category name.
    pub by_category: BTreeMap<String, u64>,
    /// Records per legal basis.
    pub by_basis: BTreeMap<String, u64>,
    /// Records per purpose.
    pub by_purpose: BTreeMap<String, u64>,
    /// Records per retention state: `held`, `pending-erasure`, `expired`, `within-minimum`,
    /// `scheduled`, `unscheduled`.
    pub by_retention: BTreeMap<String, u64>,
    /// Destroyed records whose space the sweep has not reclaimed yet.
    pub awaiting_reclaim: u64,
}

/// The outcome of [`Vault::verify`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Entries in the store.
    pub entries: u64,
    /// Records decrypted and checked.
    pub records: u64,
    /// Keys unwrapped and checked.
    pub keys: u64,
    /// Everything found wrong (no personal data).
    pub problems: Vec<String>,
    /// The audit trail's state.
    pub audit: AuditReport,
    /// Where the epoch keys live, and what erasure therefore guarantees.
    pub key_source: crate::keysource::SourceInfo,
    /// How many epoch keys of the vault its source holds (backups' aside): one, once the vault
    /// has opened.
    pub live_epochs: usize,
}

impl VerifyReport {
    /// Whether the vault is whole.
    pub fn is_whole(&self) -> bool {
        self.problems.is_empty() && self.audit.is_intact()
    }
}

/// A record's associated data ([`record_ad`]), inline unless its metadata is long.
pub(crate) type RecordAd = codec::ShortBytes<RECORD_AD_INLINE>;

/// How many bytes of associated data [`RecordAd`] keeps inline: the fixed fields and 160 bytes of
/// metadata.
const RECORD_AD_INLINE: usize = AD_FIXED_LEN + 160;

/// The associated data of a record's payload: vault, subject, record id, version, key
/// generation, time of the last write, then the stored bytes of the metadata (its format byte
/// and fields, which cover the category; the fields before it have fixed lengths, so the
/// metadata needs no length): every field of a stored record but its format byte is bound by
/// the payload's tag, which is what the store's manifest hashes of a record
/// ([`layout::manifest_part`](crate::storage::layout::manifest_part)).
pub(crate) fn record_ad(
    vault_id: &[u8; 16],
    subject: &SubjectRef,
    id: &RecordId,
    version: u32,
    key_gen: u32,
    updated_at: jiff::Timestamp,
    meta_bytes: &[u8],
) -> RecordAd {
    // The fixed fields at fixed places (copies of known sizes, not one call each), then the
    // metadata.
    let mut fixed = [0u8; AD_FIXED_LEN];
    fixed[..15].copy_from_slice(b"pdvault/record/");
    fixed[15..31].copy_from_slice(vault_id);
    fixed[31..47].copy_from_slice(subject.as_bytes());
    fixed[47..63].copy_from_slice(id.as_bytes());
    fixed[63..67].copy_from_slice(&version.to_be_bytes());
    fixed[67..71].copy_from_slice(&key_gen.to_be_bytes());
    fixed[71..79].copy_from_slice(&updated_at.as_second().to_be_bytes());
    fixed[79..].copy_from_slice(&updated_at.subsec_nanosecond().to_be_bytes());
    RecordAd::concat(&[&fixed, meta_bytes])
}

/// The length of the fixed fields that begin a record's associated data ([`record_ad`]).
const AD_FIXED_LEN: usize = 15 + 16 + 16 + 16 + 4 + 4 + 12;

fn check_payload(payload: &[u8]) -> Result<()> {
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(InputError::PayloadTooLarge {
            len: payload.len(),
            max: MAX_PAYLOAD_LEN,
        }
        .into());
    }
    Ok(())
}

/// A key group that a batched put writes to: its key, found once per batch, and the records it
/// gains.
struct BatchGroup {
    category: String,
    generation: u32,
    key: Arc<DataKey>,
    records: Vec<RecordId>,
}

impl Vault {
    /// Stores a record for a subject (created on first write); returns its id. A record of
    /// category [`Category::Credential`] is refused ([`InputError::CredentialWrite`]): write it
    /// with [`Vault::set_credential`].
    ///
    /// ```
    /// # fn main() -> pdvault::Result<()> {
    /// use pdvault::{Category, LegalBasis, Purpose, RecordMeta, SubjectId};
    /// # let dir = tempfile::tempdir()?;
    /// # let vault = pdvault::Vault::builder(dir.path()).kdf(pdvault::KdfParams::insecure_for_tests())
    /// #     .create(pdvault::RootSecret::passphrase("pw-passphrase"))?;
    /// let alice = SubjectId::new("alice@example.com")?;
    /// let meta = RecordMeta::new(Category::Contact).purpose(Purpose::new("billing")?).basis(LegalBasis::Contract);
    /// let id = vault.put(&alice, meta, b"+44 20 7946 0000")?;
    /// let record = vault.get(&alice, id, &Purpose::new("billing")?)?;
    /// assert_eq!(record.payload, b"+44 20 7946 0000");
    /// # Ok(())
    /// # }
    /// ```
    pub fn put(&self, subject: &SubjectId, meta: RecordMeta, payload: &[u8]) -> Result<RecordId> {
        self.operation("put", || {
            let mut ids = self.put_many([(subject, meta, payload)])?;
            ids.pop()
                .ok_or_else(|| StorageError::Malformed("empty batch").into())
        })
    }

    /// Stores many records, for one or many subjects, with one commit and one sync. A batch with
    /// a credential is refused as a whole, as [`Vault::put`] refuses one.
    pub fn put_many<'a, I>(&self, items: I) -> Result<Vec<RecordId>>
    where
        I: IntoIterator<Item = (&'a SubjectId, RecordMeta, &'a [u8])>,
    {
        self.operation("put_many", || {
            let items: Vec<_> = items
                .into_iter()
                .map(|(s, m, p)| (s, RecordId::random(), 1, m, p))
                .collect();
            self.insert_many(items, AuditOp::Put)
        })
    }

    /// Inserts records with given ids and versions (put and import); a credential is refused
    /// ([`InputError::CredentialWrite`]).
    pub(crate) fn insert_many(
        &self,
        items: Vec<(&SubjectId, RecordId, u32, RecordMeta, &[u8])>,
        op: AuditOp,
    ) -> Result<Vec<RecordId>> {
        self.insert_records(items, op, false)
    }

    /// [`Vault::insert_many`]; with `credential`, records of category credential are let
    /// through (for [`Vault::set_credential`], whose payload is the hash).
    pub(crate) fn insert_records(
        &self,
        items: Vec<(&SubjectId, RecordId, u32, RecordMeta, &[u8])>,
        op: AuditOp,
        credential: bool,
    ) -> Result<Vec<RecordId>> {
        // Every item is checked before anything is written (a subject created for an earlier
        // item of a refused batch would be a write).
        let checked_at = self.now();
        for (_, _, _, meta, payload) in &items {
            if !credential {
                refuse_credential(&meta.category)?;
            }
            self.check_meta(meta, checked_at)?;
            check_payload(payload)?;
        }
        let _no_destruction = self.no_destruction()?;
        let write = self.begin_write();
        let now = self.now();
        let policy = self.policy();
        let vault_id = *self.keys().ring().vault_id();
        let mut txn = Txn::new();
        let mut drafts = Vec::new();
        let mut ids = Vec::new();
        let mut states: BTreeMap<SubjectRef, Arc<SubjectState>> = BTreeMap::new();
        // A batch often holds many records of one subject and category: each subject is looked
        // up, and each group's key found, once per batch (no destruction can come between: the
        // batch holds it off).
        let mut subjects: HashMap<&SubjectId, SubjectRef> = HashMap::new();
        // The records of each group, listed in one member chunk per group at the end.
        let mut groups: HashMap<SubjectRef, Vec<BatchGroup>> = HashMap::new();
        for (subject, id, version, meta, payload) in items {
            let meta = meta.collected_by_default(now);
            let ident = match subjects.get(subject) {
                Some(ident) => *ident,
                None => {
                    let ident = self.find_or_create(subject)?;
                    subjects.insert(subject, ident);
                    ident
                }
            };
            let category = meta.category.name();
            let of_subject = groups.entry(ident).or_default();
            let group = match of_subject.iter().position(|g| g.category == category) {
                Some(at) => &mut of_subject[at],
                None => {
                    let (generation, key) = self.group_key(&ident, category)?;
                    of_subject.push(BatchGroup {
                        category: category.to_owned(),
                        generation,
                        key,
                        records: Vec::new(),
                    });
                    of_subject.last_mut().expect("just pushed")
                }
            };
            group.records.push(id);
            let (generation, key) = (group.generation, Arc::clone(&group.key));
            let entry = seal_record(
                &key, &vault_id, &ident, id, version, generation, meta, payload, now,
            );
            if let Some(p) = &policy
                && p.rule(&entry.meta.category).is_some()
            {
                if let std::collections::btree_map::Entry::Vacant(v) = states.entry(ident) {
                    v.insert(self.state(&ident)?);
                }
                if let Some(at) = p.expires_at(
                    &entry.meta.category,
                    entry.meta.collected_at,
                    &states[&ident].events,
                ) {
                    txn.put_new(layout::due(at, &ident, &id), &DueKind::Expiry);
                }
            }
            drafts.push(
                self.draft(op)
                    .subject(ident)
                    .category_of(&entry.meta.category)
                    .record(id),
            );
            txn.put_raw_new(layout::record(&ident, &id), entry.bytes);
            ids.push(id);
        }
        for (ident, of_subject) in &groups {
            for g in of_subject {
                members::add(&mut txn, ident, &g.category, g.generation, &g.records);
            }
        }
        write.commit(txn, drafts)?;
        Ok(ids)
    }

    /// Checks that a category is known to this vault: built in, or declared by the custom
    /// categories of its policy ([`policy::check_category`](crate::policy::check_category)).
    /// Every call that writes, holds, restricts, erases or discloses a category checks it, so a
    /// misspelt name is refused (with the nearest known name) instead of becoming a category that
    /// no retention rule, hold or restriction names.
    pub fn known_category(&self, category: &Category) -> Result<()> {
        Ok(crate::policy::check_category(
            self.policy().as_deref(),
            category,
        )?)
    }

    /// Checks the metadata of a record to be written: valid, a known category the policy
    /// collects, and a legal basis the policy allows for it.
    /// Checks the metadata against `now` (the vault clock's time, taken once for a batch).
    pub(crate) fn check_meta(&self, meta: &RecordMeta, now: jiff::Timestamp) -> Result<()> {
        meta.validate(now)?;
        self.known_category(&meta.category)?;
        if let Some(p) = self.policy() {
            p.check_basis(&meta.category, meta.basis)?;
        }
        Ok(())
    }

    /// The category of a record (read from its metadata, nothing decrypted).
    pub(crate) fn record_category(
        &self,
        subject: &SubjectId,
        record: RecordId,
    ) -> Result<(SubjectRef, Category)> {
        let ident = self.find(subject)?.subject;
        let stored = self
            .store()
            .get::<RecordEntry>(&layout::record(&ident, &record), "record")?
            .ok_or(Error::RecordNotFound(record))?;
        Ok((ident, stored.meta.category))
    }

    /// Decides whether a record may be read for `purpose` (the rules of
    /// [`rights::access`](crate::rights::access), then the role of a scoped handle); a refusal
    /// is audited.
    fn admit_read(
        &self,
        ident: SubjectRef,
        record: RecordId,
        meta: &RecordMeta,
        state: &SubjectState,
        purpose: &Purpose,
    ) -> Result<()> {
        if meta.category == Category::Credential {
            self.note_refusal(
                Some(ident),
                Some(&meta.category),
                Some(record),
                "read of a credential refused: credentials are verified, never read".to_owned(),
            )?;
            return Err(AccessError::CredentialNotReadable { record }.into());
        }
        // The policy is read under its lock, not cloned out of it (a reference count per read);
        // the lock is released before a refusal is audited.
        let checked = {
            let policy = self.inner.policy.read().unwrap_or_else(|p| p.into_inner());
            access::check(record, meta, state, purpose, policy.as_deref())
        };
        if let Err(e) = checked {
            self.note_refusal(
                Some(ident),
                Some(&meta.category),
                Some(record),
                format!(
                    "read for purpose {} refused: {}",
                    purpose.as_str(),
                    refusal_reason(&e)
                ),
            )?;
            return Err(e.into());
        }
        self.authorize(
            Operation::Read,
            Scope::Category(&meta.category, Some(purpose)),
            Some(ident),
            Some(record),
        )
    }

    /// Checks a category that is to be erased or released from a restriction: known, or held
    /// by the subject (records written before their category was known can still be erased).
    pub(crate) fn known_or_held_category(
        &self,
        ident: &SubjectRef,
        category: &Category,
    ) -> Result<()> {
        match self.known_category(category) {
            Err(e) if !self.holds_category(ident, category)? => Err(e),
            _ => Ok(()),
        }
    }

    /// Whether the subject has records, or a restriction, of a category.
    fn holds_category(&self, ident: &SubjectRef, category: &Category) -> Result<bool> {
        let prefix = layout::members_of_group(ident, category.name());
        if let Some(k) = self.store().scan_keys(&prefix).next() {
            k?;
            return Ok(true);
        }
        Ok(self
            .state(ident)?
            .restricted_categories
            .contains(category.name()))
    }

    /// Reads a record for a purpose (see [`rights::access`](crate::rights::access) for the rules).
    /// A credential is never read, whatever the purpose ([`AccessError::CredentialNotReadable`],
    /// audited as a refusal): check a secret against it with [`Vault::verify_credential`].
    pub fn get(&self, subject: &SubjectId, record: RecordId, purpose: &Purpose) -> Result<Record> {
        self.operation("get", || {
            let (ident, read) = if self.store().is_shared() {
                self.get_from_shared(subject, record, purpose)?
            } else {
                let ident = self.find(subject)?.subject;
                let (stored, key) = self.load(&ident, record)?;
                let state = self.state(&ident)?;
                self.admit_read(ident, record, &stored.head.meta, &state, purpose)?;
                (ident, self.open_into_record(&key, &ident, record, stored)?)
            };
            self.inner.trail.note_read(
                self.store(),
                self.draft(AuditOp::Read)
                    .subject(ident)
                    .category_of(&read.info.meta.category)
                    .record(record)
                    .note(purpose),
            )?;
            Ok(read)
        })
    }

    /// Replaces a record's payload; the id stays, the version goes up. Refused for a credential
    /// ([`InputError::CredentialWrite`]): set a new one with [`Vault::set_credential`] and erase
    /// the old record.
    pub fn update(&self, subject: &SubjectId, record: RecordId, payload: &[u8]) -> Result<()> {
        self.operation("update", || {
            self.rewrite(subject, record, None, Some(payload), AuditOp::Update, None)
        })
    }

    /// Rectifies a record: a new payload and/or new metadata, with a reason (recorded in the
    /// audit trail as having happened; neither the old nor the new value is recorded). Refused
    /// for a credential, and for new metadata of category credential
    /// ([`InputError::CredentialWrite`]).
    pub fn rectify(
        &self,
        subject: &SubjectId,
        record: RecordId,
        meta: Option<RecordMeta>,
        payload: Option<&[u8]>,
        reason: &str,
    ) -> Result<()> {
        self.operation("rectify", || {
            crate::model::check_text("reason", reason)?;
            self.rewrite(
                subject,
                record,
                meta,
                payload,
                AuditOp::Rectify,
                Some(reason),
            )
        })
    }

    fn rewrite(
        &self,
        subject: &SubjectId,
        record: RecordId,
        meta: Option<RecordMeta>,
        payload: Option<&[u8]>,
        op: AuditOp,
        note: Option<&str>,
    ) -> Result<()> {
        if let Some(p) = payload {
            check_payload(p)?;
        }
        if let Some(m) = &meta {
            refuse_credential(&m.category)?;
            self.check_meta(m, self.now())?;
        }
        let _no_destruction = self.no_destruction()?;
        let ident = self.find(subject)?.subject;
        let _g = self.lock_subject(&ident)?;
        let (stored, key) = self.load(&ident, record)?;
        refuse_credential(&stored.head.meta.category)?;
        self.authorize(
            Operation::Write,
            Scope::Category(&stored.head.meta.category, None),
            Some(ident),
            Some(record),
        )?;
        let old_payload = self.open_record(&key, &ident, record, &stored)?;
        let entry = stored.head;
        let new_meta = match meta {
            Some(m) => m.collected_by_default(entry.meta.collected_at),
            None => entry.meta.clone(),
        };
        let payload = payload.unwrap_or(&old_payload);
        let mut txn = Txn::new();
        let (generation, key) = if new_meta.category != entry.meta.category {
            // The subject's lock is held: taking it again would wait forever.
            self.group_key_locked(&ident, new_meta.category.name())?
        } else {
            (entry.key_gen, key)
        };
        let now = self.now();
        let vault_id = *self.keys().ring().vault_id();
        let version = entry
            .version
            .checked_add(1)
            .ok_or(StorageError::Malformed("record version overflow"))?;
        let new_entry = seal_record(
            &key, &vault_id, &ident, record, version, generation, new_meta, payload, now,
        );
        if new_entry.meta.category != entry.meta.category
            || new_entry.meta.collected_at != entry.meta.collected_at
        {
            self.reschedule(&mut txn, &ident, record, &entry.meta, &new_entry.meta)?;
        }
        if (new_entry.meta.category.name(), generation)
            != (entry.meta.category.name(), entry.key_gen)
        {
            let listed = self.store().remove_member(
                &mut txn,
                &ident,
                entry.meta.category.name(),
                entry.key_gen,
                &record,
            )?;
            if !listed {
                return Err(StorageError::Malformed("record missing from its key group").into());
            }
            members::add(
                &mut txn,
                &ident,
                new_entry.meta.category.name(),
                generation,
                &[record],
            );
        }
        txn.put_raw(layout::record(&ident, &record), new_entry.bytes);
        let mut d = self
            .draft(op)
            .subject(ident)
            .category_of(&new_entry.meta.category)
            .record(record);
        if let Some(n) = note {
            d = d.note(n);
        }
        self.commit(txn, vec![d])
    }

    fn reschedule(
        &self,
        txn: &mut Txn,
        ident: &SubjectRef,
        record: RecordId,
        old: &RecordMeta,
        new: &RecordMeta,
    ) -> Result<()> {
        let Some(p) = self.policy() else {
            return Ok(());
        };
        let state = self.state(ident)?;
        if let Some(at) = p.expires_at(&old.category, old.collected_at, &state.events) {
            txn.delete(layout::due(at, ident, &record));
        }
        if let Some(at) = p.expires_at(&new.category, new.collected_at, &state.events) {
            txn.put(layout::due(at, ident, &record), &DueKind::Expiry);
        }
        Ok(())
    }

    /// Lists a subject's records: metadata only, nothing decrypted.
    /// The listing is audited; on a scoped handle it leaves out the categories the role may
    /// not `list`, and audits that it did.
    pub fn list(&self, subject: &SubjectId) -> Result<Vec<RecordInfo>> {
        self.operation("list", || {
            let (ident, out, withheld) = self.checked_read(|| self.list_unchecked(subject))?;
            self.inner.trail.note_read(
                self.store(),
                self.draft(AuditOp::List)
                    .subject(ident)
                    .note(format!("{} records", out.len())),
            )?;
            for (category, n) in withheld {
                self.note_refusal(
                    Some(ident),
                    None,
                    None,
                    format!("list of {n} records of category {category} not granted to the role"),
                )?;
            }
            Ok(out)
        })
    }

    #[allow(clippy::type_complexity)]
    fn list_unchecked(
        &self,
        subject: &SubjectId,
    ) -> Result<(SubjectRef, Vec<RecordInfo>, BTreeMap<String, u64>)> {
        let ident = self.find(subject)?.subject;
        let destroyed = self.destroyed_groups(&ident)?;
        let mut out = Vec::new();
        let mut withheld: BTreeMap<String, u64> = BTreeMap::new();
        for r in self
            .store()
            .scan::<RecordEntry>(&layout::records_of(&ident), "record")
        {
            let (k, e) = r?;
            let (_, id) = layout::parse_record(&k).ok_or(StorageError::Malformed("record key"))?;
            if destroyed.contains(&(e.meta.category.name().to_owned(), e.key_gen)) {
                continue;
            }
            if !self.allowed(Operation::List, Scope::Category(&e.meta.category, None))? {
                *withheld
                    .entry(e.meta.category.name().to_owned())
                    .or_default() += 1;
                continue;
            }
            out.push(info(id, e));
        }
        Ok((ident, out, withheld))
    }

    /// Reads every record of a subject that `purpose` may read (the rules of
    /// [`rights::access`](crate::rights::access)), decrypted, in record-id order. Records the
    /// purpose may not read are left out, not an error, and so are credentials (never read; see
    /// [`Vault::verify_credential`]). The audit trail notes the scan once per
    /// category read: the subject, the category, the purpose and how many records (a scan reads
    /// every record of the subject that the purpose may read, so the ids add nothing).
    ///
    /// ```
    /// # fn main() -> pdvault::Result<()> {
    /// use pdvault::{Category, Purpose, RecordMeta, SubjectId};
    /// # let dir = tempfile::tempdir()?;
    /// # let vault = pdvault::Vault::builder(dir.path()).kdf(pdvault::KdfParams::insecure_for_tests())
    /// #     .create(pdvault::RootSecret::passphrase("pw-passphrase"))?;
    /// let alice = SubjectId::new("alice@example.com")?;
    /// let billing = Purpose::new("billing")?;
    /// vault.put(&alice, RecordMeta::new(Category::Contact).purpose(billing.clone()), b"phone")?;
    /// vault.put(&alice, RecordMeta::new(Category::Usage).purpose(Purpose::new("analytics")?), b"clicks")?;
    /// let records = vault.read_all(&alice, &billing)?;
    /// assert_eq!(records.len(), 1);
    /// assert_eq!(records[0].payload, b"phone");
    /// # Ok(())
    /// # }
    /// ```
    pub fn read_all(&self, subject: &SubjectId, purpose: &Purpose) -> Result<Vec<Record>> {
        self.operation("read_all", || {
            let mut out = Vec::new();
            self.read_each(subject, purpose, |r| {
                out.push(r);
                ControlFlow::Continue(())
            })?;
            Ok(out)
        })
    }

    /// Reads the records [`Vault::read_all`] reads, in the same order, handing each to `each` as
    /// soon as it is decrypted instead of collecting them, so they are never all held at once
    /// (sled 0.34 itself keeps the pages a scan reads resident until it ends; [`Vault::export`]
    /// reads record by record to stay within the cache bound); `each` returns
    /// [`ControlFlow::Break`] to stop early. Returns how many records
    /// `each` received. The audit trail notes what `each` received, as [`Vault::read_all`]
    /// does, also when the scan stops early, fails half-way or `each` panics.
    ///
    /// ```
    /// # fn main() -> pdvault::Result<()> {
    /// use std::ops::ControlFlow;
    /// use pdvault::{Category, Purpose, RecordMeta, SubjectId};
    /// # let dir = tempfile::tempdir()?;
    /// # let vault = pdvault::Vault::builder(dir.path()).kdf(pdvault::KdfParams::insecure_for_tests())
    /// #     .create(pdvault::RootSecret::passphrase("pw-passphrase"))?;
    /// let alice = SubjectId::new("alice@example.com")?;
    /// let billing = Purpose::new("billing")?;
    /// for phone in ["555-0100", "555-0199"] {
    ///     let meta = RecordMeta::new(Category::Contact).purpose(billing.clone());
    ///     vault.put(&alice, meta, phone.as_bytes())?;
    /// }
    /// let mut bytes = 0;
    /// let read = vault.read_each(&alice, &billing, |record| {
    ///     bytes += record.payload.len();
    ///     ControlFlow::Continue(())
    /// })?;
    /// assert_eq!((read, bytes), (2, 16));
    /// # Ok(())
    /// # }
    /// ```
    pub fn read_each(
        &self,
        subject: &SubjectId,
        purpose: &Purpose,
        mut each: impl FnMut(Record) -> ControlFlow<()>,
    ) -> Result<u64> {
        self.operation("read_each", || {
            // What `each` was handed cannot be taken back: on a shared store, no destruction runs
            // in any process until the scan ends.
            let _no_destruction = self.shared_lock(
                crate::storage::engine::SharedLock::Destruction,
                crate::storage::engine::LockMode::Shared,
            )?;
            let ident = self.find(subject)?.subject;
            let state = self.state(&ident)?;
            let policy = self.policy();
            let destroyed = self.destroyed_groups(&ident)?;
            let keys = self.keys();
            let mut tally = ReadTally {
                vault: self,
                subject: ident,
                purpose,
                read: BTreeMap::new(),
                withheld: BTreeMap::new(),
                noted: false,
            };
            // The records of a subject mostly share a few key groups: the last key used is kept.
            let mut last_key: Option<(String, u32, Arc<DataKey>)> = None;
            for r in self
                .store()
                .scan_with(&layout::records_of(&ident), StoredRecord::decode)
            {
                let (k, stored) = r?;
                let entry = &stored.head;
                let (_, id) =
                    layout::parse_record(&k).ok_or(StorageError::Malformed("record key"))?;
                let category = entry.meta.category.name();
                let erased = !destroyed.is_empty()
                    && destroyed.contains(&(category.to_owned(), entry.key_gen));
                // A credential is never read: a scan leaves it out (`list` shows that it exists).
                if erased || entry.meta.category == Category::Credential {
                    continue;
                }
                if let Err(e) = access::check(id, &entry.meta, &state, purpose, policy.as_deref()) {
                    tally.withhold(category, refusal_reason(&e));
                    continue;
                }
                if !self.allowed(
                    Operation::Read,
                    Scope::Category(&entry.meta.category, Some(purpose)),
                )? {
                    tally.withhold(category, "not granted to the role");
                    continue;
                }
                let key = match &last_key {
                    Some((c, g, key)) if c == category && *g == entry.key_gen => key.clone(),
                    _ => {
                        let key = keys
                            .data_key_gen(self.store(), &ident, category, entry.key_gen)?
                            .ok_or(crate::IntegrityError)?;
                        last_key = Some((category.to_owned(), entry.key_gen, key.clone()));
                        key
                    }
                };
                let record = self.open_into_record(&key, &ident, id, stored)?;
                tally.count(record.info.meta.category.name());
                if each(record).is_break() {
                    break;
                }
            }
            tally.note()
        })
    }

    /// Counts of subjects and records, nothing decrypted.
    pub fn stats(&self) -> Result<Stats> {
        self.operation("stats", || {
            let now = self.now();
            let policy = self.policy();
            let mut s = Stats::default();
            let mut reclaim: HashSet<(SubjectRef, String, u32)> = HashSet::new();
            for k in self
                .store()
                .scan_keys(&layout::table(layout::Table::Reclaim))
            {
                if let Some(x) = layout::parse_reclaim(&k?) {
                    reclaim.insert(x);
                }
            }
            let mut states: BTreeMap<SubjectRef, SubjectState> = BTreeMap::new();
            for r in self
                .store()
                .scan::<SubjectState>(&layout::table(layout::Table::Subject), "subject state")
            {
                let (k, st) = r?;
                let sref = SubjectRef::from_slice(&k[1..])
                    .ok_or(StorageError::Malformed("subject key"))?;
                s.subjects += 1;
                if st.pending_erasure.is_some() {
                    s.subjects_pending_erasure += 1;
                }
                states.insert(sref, st);
            }
            let holds = self.active_holds_by_subject(now)?;
            for r in self
                .store()
                .scan::<RecordEntry>(&layout::table(layout::Table::Record), "record")
            {
                let (k, e) = r?;
                let (sref, id) =
                    layout::parse_record(&k).ok_or(StorageError::Malformed("record key"))?;
                if reclaim.contains(&(sref, e.meta.category.name().to_owned(), e.key_gen)) {
                    s.awaiting_reclaim += 1;
                    continue;
                }
                s.records += 1;
                *s.by_category
                    .entry(e.meta.category.name().to_owned())
                    .or_default() += 1;
                *s.by_basis
                    .entry(e.meta.basis.name().to_owned())
                    .or_default() += 1;
                for p in &e.meta.purposes {
                    *s.by_purpose.entry(p.to_string()).or_default() += 1;
                }
                let state = states.get(&sref).cloned().unwrap_or_default();
                let held = holds
                    .get(&sref)
                    .is_some_and(|hs| hs.iter().any(|h| h.covers(&e.meta.category, &id)));
                let retention = if held {
                    "held"
                } else if state.pending_erasure.is_some() {
                    "pending-erasure"
                } else if let Some(p) = &policy {
                    match (
                        p.expires_at(&e.meta.category, e.meta.collected_at, &state.events),
                        p.retained_until(&e.meta.category, e.meta.collected_at, &state.events),
                    ) {
                        (Some(x), _) if x <= now => "expired",
                        (_, Some(m)) if m > now => "within-minimum",
                        (Some(_), _) => "scheduled",
                        _ => "unscheduled",
                    }
                } else {
                    "unscheduled"
                };
                *s.by_retention.entry(retention.to_owned()).or_default() += 1;
            }
            Ok(s)
        })
    }

    /// Checks everything: the store's manifest, every entry's encoding, every key and record's
    /// integrity, and the audit chain. Damage is reported, never repaired silently.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.operation("verify", || {
            // On a shared store, no destruction in any process while the check reads (it compares
            // rows read at different moments); writes go on.
            let _no_destruction = self.shared_lock(
                crate::storage::engine::SharedLock::Destruction,
                crate::storage::engine::LockMode::Shared,
            )?;
            let store = self.store();
            let mut problems = Vec::new();
            if let Some(p) = store.verify_manifest()? {
                problems.push(p);
            }
            let checkpoint = self.keys().ring().checkpoint();
            if store.manifest().seq < checkpoint.seq {
                problems.push(
                    "the store is older than the vault's last checkpoint: recent writes are lost"
                        .into(),
                );
            }
            let mut entries = 0u64;
            let mut keys = 0u64;
            let mut records = 0u64;
            let (mut record_rows, mut listed) = (0u64, 0u64);
            for r in store.scan_raw(&[]) {
                let (k, v) = r?;
                entries += 1;
                let table = k.first().and_then(|b| layout::Table::from_byte(*b));
                let ok = match table {
                    Some(layout::Table::Key) => {
                        match codec::decode::<WrappedKey>(&v, "wrapped key") {
                            Ok(_) => {
                                keys += 1;
                                true
                            }
                            Err(_) => false,
                        }
                    }
                    Some(layout::Table::Record) => {
                        match (
                            codec::decode::<RecordEntry>(&v, "record"),
                            layout::parse_record(&k),
                        ) {
                            (Ok(_), Some(_)) => {
                                record_rows += 1;
                                true
                            }
                            _ => false,
                        }
                    }
                    Some(layout::Table::Member) => match members::decode(&v) {
                        Ok(ids) => {
                            listed += ids.len() as u64;
                            true
                        }
                        Err(_) => false,
                    },
                    Some(layout::Table::Subject) => {
                        codec::decode::<SubjectState>(&v, "subject state").is_ok()
                    }
                    Some(layout::Table::Index) => {
                        codec::decode::<crate::storage::entries::IndexEntry>(&v, "index").is_ok()
                    }
                    Some(layout::Table::Due) => {
                        codec::decode::<DueKind>(&v, "due").is_ok()
                            && layout::parse_due(&k).is_some()
                    }
                    Some(layout::Table::Hold) => {
                        codec::decode::<super::StoredHold>(&v, "hold").is_ok()
                    }
                    Some(layout::Table::Ledger) => {
                        codec::decode::<crate::erasure::LedgerEntry>(&v, "ledger").is_ok()
                    }
                    Some(_) => true,
                    None => false,
                };
                if !ok {
                    problems.push(format!(
                        "a malformed entry in table {}",
                        table
                            .map(|t| format!("{t:?}"))
                            .unwrap_or_else(|| "unknown".into())
                    ));
                }
            }
            if listed != record_rows {
                problems.push(format!(
                    "key groups list {listed} records, the store holds {record_rows}"
                ));
            }
            problems.extend(store.check_membership()?);
            // Every readable record must open under its key.
            let mut subjects: Vec<SubjectRef> = Vec::new();
            for k in store.scan_keys(&layout::table(layout::Table::Subject)) {
                if let Some(s) = SubjectRef::from_slice(&k?[1..]) {
                    subjects.push(s);
                }
            }
            for sref in subjects {
                let destroyed = self.destroyed_groups(&sref)?;
                for r in store.scan_with(&layout::records_of(&sref), StoredRecord::decode) {
                    let Ok((k, stored)) = r else { continue };
                    let e = &stored.head;
                    let Some((_, id)) = layout::parse_record(&k) else {
                        continue;
                    };
                    if destroyed.contains(&(e.meta.category.name().to_owned(), e.key_gen)) {
                        continue;
                    }
                    records += 1;
                    match self
                        .keys()
                        .data_key_gen(store, &sref, e.meta.category.name(), e.key_gen)
                    {
                        Ok(Some(key)) => {
                            if self.open_record(&key, &sref, id, &stored).is_err() {
                                problems.push(format!("record {id} fails its integrity check"));
                            }
                        }
                        Ok(None) => problems.push(format!("record {id} has no key")),
                        Err(_) => problems
                            .push(format!("the key of record {id} fails its integrity check")),
                    }
                }
            }
            let audit = self.inner.trail.verify(store)?;
            let (key_source, live_epochs) = {
                let ring = self.keys().ring();
                (ring.epochs().source().info(), ring.live_epochs()?)
            };
            if live_epochs != 1 {
                problems.push(format!(
                    "{live_epochs} epoch keys of the vault are live in its key source, not one"
                ));
            }
            Ok(VerifyReport {
                entries,
                records,
                keys,
                problems,
                audit,
                key_source,
                live_epochs,
            })
        })
    }

    /// Loads a record and its key; a record whose key was destroyed does not exist.
    pub(crate) fn load(
        &self,
        ident: &SubjectRef,
        record: RecordId,
    ) -> Result<(StoredRecord, Arc<DataKey>)> {
        let stored = self
            .store()
            .get_with(&layout::record_key(ident, &record), StoredRecord::decode)?
            .ok_or_else(|| Error::RecordNotFound(record))?;
        let key = self.key_of(ident, record, &stored.head)?;
        Ok((stored, key))
    }

    /// [`Vault::get`] on a shared store: the record, the subject's state and the store's
    /// generation in one statement (one snapshot, one round trip), the generation checked
    /// against the one the ring and caches are current with ([`Vault::checked_read`]). Keys
    /// read afterwards can only have been destroyed since, never replaced: a late read of one
    /// finds it or fails.
    fn get_from_shared(
        &self,
        subject: &SubjectId,
        record: RecordId,
        purpose: &Purpose,
    ) -> Result<(SubjectRef, Record)> {
        let generation_key = layout::meta(layout::GENERATION);
        let mut attempts = 0;
        loop {
            let seen = self.keys().generation();
            let read = (|| {
                let ident = self.find(subject)?.subject;
                let (record_key, state_key) =
                    (layout::record(&ident, &record), layout::subject(&ident));
                let mut rows = self
                    .store()
                    .get_many_raw(&[&generation_key, &record_key, &state_key])?
                    .into_iter();
                let generation: u64 = match rows.next().flatten() {
                    Some(b) => codec::decode(&b, "store generation")?,
                    None => 0,
                };
                if generation != seen {
                    return Ok(None);
                }
                let stored = rows
                    .next()
                    .flatten()
                    .map(StoredRecord::decode)
                    .transpose()?
                    .ok_or_else(|| Error::RecordNotFound(record))?;
                let state: SubjectState = match rows.next().flatten() {
                    Some(b) => codec::decode(&b, "subject state")?,
                    None => SubjectState::default(),
                };
                let key = self.key_of(&ident, record, &stored.head)?;
                self.admit_read(ident, record, &stored.head.meta, &state, purpose)?;
                Ok(Some((
                    ident,
                    self.open_into_record(&key, &ident, record, stored)?,
                )))
            })();
            match read {
                Ok(Some(found)) => return Ok(found),
                // An error with the generation unchanged is the answer (an unknown subject, a
                // refused purpose); otherwise it may come from a stale ring: read again.
                Err(e) if crate::keys::stored_generation(self.store())? == seen => return Err(e),
                Ok(None) | Err(_) => {}
            }
            attempts += 1;
            self.read_again(attempts)?;
        }
    }

    /// A stored record with the key of its generation (or why there is none).
    fn key_of(
        &self,
        ident: &SubjectRef,
        record: RecordId,
        entry: &RecordHead,
    ) -> Result<Arc<DataKey>> {
        let category = entry.meta.category.name();
        match self
            .keys()
            .data_key_gen(self.store(), ident, category, entry.key_gen)?
        {
            Some(key) => Ok(key),
            // Erased: its key generation was destroyed (decided without decrypting anything).
            None if self
                .destroyed_groups(ident)?
                .contains(&(category.to_owned(), entry.key_gen)) =>
            {
                Err(Error::RecordNotFound(record))
            }
            // Erased and reclaimed by a sweep since the record was read (its row and the marker
            // of its destroyed generation are gone now).
            None if !self.store().contains(&layout::record(ident, &record))? => {
                Err(Error::RecordNotFound(record))
            }
            // No key and not destroyed: the record or its key was damaged.
            None => Err(crate::IntegrityError.into()),
        }
    }

    /// The associated data of a stored record of subject `ident`.
    fn stored_ad(&self, ident: &SubjectRef, record: RecordId, stored: &StoredRecord) -> RecordAd {
        record_ad(
            self.keys().ring().vault_id(),
            ident,
            &record,
            stored.head.version,
            stored.head.key_gen,
            stored.head.updated_at,
            stored.meta_bytes(),
        )
    }

    /// Opens a record's payload.
    pub(crate) fn open_record(
        &self,
        key: &DataKey,
        ident: &SubjectRef,
        record: RecordId,
        stored: &StoredRecord,
    ) -> Result<Vec<u8>> {
        let ad = self.stored_ad(ident, record, stored);
        Ok(crypto::open(key, ad.as_bytes(), stored.sealed())?)
    }

    /// Opens a record into what a read returns, decrypting its payload where it lies.
    pub(crate) fn open_into_record(
        &self,
        key: &DataKey,
        ident: &SubjectRef,
        record: RecordId,
        stored: StoredRecord,
    ) -> Result<Record> {
        let ad = self.stored_ad(ident, record, &stored);
        let (head, buf, sealed_at) = stored.into_parts();
        let payload = crypto::open_in_place(key, ad.as_bytes(), buf, sealed_at)?;
        Ok(Record {
            info: RecordInfo {
                record,
                meta: head.meta,
                version: head.version,
                updated_at: head.updated_at,
            },
            payload,
        })
    }

    /// The subject's record rows with their ids, destroyed groups' included (callers skip the
    /// groups they know destroyed); a row whose key does not parse is left out.
    pub(crate) fn stored_records(
        &self,
        ident: &SubjectRef,
    ) -> impl Iterator<Item = Result<(RecordId, RecordEntry)>> + '_ {
        self.store()
            .scan::<RecordEntry>(&layout::records_of(ident), "record")
            .filter_map(|r| match r {
                Ok((k, e)) => layout::parse_record(&k).map(|(_, id)| Ok((id, e))),
                Err(e) => Some(Err(e.into())),
            })
    }

    /// Finds or creates a subject.
    pub(crate) fn find_or_create(&self, subject: &SubjectId) -> Result<SubjectRef> {
        let now = self.now();
        let keys = self.keys();
        let (ident, _) =
            keys.find_or_create_subject(self.store(), subject, |r, blind, subject_key| {
                let sealed_blind = crypto::seal(subject_key, &keys.blind_ad(r), &blind.0);
                let mut txn = Txn::new();
                txn.put(
                    layout::subject(r),
                    &SubjectState {
                        created_at: Some(now),
                        sealed_blind,
                        ..Default::default()
                    },
                );
                txn
            })?;
        crate::telemetry::subject_found(&ident.subject);
        Ok(ident.subject)
    }

    /// The current key of a (subject, category) group, created if needed. A group whose keys were
    /// destroyed gets a new generation: nothing erased comes back.
    pub(crate) fn group_key(
        &self,
        ident: &SubjectRef,
        category: &str,
    ) -> Result<(u32, Arc<DataKey>)> {
        if let Some(k) = self.keys().data_key(self.store(), ident, category)? {
            return Ok(k);
        }
        let _g = self.lock_subject(ident)?;
        self.group_key_locked(ident, category)
    }

    /// [`Vault::group_key`] for a caller that holds the subject's lock (which is not reentrant).
    fn group_key_locked(&self, ident: &SubjectRef, category: &str) -> Result<(u32, Arc<DataKey>)> {
        if let Some(k) = self.keys().data_key(self.store(), ident, category)? {
            return Ok(k);
        }
        let mut state = self.state_to_change(ident)?;
        let generation = self.allocate_gen(ident, category, &mut state)?;
        let mut txn = Txn::new();
        txn.put(layout::subject(ident), &state);
        let key = self
            .keys()
            .add_data_key(self.store(), ident, category, generation, txn)?;
        Ok((generation, key))
    }

    /// Allocates a key generation for a group: never one used before, recorded in the subject's
    /// state (which the caller writes) so that a generation destroyed and reclaimed is not reused
    /// (a ledger replay destroys generations up to the one it names).
    pub(crate) fn allocate_gen(
        &self,
        ident: &SubjectRef,
        category: &str,
        state: &mut SubjectState,
    ) -> Result<u32> {
        let g = self
            .next_gen(ident, category)?
            .max(state.next_generation.get(category).copied().unwrap_or(0));
        state
            .next_generation
            .insert(category.to_owned(), g.saturating_add(1));
        Ok(g)
    }

    /// The first key generation not used by any stored or destroyed key of a group.
    pub(crate) fn next_gen(&self, ident: &SubjectRef, category: &str) -> Result<u32> {
        let mut next = 0u32;
        for k in self
            .store()
            .scan_keys(&layout::data_keys_of_group(ident, category))
        {
            if let Some((_, _, g)) = layout::parse_data_key(&k?) {
                next = next.max(g.saturating_add(1));
            }
        }
        for g in self
            .destroyed_groups(ident)?
            .into_iter()
            .filter(|(c, _)| c == category)
            .map(|(_, g)| g)
        {
            next = next.max(g.saturating_add(1));
        }
        Ok(next)
    }

    /// The (category, generation) groups of a subject whose keys are destroyed and whose rows
    /// await reclamation.
    pub(crate) fn destroyed_groups(&self, ident: &SubjectRef) -> Result<HashSet<(String, u32)>> {
        let mut out = HashSet::new();
        let mut prefix = layout::table(layout::Table::Reclaim);
        prefix.extend_from_slice(ident.as_bytes());
        for k in self.store().scan_keys(&prefix) {
            if let Some((_, c, g)) = layout::parse_reclaim(&k?) {
                out.insert((c, g));
            }
        }
        Ok(out)
    }
}

/// Seals and encodes a record: its payload sealed under `key`, with associated data binding the
/// vault, subject, record, version, key generation and metadata ([`record_ad`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn seal_record(
    key: &DataKey,
    vault_id: &[u8; 16],
    ident: &SubjectRef,
    id: RecordId,
    version: u32,
    key_gen: u32,
    meta: RecordMeta,
    payload: &[u8],
    now: jiff::Timestamp,
) -> EncodedRecord {
    let sealed_len = payload.len() + crypto::SEAL_OVERHEAD;
    encode_record(meta, version, key_gen, now, sealed_len, |meta_bytes| {
        let ad = record_ad(vault_id, ident, &id, version, key_gen, now, meta_bytes);
        crypto::seal(key, ad.as_bytes(), payload)
    })
}

/// Refuses a write of a credential by any path but [`Vault::set_credential`].
fn refuse_credential(category: &Category) -> Result<()> {
    if *category == Category::Credential {
        return Err(InputError::CredentialWrite.into());
    }
    Ok(())
}

/// Why a read was refused, in the audit trail's words (no personal data).
fn refusal_reason(e: &AccessError) -> &'static str {
    match e {
        AccessError::PurposeNotAllowed { .. } => "the purpose is not the record's",
        AccessError::NoConsent { .. } => "no consent for the purpose",
        AccessError::Restricted { .. } => "processing is restricted",
        AccessError::Objected { .. } => "the subject objected to the purpose",
        AccessError::NoGuardianConsent { .. } => "no guardian's consent for a minor",
        _ => "refused",
    }
}

pub(crate) fn info(record: RecordId, e: RecordEntry) -> RecordInfo {
    RecordInfo {
        record,
        meta: e.meta,
        version: e.version,
        updated_at: e.updated_at,
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Vault>();
    let _ = Draft::new;
}

/// What a scan handed over, per category, for the audit trail: noted once the scan ends, however
/// it ends (on an error or a panic, buffered for the trail's next commit).
struct ReadTally<'a> {
    vault: &'a Vault,
    subject: SubjectRef,
    purpose: &'a Purpose,
    read: BTreeMap<String, u64>,
    /// Records left out, per category and reason.
    withheld: BTreeMap<(String, &'static str), u64>,
    noted: bool,
}

impl ReadTally<'_> {
    fn count(&mut self, category: &str) {
        match self.read.get_mut(category) {
            Some(n) => *n += 1,
            None => {
                self.read.insert(category.to_owned(), 1);
            }
        }
    }

    fn withhold(&mut self, category: &str, why: &'static str) {
        *self.withheld.entry((category.to_owned(), why)).or_default() += 1;
    }

    fn drafts(&mut self) -> Vec<Draft> {
        self.noted = true;
        let purpose = self.purpose.as_str();
        let read = std::mem::take(&mut self.read)
            .into_iter()
            .map(|(category, n)| {
                self.vault
                    .draft(AuditOp::Read)
                    .subject(self.subject)
                    .category(&category)
                    .note(format!("{purpose}; {n} records"))
            });
        let withheld =
            std::mem::take(&mut self.withheld)
                .into_iter()
                .map(|((category, why), n)| {
                    self.vault
                        .draft(AuditOp::Refused)
                        .subject(self.subject)
                        .category(&category)
                        .note(format!(
                            "read of {n} records for purpose {purpose} refused: {why}"
                        ))
                });
        read.chain(withheld).collect()
    }

    /// Notes the reads; returns how many records were read.
    fn note(mut self) -> Result<u64> {
        let total = self.read.values().sum();
        for d in self.drafts() {
            self.vault.inner.trail.note_read(self.vault.store(), d)?;
        }
        Ok(total)
    }
}

impl Drop for ReadTally<'_> {
    fn drop(&mut self) {
        if !self.noted {
            for d in self.drafts() {
                self.vault.inner.trail.defer_read(d);
            }
        }
    }
}
