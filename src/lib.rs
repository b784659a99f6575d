//! # pdvault
//!
//! An embedded vault for personal data that keeps the promises of a privacy policy, and proves it:
//! every record is encrypted under keys that belong to its data subject; erasure destroys those
//! keys (crypto-shredding); retention policies and legal holds decide what may be destroyed and
//! when; data-subject rights (access, export, rectification, restriction, consent) are answered
//! from the vault; and a keyed, chained audit trail records every operation without naming anyone.
//!
//! ```
//! # fn main() -> pdvault::Result<()> {
//! use pdvault::{Category, KdfParams, Purpose, RecordMeta, RootSecret, SubjectId, Vault};
//!
//! let dir = tempfile::tempdir()?;
//! let vault = Vault::builder(dir.path())
//!     .kdf(KdfParams::insecure_for_tests()) // tests only: the default is Argon2id m=19 MiB, t=2
//!     .create(RootSecret::passphrase("correct horse battery staple"))?;
//!
//! let alice = SubjectId::new("alice@example.com")?;
//! let billing = Purpose::new("billing")?;
//! let id = vault.put(&alice, RecordMeta::new(Category::Payment).purpose(billing.clone()), b"IBAN DE89 3704")?;
//! assert_eq!(vault.get(&alice, id, &billing)?.payload, b"IBAN DE89 3704");
//!
//! let report = vault.erase_subject(&alice)?;
//! assert!(report.subject_erased);
//! assert!(vault.get(&alice, id, &billing).is_err());
//! # Ok(())
//! # }
//! ```
//!
//! ## Key hierarchy
//!
//! ```text
//! root secret (passphrase → Argon2id, or 32 raw bytes from the host's KMS)   never stored
//!   └─ root key ─┬─ slot key: seals the epoch keys in keys.slot             derived, never stored
//!                └─ key-check value: tells a wrong key from a damaged file   stored
//! epoch key (in the key source: keys.slot, overwritten in place, or an HSM) one live at a time
//!   └─ ring key (fresh at every vault-file write; stored sealed under the epoch key)
//!        └─ key ring (in vault.pdv, sealed; replaced at every key change)
//!             ├─ master secret ─┬─ blind-index key (keyed BLAKE3 of subject identifiers)
//!             │                 ├─ audit key (chains the audit trail)
//!             │                 └─ manifest key (the store's integrity manifest)
//!             └─ 4096 shard keys: each wraps the subject keys of its shard and keys the
//!                addresses of its index entries
//! per subject: identity key (seals the subject's reference in its index entry),
//!              subject key (seals what dies with the subject),
//!              data key per (category, generation) (seals payloads)      stored only wrapped
//! ```
//!
//! ## What is on disk
//!
//! A vault directory holds `vault.pdv` (the header: format version, vault id, Argon2id salt and
//! costs, key-check value, the store checkpoint, and the sealed key ring), `LOCK`, and `store/`
//! (sled). In the store: payloads sealed with XChaCha20-Poly1305 under their data key, with
//! associated data binding each to its vault, subject reference, record id, version, key
//! generation and metadata; record metadata (category, purposes, legal basis, source,
//! collection time) in the clear but authenticated; wrapped keys; blind indexes of subject
//! identifiers, each mapping to a sealed reference; holds, the erasure ledger, the audit trail,
//! requests and disclosures, all by random internal reference. Never on disk: the root secret,
//! the root key, any unwrapped key, a subject identifier, a plaintext payload.
//!
//! ## Guarantees and their limits
//!
//! - **Confidentiality at rest**: without the root secret, the files reveal record counts,
//!   sizes, metadata and timing, not payloads or identifiers. Metadata must hold no personal data.
//! - **Integrity**: a payload altered, or moved to another record or subject, fails with
//!   [`IntegrityError`]. Lost or damaged store files are reported as data loss at open (when the
//!   newest durable writes are gone) or by [`Vault::verify`], never served as a whole vault.
//! - **Erasure**: once an erase call returns, the keys that could decrypt an erased record are
//!   destroyed: their shard key is replaced, the key ring is sealed under a new epoch key, and the
//!   previous epoch key is destroyed in its [`KeySource`]. Every older copy of the key ring — a
//!   stale `vault.pdv` in the device's free blocks, a snapshot, a database's history — is sealed
//!   under a destroyed epoch key, so with the root secret and a raw image of the device nothing
//!   erased decrypts and an erased identifier matches nothing (tested on an ext4 loop device).
//!   What "destroyed" means is the source's [`ErasureGuarantee`]: the built-in [`SlotSource`]
//!   overwrites in place (ext4, XFS; not copy-on-write filesystems, snapshots or flash remapping
//!   below the block layer); a PKCS#11 token destroys the key in hardware. A backup has an epoch
//!   key of its own: with the built-in source it still opens with the root secret of its day; restore
//!   it only with the current erasure ledger ([`Vault::restore`] with [`LedgerChoice::Apply`]),
//!   which checks the ledger (its vault, its authentication code, that it is not older than the
//!   backup) and re-applies every erasure. Restoring without a ledger brings erased data back
//!   and is asked for by name ([`LedgerChoice::BringErasedDataBack`]).
//!   Old versions of *updated* records stay decryptable in stale store pages until sled's garbage
//!   collection; erase a record to make its old versions unrecoverable.
//! - **Durability**: with [`Durability::Immediate`] (the default) an acknowledged write survives a
//!   crash of the process or the machine. Audit entries of reads are written with the next write,
//!   flush or close.
//! - **Memory**: unwrapped keys live in a bounded cache, are zeroized on drop and purged on
//!   erasure; no `Debug` or error message prints a key, a payload or a subject identifier.
//!
//! See `docs/design.md` for the file format and the threat model in full.
//!
//! ## Errors
//!
//! Every error is an [`Error`]; [`Error::kind`] classifies it ([`ErrorKind`]: not found,
//! refused, retained by a hold, invalid input, an integrity failure, unavailable and worth a
//! retry, …) for an HTTP status or a retry decision, and [`Error::is_retryable`] says whether to
//! try again.
//!
//! ## Features
#![doc = document_features::document_features!()]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod anonymised;
pub mod audit;
mod clock;
mod crypto;
pub mod erasure;
mod error;
#[cfg(test)]
mod forensic_tests;
mod ids;
mod keys;
pub mod keysource;
pub mod ledger;
mod model;
#[cfg(feature = "tokio")]
pub mod nonblocking;
mod pause;
pub mod policy;
pub mod report;
pub mod rights;
mod storage;
mod sweep;
pub mod telemetry;
mod vault;

