//! Value encoding: a one-byte entry-format version, then bincode 2 (standard configuration) with
//! a size limit. Bytes read back from disk are untrusted: decoding never panics, never allocates
//! beyond the limit, and rejects trailing bytes.

use std::cell::RefCell;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::StorageError;

/// The version byte in front of every encoded value.
pub(crate) const ENTRY_FORMAT: u8 = 3;

/// The largest encoded value accepted (a payload of `MAX_PAYLOAD_LEN` plus metadata).
pub(crate) const MAX_ENTRY_LEN: usize = crate::model::MAX_PAYLOAD_LEN + 64 * 1024;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_ENTRY_LEN>()
}

/// A scratch buffer larger than this is not kept for the next encoding.
const SCRATCH_KEEP: usize = 64 * 1024;

thread_local! {
    /// Where this thread encodes: grown once, reused, so that an encoding costs no reallocation.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Appends the encoding of `value` to `out`.
fn encode_onto<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    let start = out.len();
    out.push(ENTRY_FORMAT);
    // Serializing our own plain-data types into a Vec cannot fail; an error here would be a
    // type that refuses to serialize, which none of ours does: it encodes to nothing, which no
    // decoding accepts.
    if bincode::serde::encode_into_std_write(value, &mut *out, config()).is_err() {
        out.truncate(start);
    }
}

/// Encodes a value into a buffer of `capacity` bytes (for an encoding that more fields are
/// appended to with [`encode_fields_onto`]).
pub(crate) fn encode_with_capacity<T: Serialize + ?Sized>(value: &T, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    encode_onto(value, &mut out);
    out
}

/// Appends the fields of `value` to an encoding begun by [`encode`] (no format byte): a value
/// encoded as `encode(&a)` then `encode_fields_onto(&b)` decodes as [`decode_split`]'s `(a, b)`.
pub(crate) fn encode_fields_onto<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    let start = out.len();
    if bincode::serde::encode_into_std_write(value, &mut *out, config()).is_err() {
        out.truncate(start);
    }
}

/// Calls `f` with the encoding of `value`, made in this thread's scratch buffer: no allocation
/// for a value only hashed, one of the exact size for a value kept.
pub(crate) fn with_encoded<T: Serialize + ?Sized, R>(value: &T, f: impl FnOnce(&[u8]) -> R) -> R {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            encode_onto(value, &mut buf);
            let r = f(&buf);
            if buf.capacity() > SCRATCH_KEEP {
                *buf = Vec::new();
            }
            r
        }
        // `f` itself encodes: it gets a buffer of its own.
        Err(_) => {
            let mut buf = Vec::new();
            encode_onto(value, &mut buf);
            f(&buf)
        }
    })
}

/// Encodes a value.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    with_encoded(value, <[u8]>::to_vec)
}

/// The most items a [`ShortSeq`] holds: its length is then one byte (bincode's varint).
pub(crate) const SHORT_SEQ_MAX: usize = 250;

/// Builds the encoding of a sequence of up to [`SHORT_SEQ_MAX`] items (the bytes `encode` gives
/// for a `Vec` of them) item by item, each item's bytes open to the caller as they are appended:
/// a block of audit entries is chained over, and patched in, the bytes it is stored as.
pub(crate) struct ShortSeq {
    buf: Vec<u8>,
}

impl ShortSeq {
    pub(crate) fn new() -> Self {
        ShortSeq {
            buf: vec![ENTRY_FORMAT, 0],
        }
    }

    /// How many items it holds.
    pub(crate) fn len(&self) -> usize {
        self.buf[1] as usize
    }

    /// Appends `item` and returns its bytes: those of `encode(item)` after the version byte.
    /// Refused (`None`, nothing appended) once the sequence holds [`SHORT_SEQ_MAX`] items.
    pub(crate) fn push<T: Serialize + ?Sized>(&mut self, item: &T) -> Option<&mut [u8]> {
        if self.len() >= SHORT_SEQ_MAX {
            return None;
        }
        let start = self.buf.len();
        if bincode::serde::encode_into_std_write(item, &mut self.buf, config()).is_err() {
            self.buf.truncate(start);
            return None;
        }
        self.buf[1] += 1;
        Some(&mut self.buf[start..])
    }

    /// The encoded sequence.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Counts what is written to it.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Encodes a value that holds key material (the key ring in the clear) into a buffer wiped on
/// drop. It never goes through the thread's scratch buffer, which is not wiped, and the buffer
/// is allocated at its exact size first (the size is counted by a first pass), so no
/// reallocation leaves a copy of the key material in freed memory.
pub(crate) fn encode_secret<T: Serialize + ?Sized>(value: &T) -> zeroize::Zeroizing<Vec<u8>> {
    let mut counter = Counter(1);
    let len = match bincode::serde::encode_into_std_write(value, &mut counter, config()) {
        Ok(_) => counter.0,
        Err(_) => 1,
    };
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(len));
    encode_onto(value, &mut out);
    debug_assert_eq!(out.capacity(), len, "the secret encoding reallocated");
    out
}

/// The body of an encoded value, after checking its version byte and size.
fn body<'a>(bytes: &'a [u8], what: &'static str) -> Result<&'a [u8], StorageError> {
    match bytes.split_first() {
        Some((&ENTRY_FORMAT, body)) if body.len() <= MAX_ENTRY_LEN => Ok(body),
        _ => Err(StorageError::Malformed(what)),
    }
}

