//! How timestamps are laid out in stored entries: seconds and nanoseconds since the Unix epoch as
//! two integers, instead of jiff's RFC 3339 text (which costs a format and a parse per entry).
//! Human-readable formats (the JSON of exports and of the CLI) keep jiff's text.
//!
//! Use as `#[serde(with = "crate::storage::timestamp")]` (or `::option` for an
//! `Option<Timestamp>`). Decoding checks the range: bytes read back are untrusted.

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Serializes a timestamp: text when human-readable, `(seconds, nanoseconds)` otherwise.
pub(crate) fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        t.serialize(s)
    } else {
        (t.as_second(), t.subsec_nanosecond()).serialize(s)
    }
}

/// Deserializes what [`serialize`] wrote; an out-of-range value is an error, never a panic.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    if d.is_human_readable() {
        Timestamp::deserialize(d)
    } else {
        let (seconds, nanos) = <(i64, i32)>::deserialize(d)?;
        Timestamp::new(seconds, nanos).map_err(serde::de::Error::custom)
    }
}

/// The same for an optional timestamp.
pub(crate) mod option {
    use super::*;

    #[derive(Serialize, Deserialize)]
    #[serde(transparent)]
    struct Compact(#[serde(with = "super")] Timestamp);

    /// Serializes an optional timestamp.
    pub(crate) fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        t.map(Compact).serialize(s)
    }

    /// Deserializes an optional timestamp.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Timestamp>, D::Error> {
        Ok(Option::<Compact>::deserialize(d)?.map(|c| c.0))
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::storage::codec;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Stamped {
        #[serde(with = "crate::storage::timestamp")]
        at: Timestamp,
        #[serde(with = "crate::storage::timestamp::option")]
        maybe: Option<Timestamp>,
    }

    #[test]
    fn round_trips_compactly_and_stays_text_in_json() {
        for at in [
            Timestamp::MIN,
            Timestamp::UNIX_EPOCH,
            Timestamp::MAX,
            "2026-11-23T10:00:00.123456789Z".parse().unwrap(),
        ] {
            for maybe in [None, Some(at)] {
                let v = Stamped { at, maybe };
                let bytes = codec::encode(&v);
                assert!(bytes.len() <= 1 + 2 * 15, "{} bytes", bytes.len());
                assert_eq!(codec::decode::<Stamped>(&bytes, "t").unwrap(), v);
                let json = serde_json::to_string(&v).unwrap();
                assert!(json.contains(&at.to_string()), "{json}");
                assert_eq!(serde_json::from_str::<Stamped>(&json).unwrap(), v);
            }
        }
    }

    #[test]
    fn out_of_range_is_an_error() {
        #[derive(Serialize)]
        struct Raw(i64, i32, Option<()>);
        for (s, n) in [(i64::MAX, 0), (0, 1_000_000_000), (i64::MIN, 0)] {
            let bytes = codec::encode(&Raw(s, n, None));
            assert!(codec::decode::<Stamped>(&bytes, "t").is_err(), "{s} {n}");
        }
    }
}
