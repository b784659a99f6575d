//! Cryptographic primitives, and nothing else: secret-key types, XChaCha20-Poly1305 seal/open with
//! associated data, Argon2id, key derivation and keyed hashes.
//!
//! This module knows no storage layout and no policy. Every AEAD failure folds into the one
//! opaque [`IntegrityError`](crate::IntegrityError).

mod aead;
mod kdf;
mod password;
mod secret;

pub(crate) use aead::{DataKey, SEAL_OVERHEAD, TAG_LEN, open, open_in_place, seal};
pub use kdf::KdfParams;
pub(crate) use kdf::{derive_passphrase_key, derive_subkey, keyed_hash, keyed_hash_public};
pub(crate) use password::{hash_secret, verify_secret};
pub(crate) use secret::SecretKey;
pub use secret::{DEFAULT_MIN_PASSPHRASE_LEN, RootSecret};

use rand::Rng;

/// Fills an array from the thread-local CSPRNG (ChaCha, seeded and periodically reseeded from the
/// operating system): cheap enough to draw a nonce per seal.
pub(crate) fn random_array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::rng().fill_bytes(&mut out);
    out
}