/// The date and time crate of pdvault's public API ([`jiff::Timestamp`] in records, holds and
/// requests; [`jiff::Span`] in policies and [`ManualClock::advance`]): use this
/// re-export rather than a `jiff` dependency of your own, so the versions always match.
pub use jiff;
pub use jiff::{Span, Timestamp};
/// The crate of [`Zeroizing`](zeroize::Zeroizing) and [`Zeroize`](zeroize::Zeroize), which
/// pdvault's secrets use: wrap secrets you hand to pdvault in it.
pub use zeroize;

pub use anonymised::AnonymousStats;
pub use audit::{AuditEntry, AuditOp, AuditReport};
pub use clock::{Clock, ManualClock, SystemClock};
pub use crypto::{DEFAULT_MIN_PASSPHRASE_LEN, KdfParams, RootSecret};
pub use erasure::{Erased, ErasureReport, LedgerEntry, RetainReason, Retained};
pub use error::{
    AccessError, DisclosureRefusal, ErasureError, Error, ErrorKind, InputError, IntegrityError,
    LedgerError, OpenError, PolicyError, RequestError, Result, StorageError, TaskError,
};
pub use ids::{HoldId, MAX_SUBJECT_ID_LEN, RecordId, RequestId, SubjectId, SubjectRef};
pub use keysource::{EpochId, ErasureGuarantee, KeySource, KeySourceError, SlotSource, SourceInfo};
pub use ledger::{LedgerChoice, LedgerDocument};
pub use model::{Category, LegalBasis, MAX_PAYLOAD_LEN, Purpose, Record, RecordInfo, RecordMeta};
#[cfg(feature = "tokio")]
pub use nonblocking::AsyncVault;
pub use policy::holds::{Hold, HoldReason, HoldScope, HoldTarget, NewHold};
pub use policy::{EventKind, Policy, RequestKind};
pub use report::{Report, ReportOptions};
pub use rights::{RequestFilter, Withdrawal};
pub use storage::entries::{AgeStatus, ConsentState};
pub use storage::private_fs::create_private_file;
pub use storage::{DEFAULT_CACHE_BYTES, Durability};
pub use sweep::{CategorySweep, SweepOptions, SweepReport};
pub use telemetry::{Metrics, OperationMetrics};
pub use vault::{
    MAX_SECRET_LEN, MigrationReport, ScopedVault, Stats, Vault, VaultBuilder, VerifyReport,
};

