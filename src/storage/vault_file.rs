//! The vault file `vault.pdv`: the header in the clear, the ring key sealed by the key source under
//! the current epoch key, and the key ring sealed under the ring key.
//!
//! A **record** is one version of it: `magic "PDVAULT1" (8) | format version u16 LE | body
//! length u32 LE | body | BLAKE3 of all preceding bytes (32)`, the body the bincode of
//! [`VaultFileBody`] (a PostgreSQL vault keeps one record in a row).
//!
//! The **file** holds two copies of fixed size, so that a new version is written in place, over
//! the copy before the current one, and made durable with one `fdatasync`: no new file, no
//! rename, no directory sync (those cost about a millisecond per write here, most of a key
//! ratchet's time). Layout: a 4 KiB header block (`magic "PDVAULT2" (8) | copy length u32 LE |
//! BLAKE3 of those 12 bytes (32)`, zeros), then copy 0 and copy 1, each a record padded with zeros to the copy length (a multiple
//! of 4 KiB, so that a torn write of one copy never touches the other's sectors). A record of
//! generation `g` goes to copy `g % 2`; the reader takes the valid copy of the highest generation.
//! A crash in the middle of a write leaves that copy damaged and the other one whole, sealed
//! under an epoch key that still exists (the previous epoch is destroyed only once the new copy
//! is durable); a damaged copy beside one whose epoch is gone is damage, and the open says so
//! ([`FileRead::damaged_copy`]). The older copy stays in the file until the next write
//! overwrites it, sealed under an epoch key that no longer exists.
//!
//! A file of the previous layout (one record) is read as it is and replaced, at its first write,
//! by a file of two copies (written beside it, synced and renamed over it); so is a file whose
//! copies are too small for a record.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::entries::Manifest;
use crate::crypto::KdfParams;
use crate::error::{OpenError, StorageError};

const MAGIC: &[u8; 8] = b"PDVAULT1";
/// The vault format version this build writes and reads.
pub(crate) const FORMAT_VERSION: u16 = 9;
const PREFIX_LEN: usize = 8 + 2 + 4;
const CHECKSUM_LEN: usize = 32;
const MAX_BODY: usize = 4 * 1024 * 1024;
/// The magic of a file of two copies.
const FILE_MAGIC: &[u8; 8] = b"PDVAULT2";
/// The header block of a file of two copies; copies are multiples of it too.
const BLOCK: usize = 4096;
/// The header block's fields: magic, copy length, their BLAKE3.
const FILE_HEAD_LEN: usize = 8 + 4 + 32;
/// Room a copy leaves beyond the record it was sized for (a longer source name, another KDF).
const COPY_SLACK: usize = BLOCK;

/// How the root key is obtained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum KdfSpec {
    /// Argon2id over a passphrase.
    Passphrase { salt: [u8; 16], params: KdfParams },
    /// A raw key from the host.
    RawKey,
}

/// The decoded vault file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct VaultFileBody {
    pub(crate) vault_id: [u8; 16],
    pub(crate) kdf: KdfSpec,
    /// Keyed hash of the vault id under a root-derived key: tells a wrong key from damage.
    pub(crate) key_check: [u8; 32],
    /// Incremented at every rewrite; bound into the key ring's associated data.
    pub(crate) generation: u64,
    /// The store's manifest at the last durable point this file was written at.
    pub(crate) checkpoint: Manifest,
    /// The kind of key source that holds the epoch keys (`slot`, `pkcs11`, the host's).
    pub(crate) source_kind: String,
    /// The name a host's key source files this vault's epoch keys under: the vault id when it is
    /// made, a new one for a restored copy (so that the copy and the vault it came from never
    /// destroy each other's epochs in a source they share).
    pub(crate) key_namespace: [u8; 16],
    /// The epoch key the ring key is sealed under.
    pub(crate) epoch: [u8; 16],
    /// The ring key, sealed by the key source under the epoch key.
    #[serde(with = "serde_bytes")]
    pub(crate) sealed_ring_key: Vec<u8>,
    /// The key ring, sealed under the ring key.
    #[serde(with = "serde_bytes")]
    pub(crate) sealed_ring: Vec<u8>,
}

