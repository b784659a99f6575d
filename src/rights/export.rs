//! Access and portability: a subject's data as one versioned JSON document, written as a
//! stream (memory does not grow with the number of records), and its import into another vault.
//!
//! The document (format `pdvault-export`, version 1):
//!
//! ```json
//! {
//!   "format": "pdvault-export",
//!   "version": 1,
//!   "exported_at": "2026-11-23T10:00:00Z",
//!   "subject_id": "alice@example.com",
//!   "subject": { "created_at": "…", "pending_erasure": null, "events": {"account-closed": "…"},
//!                "restricted": false, "restricted_categories": [],
//!                "consents": {"marketing": {"granted": true, "at": "…", "policy_version": "…"}} },
//!   "holds": [ { "id": "…", "scope": "subject", "reason": "dispute", "reference": "…", … } ],
//!   "disclosures": [ { "recipient": "…", "purpose": "…", "categories": ["…"], "ground": "…", "at": "…" } ],
//!   "records": [
//!     { "record": "…", "category": "contact", "fideslang": "user.contact", "purposes": ["billing"],
//!       "basis": "contract", "source": null, "collected_at": "…", "version": 1, "updated_at": "…",
//!       "expires_at": null, "retained_until": null,
//!       "payload": { "text": "…" } }      // or { "base64": "…" } for bytes that are not UTF-8
//!   ]
//! }
//! ```
//!
//! A credential ([`Category::Credential`]) is listed with its metadata and `"payload":
//! "withheld"`: the document says that one exists, never its hash. [`Vault::import`] refuses a
//! document with a credential record (the secret cannot be carried over; the subject sets a new
//! one).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::{Read, Write};

use base64::Engine as _;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::audit::AuditOp;
use crate::error::{InputError, Result};
use crate::ids::{RecordId, SubjectId, SubjectRef};
use crate::model::{Category, LegalBasis, Purpose, RecordMeta, Redacted, check_text};
use crate::policy::holds::{Hold, HoldScope};
use crate::policy::{EventKind, Policy, RequestKind};
use crate::rights::Disclosure;
use crate::storage::entries::{AgeStatus, ConsentState, StoredRecord, SubjectState};
use crate::storage::{Txn, layout};
use crate::vault::Vault;

/// The format name of an export document.
pub const FORMAT: &str = "pdvault-export";
/// The version of the export document this build writes and reads.
pub const VERSION: u32 = 1;

/// A payload in an export: UTF-8 text as text, other bytes as base64. Its `Debug` shows the
/// kind and the length only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportPayload {
    /// UTF-8 text.
    Text(String),
    /// Other bytes, base64 (standard alphabet, padded).
    Base64(String),
    /// Not exported: the payload of a credential (its Argon2id hash), which no export carries.
    Withheld,
}

impl ExportPayload {
    /// UTF-8 text as text, other bytes as base64.
    pub fn from_bytes(b: Vec<u8>) -> Self {
        match String::from_utf8(b) {
            Ok(s) => ExportPayload::Text(s),
            Err(e) => ExportPayload::Base64(
                base64::engine::general_purpose::STANDARD.encode(e.as_bytes()),
            ),
        }
    }

    fn into_bytes(self) -> Result<Vec<u8>, InputError> {
        match self {
            ExportPayload::Text(s) => Ok(s.into_bytes()),
            ExportPayload::Base64(s) => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| InputError::Document(format!("payload is not base64: {e}"))),
            ExportPayload::Withheld => Err(InputError::Document(
                "the payload was withheld from the export; there is nothing to import".to_owned(),
            )),
        }
    }
}

