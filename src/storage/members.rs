//! Key-group membership: which records each key group (subject, category, key generation)
//! holds, so that destroying, re-keying or reclaiming a group costs what the group holds, not
//! what the subject holds.
//!
//! A group's records are listed in *chunks*: rows under
//! [`layout::members_of_generation`] named by a random chunk id (never reused, so that a new
//! chunk never lands on an old one), whose value is up to [`CHUNK_MAX`] record ids. A batched put writes one chunk per group it touches
//! instead of one row per record (on PostgreSQL a row costs the server more than its bytes; on
//! sled each row is a tree insert). The lists are exact: a record is in exactly one chunk of its
//! own group, and every listed record exists (until its group's reclamation deletes both). This
//! module owns the chunks' encoding; it decides nothing about which records belong where.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::StorageError;
use crate::ids::{RecordId, SubjectRef};
use crate::storage::entries::RecordEntry;
use crate::storage::{Store, Txn, codec, layout};

/// The most record ids one chunk lists (4 KiB of ids): a rewrite of a chunk, when a record moves
/// out of its group, costs at most this much.
pub(crate) const CHUNK_MAX: usize = 256;

/// The name of a member chunk: 128 random bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChunkId(pub(crate) [u8; 16]);

impl ChunkId {
    fn random() -> Self {
        ChunkId(crate::crypto::random_array())
    }
    pub(crate) fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
    pub(crate) fn from_slice(b: &[u8]) -> Option<Self> {
        b.try_into().ok().map(ChunkId)
    }
}

/// A chunk's stored value: its record ids, concatenated.
#[derive(Serialize, Deserialize)]
struct ChunkValue<'a> {
    #[serde(with = "serde_bytes", borrow)]
    ids: std::borrow::Cow<'a, [u8]>,
}

/// One chunk of a group's member list, read back.
pub(crate) struct Chunk {
    /// The chunk's key (to rewrite or delete it).
    pub(crate) key: Vec<u8>,
    /// The group's category.
    pub(crate) category: String,
    /// The group's key generation.
    pub(crate) generation: u32,
    /// The records it lists, in the order they were added.
    pub(crate) records: Vec<RecordId>,
}

fn encode(ids: &[RecordId]) -> ChunkValue<'static> {
    let mut bytes = Vec::with_capacity(ids.len() * 16);
    for id in ids {
        bytes.extend_from_slice(id.as_bytes());
    }
    ChunkValue {
        ids: std::borrow::Cow::Owned(bytes),
    }
}

/// The record ids of a chunk's stored value.
pub(crate) fn decode(raw: &[u8]) -> Result<Vec<RecordId>, StorageError> {
    let v: ChunkValue<'_> = codec::decode_borrowed(raw, "member chunk")?;
    if v.ids.is_empty() || !v.ids.len().is_multiple_of(16) || v.ids.len() / 16 > CHUNK_MAX {
        return Err(StorageError::Malformed("member chunk"));
    }
    Ok(v.ids
        .chunks_exact(16)
        .filter_map(RecordId::from_slice)
        .collect())
}

/// Adds the writes that list `ids` in the group `(subject, category, generation)`: one new chunk
/// per [`CHUNK_MAX`] ids.
pub(crate) fn add(
    txn: &mut Txn,
    subject: &SubjectRef,
    category: &str,
    generation: u32,
    ids: &[RecordId],
) {
    for part in ids.chunks(CHUNK_MAX) {
        let key = layout::member_chunk(subject, category, generation, &ChunkId::random());
        txn.put_new(key, &encode(part));
    }
}

impl Store {
    /// The member chunks under `prefix` (a subject's, a group's or one generation's), in key
    /// order: oldest generation first within a group.
    pub(crate) fn member_chunks<'a>(
        &'a self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<Chunk, StorageError>> + 'a {
        self.scan_raw(prefix).map(|r| {
            let (key, value) = r?;
            let (category, generation, _) =
                layout::parse_member_key(&key).ok_or(StorageError::Malformed("member key"))?;
            Ok(Chunk {
                records: decode(&value)?,
                key,
                category,
                generation,
            })
        })
    }