impl VaultFileBody {
    /// This body without its sealed ring and ring key, for the version that replaces it (which
    /// seals its own): the ring is most of the file, and is not copied only to be overwritten.
    pub(crate) fn without_ring(&self) -> Self {
        VaultFileBody {
            vault_id: self.vault_id,
            kdf: self.kdf.clone(),
            key_check: self.key_check,
            generation: self.generation,
            checkpoint: self.checkpoint,
            source_kind: self.source_kind.clone(),
            key_namespace: self.key_namespace,
            epoch: self.epoch,
            sealed_ring_key: Vec::new(),
            sealed_ring: Vec::new(),
        }
    }
}

/// The key ring in the clear: the master secret and one key per shard. Wiped on drop.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub(crate) struct RingPlain {
    pub(crate) master: [u8; 32],
    pub(crate) shards: Vec<(u64, [u8; 32])>,
}

/// The ring's encoding, in a buffer wiped on drop that no other copy of it precedes.
pub(crate) fn encode_ring(ring: &RingPlain) -> Zeroizing<Vec<u8>> {
    super::codec::encode_keys(Some(&ring.master), &ring.shards)
}

pub(crate) fn decode_ring(bytes: &[u8]) -> Result<RingPlain, StorageError> {
    super::codec::decode(bytes, "key ring")
}

/// Encodes the vault file.
pub(crate) fn encode(body: &VaultFileBody) -> Vec<u8> {
    encode_in(body, 0)
}