/// One record of an export. Its `Debug` redacts the payload.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRecord {
    /// The record id.
    pub record: RecordId,
    /// The category name.
    pub category: Category,
    /// The fideslang key of the category.
    pub fideslang: Option<String>,
    /// The purposes.
    pub purposes: Vec<Purpose>,
    /// The legal basis.
    pub basis: LegalBasis,
    /// The source.
    pub source: Option<String>,
    /// When collected.
    pub collected_at: Timestamp,
    /// The version.
    pub version: u32,
    /// When last written.
    pub updated_at: Timestamp,
    /// When the maximum retention ends, if scheduled.
    pub expires_at: Option<Timestamp>,
    /// Until when it must be kept, if an obligation applies.
    pub retained_until: Option<Timestamp>,
    /// The data.
    pub payload: ExportPayload,
}

/// The subject part of an export. Its `Debug` shows consents by purpose and state, without the
/// policy versions' text.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportSubject {
    /// When the subject was first written.
    pub created_at: Option<Timestamp>,
    /// When an erasure was requested, if one is pending.
    pub pending_erasure: Option<Timestamp>,
    /// Anchor events.
    pub events: BTreeMap<String, Timestamp>,
    /// Whether processing is restricted.
    pub restricted: bool,
    /// Categories under restriction.
    pub restricted_categories: Vec<String>,
    /// Consents per purpose.
    pub consents: BTreeMap<String, ConsentState>,
    /// Purposes the subject objected to.
    #[serde(default)]
    pub objections: Vec<String>,
    /// What the vault knows of the subject's age.
    #[serde(default)]
    pub age: AgeStatus,
    /// A guardian's consents per purpose (for a minor).
    #[serde(default)]
    pub guardian_consents: BTreeMap<String, ConsentState>,
}

/// A whole export document (what [`Vault::import`] reads). Its `Debug` redacts the subject
/// identifier and the payloads, names holds by id and redacts disclosures' free text.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportDocument {
    /// Always [`FORMAT`].
    pub format: String,
    /// The document version.
    pub version: u32,
    /// When it was written.
    pub exported_at: Timestamp,
    /// The subject's identifier.
    pub subject_id: String,
    /// The subject's state.
    pub subject: ExportSubject,
    /// Holds (with their reasons).
    pub holds: Vec<Hold>,
    /// Disclosures.
    pub disclosures: Vec<Disclosure>,
    /// Every readable record.
    pub records: Vec<ExportRecord>,
}

impl fmt::Debug for ExportPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportPayload::Text(t) => f.debug_tuple("Text").field(&Redacted(t.len())).finish(),
            ExportPayload::Base64(b) => f.debug_tuple("Base64").field(&Redacted(b.len())).finish(),
            ExportPayload::Withheld => f.write_str("Withheld"),
        }
    }
}

impl fmt::Debug for ExportRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportRecord")
            .field("record", &self.record)
            .field("category", &self.category)
            .field("fideslang", &self.fideslang)
            .field("purposes", &self.purposes)
            .field("basis", &self.basis)
            .field("source", &self.source)
            .field("collected_at", &self.collected_at)
            .field("version", &self.version)
            .field("updated_at", &self.updated_at)
            .field("expires_at", &self.expires_at)
            .field("retained_until", &self.retained_until)
            .field("payload", &self.payload)
            .finish()
    }
}

impl fmt::Debug for ExportSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let consents: BTreeMap<&str, bool> = self
            .consents
            .iter()
            .map(|(p, c)| (p.as_str(), c.granted))
            .collect();
        f.debug_struct("ExportSubject")
            .field("created_at", &self.created_at)
            .field("pending_erasure", &self.pending_erasure)
            .field("events", &self.events)
            .field("restricted", &self.restricted)
            .field("restricted_categories", &self.restricted_categories)
            .field("consents", &consents)
            .field("objections", &self.objections)
            .field("age", &self.age)
            .field(
                "guardian_consents",
                &self
                    .guardian_consents
                    .iter()
                    .map(|(p, c)| (p.as_str(), c.granted))
                    .collect::<BTreeMap<_, _>>(),
            )
            .finish()
    }
}

