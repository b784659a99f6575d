//! Erasure against the disk itself: the attacker holds a raw image of the block device the vault
//! lived on, and the passphrase.
//!
//! Earlier versions of `vault.pdv` survive: the file keeps the version before the current one in
//! its other copy, a file replaced by rename (the first write of a file of the earlier layout)
//! leaves its blocks on ext4 without overwriting them, and sled keeps removed and overwritten
//! values in stale pages. So the device holds earlier key rings, each sealed under a key derived from the root key,
//! and the wrapped keys and records they open. [`attack`] carves all of that out of the raw bytes
//! with the crate's own decoders; the tests run it on an ext4 image (1 KiB and 4 KiB blocks)
//! after a workload with erasures and check the promise: nothing erased comes back.
//!
//! The attack is one function of (image, passphrase, guesses) built from small steps (carve the
//! vault files, unseal their rings, carve stored entries, unwrap, open, test guesses), so that
//! it can follow the design when the ring is sealed under a destroyable key instead.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::audit::AuditEntry;
use crate::crypto::{self, DataKey, KdfParams, RootSecret};
use crate::ids::{RecordId, SubjectRef};
use crate::keys::{EpochKeys, Job, Ring, RootKeys};
use crate::keysource::{EpochId, ErasureGuarantee, KeySource, KeySourceError, SourceInfo};
use crate::model::{Category, Purpose, RecordMeta};
use crate::storage::codec::{self, ENTRY_FORMAT};
use crate::storage::entries::{RecordEntry, WrappedKey};
use crate::storage::layout::{self, Table};
use crate::storage::vault_file::{self, VaultFileBody};
use crate::{SubjectId, Vault};

// ---------------------------------------------------------------------------------------------
// Decoders shared with `erasure::attacker_tests`
// ---------------------------------------------------------------------------------------------

/// Epoch keys an attacker recovered from key-slot blocks found in `bytes` (a raw device image,
/// or the current slot file): every place holding the slot magic, opened with the slot key the
/// passphrase gives. It answers `unseal` as the vault's own source would.
#[derive(Debug, Default)]
pub(crate) struct RecoveredEpochs {
    keys: HashMap<crate::keysource::EpochId, DataKey>,
}

impl RecoveredEpochs {
    pub(crate) fn carve(bytes: &[u8], vault_id: &[u8; 16], slot_key: &crypto::SecretKey) -> Self {
        let mut keys = HashMap::new();
        for at in occurrences(bytes, b"PDVSLOT1") {
            if let Some((epoch, key)) =
                crate::keysource::slot::open_carved(&bytes[at..], vault_id, slot_key)
            {
                keys.insert(epoch, DataKey::new(&crypto::SecretKey::from_bytes(key)));
            }
        }
        RecoveredEpochs { keys }
    }
}

impl KeySource for RecoveredEpochs {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: "slot".into(),
            location: "carved".into(),
            guarantee: ErasureGuarantee::OverwrittenInPlace,
        }
    }
    fn create_epoch(&self, _: EpochId) -> Result<(), KeySourceError> {
        Err(KeySourceError::Failed("read only".into()))
    }
    fn seal(&self, _: &EpochId, _: &[u8], _: &[u8]) -> Result<Vec<u8>, KeySourceError> {
        Err(KeySourceError::Failed("read only".into()))
    }
    fn unseal(
        &self,
        epoch: &EpochId,
        ad: &[u8],
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, KeySourceError> {
        let key = self
            .keys
            .get(epoch)
            .ok_or(KeySourceError::EpochNotFound(*epoch))?;
        crypto::open(key, ad, sealed)
            .map(zeroize::Zeroizing::new)
            .map_err(|_| KeySourceError::Damaged(*epoch))
    }
    fn destroy_epoch(&self, _: &EpochId) -> Result<(), KeySourceError> {
        Err(KeySourceError::Failed("read only".into()))
    }
    fn epochs(&self) -> Result<Vec<EpochId>, KeySourceError> {
        Ok(self.keys.keys().copied().collect())
    }
}

/// The key ring of a decoded vault file, unsealed with the passphrase as an attacker who knows it
/// does: root key from the file's KDF, the slot key from the root key, the epoch key from any
/// key-slot block found in `slot_bytes`, the ring key from the epoch key. `None` if the ring does
/// not open.
pub(crate) fn unseal_ring(
    header: VaultFileBody,
    passphrase: &str,
    slot_bytes: &[u8],
) -> Option<Ring> {
    let root = crate::vault::root_key(&header.kdf, &RootSecret::passphrase(passphrase)).ok()?;
    let root_keys = RootKeys::derive(&root, &header.vault_id);
    let epochs = RecoveredEpochs::carve(slot_bytes, &header.vault_id, &root_keys.slot_key);
    Ring::unseal(
        root_keys,
        header,
        EpochKeys::Host(std::sync::Arc::new(epochs)),
        None,
    )
    .ok()
}

