//! Secret-key types. None derives `Debug`, `Clone` or `Serialize`; all are wiped on drop.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// 32 bytes of key material, zeroized on drop, never printed.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct SecretKey([u8; 32]);

impl SecretKey {
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretKey(bytes)
    }

    pub(crate) fn random() -> Self {
        SecretKey(super::random_array())
    }

    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// The fewest characters a new passphrase may have unless the host says otherwise
/// ([`VaultBuilder::min_passphrase_len`](crate::VaultBuilder::min_passphrase_len),
/// [`Vault::rotate_root_with_min_len`](crate::Vault::rotate_root_with_min_len)).
pub const DEFAULT_MIN_PASSPHRASE_LEN: usize = 8;

/// The root secret of a vault: a passphrase (stretched with Argon2id) or a raw 32-byte key.
///
/// Never written to disk and never printed.
pub enum RootSecret {
    /// A passphrase; the vault stores the Argon2id salt and costs in its header.
    Passphrase(Zeroizing<String>),
    /// A raw 32-byte key from the host's KMS or HSM.
    RawKey(Zeroizing<[u8; 32]>),
}

impl RootSecret {
    /// A passphrase.
    pub fn passphrase(p: impl Into<String>) -> Self {
        RootSecret::Passphrase(Zeroizing::new(p.into()))
    }

    /// A raw 32-byte key.
    pub fn raw_key(key: [u8; 32]) -> Self {
        RootSecret::RawKey(Zeroizing::new(key))
    }

    /// Refuses a passphrase of fewer than `min` characters (Unicode scalar values); a raw key
    /// always passes. For secrets that are about to protect a vault: creating, rotating.
    pub(crate) fn check_len(&self, min: usize) -> Result<(), crate::InputError> {
        match self {
            RootSecret::Passphrase(p) if p.chars().count() < min => {
                Err(crate::InputError::PassphraseTooShort { min })
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            RootSecret::Passphrase(_) => "passphrase",
            RootSecret::RawKey(_) => "raw key",
        }
    }
}

impl fmt::Debug for RootSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RootSecret::{}(<redacted>)", self.kind())
    }
}
