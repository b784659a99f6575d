//! The key layout: every key starts with a one-byte table tag. Multi-byte numbers are big-endian
//! so that keys sort by them; timestamps are shifted to sort as unsigned.

use jiff::Timestamp;

use crate::ids::{HoldId, RecordId, RequestId, SubjectRef};
use crate::storage::members::ChunkId;

/// The tables of the key space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Table {
    /// Named singletons: manifest, policy, audit head, ratchet journal.
    Meta = 0,
    /// Blind index → sealed subject reference.
    Index = 1,
    /// Subject reference → subject state.
    Subject = 2,
    /// Subject reference ‖ record id → record.
    Record = 3,
    /// Shard ‖ kind ‖ owner → wrapped key.
    Key = 4,
    /// Due time ‖ subject reference ‖ record id → due kind.
    Due = 5,
    /// Hold id → hold.
    Hold = 6,
    /// Subject reference ‖ hold id → ().
    SubjectHold = 7,
    /// Sequence → erasure-ledger entry.
    Ledger = 8,
    /// Sequence → audit entry.
    Audit = 9,
    /// Subject reference ‖ category ‖ key generation → () (rows awaiting reclamation).
    Reclaim = 10,
    /// Request id → data-subject request.
    Request = 11,
    /// Subject reference ‖ sequence → disclosure.
    Disclosure = 12,
    /// Subject reference ‖ category ‖ key generation ‖ chunk id → record ids (the records of
    /// a key group, in chunks: [`members`](super::members)).
    Member = 13,
}

impl Table {
    pub(crate) const ALL: [Table; 14] = [
        Table::Meta,
        Table::Index,
        Table::Subject,
        Table::Record,
        Table::Key,
        Table::Due,
        Table::Hold,
        Table::SubjectHold,
        Table::Ledger,
        Table::Audit,
        Table::Reclaim,
        Table::Request,
        Table::Disclosure,
        Table::Member,
    ];

    pub(crate) fn from_byte(b: u8) -> Option<Table> {
        Table::ALL.into_iter().find(|t| *t as u8 == b)
    }
}

/// A key under construction.
pub(crate) struct KeyBuf(Vec<u8>);

impl KeyBuf {
    pub(crate) fn new(t: Table) -> Self {
        let mut v = Vec::with_capacity(48);
        v.push(t as u8);
        KeyBuf(v)
    }
    pub(crate) fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    /// A length-prefixed string (so that a shorter name is never a prefix of a longer one's key).
    pub(crate) fn name(mut self, s: &str) -> Self {
        let b = s.as_bytes();
        self.0.push(b.len().min(255) as u8);
        self.0.extend_from_slice(&b[..b.len().min(255)]);
        self
    }
    pub(crate) fn u16(self, n: u16) -> Self {
        self.bytes(&n.to_be_bytes())
    }
    pub(crate) fn u32(self, n: u32) -> Self {
        self.bytes(&n.to_be_bytes())
    }
    pub(crate) fn u64(self, n: u64) -> Self {
        self.bytes(&n.to_be_bytes())
    }
    pub(crate) fn time(self, t: Timestamp) -> Self {
        self.u64(time_to_key(t))
    }
    pub(crate) fn done(self) -> Vec<u8> {
        self.0
    }
}

pub(crate) fn time_to_key(t: Timestamp) -> u64 {
    (t.as_microsecond() as u64) ^ (1 << 63)
}

pub(crate) fn time_from_key(k: u64) -> Option<Timestamp> {
    Timestamp::from_microsecond((k ^ (1 << 63)) as i64).ok()
}

/// Meta singletons.
pub(crate) fn meta(name: &str) -> Vec<u8> {
    KeyBuf::new(Table::Meta).bytes(name.as_bytes()).done()
}
pub(crate) const MANIFEST: &str = "manifest";
pub(crate) const POLICY: &str = "policy";
pub(crate) const AUDIT_HEAD: &str = "audit-head";
pub(crate) const AUDIT_ANCHOR: &str = "audit-anchor";
pub(crate) const LEDGER_HEAD: &str = "ledger-head";
/// A shared store's vault file (the header and the sealed ring, encoded as the file is).
pub(crate) const VAULT_FILE: &str = "vault-file";
/// A shared store's generation: advanced by every destruction and every policy change.
pub(crate) const GENERATION: &str = "generation";