/// The payload of a stored record, opened with `key` as the record of `(subject, id)` in vault
/// `vault_id`; `None` if it does not open.
pub(crate) fn open_record(
    vault_id: &[u8; 16],
    subject: &SubjectRef,
    id: &RecordId,
    entry: &RecordEntry,
    key: &DataKey,
) -> Option<Vec<u8>> {
    let ad = crate::vault::record_ad(
        vault_id,
        subject,
        id,
        entry.version,
        entry.key_gen,
        entry.updated_at,
        &crate::storage::codec::encode(&entry.meta),
    );
    crypto::open(key, ad.as_bytes(), &entry.sealed).ok()
}

// ---------------------------------------------------------------------------------------------
// The attack
// ---------------------------------------------------------------------------------------------

/// What the attacker got out of the image.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    /// Places where the vault file's magic appears.
    pub(crate) vault_copies_found: usize,
    /// Of those, how many are a whole vault file (length, checksum, body).
    pub(crate) vault_copies_decoded: usize,
    /// Distinct key rings that the passphrase unsealed.
    pub(crate) rings_unsealed: usize,
    /// The vault-file generation of each ring unsealed, ascending.
    pub(crate) ring_generations: Vec<u64>,
    /// Every distinct payload decrypted.
    pub(crate) payloads: Vec<Vec<u8>>,
    /// For each guessed identifier: how often its blind index (under any ring unsealed) appears.
    pub(crate) guess_hits: Vec<(String, usize)>,
}

/// Everything the attacker can recover from the raw bytes of a device, knowing the passphrase,
/// and how often the blind index of each guessed identifier appears on it.
///
/// 1. Carve every copy of the vault file and unseal its key ring.
/// 2. Carve pdvault's stored entries (wrapped keys, records, audit blocks) wherever they lie.
/// 3. Rebuild the addresses of data keys, unwrap every wrapped key with every ring.
/// 4. Open every record with the data keys, and test the guesses.
fn attack(image: &[u8], passphrase: &str, guesses: &[&str]) -> Recovered {
    let (vault_copies_found, vault_copies_decoded, copies) = carve_vault_files(image);
    let unsealed = unseal_rings(copies, passphrase, image);
    let mut ring_generations: Vec<u64> = unsealed.iter().map(|(g, _)| *g).collect();
    ring_generations.sort_unstable();
    let rings: Vec<Ring> = unsealed.into_iter().map(|(_, r)| r).collect();
    let carved = carve_entries(image);
    let data_keys = unwrap_data_keys(&rings, &carved);
    let payloads = open_records(&rings, &carved, &data_keys);
    let guess_hits = guesses
        .iter()
        .map(|g| (g.to_string(), blind_index_hits(image, &rings, g)))
        .collect();
    Recovered {
        vault_copies_found,
        vault_copies_decoded,
        rings_unsealed: rings.len(),
        ring_generations,
        payloads: payloads.into_iter().collect(),
        guess_hits,
    }
}

/// Step 1a. Every copy of the vault file in the image: `magic | format u16 LE | body length u32
/// LE | body | BLAKE3`, decoded by `vault_file::decode` (which checks the checksum). Returns how
/// many places hold the magic, how many of them decode, and the distinct copies decoded. A copy
/// whose blocks were reused, or were not contiguous on the device, fails its checksum.
fn carve_vault_files(image: &[u8]) -> (usize, usize, Vec<VaultFileBody>) {
    const PREFIX: usize = 8 + 2 + 4;
    const CHECKSUM: usize = 32;
    let starts = occurrences(image, b"PDVAULT1");
    let mut decoded: Vec<VaultFileBody> = Vec::new();
    for &at in &starts {
        let Some(len_field) = image.get(at + 10..at + PREFIX) else {
            continue;
        };
        let body_len = u32::from_le_bytes([len_field[0], len_field[1], len_field[2], len_field[3]]);
        let end = at + PREFIX + body_len as usize + CHECKSUM;
        let Some(candidate) = image.get(at..end) else {
            continue;
        };
        if let Ok(body) = vault_file::decode(candidate) {
            decoded.push(body);
        }
    }
    let (found, whole) = (starts.len(), decoded.len());
    let mut distinct: Vec<VaultFileBody> = Vec::new();
    for body in decoded {
        if !distinct.contains(&body) {
            distinct.push(body);
        }
    }
    (found, whole, distinct)
}