impl fmt::Debug for ExportDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let holds: Vec<_> = self.holds.iter().map(|h| h.id).collect();
        f.debug_struct("ExportDocument")
            .field("format", &self.format)
            .field("version", &self.version)
            .field("exported_at", &self.exported_at)
            .field("subject_id", &Redacted(self.subject_id.len()))
            .field("subject", &self.subject)
            .field("holds", &holds)
            .field("disclosures", &self.disclosures)
            .field("records", &self.records)
            .finish()
    }
}

/// What an import did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Records imported.
    pub records: usize,
}

fn json_err(e: serde_json::Error) -> crate::Error {
    crate::Error::Storage(crate::StorageError::Io(std::io::Error::other(e)))
}

impl Vault {
    /// Writes everything held about a subject to `out` as one JSON document, record by record.
    /// A credential is listed with its metadata only (`"payload": "withheld"`).
    /// Closes the subject's open access and portability requests. Where the policy requires the
    /// requester's identity verified before one of those is answered, an open one not yet
    /// verified refuses the export before anything is written, naming the request
    /// ([`RequestError::IdentityNotVerified`](crate::RequestError)).
    pub fn export(&self, subject: &SubjectId, out: &mut dyn Write) -> Result<u64> {
        self.operation("export", || {
            // What was written out cannot be taken back: on a shared store, no destruction runs in
            // any process until the export ends.
            let _no_destruction = self.shared_lock(
                crate::storage::engine::SharedLock::Destruction,
                crate::storage::engine::LockMode::Shared,
            )?;
            let ident = self.find(subject)?.subject;
            let answers = [RequestKind::Access, RequestKind::Portability];
            self.check_answerable(&ident, &answers)?;
            let state = self.state(&ident)?;
            let policy = self.policy();
            let head = ExportHead {
                format: FORMAT,
                version: VERSION,
                exported_at: self.now(),
                subject_id: subject_str(subject),
                subject: ExportSubject {
                    created_at: state.created_at,
                    pending_erasure: state.pending_erasure,
                    events: state.events.clone(),
                    restricted: state.restricted,
                    restricted_categories: state.restricted_categories.iter().cloned().collect(),
                    consents: state.consents.clone(),
                    objections: state.objections.iter().cloned().collect(),
                    age: state.age,
                    guardian_consents: state.guardian_consents.clone(),
                },
                holds: self.holds(Some(subject))?,
                disclosures: self.disclosures_of(&ident)?,
            };
            let head_json = serde_json::to_string(&head).map_err(json_err)?;
            // Open the object, write the head's fields, then stream the records array.
            out.write_all(&head_json.as_bytes()[..head_json.len() - 1])?;
            out.write_all(b",\"records\":[")?;
            let mut n = 0u64;
            let written = self
                .write_records(&ident, &state, policy.as_deref(), out, &mut n)
                .and_then(|()| {
                    out.write_all(b"]}\n")?;
                    Ok(out.flush()?)
                });
            if let Err(e) = written {
                // What was written (the head at least) has left the vault: the trail says so
                // (buffered, for the next commit), and the requests stay open.
                self.inner.trail.defer_read(
                    self.draft(AuditOp::Export)
                        .subject(ident)
                        .note(format!("{n} records; interrupted")),
                );
                return Err(e);
            }
            // A request opened meanwhile and not verified stays open: this export was no answer to it.
            let _g = self.lock_subject(&ident)?;
            let mut txn = Txn::new();
            self.close_requests_in(&mut txn, &ident, &answers)?;
            let d = self
                .draft(AuditOp::Export)
                .subject(ident)
                .note(format!("{n} records"));
            self.commit(txn, vec![d])?;
            Ok(n)
        })
    }

