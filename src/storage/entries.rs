//! Stored entries that belong to no other module: records, wrapped keys, index entries, subject
//! state, the ratchet journal and the manifest.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::StorageError;
use crate::model::{Category, LegalBasis, Purpose, RecordMeta};
use crate::storage::codec;

/// A record: its metadata in the clear (authenticated as associated data of the payload) and
/// its sealed payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RecordEntry {
    pub(crate) meta: RecordMeta,
    pub(crate) version: u32,
    pub(crate) key_gen: u32,
    #[serde(with = "crate::storage::timestamp")]
    pub(crate) updated_at: Timestamp,
    #[serde(with = "serde_bytes")]
    pub(crate) sealed: Vec<u8>,
}

/// The fields of a [`RecordEntry`] after its metadata, in order, the sealed payload borrowed: a
/// stored record encodes as its [`RecordMeta`]'s fields, then these.
#[derive(Serialize)]
struct RecordTail<'a> {
    version: u32,
    key_gen: u32,
    #[serde(with = "crate::storage::timestamp")]
    updated_at: Timestamp,
    #[serde(serialize_with = "serde_bytes::serialize")]
    sealed: &'a [u8],
}

/// A record encoded for storage (the bytes its [`RecordEntry`] encodes to), with its metadata.
pub(crate) struct EncodedRecord {
    pub(crate) meta: RecordMeta,
    pub(crate) bytes: Vec<u8>,
}

/// Encodes a record whose payload `seal` seals (`sealed_len` bytes), given the stored bytes of
/// its metadata, which its associated data binds: the metadata is encoded once, and the whole
/// record is written into one buffer of the size it takes.
pub(crate) fn encode_record(
    meta: RecordMeta,
    version: u32,
    key_gen: u32,
    updated_at: Timestamp,
    sealed_len: usize,
    seal: impl FnOnce(&[u8]) -> Vec<u8>,
) -> EncodedRecord {
    // The metadata's names and times, and the tail's numbers and length: generous, a guess.
    const FIELDS_LEN: usize = 256;
    let mut bytes = codec::encode_with_capacity(&meta, FIELDS_LEN + sealed_len);
    let sealed = seal(&bytes);
    codec::encode_fields_onto(
        &RecordTail {
            version,
            key_gen,
            updated_at,
            sealed: &sealed,
        },
        &mut bytes,
    );
    EncodedRecord { meta, bytes }
}

/// A record's fields but its sealed payload.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RecordHead {
    pub(crate) meta: RecordMeta,
    pub(crate) version: u32,
    pub(crate) key_gen: u32,
    pub(crate) updated_at: Timestamp,
}

/// A stored record as a read decodes it: its fields, and the stored bytes that its metadata's
/// bytes (which its payload's associated data binds) and its sealed payload are read from where
/// they lie. A read copies neither.
pub(crate) struct StoredRecord {
    pub(crate) head: RecordHead,
    /// The metadata's bytes at `..meta_len`, the sealed payload at `sealed_at..` (the end).
    raw: Vec<u8>,
    meta_len: usize,
    sealed_at: usize,
}

impl StoredRecord {
    /// An entry made or decoded elsewhere: its metadata is encoded again, as it is stored.
    pub(crate) fn from_entry(entry: RecordEntry) -> Self {
        let mut raw = codec::encode_with_capacity(&entry.meta, entry.sealed.len());
        let meta_len = raw.len();
        raw.extend_from_slice(&entry.sealed);
        StoredRecord {
            head: RecordHead {
                meta: entry.meta,
                version: entry.version,
                key_gen: entry.key_gen,
                updated_at: entry.updated_at,
            },
            raw,
            meta_len,
            sealed_at: meta_len,
        }
    }

    /// Decodes a stored record, keeping the stored bytes of its metadata instead of encoding it
    /// again. Those bytes are what [`StoredRecord::from_entry`] encodes for any record this code
    /// wrote; bytes that decode to the same metadata but differ (altered on disk) are other
    /// associated data, and the payload does not open. The metadata's bytes and the sealed
    /// payload (the last field) stay in `raw`'s buffer.
    ///
    /// Read field by field ([`codec::FieldReader`]), not through serde (a get's and a scanned
    /// record's largest cost after the cipher and the store): it accepts exactly what decoding a
    /// [`RecordEntry`] accepts, and gives the same entry (`__fuzz::record_entry` and the tests
    /// below check it).
    pub(crate) fn decode(raw: Vec<u8>) -> Result<Self, StorageError> {
        let malformed = || StorageError::Malformed("record");
        let mut r = codec::FieldReader::new(&raw, "record")?;
        let meta = read_meta(&mut r).ok_or_else(malformed)?;
        let meta_len = raw.len() - r.remaining();
        let (Some(version), Some(key_gen), Some(updated_at), Some(sealed)) =
            (r.u32(), r.u32(), r.timestamp(), r.bytes())
        else {
            return Err(malformed());
        };
        if r.remaining() != 0 {
            return Err(malformed());
        }
        // Every byte was read: the sealed payload ends the buffer.
        let sealed_at = raw.len() - sealed.len();
        Ok(StoredRecord {
            head: RecordHead {
                meta,
                version,
                key_gen,
                updated_at,
            },
            raw,
            meta_len,
            sealed_at,
        })
    }