/// Step 1b. The key ring of every copy that the passphrase unseals, with the copy's generation.
fn unseal_rings(copies: Vec<VaultFileBody>, passphrase: &str, image: &[u8]) -> Vec<(u64, Ring)> {
    copies
        .into_iter()
        .filter_map(|body| {
            let generation = body.generation;
            unseal_ring(body, passphrase, image).map(|ring| (generation, ring))
        })
        .collect()
}

/// pdvault's own entries found in the image, deduplicated.
#[derive(Default)]
struct Carved {
    /// Wrapped keys (shard generation, sealed key).
    wrapped: Vec<WrappedKey>,
    /// Records by their sealed payload (unique: every seal draws a fresh nonce).
    records: HashMap<Vec<u8>, RecordEntry>,
    /// (subject reference, record id) pairs seen together: in whole record-table keys next to
    /// their value, and in audit entries.
    pairs: HashSet<(SubjectRef, RecordId)>,
    /// Every subject reference seen.
    subjects: HashSet<SubjectRef>,
}

/// What sealing adds to a plaintext: XChaCha20-Poly1305's 24-byte nonce and 16-byte tag.
const SEAL_OVERHEAD: usize = 24 + 16;
/// The length of a wrapped key's sealed bytes.
const WRAPPED_SEALED_LEN: usize = SEAL_OVERHEAD + 32;

/// Step 2. One pass over the image: at every byte equal to the entry-format byte, try to decode
/// a wrapped key, a record and an audit block from there (`codec::decode_prefix`, which ignores
/// what follows the value). sled stores values verbatim (no compression), in log frames and
/// consolidated leaves, so every version of every value that was ever written and whose pages
/// were not overwritten is found.
///
/// The associated data of a record needs its subject reference and record id, which are in its
/// key, not its value. sled strips the prefix that a node's keys share, so a key is not always
/// whole on disk; two sources that do not depend on that are used:
/// - a record-table key immediately before its value, as sled writes an update
///   (`key length | key | value length | value`, sled's variable-length integers), when the key
///   is whole or lacks only the table tag;
/// - the audit trail, whose entries name the subject reference and record id of every write
///   (in values, never prefix-stripped).
fn carve_entries(image: &[u8]) -> Carved {
    let mut carved = Carved::default();
    let mut wrapped: HashSet<(u64, Vec<u8>)> = HashSet::new();
    for at in 0..image.len() {
        if image[at] != ENTRY_FORMAT {
            continue;
        }
        let here = &image[at..];
        if let Ok((w, _)) = codec::decode_prefix::<WrappedKey>(here, "wrapped key")
            && w.sealed.len() == WRAPPED_SEALED_LEN
        {
            wrapped.insert((w.shard_gen, w.sealed));
            continue;
        }
        if let Ok((r, used)) = codec::decode_prefix::<RecordEntry>(here, "record")
            && r.sealed.len() >= SEAL_OVERHEAD
        {
            if let Some(pair) = record_key_before(image, at, used) {
                carved.subjects.insert(pair.0);
                carved.pairs.insert(pair);
            }
            carved.records.entry(r.sealed.clone()).or_insert(r);
            continue;
        }
        if let Ok((block, _)) = codec::decode_prefix::<Vec<AuditEntry>>(here, "audit block")
            && (1..=64).contains(&block.len())
        {
            for e in block {
                if let Some(s) = e.subject {
                    carved.subjects.insert(s);
                    if let Some(r) = e.record {
                        carved.pairs.insert((s, r));
                    }
                }
            }
        }
    }
    carved.wrapped = wrapped
        .into_iter()
        .map(|(shard_gen, sealed)| WrappedKey { shard_gen, sealed })
        .collect();
    carved
}

/// sled's encoding of a length (`u64` in sled's `serialization.rs`), for the lengths a record
/// key or value has.
fn sled_len(n: usize) -> Option<Vec<u8>> {
    match n {
        0..=240 => Some(vec![n as u8]),
        241..=2287 => Some(vec![((n - 240) / 256 + 241) as u8, ((n - 240) % 256) as u8]),
        2288..=67823 => Some(vec![
            249,
            ((n - 2288) / 256) as u8,
            ((n - 2288) % 256) as u8,
        ]),
        _ => None,
    }
}