    /// The records listed under `prefix`, each with its group's category and key generation:
    /// group by group in key order, each group's records in record-id order, which is the order
    /// of their rows, so that reading them one by one walks the record table forwards once. sled
    /// 0.34 holds far more memory for point reads that come back over the tree: an export of a
    /// 100,000-record subject read in the chunks' order peaked at 44 MB, in sorted runs of 8,192
    /// ids at 44 MB, in one sorted pass at 26 MB. The chunks are read first; memory: 16 bytes
    /// per record listed.
    pub(crate) fn members(
        &self,
        prefix: &[u8],
    ) -> Result<impl Iterator<Item = (String, u32, RecordId)> + use<>, StorageError> {
        // Two passes over the chunks, so that each group's ids take exactly their size (a
        // growing vector would hold up to twice that).
        let mut sizes: Vec<usize> = Vec::new();
        let mut last: Option<(String, u32)> = None;
        for chunk in self.member_chunks(prefix) {
            let chunk = chunk?;
            let group = Some((chunk.category, chunk.generation));
            match sizes.last_mut() {
                Some(n) if group == last => *n += chunk.records.len(),
                _ => sizes.push(chunk.records.len()),
            }
            last = group;
        }
        let mut groups: Vec<(String, u32, Vec<RecordId>)> = Vec::with_capacity(sizes.len());
        for chunk in self.member_chunks(prefix) {
            let chunk = chunk?;
            match groups.last_mut() {
                Some((c, g, ids)) if *c == chunk.category && *g == chunk.generation => {
                    ids.extend(chunk.records)
                }
                _ => {
                    let size = sizes.get(groups.len()).copied().unwrap_or(0);
                    let mut ids = Vec::with_capacity(size);
                    ids.extend(chunk.records);
                    groups.push((chunk.category, chunk.generation, ids));
                }
            }
        }
        Ok(groups
            .into_iter()
            .flat_map(|(category, generation, mut ids)| {
                ids.sort_unstable();
                ids.into_iter()
                    .map(move |id| (category.clone(), generation, id))
            }))
    }

    /// Checks that every record is listed exactly once, in its own group, and that every listed
    /// record exists: a subject at a time (memory: what one subject lists). The problems found,
    /// in words.
    pub(crate) fn check_membership(&self) -> Result<Vec<String>, StorageError> {
        let mut problems = Vec::new();
        let mut subject: Option<SubjectRef> = None;
        let mut listed: HashMap<RecordId, (String, u32)> = HashMap::new();
        let unlisted = |listed: &mut HashMap<_, _>, problems: &mut Vec<String>| {
            if !listed.is_empty() {
                problems.push(format!(
                    "key groups list {} records that do not exist",
                    listed.len()
                ));
                listed.clear();
            }
        };
        for r in self.scan_raw(&layout::table(layout::Table::Record)) {
            let (k, v) = r?;
            let (Some((sref, id)), Ok(e)) = (
                layout::parse_record(&k),
                codec::decode::<RecordEntry>(&v, "record"),
            ) else {
                continue; // reported by the scan that decodes every entry
            };
            if subject != Some(sref) {
                unlisted(&mut listed, &mut problems);
                subject = Some(sref);
                for (category, generation, listed_id) in
                    self.members(&layout::members_of_subject(&sref))?
                {
                    if listed.insert(listed_id, (category, generation)).is_some() {
                        problems.push(format!("record {listed_id} is listed twice"));
                    }
                }
            }
            match listed.remove(&id) {
                None => problems.push(format!("record {id} is missing from its key group")),
                Some((category, generation)) => {
                    if (category.as_str(), generation) != (e.meta.category.name(), e.key_gen) {
                        problems.push(format!("record {id} is listed in another key group"));
                    }
                }
            }
        }
        unlisted(&mut listed, &mut problems);
        Ok(problems)
    }

    /// Adds the writes that take `record` out of the group `(subject, category, generation)`:
    /// its chunk is rewritten without it, or deleted if it listed nothing else. Costs what the
    /// generation holds. Whether the record was listed.
    pub(crate) fn remove_member(
        &self,
        txn: &mut Txn,
        subject: &SubjectRef,
        category: &str,
        generation: u32,
        record: &RecordId,
    ) -> Result<bool, StorageError> {
        let prefix = layout::members_of_generation(subject, category, generation);
        for chunk in self.member_chunks(&prefix) {
            let mut chunk = chunk?;
            let Some(at) = chunk.records.iter().position(|r| r == record) else {
                continue;
            };
            chunk.records.remove(at);
            if chunk.records.is_empty() {
                txn.delete(chunk.key);
            } else {
                txn.put(chunk.key, &encode(&chunk.records));
            }
            return Ok(true);
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn chunks_roundtrip(ids in proptest::collection::vec(any::<[u8; 16]>(), 1..=CHUNK_MAX)) {
            let ids: Vec<RecordId> = ids.iter().filter_map(|b| RecordId::from_slice(b)).collect();
            let raw = codec::encode(&encode(&ids));
            prop_assert_eq!(decode(&raw).unwrap(), ids);
        }

        #[test]
        fn chunk_decode_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&raw);
        }
    }

    #[test]
    fn empty_and_ragged_chunks_are_malformed() {
        for bytes in [
            Vec::new(),
            vec![7u8; 15],
            vec![7u8; 17],
            vec![7u8; 16 * (CHUNK_MAX + 1)],
        ] {
            let raw = codec::encode(&ChunkValue {
                ids: std::borrow::Cow::Owned(bytes),
            });
            assert!(decode(&raw).is_err());
        }
    }
}
