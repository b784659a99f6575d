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
pub(crate) fn encode_onto<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
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
/// encoded as `encode(&a)` then `encode_fields_onto(&b)` decodes as a struct with the fields of
/// `a`, then those of `b`.
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
    /// An empty sequence with room for `bytes` of items (grown beyond as needed).
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(2 + bytes);
        buf.extend_from_slice(&[ENTRY_FORMAT, 0]);
        ShortSeq { buf }
    }

    /// How many items it holds.
    pub(crate) fn len(&self) -> usize {
        self.buf[1] as usize
    }

    /// Appends the item `write` encodes ([`FieldWriter`]) and returns its bytes. Refused
    /// (`None`, nothing appended) once the sequence holds [`SHORT_SEQ_MAX`] items.
    pub(crate) fn push_with(&mut self, write: impl FnOnce(&mut FieldWriter)) -> Option<&mut [u8]> {
        if self.len() >= SHORT_SEQ_MAX {
            return None;
        }
        let start = self.buf.len();
        write(&mut FieldWriter::new(&mut self.buf));
        self.buf[1] += 1;
        Some(&mut self.buf[start..])
    }

    /// The encoded sequence.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Encodes key material (the key ring in the clear, a chunk of shard keys) into a buffer wiped
/// on drop: `head` (a 32-byte array) if given, then `keys`, each a generation and a 32-byte key,
/// the bytes serde's encoding of `(head, keys)` (or of `keys` alone) has. It never goes through
/// the thread's scratch buffer, which is not wiped, and the buffer is allocated at its exact
/// size first, so no reallocation leaves a copy of the key material in freed memory. Written by
/// hand: through serde, each key's bytes are one call each, and a ring of 4,096 shard keys took a
/// third of an erasure's instructions.
pub(crate) fn encode_keys(
    head: Option<&[u8; 32]>,
    keys: &[(u64, [u8; 32])],
) -> zeroize::Zeroizing<Vec<u8>> {
    let len = 1
        + head.map_or(0, |h| h.len())
        + varint_len(keys.len() as u64)
        + keys
            .iter()
            .map(|(generation, key)| varint_len(*generation) + key.len())
            .sum::<usize>();
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(len));
    out.push(ENTRY_FORMAT);
    let mut w = FieldWriter::new(&mut out);
    if let Some(h) = head {
        w.array(h);
    }
    w.u64(keys.len() as u64);
    for (generation, key) in keys {
        w.u64(*generation);
        w.array(key);
    }
    debug_assert_eq!(out.capacity(), len, "the key encoding reallocated");
    out
}

/// How many bytes [`FieldWriter::u64`] writes for `v`.
fn varint_len(v: u64) -> usize {
    match v {
        0..=250 => 1,
        251..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
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

/// Reads a value encoded by [`encode`] field by field, for a hot path that decodes a fixed
/// layout by hand (a stored record) instead of through serde: each method reads one field as
/// bincode's standard configuration lays it out (little-endian varints, zigzag for signed
/// integers, a varint length before bytes and text, a byte before an option) and accepts
/// exactly what bincode accepts there. `None` is malformed input.
pub(crate) struct FieldReader<'a> {
    rest: &'a [u8],
}

impl<'a> FieldReader<'a> {
    /// A reader of the fields of `bytes`, after checking its version byte and size.
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Result<Self, StorageError> {
        Ok(FieldReader {
            rest: body(bytes, what)?,
        })
    }

    /// How many bytes are left.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        Some(taken)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(b)
    }

    /// An unsigned varint of at most `max_tag`'s width (252: 32 bits, 253: 64 bits).
    fn varint(&mut self, max_tag: u8) -> Option<u64> {
        let tag = self.byte()?;
        if tag > max_tag {
            return None;
        }
        Some(match tag {
            0..=250 => u64::from(tag),
            251 => u64::from(u16::from_le_bytes(self.array()?)),
            252 => u64::from(u32::from_le_bytes(self.array()?)),
            _ => u64::from_le_bytes(self.array()?),
        })
    }

    /// A `u64` (also a length).
    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.varint(253)
    }

    /// A `u32` (also an enum's variant index).
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.varint(252).map(|v| v as u32)
    }

    /// An `i64`.
    pub(crate) fn i64(&mut self) -> Option<i64> {
        let n = self.u64()?;
        Some(((n >> 1) as i64) ^ -((n & 1) as i64))
    }

    /// An `i32`.
    pub(crate) fn i32(&mut self) -> Option<i32> {
        let n = self.u32()?;
        Some(((n >> 1) as i32) ^ -((n & 1) as i32))
    }

    /// A byte string, borrowed.
    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u64()?).ok()?;
        self.take(len)
    }

    /// A string, borrowed.
    pub(crate) fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }

    /// Whether an option is `Some` (its value follows).
    pub(crate) fn option(&mut self) -> Option<bool> {
        match self.byte()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    /// A timestamp laid out as [`crate::storage::timestamp`] lays it out.
    pub(crate) fn timestamp(&mut self) -> Option<jiff::Timestamp> {
        let (seconds, nanos) = (self.i64()?, self.i32()?);
        jiff::Timestamp::new(seconds, nanos).ok()
    }
}