/// The record-table key written just before a record value at `at` of `len` bytes, if there is
/// one whole (33 bytes) or without its table tag (32 bytes, the node's prefix being the tag).
fn record_key_before(image: &[u8], at: usize, len: usize) -> Option<(SubjectRef, RecordId)> {
    let vlen = sled_len(len)?;
    let key_end = at.checked_sub(vlen.len())?;
    if image.get(key_end..at)? != vlen.as_slice() {
        return None;
    }
    for key_len in [33usize, 32] {
        let Some(start) = key_end.checked_sub(key_len + 1) else {
            continue;
        };
        if image[start] as usize != key_len {
            continue;
        }
        let mut key = Vec::with_capacity(33);
        if key_len == 32 {
            key.push(Table::Record as u8);
        }
        key.extend_from_slice(&image[start + 1..key_end]);
        if let Some(pair) = layout::parse_record(&key) {
            return Some(pair);
        }
    }
    None
}

/// A data key's owner: subject reference, category, generation.
type GroupId = (SubjectRef, String, u32);

/// Step 3. The data keys the rings unwrap. A wrapped key's associated data is its address in the
/// key table, `layout::data_key(subject, category, generation)`: the addresses are rebuilt from
/// the subject references carved and the (category, generation) of every record carved (the
/// metadata and generation are in the clear), rather than carved themselves (sled may strip
/// their first bytes). Every wrapped key is tried at every address with every ring; a ring whose
/// shard generation differs from the wrapped key's refuses at once.
fn unwrap_data_keys(rings: &[Ring], carved: &Carved) -> HashMap<GroupId, DataKey> {
    let groups: BTreeSet<(String, u32)> = carved
        .records
        .values()
        .map(|r| (r.meta.category.name().to_owned(), r.key_gen))
        .collect();
    let mut keys = HashMap::new();
    for subject in &carved.subjects {
        for (category, generation) in &groups {
            let addr = layout::data_key(subject, category, *generation);
            let secret = rings
                .iter()
                .flat_map(|ring| carved.wrapped.iter().map(move |w| (ring, w)))
                .find_map(|(ring, w)| ring.unwrap(&addr, w).ok());
            if let Some(secret) = secret {
                keys.insert(
                    (*subject, category.clone(), *generation),
                    DataKey::new(&secret),
                );
            }
        }
    }
    keys
}

/// Step 4a. Every payload that opens: each record carved, with the data key of its category and
/// generation for each (subject, record id) pair carved, in each vault the rings belong to.
fn open_records(
    rings: &[Ring],
    carved: &Carved,
    keys: &HashMap<GroupId, DataKey>,
) -> BTreeSet<Vec<u8>> {
    let vault_ids: BTreeSet<[u8; 16]> = rings.iter().map(|r| *r.vault_id()).collect();
    let mut payloads = BTreeSet::new();
    for record in carved.records.values() {
        let category = record.meta.category.name().to_owned();
        'pairs: for (subject, id) in &carved.pairs {
            let Some(key) = keys.get(&(*subject, category.clone(), record.key_gen)) else {
                continue;
            };
            for vault_id in &vault_ids {
                if let Some(pt) = open_record(vault_id, subject, id, record, key) {
                    payloads.insert(pt);
                    break 'pairs;
                }
            }
        }
    }
    payloads
}

/// Step 4b. How often the blind index of `guess`, under the index key of any ring unsealed,
/// appears in the image (as an index-table key, an identity-key address, ...).
fn blind_index_hits(image: &[u8], rings: &[Ring], guess: &str) -> usize {
    // The blind index itself, and the address of its index entry under the shard key of each
    // ring recovered (what the vault stores since index entries are keyed per shard ratchet).
    let mut needles: BTreeSet<[u8; 32]> = BTreeSet::new();
    for r in rings {
        let blind = crypto::keyed_hash(&r.subkey(Job::Index), &[guess.as_bytes()]);
        needles.insert(blind);
        needles.insert(r.index_addr(&crate::ids::BlindIndex(blind)).addr);
    }
    needles.iter().map(|b| occurrences(image, b).len()).sum()
}

/// Where `needle` starts in `haystack` (overlapping matches included).
fn occurrences(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    let Some((&first, _)) = needle.split_first() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(i) = haystack[from..].iter().position(|&b| b == first) {
        let at = from + i;
        if haystack[at..].starts_with(needle) {
            found.push(at);
        }
        from = at + 1;
    }
    found
}

