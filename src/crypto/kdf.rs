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

/// A keyed hash (BLAKE3 keyed mode) of parts, each framed by its length.
///
/// A short input (a subject's identifier for its blind index, a tag over a few fields) is
/// joined on the stack, hashed in one call and wiped; a long one is gathered
/// ([`keyed_hash_pieces`]). Both give the same hash.
pub(crate) fn keyed_hash(key: &SecretKey, parts: &[&[u8]]) -> [u8; 32] {
    const JOINED_LEN: usize = 128;
    let framed: usize = parts.iter().map(|p| 8 + p.len()).sum();
    if framed > JOINED_LEN {
        return keyed_hash_pieces(key, parts.iter().map(std::slice::from_ref));
    }
    let mut joined = [0u8; JOINED_LEN];
    let mut at = 0;
    for p in parts {
        joined[at..at + 8].copy_from_slice(&(p.len() as u64).to_le_bytes());
        joined[at + 8..at + 8 + p.len()].copy_from_slice(p);
        at += 8 + p.len();
    }
    let hash = blake3::keyed_hash(key.expose(), &joined[..at]);
    zeroize::Zeroize::zeroize(&mut joined[..at]);
    *hash.as_bytes()
}

/// [`keyed_hash`] of parts given in pieces: each part is the concatenation of its pieces (the
/// same hash as `keyed_hash` of the concatenated parts, without concatenating them).
pub(crate) fn keyed_hash_pieces<'p, 'b: 'p>(
    key: &SecretKey,
    parts: impl IntoIterator<Item = &'p [&'b [u8]]>,
) -> [u8; 32] {
    // Short inputs (a chain value, an index, a small row) are gathered and hashed in one call:
    // each update of a hasher has a fixed cost that exceeds hashing a few dozen bytes, and an
    // input that fits the buffer is hashed at once, without a hasher's state.
    let mut gathered = Gather {
        key,
        hasher: None,
        buf: [0; GATHER_LEN],
        len: 0,
        filled: 0,
    };
    for pieces in parts {
        let len: usize = pieces.iter().map(|p| p.len()).sum();
        gathered.add(&(len as u64).to_le_bytes());
        for p in pieces {
            gathered.add(p);
        }
    }
    gathered.finish()
}

/// [`keyed_hash_pieces`] of one part, for an input that is not secret (an audit entry, stored
/// in the clear): joined on the stack and hashed in one call, and not wiped, which is what
/// gathering costs beyond the hash. A long input is gathered as usual.
pub(crate) fn keyed_hash_public(key: &SecretKey, pieces: &[&[u8]]) -> [u8; 32] {
    const JOINED_LEN: usize = 192;
    let len: usize = pieces.iter().map(|p| p.len()).sum();
    if len > JOINED_LEN - 8 {
        return keyed_hash_pieces(key, [pieces]);
    }
    let mut joined = [0u8; JOINED_LEN];
    joined[..8].copy_from_slice(&(len as u64).to_le_bytes());
    let mut at = 8;
    for p in pieces {
        joined[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
    *blake3::keyed_hash(key.expose(), &joined[..at]).as_bytes()
}

/// How many bytes [`keyed_hash_pieces`] gathers before updating the hash.
const GATHER_LEN: usize = 256;

/// Bytes on their way into a hash (the same hash as updating with each piece in turn). Holds
/// inputs that may be key material: what was filled is wiped on drop.
struct Gather<'k> {
    key: &'k SecretKey,
    /// Made once the input outgrows `buf`; boxed, so that a short input's gathering is not a
    /// hasher's two kilobytes of state to set up and move.
    hasher: Option<Box<blake3::Hasher>>,
    buf: [u8; GATHER_LEN],
    len: usize,
    /// The most of `buf` ever filled.
    filled: usize,
}

impl Gather<'_> {
    fn add(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > GATHER_LEN {
            let h = self
                .hasher
                .get_or_insert_with(|| Box::new(blake3::Hasher::new_keyed(self.key.expose())));
            h.update(&self.buf[..self.len]);
            self.len = 0;
            if bytes.len() > GATHER_LEN {
                h.update(bytes);
                return;
            }
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        self.filled = self.filled.max(self.len);
    }

    fn finish(&mut self) -> [u8; 32] {
        let rest = &self.buf[..self.len];
        let hash = match self.hasher.as_mut() {
            Some(h) => h.update(rest).finalize(),
            None => blake3::keyed_hash(self.key.expose(), rest),
        };
        *hash.as_bytes()
    }
}

impl Drop for Gather<'_> {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.buf[..self.filled]);
        // A keyed hasher's state holds the key: it is wiped before its memory is freed.
        if let Some(h) = self.hasher.as_mut() {
            zeroize::Zeroize::zeroize(&mut **h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A part given in pieces hashes as the part whole; the framing still separates parts.
    #[test]
    fn pieces_hash_as_their_concatenation() {
        let key = SecretKey::from_bytes([7; 32]);
        let whole = keyed_hash(&key, &[b"prev", b"\x03entry-body"]);
        let pieces: [&[&[u8]]; 2] = [&[b"prev"], &[b"\x03", b"entry-", b"body"]];
        assert_eq!(keyed_hash_pieces(&key, pieces), whole);
        assert_ne!(keyed_hash(&key, &[b"prev\x03", b"entry-body"]), whole);
    }

    /// A public input joined on the stack hashes as the same part gathered, on either side of
    /// what is joined at once.
    #[test]
    fn joined_public_input_hashes_as_gathered() {
        let key = SecretKey::from_bytes([5; 32]);
        for n in [0, 1, 87, 150, 183, 184, 185, 300] {
            let body = vec![n as u8; n];
            let pieces: [&[u8]; 3] = [&[1; 32], &[2], &body];
            assert_eq!(
                keyed_hash_public(&key, &pieces),
                keyed_hash_pieces(&key, [&pieces[..]]),
                "{n} bytes"
            );
        }
    }

    /// Joining or gathering before hashing gives BLAKE3's keyed hash of the framed parts, for
    /// parts shorter and longer than what is joined or gathered at once.
    #[test]
    fn gathered_parts_hash_as_the_framed_input() {
        let key = SecretKey::from_bytes([9; 32]);
        for lens in [
            vec![0],
            vec![3, 40],
            vec![255, 1, 2],
            vec![256, 257],
            vec![10, 1000, 5],
            // On either side of what is joined on the stack (128 framed bytes).
            vec![120],
            vec![121],
            vec![56, 56],
            vec![56, 57],
        ] {
            let parts: Vec<Vec<u8>> = lens.iter().map(|&n| vec![n as u8; n]).collect();
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            let mut framed = Vec::new();
            for p in &parts {
                framed.extend_from_slice(&(p.len() as u64).to_le_bytes());
                framed.extend_from_slice(p);
            }
            let expected = *blake3::keyed_hash(key.expose(), &framed).as_bytes();
            assert_eq!(keyed_hash(&key, &refs), expected, "{lens:?}");
            let gathered = keyed_hash_pieces(&key, refs.iter().map(std::slice::from_ref));
            assert_eq!(gathered, expected, "{lens:?}");
        }
    }
}
