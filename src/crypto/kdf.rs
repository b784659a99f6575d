//! Argon2id for passphrases; BLAKE3 for deriving subkeys and for keyed hashes.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::SecretKey;
use crate::error::OpenError;

/// Argon2id costs. The defaults are OWASP's minimum: 19 MiB of memory, 2 passes, 1 lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Degree of parallelism (lanes).
    pub parallelism: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl KdfParams {
    /// Cheap parameters for tests and examples only: never use them for real data.
    pub fn insecure_for_tests() -> Self {
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    pub(crate) fn argon2(&self) -> Result<argon2::Argon2<'static>, OpenError> {
        // Bounds that keep a hostile header from asking for absurd work.
        if self.memory_kib > 4 * 1024 * 1024 || self.iterations > 1000 || self.parallelism > 64 {
            return Err(OpenError::InvalidKdfParams(
                "costs above the supported maximum".into(),
            ));
        }
        let params =
            argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
                .map_err(|e| OpenError::InvalidKdfParams(e.to_string()))?;
        Ok(argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        ))
    }
}

/// Stretches a passphrase into a 32-byte key with Argon2id.
pub(crate) fn derive_passphrase_key(
    passphrase: &str,
    salt: &[u8; 16],
    params: &KdfParams,
) -> Result<SecretKey, OpenError> {
    let mut out = Zeroizing::new([0u8; 32]);
    params
        .argon2()?
        .hash_password_into(passphrase.as_bytes(), salt, out.as_mut())
        .map_err(|e| OpenError::InvalidKdfParams(e.to_string()))?;
    Ok(SecretKey::from_bytes(*out))
}

/// Derives an independent subkey for one job from a parent key (BLAKE3's KDF mode; the context
/// string names the job).
pub(crate) fn derive_subkey(parent: &SecretKey, context: &str) -> SecretKey {
    SecretKey::from_bytes(blake3::derive_key(context, parent.expose()))
}

/// A keyed hash (BLAKE3 keyed mode).
pub(crate) fn keyed_hash(key: &SecretKey, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(key.expose());
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    *h.finalize().as_bytes()
}