// ---------------------------------------------------------------------------------------------
// The device: a loop-mounted ext4 image
// ---------------------------------------------------------------------------------------------

/// The size of the image file (sparse).
const IMAGE_BYTES: u64 = 64 << 20;

/// Runs a command; its stderr on failure.
fn run(program: &str, args: &[&std::ffi::OsStr]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A mounted filesystem, unmounted on drop (also when the test panics).
struct Mounted {
    point: PathBuf,
    mounted: bool,
}

impl Mounted {
    /// Unmounts, retrying for a few seconds while something still holds a file open.
    fn unmount(&mut self) -> Result<(), String> {
        if !self.mounted {
            return Ok(());
        }
        let mut last = String::new();
        for _ in 0..50 {
            match run("umount", &[self.point.as_os_str()]) {
                Ok(()) => {
                    self.mounted = false;
                    return Ok(());
                }
                Err(e) => last = e,
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Err(last)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            eprintln!("cannot unmount {}: {e}", self.point.display());
        }
    }
}

/// A fresh ext4 filesystem with `block` byte blocks in a sparse image file under `tmp`, mounted
/// through a loop device. Fails with the reason if this machine cannot (not root, no loop
/// device, no `mkfs.ext4`).
fn mount_image(tmp: &Path, block: u32) -> Result<(PathBuf, Mounted), String> {
    let image = tmp.join("device.img");
    let point = tmp.join("mnt");
    std::fs::File::create(&image)
        .and_then(|f| f.set_len(IMAGE_BYTES))
        .map_err(|e| format!("cannot create the image file: {e}"))?;
    std::fs::create_dir(&point).map_err(|e| format!("cannot create the mount point: {e}"))?;
    let block = block.to_string();
    run(
        "mkfs.ext4",
        &[
            "-q".as_ref(),
            "-F".as_ref(),
            "-b".as_ref(),
            block.as_ref(),
            image.as_os_str(),
        ],
    )?;
    run(
        "mount",
        &[
            "-o".as_ref(),
            "loop".as_ref(),
            image.as_os_str(),
            point.as_os_str(),
        ],
    )?;
    Ok((
        image,
        Mounted {
            point,
            mounted: true,
        },
    ))
}

/// The image cannot be made here: a failure under CI (it must never skip there), a notice
/// otherwise.
fn unavailable(reason: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "the forensic test needs root, a loop device and mkfs.ext4: {reason}"
    );
    println!("skipped: {reason}");
}

// ---------------------------------------------------------------------------------------------
// The workload and the promise
// ---------------------------------------------------------------------------------------------

const PASSPHRASE: &str = "forensic-image-passphrase";
/// Erased whole.
const ERASED_SUBJECT: &str = "erased-subject@example.com";
/// One category erased.
const PARTLY_ERASED_SUBJECT: &str = "partly-erased-subject@example.com";
const KEPT_SUBJECTS: [&str; 2] = ["kept-subject-a@example.com", "kept-subject-b@example.com"];
/// Never stored: a guess of it must find nothing.
const NEVER_STORED: &str = "never-stored@example.com";

/// What the workload left: the markers erased and kept, and the current vault file's generation.
struct Workload {
    erased: Vec<Vec<u8>>,
    kept: Vec<Vec<u8>>,
    current_generation: u64,
}

/// Records for 4 subjects, 3 per category in 2 or 3 categories; the first subject erased, one
/// category of the second erased; 100 more puts; a sweep; close.
fn workload(dir: &Path) -> Workload {
    let v = Vault::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::passphrase(PASSPHRASE))
        .unwrap();
    let p = Purpose::new("service").unwrap();
    let mut n = 0;
    let mut marker = |what: &str| {
        n += 1;
        format!("{what}-marker-{n}").into_bytes()
    };
    let (mut erased, mut kept) = (Vec::new(), Vec::new());
    let subjects: Vec<(SubjectId, Vec<Category>)> = [
        (ERASED_SUBJECT, 3),
        (PARTLY_ERASED_SUBJECT, 3),
        (KEPT_SUBJECTS[0], 2),
        (KEPT_SUBJECTS[1], 2),
    ]
    .into_iter()
    .map(|(s, categories)| {
        let all = [Category::Contact, Category::Usage, Category::Payment];
        (SubjectId::new(s).unwrap(), all[..categories].to_vec())
    })
    .collect();
    for (s, categories) in &subjects {
        for c in categories {
            for _ in 0..3 {
                let doomed = s.as_bytes() == ERASED_SUBJECT.as_bytes()
                    || (s.as_bytes() == PARTLY_ERASED_SUBJECT.as_bytes() && *c == Category::Usage);
                let payload = marker(if doomed { "erased" } else { "kept" });
                v.put(s, RecordMeta::new(c.clone()).purpose(p.clone()), &payload)
                    .unwrap();
                if doomed { &mut erased } else { &mut kept }.push(payload);
            }
        }
    }
    assert!(v.erase_subject(&subjects[0].0).unwrap().subject_erased);
    v.erase_category(&subjects[1].0, &Category::Usage).unwrap();
    for i in 0..100 {
        let (s, _) = &subjects[1 + i % 3];
        let payload = marker("kept");
        v.put(
            s,
            RecordMeta::new(Category::Contact).purpose(p.clone()),
            &payload,
        )
        .unwrap();
        kept.push(payload);
    }
    v.sweep().unwrap();
    v.close().unwrap();
    let current_generation = vault_file::read(dir).unwrap().generation;
    Workload {
        erased,
        kept,
        current_generation,
    }
}