    /// Writes the records of an export, `n` counting those written.
    fn write_records(
        &self,
        ident: &SubjectRef,
        state: &SubjectState,
        policy: Option<&Policy>,
        out: &mut dyn Write,
        n: &mut u64,
    ) -> Result<()> {
        let destroyed = self.destroyed_groups(ident)?;
        // Through the member chunks and a point read per record, in the rows' order: sled 0.34
        // keeps the pages a range read reads, whatever its cache bound, while point reads stay
        // within it (an export in windows of 256-record range reads peaked at 54 MB for 100,000
        // records, against 26 MB by point reads).
        for (category, generation, id) in
            self.store().members(&layout::members_of_subject(ident))?
        {
            if destroyed.contains(&(category, generation)) {
                continue;
            }
            let Some(stored) = self
                .store()
                .get_with(&layout::record(ident, &id), StoredRecord::decode)?
            else {
                continue;
            };
            let Some(key) = self.keys().data_key_gen(
                self.store(),
                ident,
                stored.head.meta.category.name(),
                stored.head.key_gen,
            )?
            else {
                continue;
            };
            // A credential is shown to exist, its hash is not decrypted.
            let payload = if stored.head.meta.category == Category::Credential {
                ExportPayload::Withheld
            } else {
                ExportPayload::from_bytes(self.open_record(&key, ident, id, &stored)?)
            };
            let e = stored.head;
            let rec = ExportRecord {
                record: id,
                fideslang: e.meta.category.fideslang_key().map(str::to_owned),
                expires_at: policy.as_ref().and_then(|p| {
                    p.expires_at(&e.meta.category, e.meta.collected_at, &state.events)
                }),
                retained_until: policy.as_ref().and_then(|p| {
                    p.retained_until(&e.meta.category, e.meta.collected_at, &state.events)
                }),
                category: e.meta.category,
                purposes: e.meta.purposes,
                basis: e.meta.basis,
                source: e.meta.source,
                collected_at: e.meta.collected_at,
                version: e.version,
                updated_at: e.updated_at,
                payload,
            };
            if *n > 0 {
                out.write_all(b",")?;
            }
            serde_json::to_writer(&mut *out, &rec).map_err(json_err)?;
            *n += 1;
        }
        Ok(())
    }

    /// Reads an export document and files its records (same ids, metadata and versions), consents,
    /// events and restrictions under its subject identifier in this vault. A document with a
    /// credential record is refused ([`InputError::CredentialWrite`]): an export carries no
    /// credential's hash, and a credential is written only with [`Vault::set_credential`].
    ///
    /// The whole document is checked before anything is written, as the API checks what it is
    /// given (see `check_document`); a document it refuses leaves the vault as it was. Record
    /// ids must be unique in the document and new to the subject in this vault. Holds and
    /// disclosures are checked but not imported.
    pub fn import(&self, input: &mut dyn Read) -> Result<ImportReport> {
        self.operation("import", || {
            let doc: ExportDocument = serde_json::from_reader(input)
                .map_err(|e| InputError::Document(crate::error::json_error(&e)))?;
            let doc = check_document(doc, |c| self.known_category(c), self.now())?;
            // Ids new to the subject in this vault (a read: nothing is written before this passes).
            if let Some(existing) = self.keys().find_subject(self.store(), &doc.subject)? {
                for (id, ..) in &doc.records {
                    if self
                        .store()
                        .contains(&layout::record(&existing.subject, id))?
                    {
                        return Err(InputError::Document(format!(
                            "record {id} already exists in this vault"
                        ))
                        .into());
                    }
                }
            }
            let batch: Vec<_> = doc
                .records
                .iter()
                .map(|(id, v, m, p)| (&doc.subject, *id, *v, m.clone(), p.as_slice()))
                .collect();
            let n = batch.len();
            let ident = self.find_or_create(&doc.subject)?;
            self.insert_many(batch, AuditOp::Import)?;
            {
                let _g = self.lock_subject(&ident)?;
                let mut state = self.state_to_change(&ident)?;
                state.events.extend(doc.events);
                state.consents.extend(doc.consents);
                state.guardian_consents.extend(doc.guardian_consents);
                state.objections.extend(doc.objections);
                if doc.age != AgeStatus::Unknown {
                    state.age = doc.age;
                }
                state.restricted |= doc.restricted;
                state
                    .restricted_categories
                    .extend(doc.restricted_categories);
                let mut txn = Txn::new();
                txn.put(layout::subject(&ident), &state);
                self.commit(
                    txn,
                    vec![
                        self.draft(AuditOp::Import)
                            .subject(ident)
                            .note(format!("{n} records")),
                    ],
                )?;
            }
            Ok(ImportReport { records: n })
        })
    }
}