    /// The stored bytes of the metadata.
    pub(crate) fn meta_bytes(&self) -> &[u8] {
        &self.raw[..self.meta_len]
    }

    /// The sealed payload.
    pub(crate) fn sealed(&self) -> &[u8] {
        &self.raw[self.sealed_at..]
    }

    /// The fields, and the buffer the sealed payload ends, with where it starts in it (for
    /// opening it in place).
    pub(crate) fn into_parts(self) -> (RecordHead, Vec<u8>, usize) {
        (self.head, self.raw, self.sealed_at)
    }

    /// The entry this record decodes to.
    pub(crate) fn into_entry(self) -> RecordEntry {
        let (head, mut raw, sealed_at) = self.into_parts();
        raw.drain(..sealed_at);
        RecordEntry {
            meta: head.meta,
            version: head.version,
            key_gen: head.key_gen,
            updated_at: head.updated_at,
            sealed: raw,
        }
    }
}

/// A record's metadata, its fields in the order [`RecordMeta`] declares (and serde encodes)
/// them, each checked as its `Deserialize` checks it.
fn read_meta(r: &mut codec::FieldReader<'_>) -> Option<RecordMeta> {
    let category = Category::from_stored(r.bytes()?)?;
    let count = r.u64()?;
    // Each purpose takes at least a byte: the count cannot run past the input.
    let mut purposes = Vec::with_capacity(count.min(4) as usize);
    for _ in 0..count {
        purposes.push(read_purpose(r.bytes()?)?);
    }
    let basis = *LegalBasis::ALL.get(usize::try_from(r.u32()?).ok()?)?;
    let source = match r.option()? {
        true => Some(r.str()?.to_owned()),
        false => None,
    };
    Some(RecordMeta {
        category,
        purposes,
        basis,
        source,
        collected_at: r.timestamp()?,
        collected_at_unset: false,
    })
}

/// How many purposes a thread keeps of those it read last ([`read_purpose`]).
const RECENT_PURPOSES: usize = 16;

/// The purpose named by stored bytes, if they name one (what reading a string and
/// [`Purpose::new`] accept). A vault's records name a few purposes, read again and again: the
/// last ones this thread read are kept, and a name read again is matched by its bytes and shared
/// (not checked, nor copied, again). A name is not personal data: a record's metadata must hold
/// none.
fn read_purpose(name: &[u8]) -> Option<Purpose> {
    thread_local! {
        static RECENT: std::cell::RefCell<Vec<Purpose>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    RECENT.with_borrow_mut(|recent| {
        if let Some(p) = recent.iter().find(|p| p.as_str().as_bytes() == name) {
            return Some(p.clone());
        }
        let purpose = Purpose::new(std::str::from_utf8(name).ok()?).ok()?;
        if recent.len() == RECENT_PURPOSES {
            recent.remove(0);
        }
        recent.push(purpose.clone());
        Some(purpose)
    })
}

/// A data or identity key, sealed under its shard key of generation `shard_gen`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct WrappedKey {
    pub(crate) shard_gen: u64,
    #[serde(with = "serde_bytes")]
    pub(crate) sealed: Vec<u8>,
}

/// A blind-index entry, at an address keyed under its shard's key: the subject reference, sealed
/// under the subject's identity key, and the blind index itself wrapped under the shard key (a
/// ratchet of the shard re-addresses the entry from it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct IndexEntry {
    #[serde(with = "serde_bytes")]
    pub(crate) sealed_ref: Vec<u8>,
    pub(crate) wrapped_blind: WrappedKey,
}

/// A subject's consent for one purpose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentState {
    /// Granted (`true`) or withdrawn (`false`).
    pub granted: bool,
    /// When it was last granted or withdrawn.
    #[serde(with = "crate::storage::timestamp")]
    pub at: Timestamp,
    /// The version of the privacy policy it was given under.
    pub policy_version: String,
}