/// The whole test for one block size: image, workload, attack, promise.
fn erased_data_stays_erased_on_the_device(block: u32) {
    let tmp = tempfile::tempdir().unwrap();
    let (image_path, mut mounted) = match mount_image(tmp.path(), block) {
        Ok(m) => m,
        Err(reason) => return unavailable(&reason),
    };
    let work = workload(&mounted.point.join("vault"));
    run("sync", &[]).unwrap();
    mounted.unmount().unwrap();
    let image = std::fs::read(&image_path).unwrap();

    let started = std::time::Instant::now();
    let guesses = [ERASED_SUBJECT, KEPT_SUBJECTS[0], NEVER_STORED];
    let got = attack(&image, PASSPHRASE, &guesses);
    let erased_found: Vec<String> = got
        .payloads
        .iter()
        .filter(|p| work.erased.contains(p))
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    let kept_found = got
        .payloads
        .iter()
        .filter(|p| work.kept.contains(p))
        .count();
    let hits = |id: &str| {
        got.guess_hits
            .iter()
            .find(|(g, _)| g == id)
            .map_or(0, |(_, n)| *n)
    };
    println!(
        "{block}-byte blocks: vault-file copies found {}, decoded {}, rings unsealed {} \
         (generations {:?}, current {}); payloads decrypted {} (kept {kept_found} of {}, \
         erased {} of {}); blind-index hits: erased subject {}, kept subject {}, never stored {}; \
         attack took {:?}",
        got.vault_copies_found,
        got.vault_copies_decoded,
        got.rings_unsealed,
        got.ring_generations,
        work.current_generation,
        got.payloads.len(),
        work.kept.len(),
        erased_found.len(),
        work.erased.len(),
        hits(ERASED_SUBJECT),
        hits(KEPT_SUBJECTS[0]),
        hits(NEVER_STORED),
        started.elapsed(),
    );

    // The attack works: the current ring opens what was kept.
    assert!(
        kept_found > 0,
        "the attack decrypted no kept record: it proves nothing"
    );
    assert_eq!(hits(NEVER_STORED), 0, "an identifier never stored matched");

    // The promise.
    let mut broken = Vec::new();
    if got.rings_unsealed > 1
        || got
            .ring_generations
            .iter()
            .any(|g| *g != work.current_generation)
    {
        broken.push(format!(
            "{} key rings unseal (generations {:?}); only the current one ({}) may",
            got.rings_unsealed, got.ring_generations, work.current_generation
        ));
    }
    if !erased_found.is_empty() {
        broken.push(format!(
            "{} of {} erased payloads decrypted: {erased_found:?}",
            erased_found.len(),
            work.erased.len()
        ));
    }
    if hits(ERASED_SUBJECT) > 0 {
        broken.push(format!(
            "the erased subject's identifier matches {} places",
            hits(ERASED_SUBJECT)
        ));
    }
    assert!(
        broken.is_empty(),
        "erasure does not hold against a raw image ({block}-byte blocks):\n{}",
        broken.join("\n")
    );
}

#[test]
fn erased_data_stays_erased_on_an_ext4_device_with_1k_blocks() {
    erased_data_stays_erased_on_the_device(1024);
}

#[test]
fn erased_data_stays_erased_on_an_ext4_device_with_4k_blocks() {
    erased_data_stays_erased_on_the_device(4096);
}