/// Chunk `c` of a shared store's key ring (its shard keys, sealed under the chunk's key, which
/// the vault file row holds). Under the vault file row's name, so that one scan of
/// `meta(VAULT_FILE)` reads the row and its chunks as one statement saw them.
pub(crate) fn ring_chunk(c: u16) -> Vec<u8> {
    KeyBuf::new(Table::Meta)
        .bytes(VAULT_FILE.as_bytes())
        .bytes(b"/chunk/")
        .u16(c)
        .done()
}

/// The row of a shared store's epoch key (`keysource::table`).
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn epoch_key(id: &[u8; 16]) -> Vec<u8> {
    KeyBuf::new(Table::Meta).name("epoch-key").bytes(id).done()
}
pub(crate) fn epoch_keys() -> Vec<u8> {
    KeyBuf::new(Table::Meta).name("epoch-key").done()
}
pub(crate) fn journal(shard: u16) -> Vec<u8> {
    KeyBuf::new(Table::Meta)
        .bytes(b"journal/")
        .u16(shard)
        .done()
}
/// A backup whose epoch key is in the vault's host key source, by epoch.
pub(crate) fn backup(epoch: &[u8; 16]) -> Vec<u8> {
    KeyBuf::new(Table::Meta)
        .bytes(b"backup/")
        .bytes(epoch)
        .done()
}
pub(crate) fn backups() -> Vec<u8> {
    KeyBuf::new(Table::Meta).bytes(b"backup/").done()
}
pub(crate) fn journal_prefix() -> Vec<u8> {
    KeyBuf::new(Table::Meta).bytes(b"journal/").done()
}

/// Where a subject's index entry and identity key are: the shard of its blind index, and an
/// address keyed under that shard's current key (the blind index itself is never stored in the
/// clear, so that a ratchet of the shard leaves stale copies unlinkable to any identifier).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexAddr {
    pub(crate) shard: u16,
    pub(crate) addr: [u8; 32],
}

pub(crate) fn index(a: &IndexAddr) -> Vec<u8> {
    KeyBuf::new(Table::Index).u16(a.shard).bytes(&a.addr).done()
}
pub(crate) fn index_of_shard(shard: u16) -> Vec<u8> {
    KeyBuf::new(Table::Index).u16(shard).done()
}
/// The address of an index-entry key.
pub(crate) fn parse_index(key: &[u8]) -> Option<IndexAddr> {
    if key.len() != 1 + 2 + 32 || key[0] != Table::Index as u8 {
        return None;
    }
    Some(IndexAddr {
        shard: u16::from_be_bytes([key[1], key[2]]),
        addr: key[3..].try_into().ok()?,
    })
}

pub(crate) fn subject(r: &SubjectRef) -> Vec<u8> {
    subject_key(r).to_vec()
}

/// [`subject`] on the stack, for a read (every access reads the subject's state).
pub(crate) fn subject_key(r: &SubjectRef) -> [u8; 17] {
    let mut k = [Table::Subject as u8; 17];
    k[1..].copy_from_slice(r.as_bytes());
    k
}

/// Whether the store caches the decoded entry at `key` ([`Store::get_shared`](super::Store)):
/// subject states, read by every access check.
pub(crate) fn is_cached(key: &[u8]) -> bool {
    key.first() == Some(&(Table::Subject as u8))
}

/// The bytes of the value at `key` that the store's manifest hashes with the key: the whole
/// value, or, for a row whose last bytes authenticate all of it under a key of the vault, those
/// bytes only. A record ends in its payload's tag, whose associated data binds every other field
/// ([`record_ad`](crate::vault::record_ad)); an audit block ends in its last entry's chain
/// value, which the chain binds every entry of the block to. A change to the rest of such a row is
/// found where `verify` opens the record or checks the chain; the manifest still finds a row
/// removed, added, replaced by another version or moved.
pub(crate) fn manifest_part<'v>(key: &[u8], value: &'v [u8]) -> &'v [u8] {
    let authenticating = match key.first().and_then(|b| Table::from_byte(*b)) {
        Some(Table::Record) => crate::crypto::TAG_LEN,
        Some(Table::Audit) => 32,
        _ => return value,
    };
    value
        .len()
        .checked_sub(authenticating)
        .map_or(value, |at| &value[at..])
}

pub(crate) fn record(r: &SubjectRef, id: &RecordId) -> Vec<u8> {
    record_key(r, id).to_vec()
}

