//! The exported erasure ledger: a versioned JSON document whose entries are authenticated under a
//! key of the vault, so that a restore can tell a whole, current ledger of its own vault from one
//! that was cut short, edited, or exported elsewhere.
//!
//! The document (format `pdvault-ledger`, version 1):
//!
//! ```json
//! {
//!   "format": "pdvault-ledger",
//!   "version": 1,
//!   "vault": "<the vault id, 32 hex digits>",
//!   "count": 2,
//!   "entries": [ { "seq": 1, "at": "…", "subject": "…", "categories": [], "records": [],
//!                  "subject_erased": true }, … ],
//!   "mac": "<64 hex digits>"
//! }
//! ```
//!
//! `mac` is keyed BLAKE3, under a subkey of the key ring's master secret, over the format
//! version, the vault id, the count and every entry's canonical encoding in order (see
//! `mac`). The master secret survives root rotation, so a backup of the vault checks a ledger
//! exported after the backup, whatever root secret the live vault has by then. The entries hold
//! no personal data; the code only makes them tamper-evident, it hides nothing.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::crypto::{SecretKey, keyed_hash};
use crate::erasure::LedgerEntry;
use crate::error::{LedgerError, json_error};
use crate::ids::{from_hex, to_hex};

/// The format name of a ledger document.
pub const LEDGER_FORMAT: &str = "pdvault-ledger";
/// The version of the ledger document this build writes and reads.
pub const LEDGER_VERSION: u32 = 1;

/// Separates this code's input from every other use of the key.
const MAC_DOMAIN: &[u8] = b"pdvault ledger document v1";

/// An erasure ledger as exported by [`crate::Vault::export_ledger`] and read by
/// [`crate::Vault::parse_ledger`]: the entries, the vault they belong to and their
/// authentication code. Parsing checks its shape and count; [`crate::Vault::restore`] checks the
/// code against the backup's own key before it uses any entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerDocument {
    vault_id: [u8; 16],
    entries: Vec<LedgerEntry>,
    mac: [u8; 32],
}

/// What [`crate::Vault::restore`] does about erasures made after the backup was taken.
///
/// There is no "no ledger" value to pass by accident: a restore names its choice.
///
/// ```compile_fail
/// # fn restore(from: &std::path::Path, to: &std::path::Path) -> pdvault::Result<()> {
/// pdvault::Vault::restore(from, to, pdvault::RootSecret::passphrase("pw-passphrase"), None)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum LedgerChoice<'a> {
    /// Check the ledger against the backup (same vault, untouched, not older than the backup)
    /// and re-apply every erasure in it that the backup does not hold: nothing erased comes
    /// back. The normal path.
    Apply(&'a LedgerDocument),
    /// Restore the backup as it was, with no ledger: **every subject, category and record
    /// erased after the backup was taken is readable again**. Only for a vault whose ledger is
    /// lost for good, and only where bringing erased personal data back is lawful.
    BringErasedDataBack,
}

/// The document as it is written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    format: String,
    version: u32,
    vault: String,
    count: u64,
    entries: Vec<LedgerEntry>,
    mac: String,
}

/// The fields read first, to tell another format or version from a malformed document.
#[derive(Deserialize)]
struct Head {
    format: String,
    version: u32,
}

impl LedgerDocument {
    /// Authenticates `entries` as the ledger of vault `vault_id` under `key`.
    pub(crate) fn seal(vault_id: [u8; 16], entries: Vec<LedgerEntry>, key: &SecretKey) -> Self {
        let mac = mac(key, &vault_id, &entries);
        LedgerDocument {
            vault_id,
            entries,
            mac,
        }
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[LedgerEntry] {
        &self.entries
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the document as pretty-printed JSON, ending with a newline.
    pub fn write_json(&self, out: &mut dyn Write) -> crate::Result<()> {
        serde_json::to_writer_pretty(&mut *out, &self.wire())
            .map_err(|e| LedgerError::Malformed(json_error(&e)))?;
        out.write_all(b"\n")?;
        Ok(())
    }

    fn wire(&self) -> Wire {
        Wire {
            format: LEDGER_FORMAT.to_owned(),
            version: LEDGER_VERSION,
            vault: to_hex(&self.vault_id),
            count: self.entries.len() as u64,
            entries: self.entries.clone(),
            mac: to_hex(&self.mac),
        }
    }

    /// Reads a document: refuses the old bare array, another format or version, a document cut
    /// short, one of the wrong shape, and one whose count differs from its entries. The code is
    /// not checked here (that needs the vault's key): see [`LedgerDocument::verify`].
    pub(crate) fn read(input: &mut dyn Read) -> Result<Self, LedgerError> {
        let mut bytes = Vec::new();
        input
            .read_to_end(&mut bytes)
            .map_err(|e| LedgerError::Malformed(format!("cannot read: {e}")))?;
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'[') {
            return Err(LedgerError::Unauthenticated);
        }
        let head: Head = serde_json::from_slice(&bytes).map_err(shape_error)?;
        if head.format != LEDGER_FORMAT || head.version != LEDGER_VERSION {
            return Err(LedgerError::UnsupportedFormat {
                found: format!("{} {}", head.format.escape_debug(), head.version),
                supported: "pdvault-ledger 1",
            });
        }
        let wire: Wire = serde_json::from_slice(&bytes).map_err(shape_error)?;
        let vault_id = from_hex::<16>(&wire.vault)
            .ok_or_else(|| LedgerError::Malformed("vault id is not 32 hex digits".into()))?;
        let mac = from_hex::<32>(&wire.mac)
            .ok_or_else(|| LedgerError::Malformed("mac is not 64 hex digits".into()))?;
        if wire.count != wire.entries.len() as u64 {
            return Err(LedgerError::CountMismatch {
                stated: wire.count,
                found: wire.entries.len() as u64,
            });
        }
        Ok(LedgerDocument {
            vault_id,
            entries: wire.entries,
            mac,
        })
    }

    /// Checks that the document is the ledger of vault `vault_id`, authenticated under `key`.
    pub(crate) fn verify(&self, vault_id: &[u8; 16], key: &SecretKey) -> Result<(), LedgerError> {
        if &self.vault_id != vault_id {
            return Err(LedgerError::OtherVault {
                expected: to_hex(vault_id),
                found: to_hex(&self.vault_id),
            });
        }
        // blake3::Hash compares in constant time.
        let expected = blake3::Hash::from_bytes(mac(key, vault_id, &self.entries));
        if expected != blake3::Hash::from_bytes(self.mac) {
            return Err(LedgerError::MacMismatch);
        }
        Ok(())
    }
}

impl Serialize for LedgerDocument {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.wire().serialize(s)
    }
}