/// A short byte string kept inline, up to `N` bytes, and on the heap beyond: a record's stored
/// metadata and its payload's associated data, built at every read and write without an
/// allocation.
pub(crate) struct ShortBytes<const N: usize> {
    inline: [u8; N],
    len: usize,
    /// The bytes, when longer than `N` (empty otherwise: an empty `Vec` allocates nothing).
    spilled: Vec<u8>,
}

impl<const N: usize> ShortBytes<N> {
    /// The concatenation of `parts`.
    pub(crate) fn concat(parts: &[&[u8]]) -> Self {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut out = ShortBytes {
            inline: [0; N],
            len,
            spilled: Vec::new(),
        };
        if len > N {
            out.spilled = parts.concat();
        } else {
            let mut at = 0;
            for p in parts {
                out.inline[at..at + p.len()].copy_from_slice(p);
                at += p.len();
            }
        }
        out
    }

    /// The bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        if self.len > N {
            &self.spilled
        } else {
            &self.inline[..self.len]
        }
    }
}

/// Appends fields to an encoding as bincode's standard configuration lays them out: the
/// writing side of [`FieldReader`], for a hot path that encodes a fixed layout by hand (an audit
/// entry). Each method writes the bytes serde would for a field of that type.
pub(crate) struct FieldWriter<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> FieldWriter<'a> {
    /// A writer appending to `out`.
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        FieldWriter { out }
    }

    /// A `u64` (also a length).
    pub(crate) fn u64(&mut self, v: u64) {
        if v <= 250 {
            self.out.push(v as u8);
        } else if let Ok(v) = u16::try_from(v) {
            self.out.push(251);
            self.out.extend_from_slice(&v.to_le_bytes());
        } else if let Ok(v) = u32::try_from(v) {
            self.out.push(252);
            self.out.extend_from_slice(&v.to_le_bytes());
        } else {
            self.out.push(253);
            self.out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// A `u32` (also an enum's variant index).
    pub(crate) fn u32(&mut self, v: u32) {
        self.u64(u64::from(v));
    }

    /// An `i64`.
    pub(crate) fn i64(&mut self, v: i64) {
        self.u64(((v << 1) ^ (v >> 63)) as u64);
    }

    /// An `i32`.
    pub(crate) fn i32(&mut self, v: i32) {
        self.u32(((v << 1) ^ (v >> 31)) as u32);
    }

    /// A fixed-size array of bytes (serde writes it as a tuple: its bytes, no length).
    pub(crate) fn array(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b);
    }

    /// A byte string.
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.out.extend_from_slice(b);
    }

    /// A string.
    pub(crate) fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// An option: whether a value follows (the caller writes it).
    pub(crate) fn option(&mut self, some: bool) {
        self.out.push(u8::from(some));
    }

    /// An optional string.
    pub(crate) fn option_str(&mut self, s: Option<&str>) {
        self.option(s.is_some());
        if let Some(s) = s {
            self.str(s);
        }
    }

    /// A timestamp laid out as [`crate::storage::timestamp`] lays it out.
    pub(crate) fn timestamp(&mut self, t: jiff::Timestamp) {
        self.i64(t.as_second());
        self.i32(t.subsec_nanosecond());
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    /// Every field read by hand reads what serde encoded, and every field written by hand is
    /// what serde writes, at each width of a varint; the reader refuses what bincode refuses: a wider varint than the type, a bad option byte, text
    /// that is not UTF-8, a length beyond the input.
    #[test]
    fn fields_read_and_written_by_hand_are_bincode_s() {
        #[derive(Serialize)]
        struct Fields<'a> {
            a: u64,
            b: u32,
            c: i64,
            d: i32,
            #[serde(with = "serde_bytes")]
            e: &'a [u8],
            f: &'a str,
            g: Option<u8>,
            #[serde(with = "crate::storage::timestamp")]
            h: jiff::Timestamp,
        }
        let ints = [0u64, 1, 250, 251, 65_535, 65_536, u32::MAX as u64, u64::MAX];
        for &n in &ints {
            for g in [None, Some(7)] {
                let v = Fields {
                    a: n,
                    b: n as u32,
                    c: n as i64,
                    d: n as i32,
                    e: &[1, 2, 3],
                    f: "contact",
                    g,
                    h: jiff::Timestamp::new(n as i64 % 1_000_000_000, (n % 1_000_000) as i32)
                        .unwrap(),
                };
                let bytes = encode(&v);
                let mut r = FieldReader::new(&bytes, "test").unwrap();
                assert_eq!(r.u64(), Some(v.a));
                assert_eq!(r.u32(), Some(v.b));
                assert_eq!(r.i64(), Some(v.c));
                assert_eq!(r.i32(), Some(v.d));
                assert_eq!(r.bytes(), Some(v.e));
                assert_eq!(r.str(), Some(v.f));
                assert_eq!(r.option(), Some(g.is_some()));
                if g.is_some() {
                    assert_eq!(r.byte(), Some(7));
                }
                assert_eq!(r.timestamp(), Some(v.h));
                assert_eq!(r.remaining(), 0);
            }
        }
        for &n in &ints {
            let v = Fields {
                a: n,
                b: n as u32,
                c: -(n as i64),
                d: -(n as i32),
                e: b"",
                f: "x",
                g: None,
                h: jiff::Timestamp::MIN,
            };
            let mut by_hand = vec![ENTRY_FORMAT];
            let mut w = FieldWriter::new(&mut by_hand);
            w.u64(v.a);
            w.u32(v.b);
            w.i64(v.c);
            w.i32(v.d);
            w.bytes(v.e);
            w.str(v.f);
            w.option(false);
            w.timestamp(v.h);
            assert_eq!(by_hand, encode(&v), "{n}");
        }
        fn read(bytes: &[u8]) -> FieldReader<'_> {
            FieldReader { rest: bytes }
        }
        assert_eq!(read(&[253, 0, 0, 0, 0, 0, 0, 0, 0]).u32(), None);
        assert_eq!(read(&[254]).u64(), None);
        assert_eq!(read(&[2]).option(), None);
        assert_eq!(read(&[1, 0xff]).str(), None);
        assert_eq!(read(&[4, 1, 2]).bytes(), None);
        assert!(FieldReader::new(&[ENTRY_FORMAT + 1], "test").is_err());
    }

    /// Key material encoded by hand is serde's encoding of the ring (a head and its keys) and of
    /// a chunk (the keys alone), at every width of a generation's varint, at its exact size.
    #[test]
    fn keys_encoded_by_hand_are_serde_s() {
        #[derive(Serialize)]
        struct Ring<'a> {
            master: [u8; 32],
            shards: &'a [(u64, [u8; 32])],
        }
        let keys: Vec<(u64, [u8; 32])> = [0, 1, 250, 251, 0xffff, 0x1_0000, 0xffff_ffff, 1 << 32]
            .into_iter()
            .chain([u64::MAX])
            .enumerate()
            .map(|(i, g)| (g, [i as u8 + 1; 32]))
            .collect();
        for n in [0, 1, keys.len()] {
            let keys = &keys[..n];
            let master = [0xa5; 32];
            let by_hand = encode_keys(Some(&master), keys);
            let serde = encode(&Ring {
                master,
                shards: keys,
            });
            assert_eq!(by_hand.as_slice(), serde.as_slice());
            assert_eq!(by_hand.capacity(), by_hand.len());
            assert_eq!(encode_keys(None, keys).as_slice(), encode(keys).as_slice());
        }
    }

    /// Short bytes are the concatenation of their parts, inline or spilled.
    #[test]
    fn short_bytes_concatenate_their_parts_at_every_length() {
        for (a, b) in [(0, 0), (3, 4), (8, 0), (4, 5), (20, 30)] {
            let (x, y) = (vec![1u8; a], vec![2u8; b]);
            let joined = ShortBytes::<8>::concat(&[&x, &y]);
            assert_eq!(joined.as_bytes(), [x, y].concat());
        }
    }

    /// A sequence built item by item encodes as the `Vec` of its items, at every length it
    /// accepts, and refuses the item after the last.
    #[test]
    fn a_short_sequence_encodes_as_a_vec() {
        let items: Vec<(u64, String)> = (0..SHORT_SEQ_MAX as u64)
            .map(|i| (i * 1_000_003, "x".repeat(i as usize % 7)))
            .collect();
        fn write(item: &(u64, String)) -> impl FnOnce(&mut FieldWriter) + '_ {
            move |w| {
                w.u64(item.0);
                w.str(&item.1);
            }
        }
        let mut seq = ShortSeq::with_capacity(0);
        for (n, item) in items.iter().enumerate() {
            assert_eq!(seq.push_with(write(item)).unwrap(), &encode(item)[1..]);
            assert_eq!(seq.len(), n + 1);
        }
        assert!(seq.push_with(write(&items[0])).is_none());
        assert_eq!(seq.into_bytes(), encode(&items));
        assert_eq!(
            ShortSeq::with_capacity(0).into_bytes(),
            encode(&Vec::<u8>::new())
        );
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