/// What the vault keeps about a subject, under its random reference. No identifier, no payload.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub(crate) struct SubjectState {
    #[serde(with = "crate::storage::timestamp::option")]
    pub(crate) created_at: Option<Timestamp>,
    /// The subject's blind index, sealed under its subject key: lets the sweep finish an
    /// erasure, and is unreadable once the subject key is destroyed.
    #[serde(with = "serde_bytes")]
    pub(crate) sealed_blind: Vec<u8>,
    /// Set when an erasure of the whole subject is pending (some records are retained).
    #[serde(with = "crate::storage::timestamp::option")]
    pub(crate) pending_erasure: Option<Timestamp>,
    /// Anchor events (kebab-case kind → when).
    pub(crate) events: BTreeMap<String, Timestamp>,
    /// Processing restricted for the whole subject.
    pub(crate) restricted: bool,
    /// Processing restricted for these categories.
    pub(crate) restricted_categories: BTreeSet<String>,
    /// Consent per purpose.
    pub(crate) consents: BTreeMap<String, ConsentState>,
    /// The next key generation of each category: generations are never reused.
    pub(crate) next_generation: BTreeMap<String, u32>,
    /// Purposes the subject objected to (records on legitimate interests or a public task are
    /// not read for them).
    pub(crate) objections: BTreeSet<String>,
    /// Whether the subject is known to be a minor.
    pub(crate) age: AgeStatus,
    /// A guardian's consent per purpose (for a minor).
    pub(crate) guardian_consents: BTreeMap<String, ConsentState>,
}

/// What the vault knows of a subject's age.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AgeStatus {
    /// Not known.
    #[default]
    Unknown,
    /// A minor.
    Minor,
    /// An adult.
    Adult,
}

impl AgeStatus {
    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            AgeStatus::Unknown => "unknown",
            AgeStatus::Minor => "minor",
            AgeStatus::Adult => "adult",
        }
    }
}

impl std::str::FromStr for AgeStatus {
    type Err = crate::error::InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "unknown" => Ok(AgeStatus::Unknown),
            "minor" => Ok(AgeStatus::Minor),
            "adult" => Ok(AgeStatus::Adult),
            _ => Err(crate::error::InputError::Field {
                field: "age status",
                why: "expected minor, adult or unknown",
            }),
        }
    }
}

/// A pending shard-key replacement: the next key, sealed under the current one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct JournalEntry {
    pub(crate) next_gen: u64,
    #[serde(with = "serde_bytes")]
    pub(crate) sealed_next: Vec<u8>,
}

/// The store's own check: how many entries it holds and a keyed multiset hash of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// Commits applied since the vault was created.
    pub(crate) seq: u64,
    /// Entries in the store (the manifest itself excluded).
    pub(crate) entries: u64,
    /// XOR of the keyed hash of every (key, value).
    #[serde(with = "serde_bytes")]
    pub(crate) acc: [u8; 32],
}

/// Why a record is in the due index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum DueKind {
    /// Its maximum retention ends.
    Expiry,
    /// An erasure is pending and its minimum retention ends (or a hold may have been released).
    PendingErasure,
    /// The subject's last record was destroyed by the sweep and its state was kept for the span
    /// the policy states: finish the subject then, if it still holds nothing. The entry's record
    /// id is all zeros.
    FinishSubject,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Category, LegalBasis, Purpose};

    /// A stored record decodes, field by field, to the entry that was encoded, with its
    /// metadata's own encoding.
    #[test]
    fn a_stored_record_decodes_to_its_entry_and_metadata_bytes() {
        let at = Timestamp::from_second(1_700_000_000).unwrap();
        let metas = [
            RecordMeta::new(Category::Contact).collected_at(at),
            RecordMeta::new(Category::custom("loyalty-tier").unwrap())
                .purpose(Purpose::new("billing").unwrap())
                .purpose(Purpose::new("support").unwrap())
                .basis(LegalBasis::Consent)
                .source("signup-form")
                .collected_at(at),
        ];
        for meta in metas {
            let entry = RecordEntry {
                meta,
                version: 7,
                key_gen: 300,
                updated_at: at,
                sealed: vec![9; 70],
            };
            let stored = StoredRecord::decode(codec::encode(&entry)).unwrap();
            assert_eq!(stored.sealed(), &entry.sealed[..]);
            // Encoded in one pass, the same bytes, sealed over the same digest.
            let one_pass = encode_record(entry.meta.clone(), 7, 300, at, 70, |meta_bytes| {
                assert_eq!(meta_bytes, codec::encode(&entry.meta));
                vec![9; 70]
            });
            assert_eq!(one_pass.bytes, codec::encode(&entry));
            assert_eq!(one_pass.meta, entry.meta);
            assert_eq!(stored.meta_bytes(), codec::encode(&entry.meta));
            let made = StoredRecord::from_entry(entry.clone());
            assert_eq!(stored.meta_bytes(), made.meta_bytes());
            assert_eq!(stored.sealed(), made.sealed());
            assert_eq!(stored.into_entry(), entry);
            assert_eq!(made.into_entry(), entry);
        }
    }
}
