//! The vault file `vault.pdv`: the header in the clear, the ring key sealed by the key source under
//! the current epoch key, and the key ring sealed under the ring key. It is small, and always replaced whole and atomically (write a temporary
//! file, sync it, rename it over the old one, sync the directory): an old key ring does not
//! linger in the current files.
//!
//! Layout: `magic "PDVAULT1" (8) | format version u16 LE | body length u32 LE | body | BLAKE3 of
//! all preceding bytes (32)`. The body is the bincode of [`VaultFileBody`].

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::entries::Manifest;
use crate::crypto::KdfParams;
use crate::error::{OpenError, StorageError};

const MAGIC: &[u8; 8] = b"PDVAULT1";
/// The vault format version this build writes and reads.
pub(crate) const FORMAT_VERSION: u16 = 7;
const PREFIX_LEN: usize = 8 + 2 + 4;
const CHECKSUM_LEN: usize = 32;
const MAX_BODY: usize = 4 * 1024 * 1024;

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

/// The key ring in the clear: the master secret and one key per shard. Wiped on drop.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub(crate) struct RingPlain {
    pub(crate) master: [u8; 32],
    pub(crate) shards: Vec<(u64, [u8; 32])>,
}

/// The ring's encoding, in a buffer wiped on drop that no other copy of it precedes.
pub(crate) fn encode_ring(ring: &RingPlain) -> Zeroizing<Vec<u8>> {
    super::codec::encode_secret(ring)
}

pub(crate) fn decode_ring(bytes: &[u8]) -> Result<RingPlain, StorageError> {
    super::codec::decode(bytes, "key ring")
}

/// Encodes the vault file.
pub(crate) fn encode(body: &VaultFileBody) -> Vec<u8> {
    let body_bytes = super::codec::encode(body);
    let mut out = Vec::with_capacity(PREFIX_LEN + body_bytes.len() + CHECKSUM_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(body_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&body_bytes);
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

/// Reads the vault file of `dir`.
pub(crate) fn read(dir: &Path) -> Result<VaultFileBody, crate::Error> {
    let path = dir.join(FILE_NAME);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(OpenError::NotFound(dir.to_path_buf()).into());
        }
        Err(e) => return Err(StorageError::Io(e).into()),
    };
    Ok(decode(&bytes)?)
}

/// Replaces the vault file of `dir` atomically and durably.
pub(crate) fn write(dir: &Path, body: &VaultFileBody) -> Result<(), StorageError> {
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let bytes = encode(body);
    {
        let mut f = super::private_fs::open_file(
            &tmp,
            OpenOptions::new().write(true).create(true).truncate(true),
        )?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(FILE_NAME))?;
    sync_dir(dir)
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
        newer[8] = 9;
        let sum = blake3::hash(&newer);
        newer.extend_from_slice(sum.as_bytes());
        assert!(matches!(
            decode(&newer),
            Err(OpenError::NewerFormat { found: 9, .. })
        ));
        assert!(matches!(
            decode(&[0; 200]),
            Err(OpenError::HeaderDamaged(_))
        ));
    }

    proptest! {
        #[test]
        fn decode_arbitrary_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&b);
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