/// Entry points for the fuzz targets: each decodes untrusted bytes the way the vault does and
/// must never panic. Not part of the supported API.
#[doc(hidden)]
pub mod __fuzz {
    use crate::storage::{codec, entries, layout, vault_file};

    /// The vault file (header and sealed ring envelope).
    pub fn vault_header(data: &[u8]) {
        let _ = vault_file::decode(data);
        let _ = vault_file::decode_file(data);
        let _ = vault_file::decode_ring(data);
    }
    /// A stored record, decoded whole and as the vault reads it (metadata, then the rest).
    pub fn record_entry(data: &[u8]) {
        let whole = codec::decode::<entries::RecordEntry>(data, "record");
        let split =
            entries::StoredRecord::decode(data.to_vec()).map(entries::StoredRecord::into_entry);
        assert_eq!(whole.ok(), split.ok(), "both decodings agree");
    }
    /// A wrapped key and a ratchet journal entry.
    pub fn wrapped_key(data: &[u8]) {
        let _ = codec::decode::<entries::WrappedKey>(data, "wrapped key");
        let _ = codec::decode::<entries::JournalEntry>(data, "journal");
    }
    /// A blind-index entry.
    pub fn index_entry(data: &[u8]) {
        let _ = codec::decode::<entries::IndexEntry>(data, "index");
    }
    /// An erasure-ledger entry.
    pub fn ledger_entry(data: &[u8]) {
        let _ = codec::decode::<crate::erasure::LedgerEntry>(data, "ledger");
    }
    /// A stored block of audit entries.
    pub fn audit_entry(data: &[u8]) {
        let _ = crate::audit::decode_block(data);
    }
    /// A subject's state, a hold and the manifest.
    pub fn subject_state(data: &[u8]) {
        let _ = codec::decode::<entries::SubjectState>(data, "subject");
        let _ = codec::decode::<crate::vault::StoredHold>(data, "hold");
        let _ = codec::decode::<crate::vault::StoredDisclosure>(data, "disclosure");
        let _ = codec::decode::<entries::Manifest>(data, "manifest");
        let _ = codec::decode::<crate::vault::StoredRequest>(data, "request");
    }
    /// Keys of every table.
    pub fn key_layout(data: &[u8]) {
        let _ = layout::parse_record(data);
        let _ = layout::parse_data_key(data);
        let _ = layout::parse_due(data);
        let _ = layout::parse_reclaim(data);
        let _ = layout::parse_seq(data);
        let _ = layout::parse_subject_hold(data);
    }
}

/// The README's code blocks, compiled as doctests.
/// sled's own failure points, for the I/O-error tests. Not part of the API: only with the
/// test-only feature `sled-failpoints`. The points are global to the process.
#[cfg(feature = "sled-failpoints")]
#[doc(hidden)]
pub mod __failpoints {
    /// Makes the `n`-th next hit of sled's failure point `name` fail (`n` from 0, below 64).
    pub fn fail_at(name: &'static str, n: u32) {
        crate::storage::sled_engine::failpoints::set(name, 1u64 << n.min(63));
    }

    /// Disarms every failure point.
    pub fn reset() {
        crate::storage::sled_engine::failpoints::reset();
    }
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
