//! Key sources: where the vault's **epoch keys** live, and where destroying one is real.
//!
//! The key ring (the master secret and the shard keys, `crate::keys`) is sealed under a fresh
//! random ring key at every rewrite of the vault file, and the ring key is sealed by a key source
//! under the current epoch key. Every key ratchet (an erasure, a sweep's destruction, a root
//! rotation) makes a new epoch key, seals the new ring under it, makes that durable, and then
//! destroys the previous epoch key. Every older copy of the vault file — a stale file on the
//! device, a snapshot, a database's history — holds its ring sealed under an epoch key that no
//! longer exists anywhere, so the shard keys it holds, and the data keys they wrapped, are gone
//! with it. What "exists nowhere" means is what the source can promise ([`ErasureGuarantee`]):
//!
//! - [`SlotSource`] (the default): epoch keys are kept, sealed under the root key, in a small
//!   preallocated file that is only ever overwritten in place. On ext4 and XFS an overwrite in
//!   place reuses the same blocks, so the old key is gone from the device (tested on a loop
//!   device). Copy-on-write filesystems (btrfs, ZFS), volume or VM snapshots and flash remapping
//!   below the block layer keep old blocks: there, destruction is as good as the layer below.
//! - a PKCS#11 token (the `pkcs11` feature): epoch keys are generated inside the token as
//!   non-extractable secret keys and destroyed with `C_DestroyObject`.
//! - on a PostgreSQL store without a source of its own: rows of the store (`table`), which
//!   makes erasure logical only ([`ErasureGuarantee::LogicalOnly`]): the database keeps old row
//!   versions in dead tuples, its WAL and its backups.
//! - a host's own source, implementing [`KeySource`] over a cloud KMS (`docs/design.md` says how
//!   AWS KMS, GCP KMS and Vault's transit engine map onto it, and the window each leaves).
//!
//! A source that cannot be reached or refuses is an error ([`KeySourceError`]), never read as
//! "erased": only [`KeySourceError::EpochNotFound`] says that a key is gone.
//!
//! This module owns the trait and the built-in sources; it knows nothing of the ring's contents,
//! of records or of policy.

pub(crate) mod slot;
#[cfg(feature = "postgres")]
pub(crate) mod table;

pub use slot::SlotSource;
#[cfg(feature = "pkcs11")]
mod pkcs11;
#[cfg(feature = "pkcs11")]
pub use pkcs11::{Pin, Pkcs11Source};

use std::fmt;

/// The name of an epoch key in its source: a sequence number (an epoch's successor has a larger
/// one) and 64 random bits.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct EpochId {
    /// Increases with every new epoch of a vault.
    pub seq: u64,
    /// Random, so that two vaults sharing a source never collide.
    pub nonce: [u8; 8],
}

impl EpochId {
    /// A new epoch id after `previous` (or the first one).
    pub fn next(previous: Option<&EpochId>) -> Self {
        EpochId {
            seq: previous.map_or(1, |p| p.seq.saturating_add(1)),
            nonce: crate::crypto::random_array(),
        }
    }

    /// The 16 bytes that name the epoch (sequence big-endian, then the nonce).
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.seq.to_be_bytes());
        b[8..].copy_from_slice(&self.nonce);
        b
    }

    /// The epoch named by [`EpochId::to_bytes`].
    pub fn from_bytes(b: [u8; 16]) -> Self {
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&b[..8]);
        let mut nonce = [0u8; 8];
        nonce.copy_from_slice(&b[8..]);
        EpochId {
            seq: u64::from_be_bytes(seq),
            nonce,
        }
    }
}

impl fmt::Display for EpochId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "epoch {}-", self.seq)?;
        self.nonce.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for EpochId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EpochId({self})")
    }
}

/// What destroying an epoch key gives, as the source states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErasureGuarantee {
    /// The key is overwritten in place in a file: gone from the device on filesystems that
    /// overwrite in place (ext4, XFS), not on copy-on-write filesystems or below snapshots.
    OverwrittenInPlace,
    /// The key lives in hardware (an HSM or a token) and is destroyed there.
    DestroyedInHardware,
    /// The key is destroyed by a service (a KMS), after the window the service states.
    DestroyedByService,
    /// Nothing can really be destroyed (for example: the epoch keys live in a database that
    /// keeps its history): erasure is logical against someone with that history and the secret.
    LogicalOnly,
}

