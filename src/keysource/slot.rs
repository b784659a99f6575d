//! The built-in key source: epoch keys in a small file that is only ever overwritten in place.
//!
//! `keys.slot` in the vault directory holds [`SLOTS`] slots of one filesystem block each
//! ([`SLOT_LEN`] bytes), written once in full when the file is made so that none of them is a
//! hole. A slot is empty (all zeros) or holds one epoch key:
//! `magic "PDVSLOT1" (8) | epoch id (16) | the key sealed under the slot key (72) | BLAKE3 of the
//! preceding bytes (32)`, the rest of the block zeros. The slot key is derived from the vault's
//! root key, so the passphrase (or raw key) alone opens the vault; the sealing is bound to the
//! vault id, the slot and the epoch.
//!
//! Making an epoch writes an empty slot in place and syncs; destroying one overwrites its slot
//! with zeros in place and syncs. The file is never truncated, extended or replaced, so on a
//! filesystem that overwrites in place (ext4, XFS) the old key's blocks are the ones overwritten.
//! A slot written half-way by a crash fails its checksum: it is no epoch, and it is wiped when the
//! source is next opened. Each slot has a block of its own, so a torn write damages no other.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use zeroize::Zeroizing;

use super::{EpochId, ErasureGuarantee, KeySource, KeySourceError, SourceInfo};
use crate::crypto::{self, DataKey, SecretKey};

/// The slot file's name in the vault directory.
pub(crate) const FILE_NAME: &str = "keys.slot";
/// How many slots the file has: the current epoch, the next one while a ratchet runs, and room
/// for what a crash can leave behind.
pub(crate) const SLOTS: usize = 8;
/// The bytes of one slot: one filesystem block.
pub(crate) const SLOT_LEN: usize = 4096;

const MAGIC: &[u8; 8] = b"PDVSLOT1";
const SEALED_LEN: usize = 32 + crypto::SEAL_OVERHEAD;
const BODY_LEN: usize = 8 + 16 + SEALED_LEN;
const USED_LEN: usize = BODY_LEN + 32;

/// Epoch keys in an in-place slot file, sealed under a key derived from the root key.
pub struct SlotSource {
    path: PathBuf,
    vault_id: [u8; 16],
    inner: Mutex<Slots>,
}

struct Slots {
    file: File,
    key: DataKey,
    /// The epoch in each slot, if any.
    used: [Option<EpochId>; SLOTS],
}

impl std::fmt::Debug for SlotSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotSource")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn io(e: std::io::Error) -> KeySourceError {
    KeySourceError::Unreachable(format!("key-slot file: {e}"))
}

fn slot_ad(vault_id: &[u8; 16], slot: usize, epoch: &EpochId) -> Vec<u8> {
    let mut ad = b"pdvault/slot/".to_vec();
    ad.extend_from_slice(vault_id);
    ad.push(slot as u8);
    ad.extend_from_slice(&epoch.to_bytes());
    ad
}

/// The epoch a slot's bytes hold, if they are a whole, valid slot.
fn parse(bytes: &[u8]) -> Option<EpochId> {
    if bytes.len() < USED_LEN || &bytes[..8] != MAGIC {
        return None;
    }
    let sum = blake3::hash(&bytes[..BODY_LEN]);
    if sum.as_bytes() != &bytes[BODY_LEN..USED_LEN] {
        return None;
    }
    let id: [u8; 16] = bytes[8..24].try_into().ok()?;
    Some(EpochId::from_bytes(id))
}

impl SlotSource {
    /// Makes the slot file of a new vault in `dir` (refusing to replace one), every slot empty.
    pub(crate) fn create(
        dir: &Path,
        vault_id: [u8; 16],
        slot_key: &SecretKey,
    ) -> Result<Self, KeySourceError> {
        let path = dir.join(FILE_NAME);
        let file = crate::storage::private_fs::open_file(
            &path,
            OpenOptions::new().read(true).write(true).create_new(true),
        )
        .map_err(io)?;
        file.write_all_at(&vec![0u8; SLOTS * SLOT_LEN], 0)
            .map_err(io)?;
        file.sync_all().map_err(io)?;
        crate::storage::vault_file::sync_dir(dir)
            .map_err(|e| KeySourceError::Unreachable(format!("vault directory: {e}")))?;
        Ok(Self::with_file(
            path,
            file,
            vault_id,
            slot_key,
            [None; SLOTS],
        ))
    }

