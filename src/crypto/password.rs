//! One-way hashing of credentials: Argon2id in a PHC string, with a fresh random salt.
//!
//! The parameters are the argon2 crate's defaults, fixed here so that a change of the crate's
//! defaults is a change made on purpose: Argon2id, version 0x13, 19 MiB of memory, 2 passes,
//! 1 lane, a 16-byte salt and a 32-byte output (OWASP's minimum for Argon2id). A PHC string
//! carries its own parameters, so a hash made with other costs still verifies.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use zeroize::Zeroizing;

use crate::error::{IntegrityError, StorageError};

/// Memory in KiB (19 MiB).
pub(crate) const MEMORY_KIB: u32 = 19_456;
/// Passes.
pub(crate) const ITERATIONS: u32 = 2;
/// Lanes.
pub(crate) const PARALLELISM: u32 = 1;
/// Salt length in bytes.
const SALT_LEN: usize = 16;
/// Output length in bytes.
const OUTPUT_LEN: usize = 32;

/// Costs above these in a stored PHC string are refused before any work is done (a hash this
/// build never makes; the same bounds as the root secret's [`KdfParams`](super::KdfParams)).
const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
const MAX_ITERATIONS: u32 = 1000;
const MAX_PARALLELISM: u32 = 64;

fn hasher() -> Result<argon2::Argon2<'static>, StorageError> {
    let params = argon2::Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, Some(OUTPUT_LEN))
        .map_err(|_| StorageError::Malformed("credential hash parameters"))?;
    Ok(argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        params,
    ))
}

/// Hashes a secret into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) with a
/// fresh random salt. The string is returned in a buffer wiped on drop.
pub(crate) fn hash_secret(secret: &[u8]) -> Result<Zeroizing<String>, StorageError> {
    let salt: [u8; SALT_LEN] = super::random_array();
    let hash = hasher()?
        .hash_password_with_salt(secret, &salt)
        .map_err(|_| StorageError::Malformed("credential hash"))?;
    Ok(Zeroizing::new(hash.to_string()))
}

/// Whether `candidate` is the secret `phc` is the hash of. The comparison of the outputs is in
/// constant time (argon2's verifier compares `phc::Output`s with `subtle`). A stored string that
/// is not an Argon2id PHC string of sane costs is an integrity failure: it was sealed by this
/// vault, so it cannot be anything else unless it was damaged.
pub(crate) fn verify_secret(candidate: &[u8], phc: &str) -> Result<bool, crate::Error> {
    let parsed = argon2::PasswordHash::new(phc).map_err(|_| IntegrityError)?;
    if parsed.algorithm != argon2::ARGON2ID_IDENT {
        return Err(IntegrityError.into());
    }
    let params = argon2::Params::try_from(&parsed).map_err(|_| IntegrityError)?;
    if params.m_cost() > MAX_MEMORY_KIB
        || params.t_cost() > MAX_ITERATIONS
        || params.p_cost() > MAX_PARALLELISM
    {
        return Err(IntegrityError.into());
    }
    match hasher()?.verify_password(candidate, &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(_) => Err(IntegrityError.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_salts_are_fresh() {
        let a = hash_secret(b"correct horse").unwrap();
        let b = hash_secret(b"correct horse").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", *a);
        assert_ne!(*a, *b, "a fresh salt per hash");
        assert!(!a.contains("correct horse"));
        assert!(verify_secret(b"correct horse", &a).unwrap());
        assert!(!verify_secret(b"correct horsf", &a).unwrap());
        assert!(!verify_secret(b"", &a).unwrap());
    }

    #[test]
    fn a_damaged_or_foreign_hash_is_an_integrity_failure() {
        assert!(verify_secret(b"x", "not a phc string").is_err());
        // Another algorithm's PHC string (Argon2i) is not one this vault makes.
        let a = hash_secret(b"x")
            .unwrap()
            .replacen("argon2id", "argon2i", 1);
        assert!(verify_secret(b"x", &a).is_err());
        // Absurd costs are refused before any work.
        let big = hash_secret(b"x")
            .unwrap()
            .replacen("m=19456", "m=4294967295", 1);
        assert!(verify_secret(b"x", &big).is_err());
    }
}