impl ErasureGuarantee {
    /// A sentence for people (`verify`, the report).
    pub fn describe(self) -> &'static str {
        match self {
            ErasureGuarantee::OverwrittenInPlace => {
                "epoch keys are overwritten in place in the vault's key-slot file: erased data is gone from the device on filesystems that overwrite in place (ext4, XFS), not under copy-on-write filesystems, snapshots or backups of the device"
            }
            ErasureGuarantee::DestroyedInHardware => {
                "epoch keys live in a hardware token and are destroyed there: erased data cannot be decrypted from any copy of the vault, even with the root secret and the token's PIN"
            }
            ErasureGuarantee::DestroyedByService => {
                "epoch keys are destroyed by a key service, after the window it states"
            }
            ErasureGuarantee::LogicalOnly => {
                "no epoch key can really be destroyed (they are rows of the database, which keeps old row versions in dead tuples, its WAL, replicas and backups): erasure is logical only against someone with the database's history and the passphrase; a PKCS#11 token as key source makes it hold"
            }
        }
    }
}

/// Opens an epoch key that a built-in source keeps sealed (32 bytes under its sealing key); any
/// failure is [`KeySourceError::Damaged`].
pub(crate) fn open_sealed_epoch_key(
    key: &crate::crypto::DataKey,
    ad: &[u8],
    sealed: &[u8],
    epoch: &EpochId,
) -> Result<crate::crypto::DataKey, KeySourceError> {
    let plain = zeroize::Zeroizing::new(
        crate::crypto::open(key, ad, sealed).map_err(|_| KeySourceError::Damaged(*epoch))?,
    );
    let bytes: [u8; 32] = plain
        .as_slice()
        .try_into()
        .map_err(|_| KeySourceError::Damaged(*epoch))?;
    Ok(crate::crypto::DataKey::new(
        &crate::crypto::SecretKey::from_bytes(bytes),
    ))
}

/// What a source is, for `verify` and the report.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SourceInfo {
    /// A short kind: `slot`, `pkcs11`, or the host's own.
    pub kind: String,
    /// Where it is, without secrets (a file, a token label).
    pub location: String,
    /// What destroying a key gives.
    pub guarantee: ErasureGuarantee,
}

/// How a key source failed. Only [`EpochNotFound`](KeySourceError::EpochNotFound) means a key is
/// gone; every other variant means the source could not answer, and nothing may be concluded
/// from it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeySourceError {
    /// The source cannot be reached (a token removed, a service down, a file unreadable).
    #[error("the key source cannot be reached: {0}")]
    Unreachable(String),
    /// The source refused (a wrong PIN, missing permission).
    #[error("the key source refused: {0}")]
    Denied(String),
    /// The epoch key does not exist: it was destroyed (or never made).
    #[error("{0} does not exist in the key source (destroyed)")]
    EpochNotFound(EpochId),
    /// The source holds something for the epoch that does not open (damage, or another key).
    #[error("the key source's {0} does not open: damaged, or the wrong secret")]
    Damaged(EpochId),
    /// Any other failure of the source.
    #[error("the key source failed: {0}")]
    Failed(String),
}

/// Where epoch keys are made, used and destroyed. Every method may block (a file sync, a network
/// round trip to a token or a KMS), and may be called from a thread the vault starts for it
/// rather than the caller's: a key ratchet makes the new epoch key on a thread of its own while
/// it seals the key ring.
///
/// A source serves one vault (it may keep other vaults' keys too, and must list only this one's:
/// the vault's id is given to the source when it is made). Sealed values are small (a 32-byte
/// ring key); associated data binds them to the vault file they belong to.
pub trait KeySource: Send + Sync + fmt::Debug {
    /// What the source is and what destroying a key in it gives.
    fn info(&self) -> SourceInfo;

    /// Makes a new epoch key, durable before it returns, named `epoch`.
    fn create_epoch(&self, epoch: EpochId) -> Result<(), KeySourceError>;

    /// Seals `secret` under the epoch key, bound to `ad`.
    fn seal(&self, epoch: &EpochId, ad: &[u8], secret: &[u8]) -> Result<Vec<u8>, KeySourceError>;

    /// Opens what [`seal`](KeySource::seal) sealed.
    fn unseal(
        &self,
        epoch: &EpochId,
        ad: &[u8],
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, KeySourceError>;

    /// Destroys an epoch key, durably before it returns. Destroying a key that does not exist is
    /// not an error.
    fn destroy_epoch(&self, epoch: &EpochId) -> Result<(), KeySourceError>;

    /// Every epoch key the source holds for this vault.
    fn epochs(&self) -> Result<Vec<EpochId>, KeySourceError>;
}