/// [`record`] on the stack, for a read.
pub(crate) fn record_key(r: &SubjectRef, id: &RecordId) -> [u8; 33] {
    let mut k = [Table::Record as u8; 33];
    k[1..17].copy_from_slice(r.as_bytes());
    k[17..].copy_from_slice(id.as_bytes());
    k
}
pub(crate) fn records_of(r: &SubjectRef) -> Vec<u8> {
    KeyBuf::new(Table::Record).bytes(r.as_bytes()).done()
}
/// Splits a record key into its subject reference and record id.
pub(crate) fn parse_record(key: &[u8]) -> Option<(SubjectRef, RecordId)> {
    if key.len() != 33 || key[0] != Table::Record as u8 {
        return None;
    }
    Some((
        SubjectRef::from_slice(&key[1..17])?,
        RecordId::from_slice(&key[17..33])?,
    ))
}

/// Keys are sharded: the shard of a subject's keys comes from its reference, the shard of its
/// identity key from its blind index.
pub(crate) const SHARDS: u16 = 4096;

pub(crate) fn shard_of(bytes: &[u8]) -> u16 {
    (u16::from_be_bytes([bytes[0], bytes[1]])) % SHARDS
}

const KEY_IDENTITY: u8 = 0;
const KEY_DATA: u8 = 1;

pub(crate) fn identity_key(a: &IndexAddr) -> Vec<u8> {
    KeyBuf::new(Table::Key)
        .u16(a.shard)
        .bytes(&[KEY_IDENTITY])
        .bytes(&a.addr)
        .done()
}
pub(crate) fn data_key(r: &SubjectRef, category: &str, generation: u32) -> Vec<u8> {
    data_keys_of_group(r, category)
        .into_iter()
        .chain(generation.to_be_bytes())
        .collect()
}
pub(crate) fn data_keys_of_group(r: &SubjectRef, category: &str) -> Vec<u8> {
    KeyBuf::new(Table::Key)
        .u16(shard_of(r.as_bytes()))
        .bytes(&[KEY_DATA])
        .bytes(r.as_bytes())
        .name(category)
        .done()
}
pub(crate) fn data_keys_of_subject(r: &SubjectRef) -> Vec<u8> {
    KeyBuf::new(Table::Key)
        .u16(shard_of(r.as_bytes()))
        .bytes(&[KEY_DATA])
        .bytes(r.as_bytes())
        .done()
}
pub(crate) fn keys_of_shard(shard: u16) -> Vec<u8> {
    KeyBuf::new(Table::Key).u16(shard).done()
}
/// The category and generation of a data-key key.
pub(crate) fn parse_data_key(key: &[u8]) -> Option<(SubjectRef, String, u32)> {
    if key.len() < 1 + 2 + 1 + 16 + 1 + 4 || key[0] != Table::Key as u8 || key[3] != KEY_DATA {
        return None;
    }
    let r = SubjectRef::from_slice(&key[4..20])?;
    let n = key[20] as usize;
    if key.len() != 21 + n + 4 {
        return None;
    }
    let cat = std::str::from_utf8(&key[21..21 + n]).ok()?.to_owned();
    let generation = u32::from_be_bytes(key[21 + n..].try_into().ok()?);
    Some((r, cat, generation))
}

/// The length of a due-index key: table, time, subject, record.
pub(crate) const DUE_KEY_LEN: usize = 1 + 8 + 16 + 16;

pub(crate) fn due(at: Timestamp, r: &SubjectRef, id: &RecordId) -> Vec<u8> {
    KeyBuf::new(Table::Due)
        .time(at)
        .bytes(r.as_bytes())
        .bytes(id.as_bytes())
        .done()
}
pub(crate) fn due_until(at: Timestamp) -> (Vec<u8>, Vec<u8>) {
    (
        KeyBuf::new(Table::Due).done(),
        KeyBuf::new(Table::Due)
            .u64(time_to_key(at).saturating_add(1))
            .done(),
    )
}
pub(crate) fn parse_due(key: &[u8]) -> Option<(Timestamp, SubjectRef, RecordId)> {
    if key.len() != DUE_KEY_LEN || key[0] != Table::Due as u8 {
        return None;
    }
    let t = time_from_key(u64::from_be_bytes(key[1..9].try_into().ok()?))?;
    Some((
        t,
        SubjectRef::from_slice(&key[9..25])?,
        RecordId::from_slice(&key[25..41])?,
    ))
}

