//! Identifiers: the host's subject identifier (personal data, never stored) and the vault's own
//! random ids for subjects, records, holds and requests.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::InputError;

/// The longest subject identifier accepted, in bytes.
pub const MAX_SUBJECT_ID_LEN: usize = 1024;

/// The host's identifier of a data subject: an email address, a user id.
///
/// It is personal data: the vault never stores it, never prints it (its `Debug` is redacted) and
/// never puts it in an error or in the audit trail. The vault finds a subject by a keyed blind
/// index of this value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SubjectId(String);

impl SubjectId {
    /// Validates an identifier: 1 to [`MAX_SUBJECT_ID_LEN`] bytes of UTF-8, without leading or
    /// trailing whitespace (`" alice@example.com"` would otherwise be a second subject beside
    /// `"alice@example.com"`; the vault does not trim on the caller's behalf).
    pub fn new(id: impl Into<String>) -> Result<Self, InputError> {
        let id = id.into();
        if id.is_empty() {
            return Err(InputError::SubjectId("empty"));
        }
        if id.len() > MAX_SUBJECT_ID_LEN {
            return Err(InputError::SubjectId("longer than 1024 bytes"));
        }
        if id.trim() != id {
            return Err(InputError::SubjectId("leading or trailing whitespace"));
        }
        Ok(SubjectId(id))
    }

    /// Validates an identifier given as raw bytes, which must be UTF-8.
    pub fn from_bytes(id: &[u8]) -> Result<Self, InputError> {
        let s = std::str::from_utf8(id).map_err(|_| InputError::SubjectId("not valid UTF-8"))?;
        Self::new(s)
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectId(<redacted>)")
    }
}

impl FromStr for SubjectId {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

pub(crate) fn from_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != N * 2 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nibble(s[2 * i])? << 4) | nibble(s[2 * i + 1])?;
    }
    Some(out)
}

macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident, $len:expr, $err:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub(crate) [u8; $len]);

        /// Hex in human-readable formats (JSON), a byte string in binary ones.
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&to_hex(&self.0))
                } else {
                    s.serialize_bytes(&self.0)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = String::deserialize(d)?;
                    s.parse().map_err(serde::de::Error::custom)
                } else {
                    serde_bytes::ByteArray::<$len>::deserialize(d).map(|b| $name(b.into_array()))
                }
            }
        }

        #[allow(dead_code)]
        impl $name {
            pub(crate) fn random() -> Self {
                $name(crate::crypto::random_array())
            }
            pub(crate) fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
            pub(crate) fn from_slice(b: &[u8]) -> Option<Self> {
                b.try_into().ok().map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&to_hex(&self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl FromStr for $name {
            type Err = InputError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                from_hex::<$len>(s.trim()).map($name).ok_or($err)
            }
        }
    };
}

random_id!(
    /// A record's id: 128 random bits, shown as 32 hex digits. Unique within the vault.
    RecordId, 16, InputError::RecordId
);
random_id!(
    /// A legal hold's id: 64 random bits, shown as 16 hex digits.
    HoldId, 8, InputError::HoldId
);
random_id!(
    /// A data-subject request's id: 64 random bits, shown as 16 hex digits.
    RequestId, 8, InputError::RequestId
);
random_id!(
    /// The vault's internal, random reference for a subject (128 bits, 32 hex digits).
    ///
    /// It links a subject's records, keys and audit entries without naming the person: nothing
    /// maps it back to the [`SubjectId`] except the subject's index entry, which erasure destroys.
    SubjectRef, 16, InputError::SubjectId("invalid subject reference")
);

/// The keyed blind index of a [`SubjectId`]: a keyed hash under a root-derived key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlindIndex(pub(crate) [u8; 32]);

/// A blind index is a keyed hash's output, uniform and not chosen by anyone without the index
/// key: its first eight bytes are as good a hash-table hash as all 32, at a quarter of the
/// hashing (a lookup of the identity cache on every read).
impl std::hash::Hash for BlindIndex {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let [a, b, c, d, e, f, g, i, ..] = self.0;
        h.write_u64(u64::from_le_bytes([a, b, c, d, e, f, g, i]));
    }
}

impl fmt::Debug for BlindIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlindIndex(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn subject_id_limits() {
        assert!(SubjectId::new("").is_err());
        assert!(SubjectId::new("a".repeat(MAX_SUBJECT_ID_LEN)).is_ok());
        assert!(SubjectId::new("a".repeat(MAX_SUBJECT_ID_LEN + 1)).is_err());
        assert!(SubjectId::from_bytes(&[0xff, 0xfe]).is_err());
        assert_eq!(
            format!("{:?}", SubjectId::new("alice@example.com").unwrap()),
            "SubjectId(<redacted>)"
        );
    }

    proptest! {
        #[test]
        fn record_id_roundtrip(b in any::<[u8; 16]>()) {
            let id = RecordId(b);
            prop_assert_eq!(id.to_string().parse::<RecordId>().unwrap(), id);
        }

        #[test]
        fn record_id_parse_never_panics(s in ".*") {
            let _ = s.parse::<RecordId>();
        }
    }
}