fn shape_error(e: serde_json::Error) -> LedgerError {
    if e.is_eof() {
        LedgerError::Truncated
    } else {
        LedgerError::Malformed(json_error(&e))
    }
}

/// The authentication code: keyed BLAKE3 over the domain, the vault id, the entry count and the
/// entries' canonical encodings, each part length-prefixed (by [`keyed_hash`]).
pub(crate) fn mac(key: &SecretKey, vault_id: &[u8; 16], entries: &[LedgerEntry]) -> [u8; 32] {
    let mut body = Vec::with_capacity(entries.len() * 64);
    for e in entries {
        let start = body.len();
        body.extend_from_slice(&0u64.to_le_bytes());
        encode_entry(e, &mut body);
        let len = (body.len() - start - 8) as u64;
        body[start..start + 8].copy_from_slice(&len.to_le_bytes());
    }
    let count = (entries.len() as u64).to_le_bytes();
    keyed_hash(key, &[MAC_DOMAIN, vault_id, &count, &body])
}

/// An entry's canonical encoding: fixed-width little-endian integers, length-prefixed strings
/// and lists, in field order. Independent of the store's codec, so the code of an exported
/// ledger does not change with the store format.
fn encode_entry(e: &LedgerEntry, out: &mut Vec<u8>) {
    out.extend_from_slice(&e.seq.to_le_bytes());
    out.extend_from_slice(&e.at.as_second().to_le_bytes());
    out.extend_from_slice(&e.at.subsec_nanosecond().to_le_bytes());
    out.extend_from_slice(e.subject.as_bytes());
    out.extend_from_slice(&(e.categories.len() as u64).to_le_bytes());
    for (name, generation) in &e.categories {
        out.extend_from_slice(&(name.len() as u64).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&generation.to_le_bytes());
    }
    out.extend_from_slice(&(e.records.len() as u64).to_le_bytes());
    for r in &e.records {
        out.extend_from_slice(r.as_bytes());
    }
    out.push(u8::from(e.subject_erased));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{RecordId, SubjectRef};

    fn entry(seq: u64) -> LedgerEntry {
        LedgerEntry {
            seq,
            at: jiff::Timestamp::from_second(1_700_000_000).unwrap(),
            subject: SubjectRef([seq as u8; 16]),
            categories: vec![("usage".into(), 3)],
            records: vec![RecordId([7; 16])],
            subject_erased: false,
        }
    }

    /// Every field of an entry, the vault id and the order of entries change the code.
    #[test]
    fn the_code_covers_every_field_and_the_order() {
        let key = SecretKey::from_bytes([1; 32]);
        let base = vec![entry(1), entry(2)];
        let code = mac(&key, &[0; 16], &base);
        let mut variants: Vec<([u8; 16], Vec<LedgerEntry>)> = Vec::new();
        variants.push(([1; 16], base.clone()));
        variants.push(([0; 16], vec![entry(2), entry(1)]));
        variants.push(([0; 16], vec![entry(1)]));
        for f in 0..7 {
            let mut es = base.clone();
            let e = &mut es[1];
            match f {
                0 => e.seq = 9,
                1 => e.at = jiff::Timestamp::from_second(1_700_000_001).unwrap(),
                2 => e.subject = SubjectRef([9; 16]),
                3 => e.categories[0].1 = 4,
                4 => e.categories[0].0 = "usagf".into(),
                5 => e.records.clear(),
                _ => e.subject_erased = true,
            }
            variants.push(([0; 16], es));
        }
        for (vault, es) in variants {
            assert_ne!(mac(&key, &vault, &es), code);
        }
        assert_ne!(mac(&SecretKey::from_bytes([2; 32]), &[0; 16], &base), code);
    }
}