pub(crate) fn hold(id: &HoldId) -> Vec<u8> {
    KeyBuf::new(Table::Hold).bytes(id.as_bytes()).done()
}
pub(crate) fn subject_hold(r: &SubjectRef, id: &HoldId) -> Vec<u8> {
    KeyBuf::new(Table::SubjectHold)
        .bytes(r.as_bytes())
        .bytes(id.as_bytes())
        .done()
}
pub(crate) fn holds_of(r: &SubjectRef) -> Vec<u8> {
    KeyBuf::new(Table::SubjectHold).bytes(r.as_bytes()).done()
}
pub(crate) fn parse_subject_hold(key: &[u8]) -> Option<HoldId> {
    if key.len() != 1 + 16 + 8 {
        return None;
    }
    HoldId::from_slice(&key[17..])
}

pub(crate) fn ledger(seq: u64) -> Vec<u8> {
    KeyBuf::new(Table::Ledger).u64(seq).done()
}
pub(crate) fn audit(seq: u64) -> Vec<u8> {
    KeyBuf::new(Table::Audit).u64(seq).done()
}
/// An audit block of one process's chain in a shared store.
pub(crate) fn audit_in(chain: Option<u64>, seq: u64) -> Vec<u8> {
    match chain {
        None => audit(seq),
        Some(c) => KeyBuf::new(Table::Audit).u64(c).u64(seq).done(),
    }
}
/// Every audit block of a chain (`None`: the one chain of a store one process owns, which is the
/// whole table).
pub(crate) fn audit_chain(chain: Option<u64>) -> Vec<u8> {
    match chain {
        None => table(Table::Audit),
        Some(c) => KeyBuf::new(Table::Audit).u64(c).done(),
    }
}
/// The position of an audit block's key (of either shape).
pub(crate) fn parse_audit_seq(key: &[u8]) -> Option<u64> {
    match key.len() {
        9 => parse_seq(key),
        17 => Some(u64::from_be_bytes(key[9..17].try_into().ok()?)),
        _ => None,
    }
}
/// The head of a chain.
pub(crate) fn audit_head(chain: Option<u64>) -> Vec<u8> {
    match chain {
        None => meta(AUDIT_HEAD),
        Some(c) => meta(&format!("{AUDIT_HEAD}/{c:016x}")),
    }
}
/// The pruning anchor of a chain.
pub(crate) fn audit_anchor(chain: Option<u64>) -> Vec<u8> {
    match chain {
        None => meta(AUDIT_ANCHOR),
        Some(c) => meta(&format!("{AUDIT_ANCHOR}/{c:016x}")),
    }
}
/// Where a chain started: the head of the chain before it, keyed.
pub(crate) fn audit_chain_anchor(chain: u64) -> Vec<u8> {
    meta(&format!("audit-chain-anchor/{chain:016x}"))
}
/// How many chains a shared store's trail has.
pub(crate) const AUDIT_CHAINS: &str = "audit-chains";
pub(crate) fn parse_seq(key: &[u8]) -> Option<u64> {
    if key.len() != 9 {
        return None;
    }
    Some(u64::from_be_bytes(key[1..9].try_into().ok()?))
}

pub(crate) fn reclaim(r: &SubjectRef, category: &str, generation: u32) -> Vec<u8> {
    KeyBuf::new(Table::Reclaim)
        .bytes(r.as_bytes())
        .name(category)
        .u32(generation)
        .done()
}
pub(crate) fn parse_reclaim(key: &[u8]) -> Option<(SubjectRef, String, u32)> {
    if key.len() < 1 + 16 + 1 + 4 || key[0] != Table::Reclaim as u8 {
        return None;
    }
    let r = SubjectRef::from_slice(&key[1..17])?;
    let n = key[17] as usize;
    if key.len() != 18 + n + 4 {
        return None;
    }
    let cat = std::str::from_utf8(&key[18..18 + n]).ok()?.to_owned();
    let generation = u32::from_be_bytes(key[18 + n..].try_into().ok()?);
    Some((r, cat, generation))
}

pub(crate) fn request(id: &RequestId) -> Vec<u8> {
    KeyBuf::new(Table::Request).bytes(id.as_bytes()).done()
}

pub(crate) fn disclosure(r: &SubjectRef, seq: u64) -> Vec<u8> {
    KeyBuf::new(Table::Disclosure)
        .bytes(r.as_bytes())
        .u64(seq)
        .done()
}
pub(crate) fn disclosures_of(r: &SubjectRef) -> Vec<u8> {
    KeyBuf::new(Table::Disclosure).bytes(r.as_bytes()).done()
}