/// What an import files, checked.
struct CheckedDocument {
    subject: SubjectId,
    records: Vec<(RecordId, u32, RecordMeta, Vec<u8>)>,
    events: BTreeMap<String, Timestamp>,
    consents: BTreeMap<String, ConsentState>,
    guardian_consents: BTreeMap<String, ConsentState>,
    objections: Vec<String>,
    age: AgeStatus,
    restricted: bool,
    restricted_categories: Vec<String>,
}

/// Names an entry of a document in an error (a key from the document is quoted, escaped and cut).
fn entry_err(entry: impl Into<String>) -> impl FnOnce(InputError) -> InputError {
    let entry = entry.into();
    move |e| InputError::DocumentEntry {
        entry,
        error: Box::new(e),
    }
}

fn quoted(key: &str) -> String {
    format!("{:?}", key.chars().take(40).collect::<String>())
}

/// Checks every field of an export document as the API call that would write it checks it:
/// the format and version; the subject identifier ([`SubjectId::new`]); event kinds
/// ([`EventKind`]); consent purposes ([`Purpose::new`]) and policy versions (as
/// [`Vault::grant_consent`]); restricted categories (as [`Vault::restrict`]); each record's id
/// (unique in the document), category (kebab-case and known to the vault: `known`), fideslang
/// key (the category's), purposes (at most 64, no repeats), source, collection time (not after
/// `now`, the vault clock's time), version (from 1, below `u32::MAX` so that it can still be
/// updated) and payload (base64 where marked, at most [`crate::MAX_PAYLOAD_LEN`] bytes); holds
/// (reference, actors, category) and disclosures (recipient, ground, categories) as placing and
/// recording them would.
fn check_document(
    doc: ExportDocument,
    known: impl Fn(&Category) -> Result<()>,
    now: Timestamp,
) -> Result<CheckedDocument> {
    // The API's errors, unwrapped to the input error they carry.
    let known = |c: &Category| -> Result<(), InputError> {
        match known(c) {
            Ok(()) => Ok(()),
            Err(crate::Error::Input(e)) => Err(e),
            Err(e) => Err(InputError::Document(e.to_string())),
        }
    };
    if doc.format != FORMAT {
        return Err(InputError::Document(format!(
            "format is {:?}, expected {FORMAT:?}",
            doc.format.chars().take(40).collect::<String>()
        ))
        .into());
    }
    if doc.version == 0 || doc.version > VERSION {
        return Err(InputError::Document(format!(
            "document version {} is not one this build reads (1 to {VERSION})",
            doc.version
        ))
        .into());
    }
    let subject = SubjectId::new(doc.subject_id).map_err(entry_err("subject_id"))?;
    let s = doc.subject;
    for kind in s.events.keys() {
        kind.parse::<EventKind>()
            .map_err(entry_err(format!("subject.events {}", quoted(kind))))?;
    }
    for (field, consents) in [
        ("consents", &s.consents),
        ("guardian_consents", &s.guardian_consents),
    ] {
        for (purpose, consent) in consents {
            let entry = || format!("subject.{field} {}", quoted(purpose));
            Purpose::new(purpose.as_str()).map_err(entry_err(entry()))?;
            check_text("policy version", &consent.policy_version).map_err(entry_err(entry()))?;
        }
    }
    for (i, purpose) in s.objections.iter().enumerate() {
        Purpose::new(purpose.as_str()).map_err(entry_err(format!("subject.objections[{i}]")))?;
    }
    for (i, name) in s.restricted_categories.iter().enumerate() {
        let entry = || format!("subject.restricted_categories[{i}]");
        let c: Category = name.parse().map_err(entry_err(entry()))?;
        known(&c).map_err(entry_err(entry()))?;
    }
    for (i, h) in doc.holds.iter().enumerate() {
        let entry = || format!("holds[{i}]");
        if let Some(r) = &h.reference {
            check_text("reference", r).map_err(entry_err(entry()))?;
        }
        check_text("actor", &h.placed_by).map_err(entry_err(entry()))?;
        if let Some(r) = &h.released {
            check_text("actor", &r.by).map_err(entry_err(entry()))?;
        }
        if let HoldScope::Category(c) = &h.scope {
            known(c).map_err(entry_err(entry()))?;
        }
    }
    for (i, d) in doc.disclosures.iter().enumerate() {
        let entry = || format!("disclosures[{i}]");
        check_text("recipient", &d.recipient).map_err(entry_err(entry()))?;
        if let Some(g) = &d.ground {
            check_text("ground", g).map_err(entry_err(entry()))?;
        }
        for c in &d.categories {
            known(c).map_err(entry_err(entry()))?;
        }
    }
    let mut ids = HashSet::with_capacity(doc.records.len());
    let mut records = Vec::with_capacity(doc.records.len());
    for (i, r) in doc.records.into_iter().enumerate() {
        let entry = || format!("records[{i}] (record {})", r.record);
        let refuse = |why: &'static str| InputError::DocumentEntry {
            entry: entry(),
            error: Box::new(InputError::Document(why.to_owned())),
        };
        if !ids.insert(r.record) {
            return Err(refuse("the record id appears twice in the document").into());
        }
        if r.category == Category::Credential {
            return Err(entry_err(entry())(InputError::CredentialWrite).into());
        }
        known(&r.category).map_err(entry_err(entry()))?;
        if r.fideslang.is_some() && r.fideslang.as_deref() != r.category.fideslang_key() {
            return Err(refuse("the fideslang key is not the category's").into());
        }
        if r.version == 0 || r.version == u32::MAX {
            return Err(refuse(
                "the version is 0 or 4294967295 (versions start at 1 and must leave room for an update)",
            )
            .into());
        }
        let mut seen = HashSet::with_capacity(r.purposes.len());
        if !r.purposes.iter().all(|p| seen.insert(p)) {
            return Err(refuse("a purpose is listed twice").into());
        }
        let meta = RecordMeta {
            category: r.category,
            purposes: r.purposes,
            basis: r.basis,
            source: r.source,
            collected_at: r.collected_at,
            collected_at_unset: false,
        };
        meta.validate(now).map_err(entry_err(entry()))?;
        let payload = r.payload.into_bytes().map_err(entry_err(entry()))?;
        if payload.len() > crate::MAX_PAYLOAD_LEN {
            return Err(entry_err(entry())(InputError::PayloadTooLarge {
                len: payload.len(),
                max: crate::MAX_PAYLOAD_LEN,
            })
            .into());
        }
        records.push((r.record, r.version, meta, payload));
    }
    Ok(CheckedDocument {
        subject,
        records,
        events: s.events,
        consents: s.consents,
        guardian_consents: s.guardian_consents,
        objections: s.objections,
        age: s.age,
        restricted: s.restricted,
        restricted_categories: s.restricted_categories,
    })
}

fn subject_str(s: &SubjectId) -> String {
    String::from_utf8_lossy(s.as_bytes()).into_owned()
}

#[derive(Serialize)]
struct ExportHead<'a> {
    format: &'a str,
    version: u32,
    exported_at: Timestamp,
    subject_id: String,
    subject: ExportSubject,
    holds: Vec<Hold>,
    disclosures: Vec<Disclosure>,
}