/// [`encode`], into a buffer of at least `room` bytes (a copy's length, that the record is
/// padded to): the body is encoded where it is stored, with no copy of the ring.
fn encode_in(body: &VaultFileBody, room: usize) -> Vec<u8> {
    // The fields besides the sealed ring and its key: a few hundred bytes at most.
    const FIELDS_LEN: usize = 512;
    let guess = PREFIX_LEN
        + body.sealed_ring.len()
        + body.sealed_ring_key.len()
        + FIELDS_LEN
        + CHECKSUM_LEN;
    let mut out = Vec::with_capacity(guess.max(room));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    super::codec::encode_onto(body, &mut out);
    let len = (out.len() - PREFIX_LEN) as u32;
    out[PREFIX_LEN - 4..PREFIX_LEN].copy_from_slice(&len.to_le_bytes());
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// Decodes the vault file, telling truncation, damage and a newer format apart.
pub(crate) fn decode(bytes: &[u8]) -> Result<VaultFileBody, OpenError> {
    if bytes.len() < PREFIX_LEN {
        return Err(OpenError::HeaderTruncated { found: bytes.len() });
    }
    if &bytes[..8] != MAGIC {
        return Err(OpenError::HeaderDamaged("not a pdvault file (bad magic)"));
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    let len = u32::from_le_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]) as usize;
    if len > MAX_BODY {
        return Err(OpenError::HeaderDamaged("length field out of range"));
    }
    let total = PREFIX_LEN + len + CHECKSUM_LEN;
    if bytes.len() < total {
        return Err(OpenError::HeaderTruncated { found: bytes.len() });
    }
    if bytes.len() > total {
        return Err(OpenError::HeaderDamaged("trailing bytes"));
    }
    let sum = blake3::hash(&bytes[..PREFIX_LEN + len]);
    if sum
        != blake3::Hash::from_bytes(
            bytes[PREFIX_LEN + len..]
                .try_into()
                .map_err(|_| OpenError::HeaderDamaged("checksum"))?,
        )
    {
        return Err(OpenError::HeaderDamaged("checksum mismatch"));
    }
    if version > FORMAT_VERSION {
        return Err(OpenError::NewerFormat {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if version == 0 {
        return Err(OpenError::HeaderDamaged("format version 0"));
    }
    if version < FORMAT_VERSION {
        return Err(OpenError::OlderFormat {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    super::codec::decode(&bytes[PREFIX_LEN..PREFIX_LEN + len], "vault header")
        .map_err(|_| OpenError::HeaderDamaged("body does not decode"))
}

/// The file name of the vault file in a vault directory.
pub(crate) const FILE_NAME: &str = "vault.pdv";

/// A vault file, read: its current version, and whether the other copy was damaged.
pub(crate) struct FileRead {
    pub(crate) body: VaultFileBody,
    /// The other copy neither held a version nor was blank. Beside a current version whose
    /// epoch key exists this is a write a crash interrupted; beside one whose epoch key is gone,
    /// damage to the file (the version it held was the current one).
    pub(crate) damaged_copy: Option<OpenError>,
}

/// What one copy of a file of two copies holds.
enum Copy {
    Whole(VaultFileBody),
    /// Zeros only: never written.
    Blank,
    Damaged(OpenError),
}

/// Decodes one copy: a record followed by zeros.
fn decode_copy(copy: &[u8]) -> Copy {
    if copy.iter().all(|&b| b == 0) {
        return Copy::Blank;
    }
    if copy.len() < PREFIX_LEN {
        return Copy::Damaged(OpenError::HeaderDamaged("copy shorter than a record"));
    }
    let len = u32::from_le_bytes([copy[10], copy[11], copy[12], copy[13]]) as usize;
    let end = (PREFIX_LEN + CHECKSUM_LEN).saturating_add(len.min(MAX_BODY + 1));
    if end > copy.len() {
        return Copy::Damaged(OpenError::HeaderDamaged("record longer than its copy"));
    }
    if copy[end..].iter().any(|&b| b != 0) {
        return Copy::Damaged(OpenError::HeaderDamaged(
            "bytes after the record in its copy",
        ));
    }
    match decode(&copy[..end]) {
        Ok(body) => Copy::Whole(body),
        Err(e) => Copy::Damaged(e),
    }
}

/// Decodes a vault file, of two copies or of the previous layout (one record), telling
/// truncation, damage and another format apart.
pub(crate) fn decode_file(bytes: &[u8]) -> Result<FileRead, OpenError> {
    if bytes.len() < PREFIX_LEN {
        return Err(OpenError::HeaderTruncated { found: bytes.len() });
    }
    if &bytes[..8] == MAGIC {
        return Ok(FileRead {
            body: decode(bytes)?,
            damaged_copy: None,
        });
    }
    if &bytes[..8] != FILE_MAGIC {
        return Err(OpenError::HeaderDamaged("not a pdvault file (bad magic)"));
    }
    if bytes.len() < FILE_HEAD_LEN {
        return Err(OpenError::HeaderTruncated { found: bytes.len() });
    }
    if blake3::hash(&bytes[..12]).as_bytes() != &bytes[12..FILE_HEAD_LEN] {
        return Err(OpenError::HeaderDamaged("header block checksum mismatch"));
    }
    let copy_len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    if copy_len == 0 || !copy_len.is_multiple_of(BLOCK) || copy_len > MAX_BODY + BLOCK + COPY_SLACK
    {
        return Err(OpenError::HeaderDamaged("copy length out of range"));
    }
    let total = BLOCK + 2 * copy_len;
    if bytes.len() < total {
        return Err(OpenError::HeaderTruncated { found: bytes.len() });
    }
    if bytes.len() > total {
        return Err(OpenError::HeaderDamaged("trailing bytes"));
    }
    if bytes[FILE_HEAD_LEN..BLOCK].iter().any(|&b| b != 0) {
        return Err(OpenError::HeaderDamaged("header block"));
    }
    let [first, second] = [0, 1].map(|i| {
        let at = copy_offset(copy_len, i);
        decode_copy(&bytes[at..at + copy_len])
    });
    match (first, second) {
        // A copy of a newer format: a newer build wrote the file (a torn write fails the
        // checksum).
        (Copy::Damaged(e @ OpenError::NewerFormat { .. }), _)
        | (_, Copy::Damaged(e @ OpenError::NewerFormat { .. })) => Err(e),
        (Copy::Whole(a), Copy::Whole(b)) => Ok(FileRead {
            body: if b.generation > a.generation { b } else { a },
            damaged_copy: None,
        }),
        (Copy::Whole(body), other) | (other, Copy::Whole(body)) => Ok(FileRead {
            damaged_copy: match other {
                Copy::Damaged(e) => Some(e),
                _ => None,
            },
            body,
        }),
        // No version at all: what the copies say, a format error before damage.
        (Copy::Damaged(e), Copy::Blank) | (Copy::Blank, Copy::Damaged(e)) => Err(e),
        (Copy::Damaged(a), Copy::Damaged(b)) => Err(match (a, b) {
            (e @ OpenError::OlderFormat { .. }, _) => e,
            (_, e) => e,
        }),
        (Copy::Blank, Copy::Blank) => Err(OpenError::HeaderDamaged("both copies blank")),
    }
}

/// Reads the vault file of `dir`.
pub(crate) fn read_file(dir: &Path) -> Result<FileRead, crate::Error> {
    let path = dir.join(FILE_NAME);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(OpenError::NotFound(dir.to_path_buf()).into());
        }
        Err(e) => return Err(StorageError::Io(e).into()),
    };
    Ok(decode_file(&bytes)?)
}

/// The current version of the vault file of `dir`.
pub(crate) fn read(dir: &Path) -> Result<VaultFileBody, crate::Error> {
    Ok(read_file(dir)?.body)
}

/// Writes `body` as the vault file's current version, durably: in place, over the copy before
/// the current one, when the file has two copies large enough and the other copy holds the
/// version before (`body.generation - 1`); otherwise as a new file of two copies, written
/// beside the old one, synced and renamed over it. Either way a crash leaves a file that reads
/// as the version before or as this one.
pub(crate) fn write(dir: &Path, body: &VaultFileBody) -> Result<(), StorageError> {
    write_to(InPlace::open(dir, body.generation)?, dir, body)
}

/// The vault file of a directory, open for its version of a given generation to be written in
/// place: it has two copies, and the one that version does not overwrite holds the version
/// before. Checking that reads and verifies a whole copy, which needs nothing of the version
/// to come: a ratchet does it while the store flushes.
pub(crate) struct InPlace {
    file: File,
    copy_len: usize,
    generation: u64,
}

impl InPlace {
    /// The vault file of `dir`, if generation `generation` can be written into it in place.
    pub(crate) fn open(dir: &Path, generation: u64) -> Result<Option<InPlace>, StorageError> {
        let index = (generation % 2) as usize;
        Ok(
            writable_in_place(&dir.join(FILE_NAME), index, generation)?.map(|(file, copy_len)| {
                InPlace {
                    file,
                    copy_len,
                    generation,
                }
            }),
        )
    }
}

/// [`write`], in place when `in_place` (opened for `body`'s generation) has room for `body`.
pub(crate) fn write_to(
    in_place: Option<InPlace>,
    dir: &Path,
    body: &VaultFileBody,
) -> Result<(), StorageError> {
    let record = encode_in(body, in_place.as_ref().map_or(0, |p| p.copy_len));
    let path = dir.join(FILE_NAME);
    let index = (body.generation % 2) as usize;
    if let Some(InPlace {
        file,
        copy_len,
        generation,
    }) = in_place
        && generation == body.generation
        && record.len() <= copy_len
    {
        let mut copy = record;
        copy.resize(copy_len, 0);
        file.write_all_at(&copy, copy_offset(copy_len, index) as u64)?;
        file.sync_data()?;
        return Ok(());
    }
    let copy_len = (record.len() + COPY_SLACK).div_ceil(BLOCK) * BLOCK;
    let mut bytes = vec![0u8; BLOCK + 2 * copy_len];
    bytes[..8].copy_from_slice(FILE_MAGIC);
    bytes[8..12].copy_from_slice(&(copy_len as u32).to_le_bytes());
    let sum = blake3::hash(&bytes[..12]);
    bytes[12..FILE_HEAD_LEN].copy_from_slice(sum.as_bytes());
    let at = copy_offset(copy_len, index);
    bytes[at..at + record.len()].copy_from_slice(&record);
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    {
        let mut f = super::private_fs::open_file(
            &tmp,
            OpenOptions::new().write(true).create(true).truncate(true),
        )?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &path)?;
    sync_dir(dir)
}

/// Where copy `index` starts in a file of copies of `copy_len` bytes.
fn copy_offset(copy_len: usize, index: usize) -> usize {
    BLOCK + index * copy_len
}

/// The copy length in the header of an open file of two copies.
fn copy_len_of(file: &File) -> Result<usize, StorageError> {
    let mut head = [0u8; 12];
    file.read_exact_at(&mut head, 0)?;
    Ok(u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize)
}

/// The vault file, opened for writing copy `index` in place, and its copies' length, if it has
/// two copies and its other copy is the whole version before `generation` (so that the copy
/// overwritten is never the current one, whatever wrote the file).
fn writable_in_place(
    path: &Path,
    index: usize,
    generation: u64,
) -> Result<Option<(File, usize)>, StorageError> {
    // A symbolic link (or anything but a file) is replaced, never written through.
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => {}
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    // Made 0600 again if its mode was widened since.
    let file = super::private_fs::open_file(path, OpenOptions::new().read(true).write(true))?;
    let len = file.metadata()?.len() as usize;
    if len < BLOCK {
        return Ok(None);
    }
    let mut head = [0u8; 8];
    file.read_exact_at(&mut head, 0)?;
    if &head != FILE_MAGIC {
        return Ok(None);
    }
    let copy_len = copy_len_of(&file)?;
    if len != BLOCK + 2 * copy_len {
        return Ok(None);
    }
    let mut other = vec![0u8; copy_len];
    file.read_exact_at(&mut other, copy_offset(copy_len, 1 - index) as u64)?;
    let previous = match decode_copy(&other) {
        Copy::Whole(b) => b.generation,
        Copy::Blank | Copy::Damaged(_) => return Ok(None),
    };
    Ok((previous.checked_add(1) == Some(generation)).then_some((file, copy_len)))
}

/// Syncs a directory so that a rename in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body() -> VaultFileBody {
        VaultFileBody {
            vault_id: [1; 16],
            kdf: KdfSpec::Passphrase {
                salt: [2; 16],
                params: KdfParams::default(),
            },
            key_check: [3; 32],
            generation: 7,
            checkpoint: Manifest {
                seq: 5,
                entries: 9,
                acc: [4; 32],
            },
            source_kind: "slot".into(),
            key_namespace: [8; 16],
            epoch: [6; 16],
            sealed_ring_key: vec![7; 72],
            sealed_ring: vec![5; 100],
        }
    }

    #[test]
    fn roundtrip_and_damage() {
        let b = encode(&body());
        assert_eq!(decode(&b).unwrap(), body());
        // The layout the module doc states, whatever room the buffer was made with.
        let fields = crate::storage::codec::encode(&body());
        assert_eq!(&b[..8], MAGIC);
        assert_eq!(b[8..10], FORMAT_VERSION.to_le_bytes());
        assert_eq!(b[10..14], (fields.len() as u32).to_le_bytes());
        assert_eq!(&b[14..b.len() - 32], &fields[..]);
        assert_eq!(
            &b[b.len() - 32..],
            blake3::hash(&b[..b.len() - 32]).as_bytes()
        );
        let roomy = encode_in(&body(), 3 * BLOCK);
        assert_eq!(roomy, b);
        assert!(roomy.capacity() >= 3 * BLOCK);
        assert!(matches!(
            decode(&b[..b.len() - 1]),
            Err(OpenError::HeaderTruncated { .. })
        ));
        assert!(matches!(
            decode(&b[..5]),
            Err(OpenError::HeaderTruncated { .. })
        ));
        let mut g = b.clone();
        g[20] ^= 1;
        assert!(matches!(decode(&g), Err(OpenError::HeaderDamaged(_))));
        let mut newer = b[..b.len() - 32].to_vec();
        newer[8..10].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        let sum = blake3::hash(&newer);
        newer.extend_from_slice(sum.as_bytes());
        assert!(matches!(
            decode(&newer),
            Err(OpenError::NewerFormat { found, .. }) if found == FORMAT_VERSION + 1
        ));
        assert!(matches!(
            decode(&[0; 200]),
            Err(OpenError::HeaderDamaged(_))
        ));
    }

    fn body_of(generation: u64) -> VaultFileBody {
        VaultFileBody {
            generation,
            ..body()
        }
    }

    fn inode(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(path).unwrap().ino()
    }

    #[test]
    fn a_new_version_overwrites_the_copy_before_the_current_one_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        write(dir.path(), &body_of(1)).unwrap();
        let (ino, len) = (inode(&path), fs::metadata(&path).unwrap().len());
        assert!((len as usize).is_multiple_of(BLOCK));
        for g in 2..6 {
            write(dir.path(), &body_of(g)).unwrap();
            let read = read_file(dir.path()).unwrap();
            assert_eq!(read.body, body_of(g));
            assert!(read.damaged_copy.is_none());
            // The same file, the same size: no new file, no rename.
            assert_eq!(
                (inode(&path), fs::metadata(&path).unwrap().len()),
                (ino, len)
            );
            assert!(!dir.path().join(format!("{FILE_NAME}.tmp")).exists());
        }
        // Both copies hold a version: the one before the current one is the other copy.
        let bytes = fs::read(&path).unwrap();
        let copy_len = (bytes.len() - BLOCK) / 2;
        let copies: Vec<u64> = [0, 1]
            .map(
                |i| match decode_copy(&bytes[copy_offset(copy_len, i)..][..copy_len]) {
                    Copy::Whole(b) => b.generation,
                    _ => panic!("copy {i} holds no version"),
                },
            )
            .to_vec();
        assert_eq!(copies, vec![4, 5]);
    }

    #[test]
    fn a_write_cut_short_leaves_the_version_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        write(dir.path(), &body_of(1)).unwrap();
        write(dir.path(), &body_of(2)).unwrap();
        let good = fs::read(&path).unwrap();
        let copy_len = (good.len() - BLOCK) / 2;
        // Generation 2 is in copy 0: cut its write short at every few bytes.
        let record_len = encode(&body_of(2)).len();
        for cut in (0..record_len).step_by(37) {
            let mut torn = good.clone();
            let at = copy_offset(copy_len, 0);
            for b in &mut torn[at + cut..at + record_len] {
                *b ^= 0x5a;
            }
            let read = decode_file(&torn).unwrap();
            assert_eq!(read.body, body_of(1), "cut at {cut}");
            assert!(read.damaged_copy.is_some(), "cut at {cut}");
        }
        // Written again, generation 2 goes over the damaged copy, in place (the other copy holds
        // generation 1, the version before).
        let mut torn = good.clone();
        torn[copy_offset(copy_len, 0) + 100] ^= 1;
        fs::write(&path, &torn).unwrap();
        let ino = inode(&path);
        write(dir.path(), &body_of(2)).unwrap();
        assert_eq!(inode(&path), ino);
        assert_eq!(read(dir.path()).unwrap(), body_of(2));
    }

    #[test]
    fn a_file_of_the_previous_layout_is_read_and_replaced_at_its_first_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        fs::write(&path, encode(&body_of(3))).unwrap();
        assert_eq!(read(dir.path()).unwrap(), body_of(3));
        let ino = inode(&path);
        write(dir.path(), &body_of(4)).unwrap();
        assert_ne!(inode(&path), ino, "replaced by a file of two copies");
        assert_eq!(&fs::read(&path).unwrap()[..8], FILE_MAGIC);
        assert_eq!(read(dir.path()).unwrap(), body_of(4));
    }

    #[test]
    fn a_copy_that_is_not_the_version_before_is_never_overwritten() {
        // Generation 7 goes to copy 1; copy 1 of this file is blank and copy 0 holds generation
        // 4, not 6: the write makes a new file instead of trusting either copy's place.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        write(dir.path(), &body_of(4)).unwrap();
        let ino = inode(&path);
        write(dir.path(), &body_of(7)).unwrap();
        assert_ne!(inode(&path), ino);
        assert_eq!(read(dir.path()).unwrap(), body_of(7));
        // Copies too small for the record: a new file with larger ones.
        let mut big = body_of(8);
        big.sealed_ring = vec![1; 3 * BLOCK];
        let ino = inode(&path);
        write(dir.path(), &big).unwrap();
        assert_ne!(inode(&path), ino);
        assert_eq!(read(dir.path()).unwrap(), big);
    }

    /// A file opened for a version before that version is sealed (as a ratchet opens it while
    /// the store flushes) is written in place only with the version it was opened for, and only
    /// when that version fits its copies; otherwise the write makes a new file.
    #[test]
    fn a_file_opened_ahead_is_written_in_place_only_with_the_version_it_was_opened_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        write(dir.path(), &body_of(1)).unwrap();
        write(dir.path(), &body_of(2)).unwrap();
        let ino = inode(&path);
        let ahead = InPlace::open(dir.path(), 3).unwrap();
        assert!(ahead.is_some());
        write_to(ahead, dir.path(), &body_of(3)).unwrap();
        assert_eq!(inode(&path), ino, "in place");
        assert_eq!(read(dir.path()).unwrap(), body_of(3));
        // Opened for generation 4, used for 5: a new file, generation 5 read back.
        let ahead = InPlace::open(dir.path(), 4).unwrap();
        write_to(ahead, dir.path(), &body_of(5)).unwrap();
        assert_ne!(inode(&path), ino);
        assert_eq!(read(dir.path()).unwrap(), body_of(5));
        // Opened for 6, but 6 does not fit the copies: a new file with larger ones.
        let ino = inode(&path);
        let ahead = InPlace::open(dir.path(), 6).unwrap();
        assert!(ahead.is_some());
        let mut big = body_of(6);
        big.sealed_ring = vec![1; 3 * BLOCK];
        write_to(ahead, dir.path(), &big).unwrap();
        assert_ne!(inode(&path), ino);
        assert_eq!(read(dir.path()).unwrap(), big);
        // No file of two copies holding the version before: nothing to write in place.
        assert!(InPlace::open(dir.path(), 9).unwrap().is_none());
    }

    #[test]
    fn a_damaged_file_of_two_copies_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &body_of(1)).unwrap();
        let good = fs::read(dir.path().join(FILE_NAME)).unwrap();
        for len in [0, 7, 8, 13, 20, 43, BLOCK, good.len() / 2, good.len() - 1] {
            assert!(
                matches!(decode_file(&good[..len]), Err(OpenError::HeaderTruncated { found }) if found == len),
                "truncated to {len}"
            );
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(matches!(
            decode_file(&longer),
            Err(OpenError::HeaderDamaged(_))
        ));
        // The header block: padding, the copy length (its checksum tells it from truncation).
        for (at, mask) in [(100, 1), (9, 0x80), (8, 1), (20, 1)] {
            let mut head = good.clone();
            head[at] ^= mask;
            assert!(
                matches!(decode_file(&head), Err(OpenError::HeaderDamaged(_))),
                "byte {at}"
            );
        }
        let mut magic = good.clone();
        magic[3] ^= 1;
        assert!(matches!(
            decode_file(&magic),
            Err(OpenError::HeaderDamaged(_))
        ));
        // The only version damaged (the other copy never written).
        let copy_len = (good.len() - BLOCK) / 2;
        let mut only = good.clone();
        only[copy_offset(copy_len, 1) + 20] ^= 1;
        assert!(matches!(
            decode_file(&only),
            Err(OpenError::HeaderDamaged(_))
        ));
        let mut blank = good.clone();
        blank[BLOCK..].fill(0);
        assert!(matches!(
            decode_file(&blank),
            Err(OpenError::HeaderDamaged(_))
        ));
    }

    proptest! {
        #[test]
        fn decode_arbitrary_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&b);
            let _ = decode_file(&b);
        }

        #[test]
        fn decode_file_never_panics_on_damage(at in any::<proptest::sample::Index>(), mask in 1u8.., cut in any::<proptest::sample::Index>()) {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), &body_of(1)).unwrap();
            write(dir.path(), &body_of(2)).unwrap();
            let good = fs::read(dir.path().join(FILE_NAME)).unwrap();
            let mut bad = good.clone();
            bad[at.index(good.len())] ^= mask;
            // One flipped byte: a version is read (the current one, or the one before it with
            // the damage reported), or the file is refused.
            if let Ok(read) = decode_file(&bad) {
                prop_assert!(read.body == body_of(2) || (read.body == body_of(1) && read.damaged_copy.is_some()));
            }
            let _ = decode_file(&good[..cut.index(good.len())]);
        }

        #[test]
        fn roundtrip_any(generation in any::<u64>(), ring in proptest::collection::vec(any::<u8>(), 0..200), seq in any::<u64>()) {
            let mut b = body();
            b.generation = generation;
            b.sealed_ring = ring;
            b.checkpoint.seq = seq;
            prop_assert_eq!(decode(&encode(&b)).unwrap(), b);
        }
    }
}