/// A member chunk of a key group.
pub(crate) fn member_chunk(
    r: &SubjectRef,
    category: &str,
    generation: u32,
    chunk: &ChunkId,
) -> Vec<u8> {
    let mut k = members_of_generation(r, category, generation);
    k.extend_from_slice(chunk.as_bytes());
    k
}
/// The members of one key generation of a group.
pub(crate) fn members_of_generation(r: &SubjectRef, category: &str, generation: u32) -> Vec<u8> {
    let mut k = members_of_group(r, category);
    k.extend_from_slice(&generation.to_be_bytes());
    k
}
/// The members of every key generation of a group, oldest generation first.
pub(crate) fn members_of_group(r: &SubjectRef, category: &str) -> Vec<u8> {
    KeyBuf::new(Table::Member)
        .bytes(r.as_bytes())
        .name(category)
        .done()
}
/// The member rows of every group of a subject.
pub(crate) fn members_of_subject(r: &SubjectRef) -> Vec<u8> {
    KeyBuf::new(Table::Member).bytes(r.as_bytes()).done()
}
/// The category, key generation and chunk id of a member key.
pub(crate) fn parse_member_key(key: &[u8]) -> Option<(String, u32, ChunkId)> {
    if key.first() != Some(&(Table::Member as u8)) || key.len() < 18 {
        return None;
    }
    let n = key[17] as usize;
    let category = std::str::from_utf8(key.get(18..18 + n)?).ok()?.to_owned();
    let (generation, id) = parse_member(key.get(..18 + n)?, key)?;
    Some((category, generation, id))
}
/// The key generation and chunk id of a member key under `members_of_group`'s `prefix`.
pub(crate) fn parse_member(prefix: &[u8], key: &[u8]) -> Option<(u32, ChunkId)> {
    let rest = key.strip_prefix(prefix)?;
    if rest.len() != 4 + 16 {
        return None;
    }
    Some((
        u32::from_be_bytes(rest[..4].try_into().ok()?),
        ChunkId::from_slice(&rest[4..])?,
    ))
}

/// The prefix of a whole table.
pub(crate) fn table(t: Table) -> Vec<u8> {
    vec![t as u8]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn record_key_roundtrip(r in any::<[u8; 16]>(), id in any::<[u8; 16]>()) {
            let k = record(&SubjectRef(r), &RecordId(id));
            prop_assert_eq!(parse_record(&k), Some((SubjectRef(r), RecordId(id))));
        }

        #[test]
        fn member_key_roundtrip(r in any::<[u8; 16]>(), cat in "[a-z][a-z-]{0,40}", generation in any::<u32>(), id in any::<[u8; 16]>()) {
            let (r, id) = (SubjectRef(r), ChunkId(id));
            let k = member_chunk(&r, &cat, generation, &id);
            prop_assert!(k.starts_with(&members_of_generation(&r, &cat, generation)));
            prop_assert_eq!(parse_member(&members_of_group(&r, &cat), &k), Some((generation, id)));
            prop_assert!(k.starts_with(&members_of_subject(&r)));
            prop_assert_eq!(parse_member_key(&k), Some((cat, generation, id)));
        }

        #[test]
        fn data_key_roundtrip(r in any::<[u8; 16]>(), cat in "[a-z][a-z-]{0,40}", generation in any::<u32>()) {
            let k = data_key(&SubjectRef(r), &cat, generation);
            prop_assert!(k.starts_with(&data_keys_of_group(&SubjectRef(r), &cat)));
            prop_assert!(k.starts_with(&keys_of_shard(shard_of(&r))));
            prop_assert_eq!(parse_data_key(&k), Some((SubjectRef(r), cat, generation)));
        }

        #[test]
        fn due_keys_sort_by_time(a in -1_000_000_000_000i64..1_000_000_000_000, b in -1_000_000_000_000i64..1_000_000_000_000) {
            let ta = Timestamp::from_microsecond(a).unwrap();
            let tb = Timestamp::from_microsecond(b).unwrap();
            let r = SubjectRef([0; 16]);
            let id = RecordId([0; 16]);
            prop_assert_eq!(due(ta, &r, &id) < due(tb, &r, &id), ta < tb);
            prop_assert_eq!(parse_due(&due(ta, &r, &id)), Some((ta, r, id)));
        }

        #[test]
        fn parsers_never_panic(b in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = parse_record(&b);
            let _ = parse_data_key(&b);
            let _ = parse_due(&b);
            let _ = parse_reclaim(&b);
            let _ = parse_member(&[], &b);
            let _ = parse_member_key(&b);
            let _ = parse_seq(&b);
            let _ = parse_subject_hold(&b);
        }
    }
}