/// Decodes a value from the start of `body` (it may borrow from it); returns it and the bytes
/// it took.
fn decode_part<'a, T: Deserialize<'a>>(
    body: &'a [u8],
    what: &'static str,
) -> Result<(T, usize), StorageError> {
    bincode::serde::borrow_decode_from_slice(body, config())
        .map_err(|_| StorageError::Malformed(what))
}

/// Decodes a value, refusing anything malformed.
pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, StorageError> {
    decode_borrowed(bytes, what)
}

/// Decodes a value that may borrow from `bytes`, refusing anything malformed.
pub(crate) fn decode_borrowed<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    what: &'static str,
) -> Result<T, StorageError> {
    let body = body(bytes, what)?;
    let (v, used) = decode_part(body, what)?;
    if used != body.len() {
        return Err(StorageError::Malformed(what));
    }
    Ok(v)
}

/// Decodes a value from the start of `bytes` (version byte included), ignoring what follows it;
/// returns the value and the bytes it took. For carving encoded values out of raw disk images
/// (`forensic_tests`), where a value is followed by whatever else the block holds.
#[cfg(test)]
pub(crate) fn decode_prefix<T: DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<(T, usize), StorageError> {
    // A value is never longer than the limit: what lies beyond it is not looked at.
    let body = body(&bytes[..bytes.len().min(1 + MAX_ENTRY_LEN)], what)?;
    let (v, used) = decode_part(body, what)?;
    Ok((v, 1 + used))
}

/// Decodes a value encoded as a pair `(A, B)` (or a struct whose fields are those of `A`, then
/// those of `B`), refusing anything malformed. Also returns the bytes that encode `A` alone:
/// the same bytes as `encode(&a)` for a value this code encoded.
pub(crate) fn decode_split<'a, A: DeserializeOwned, B: Deserialize<'a>>(
    bytes: &'a [u8],
    what: &'static str,
) -> Result<(A, &'a [u8], B), StorageError> {
    let body = body(bytes, what)?;
    let (a, used_a) = decode_part(body, what)?;
    let (b, used_b) = decode_part(&body[used_a..], what)?;
    if used_a + used_b != body.len() {
        return Err(StorageError::Malformed(what));
    }
    Ok((a, &bytes[..1 + used_a], b))
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Pair {
        a: (u32, String),
        b: u64,
        c: Vec<u8>,
    }

    #[test]
    fn a_split_decoding_reads_the_parts_and_the_first_part_s_bytes() {
        let v = Pair {
            a: (300, "contact".into()),
            b: u64::MAX,
            c: vec![1, 2, 3],
        };
        let bytes = encode(&v);
        let (a, a_bytes, (b, c)) =
            decode_split::<(u32, String), (u64, Vec<u8>)>(&bytes, "test").unwrap();
        assert_eq!(Pair { a, b, c }, v);
        assert_eq!(a_bytes, encode(&v.a));
        // Trailing bytes, a short second part, a wrong version: refused.
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_split::<(u32, String), (u64, Vec<u8>)>(&longer, "test").is_err());
        assert!(
            decode_split::<(u32, String), (u64, Vec<u8>)>(&bytes[..bytes.len() - 1], "test")
                .is_err()
        );
        let mut other = bytes;
        other[0] = ENTRY_FORMAT + 1;
        assert!(decode_split::<(u32, String), (u64, Vec<u8>)>(&other, "test").is_err());
    }

    /// A sequence built item by item encodes as the `Vec` of its items, at every length it
    /// accepts, and refuses the item after the last.
    #[test]
    fn a_short_sequence_encodes_as_a_vec() {
        let items: Vec<(u64, String)> = (0..SHORT_SEQ_MAX as u64)
            .map(|i| (i * 1_000_003, "x".repeat(i as usize % 7)))
            .collect();
        let mut seq = ShortSeq::new();
        for (n, item) in items.iter().enumerate() {
            assert_eq!(seq.push(item).unwrap(), &encode(item)[1..]);
            assert_eq!(seq.len(), n + 1);
        }
        assert!(seq.push(&items[0]).is_none());
        assert_eq!(seq.into_bytes(), encode(&items));
        assert_eq!(ShortSeq::new().into_bytes(), encode(&Vec::<u8>::new()));
    }

    #[derive(Serialize, Deserialize)]
    struct AsSeq {
        n: u32,
        bytes: Vec<u8>,
    }

    #[derive(Serialize, Deserialize)]
    struct AsBytes {
        n: u32,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    }

    /// Sealed fields are (de)serialized as byte strings, a copy instead of a call per byte; the
    /// bytes on disk are the same as for a sequence of `u8`, so vaults written either way read.
    #[test]
    fn byte_strings_encode_as_sequences_of_u8() {
        for len in [0usize, 1, 250, 251, 70_000] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let seq = encode(&AsSeq {
                n: 7,
                bytes: bytes.clone(),
            });
            let fast = encode(&AsBytes {
                n: 7,
                bytes: bytes.clone(),
            });
            assert_eq!(seq, fast);
            let back: AsBytes = decode(&seq, "test").unwrap();
            assert_eq!(back.bytes, bytes);
            // Nested in another encoding (its own buffer), the same bytes.
            with_encoded(&0u8, |_| {
                with_encoded(&AsBytes { n: 7, bytes }, |b| assert_eq!(b, seq))
            });
        }
    }
}