    /// Opens the slot file of a vault in `dir`. Slots a crash left half written are wiped.
    pub(crate) fn open(
        dir: &Path,
        vault_id: [u8; 16],
        slot_key: &SecretKey,
    ) -> Result<Self, KeySourceError> {
        let path = dir.join(FILE_NAME);
        let file =
            crate::storage::private_fs::open_file(&path, OpenOptions::new().read(true).write(true))
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => KeySourceError::Unreachable(format!(
                        "the key-slot file {} is missing",
                        path.display()
                    )),
                    _ => io(e),
                })?;
        let mut used = [None; SLOTS];
        let mut torn = Vec::new();
        let mut block = vec![0u8; SLOT_LEN];
        for (i, u) in used.iter_mut().enumerate() {
            file.read_exact_at(&mut block, (i * SLOT_LEN) as u64)
                .map_err(io)?;
            *u = parse(&block);
            if u.is_none() && block.iter().any(|b| *b != 0) {
                torn.push(i);
            }
        }
        let source = Self::with_file(path, file, vault_id, slot_key, used);
        if !torn.is_empty() {
            let mut s = source.lock();
            for i in torn {
                s.wipe(i)?;
            }
            s.file.sync_data().map_err(io)?;
        }
        Ok(source)
    }

    fn with_file(
        path: PathBuf,
        file: File,
        vault_id: [u8; 16],
        slot_key: &SecretKey,
        used: [Option<EpochId>; SLOTS],
    ) -> Self {
        SlotSource {
            path,
            vault_id,
            inner: Mutex::new(Slots {
                file,
                key: DataKey::new(slot_key),
                used,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seals new epoch keys under another slot key from now on (a root-key rotation); returns
    /// nothing of the old one. Epochs made before stay sealed under the old key.
    pub(crate) fn set_slot_key(&self, slot_key: &SecretKey) {
        self.lock().key = DataKey::new(slot_key);
    }

    /// The epoch key of `epoch`, opened.
    fn epoch_key(&self, s: &Slots, epoch: &EpochId) -> Result<DataKey, KeySourceError> {
        let i = s
            .used
            .iter()
            .position(|u| u.as_ref() == Some(epoch))
            .ok_or(KeySourceError::EpochNotFound(*epoch))?;
        let mut block = Zeroizing::new(vec![0u8; USED_LEN]);
        s.file
            .read_exact_at(&mut block, (i * SLOT_LEN) as u64)
            .map_err(io)?;
        if parse(&block) != Some(*epoch) {
            return Err(KeySourceError::Damaged(*epoch));
        }
        super::open_sealed_epoch_key(
            &s.key,
            &slot_ad(&self.vault_id, i, epoch),
            &block[24..BODY_LEN],
            epoch,
        )
    }
}

impl Slots {
    /// Overwrites slot `i` with zeros in place (not synced).
    fn wipe(&mut self, i: usize) -> Result<(), KeySourceError> {
        self.file
            .write_all_at(&[0u8; SLOT_LEN], (i * SLOT_LEN) as u64)
            .map_err(io)?;
        self.used[i] = None;
        Ok(())
    }
}

impl KeySource for SlotSource {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: "slot".into(),
            location: self.path.display().to_string(),
            guarantee: ErasureGuarantee::OverwrittenInPlace,
        }
    }

    fn create_epoch(&self, epoch: EpochId) -> Result<(), KeySourceError> {
        let mut s = self.lock();
        let i = s
            .used
            .iter()
            .position(Option::is_none)
            .ok_or_else(|| KeySourceError::Failed("every key slot is in use".into()))?;
        let secret = SecretKey::random();
        let mut block = Zeroizing::new(vec![0u8; SLOT_LEN]);
        block[..8].copy_from_slice(MAGIC);
        block[8..24].copy_from_slice(&epoch.to_bytes());
        let sealed = crypto::seal(&s.key, &slot_ad(&self.vault_id, i, &epoch), secret.expose());
        block[24..BODY_LEN].copy_from_slice(&sealed);
        let sum = blake3::hash(&block[..BODY_LEN]);
        block[BODY_LEN..USED_LEN].copy_from_slice(sum.as_bytes());
        s.file
            .write_all_at(&block, (i * SLOT_LEN) as u64)
            .map_err(io)?;
        s.file.sync_data().map_err(io)?;
        s.used[i] = Some(epoch);
        Ok(())
    }

    fn seal(&self, epoch: &EpochId, ad: &[u8], secret: &[u8]) -> Result<Vec<u8>, KeySourceError> {
        let s = self.lock();
        let key = self.epoch_key(&s, epoch)?;
        Ok(crypto::seal(&key, ad, secret))
    }

    fn unseal(
        &self,
        epoch: &EpochId,
        ad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeySourceError> {
        let s = self.lock();
        let key = self.epoch_key(&s, epoch)?;
        crypto::open(&key, ad, sealed)
            .map(Zeroizing::new)
            .map_err(|_| KeySourceError::Damaged(*epoch))
    }

    fn destroy_epoch(&self, epoch: &EpochId) -> Result<(), KeySourceError> {
        let mut s = self.lock();
        let Some(i) = s.used.iter().position(|u| u.as_ref() == Some(epoch)) else {
            return Ok(());
        };
        s.wipe(i)?;
        s.file.sync_data().map_err(io)
    }

    fn epochs(&self) -> Result<Vec<EpochId>, KeySourceError> {
        Ok(self.lock().used.iter().flatten().copied().collect())
    }
}

/// The epoch key held by a slot's bytes found anywhere (a carved block of a device image), opened
/// with `slot_key` for the vault `vault_id`, trying each slot position. For tests that attack the
/// vault as someone with a raw image and the passphrase would.
#[cfg(test)]
pub(crate) fn open_carved(
    bytes: &[u8],
    vault_id: &[u8; 16],
    slot_key: &SecretKey,
) -> Option<(EpochId, [u8; 32])> {
    let epoch = parse(bytes)?;
    let key = DataKey::new(slot_key);
    (0..SLOTS).find_map(|i| {
        let plain = crypto::open(&key, &slot_ad(vault_id, i, &epoch), &bytes[24..BODY_LEN]).ok()?;
        Some((epoch, plain.as_slice().try_into().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(dir: &Path) -> SlotSource {
        SlotSource::create(dir, [7; 16], &SecretKey::from_bytes([9; 32])).unwrap()
    }

    #[test]
    fn an_epoch_seals_until_destroyed_and_its_bytes_are_overwritten_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let s = source(tmp.path());
        let e = EpochId::next(None);
        s.create_epoch(e).unwrap();
        let sealed = s.seal(&e, b"ad", b"ring key").unwrap();
        assert_eq!(&*s.unseal(&e, b"ad", &sealed).unwrap(), b"ring key");
        assert!(matches!(
            s.unseal(&e, b"other", &sealed),
            Err(KeySourceError::Damaged(_))
        ));
        let before = std::fs::read(tmp.path().join(FILE_NAME)).unwrap();
        assert_eq!(before.len(), SLOTS * SLOT_LEN);
        s.destroy_epoch(&e).unwrap();
        let after = std::fs::read(tmp.path().join(FILE_NAME)).unwrap();
        assert!(after.iter().all(|b| *b == 0), "the slot is zeros again");
        assert!(matches!(
            s.unseal(&e, b"ad", &sealed),
            Err(KeySourceError::EpochNotFound(_))
        ));
        // Reopened, with the right and the wrong root.
        let f = EpochId::next(Some(&e));
        s.create_epoch(f).unwrap();
        let sealed = s.seal(&f, b"ad", b"k").unwrap();
        drop(s);
        let s = SlotSource::open(tmp.path(), [7; 16], &SecretKey::from_bytes([9; 32])).unwrap();
        assert_eq!(s.epochs().unwrap(), vec![f]);
        assert_eq!(&*s.unseal(&f, b"ad", &sealed).unwrap(), b"k");
        let wrong = SlotSource::open(tmp.path(), [7; 16], &SecretKey::from_bytes([8; 32])).unwrap();
        assert!(matches!(
            wrong.unseal(&f, b"ad", &sealed),
            Err(KeySourceError::Damaged(_))
        ));
    }

    #[test]
    fn a_torn_slot_is_no_epoch_and_is_wiped_at_open() {
        let tmp = tempfile::tempdir().unwrap();
        let s = source(tmp.path());
        let e = EpochId::next(None);
        s.create_epoch(e).unwrap();
        drop(s);
        let path = tmp.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[100] ^= 1; // the checksum no longer matches: a torn write
        std::fs::write(&path, &bytes).unwrap();
        let s = SlotSource::open(tmp.path(), [7; 16], &SecretKey::from_bytes([9; 32])).unwrap();
        assert!(s.epochs().unwrap().is_empty());
        assert!(std::fs::read(&path).unwrap().iter().all(|b| *b == 0));
    }

    #[test]
    fn slots_run_out_with_an_error_not_a_panic() {
        let tmp = tempfile::tempdir().unwrap();
        let s = source(tmp.path());
        let mut last = None;
        for _ in 0..SLOTS {
            let e = EpochId::next(last.as_ref());
            s.create_epoch(e).unwrap();
            last = Some(e);
        }
        assert!(matches!(
            s.create_epoch(EpochId::next(last.as_ref())),
            Err(KeySourceError::Failed(_))
        ));
    }
}
