//! Error types: one `#[non_exhaustive]` enum per family of operations, folded into [`Error`].
//!
//! No error message carries a key, a payload or a subject identifier: messages name records and
//! holds by their random ids only.

use std::fmt;
use std::path::PathBuf;

use crate::ids::{HoldId, RecordId, RequestId};
use crate::keysource::KeySourceError;

/// Errors of opening, creating and checking a vault as a whole.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The passphrase or raw key does not open this vault.
    #[error("wrong passphrase or key for this vault")]
    WrongKey,
    /// The vault was created with another kind of root secret (passphrase versus raw key).
    #[error("this vault is opened with a {expected}, not a {given}")]
    SecretKindMismatch {
        /// The kind the vault was created with.
        expected: &'static str,
        /// The kind that was given.
        given: &'static str,
    },
    /// The vault header is shorter than its own length fields say.
    #[error("vault header is truncated ({found} bytes)")]
    HeaderTruncated {
        /// How many bytes were found.
        found: usize,
    },
    /// The vault header fails its checksum or cannot be decoded.
    #[error("vault header is damaged: {0}")]
    HeaderDamaged(&'static str),
    /// The vault was written by a newer version of pdvault.
    #[error("vault format version {found} is newer than this pdvault supports ({supported})")]
    NewerFormat {
        /// The version in the header.
        found: u16,
        /// The newest version this build reads.
        supported: u16,
    },
    /// The vault was written by an earlier, unreleased development version of pdvault, whose
    /// entry encoding this build does not read (version 1 stored timestamps as text).
    #[error(
        "vault format version {found} was written by a pre-release pdvault and is not readable by this one ({supported}); restore from an export"
    )]
    OlderFormat {
        /// The version in the header.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// Another process (or another handle in this process) has the vault open. Reported after
    /// the lock stayed taken for a quarter of a second.
    #[error("vault is already open elsewhere (lock held on {0})")]
    AlreadyOpen(PathBuf),
    /// There is no vault in the directory.
    #[error("no vault at {0}")]
    NotFound(PathBuf),
    /// A vault already exists in the directory; creating one would overwrite it.
    #[error("a vault already exists at {0}")]
    AlreadyExists(PathBuf),
    /// The store lost data that the vault's own manifest says it had.
    #[error("data loss detected: {0}")]
    DataLoss(String),
    /// The root-secret parameters are invalid (for example, Argon2 costs out of range).
    #[error("invalid key-derivation parameters: {0}")]
    InvalidKdfParams(String),
    /// The directory holds a backup whose epoch key is in a host's key source: it is restored
    /// (into a vault of its own), not opened.
    #[error("{0} is a backup: restore it into a new directory")]
    IsBackup(PathBuf),
    /// The backup's epoch key was destroyed when it expired: it can never be opened, not even
    /// with the root secret of its day.
    #[error("this backup has expired: its key was destroyed")]
    BackupExpired,
    /// Another process rotated the root key of this shared vault: this handle stops, and the
    /// vault must be opened again with the new secret.
    #[error(
        "another process rotated the vault's root key: open the vault again with the new secret"
    )]
    RootRotated,
    /// The operation is not supported for this vault (named in the message).
    #[error("not supported: {0}")]
    NotSupported(&'static str),
    /// The epoch key this copy of the vault is sealed under no longer exists in its key source:
    /// the copy (an old backup, a stale file) can never be opened again. Nothing was erased by
    /// this open; the copy was superseded.
    #[error(
        "the vault's {0} no longer exists in its key source: this copy of the vault cannot be opened"
    )]
    EpochDestroyed(String),
    /// The vault's epoch keys are in a key source of another kind than the one given (or none
    /// was given for a vault whose keys are not in its slot file).
    #[error("this vault's epoch keys are in a {expected} key source, not a {given} one")]
    SourceKindMismatch {
        /// The kind the vault file names.
        expected: String,
        /// The kind given.
        given: String,
    },
}

/// Errors of the storage layer (the embedded store and the vault files).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An I/O error from the file system.
    #[error("I/O error: {0}")]
    Io(std::io::Error),
    /// The file system has no space left (or the quota is used up). The write that did not fit
    /// failed as a whole and nothing stored before is lost: free space, then reopen the vault.
    #[error("no space left on the device ({0}): the write was not made; free space and reopen")]
    NoSpace(std::io::Error),
    /// The store's engine (sled, PostgreSQL) reported an error. The message says what failed
    /// and, after a colon, the engine's own message; [`source`](std::error::Error::source) is the
    /// engine's error itself when there is one.
    #[error(
        "store error: {context}{}",
        .source.as_ref().map(|s| format!(": {s}")).unwrap_or_default()
    )]
    Engine {
        /// What failed, in pdvault's words.
        context: std::borrow::Cow<'static, str>,
        /// The engine's error, if it gave one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
    /// The embedded store is damaged.
    #[error("store is damaged: {0}")]
    Corrupted(String),
    /// An earlier write or flush failed (the first error is given), and the store writes
    /// nothing more until the vault is reopened: what was acknowledged before is on disk, and
    /// reopening recovers from it.
    #[error("the store stopped writing after a failed write ({0}); reopen the vault")]
    Halted(String),
    /// The vault was closed ([`Vault::close`](crate::Vault::close), on this handle or a clone).
    #[error("the vault is closed")]
    Closed,
    /// A stored entry could not be decoded.
    #[error("stored entry is malformed: {0}")]
    Malformed(&'static str),
}

impl From<std::io::Error> for StorageError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::StorageFull
            || e.kind() == std::io::ErrorKind::QuotaExceeded
        {
            StorageError::NoSpace(e)
        } else {
            StorageError::Io(e)
        }
    }
}

/// An authenticated decryption failed: the ciphertext, its metadata or its key do not belong
/// together. Deliberately opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("integrity check failed: data was altered, moved or does not belong to this vault")]
pub struct IntegrityError;

/// Errors caused by the caller's input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// A subject identifier is empty or too long.
    #[error("invalid subject identifier: {0}")]
    SubjectId(&'static str),
    /// A record id could not be parsed.
    #[error("invalid record id (expected 32 hex digits)")]
    RecordId,
    /// A hold id could not be parsed.
    #[error("invalid hold id (expected 16 hex digits)")]
    HoldId,
    /// A request id could not be parsed.
    #[error("invalid request id (expected 16 hex digits)")]
    RequestId,
    /// A category name is not valid kebab-case.
    #[error("invalid category name {0:?} (expected kebab-case: a-z, 0-9 and '-')")]
    Category(String),
    /// A category that is neither built in nor declared by the vault's policy
    /// (`custom_categories`): most often a misspelling, so the nearest known name is suggested.
    #[error("unknown category `{name}`{}", suggest(.suggestion.as_deref()))]
    UnknownCategory {
        /// The name given.
        name: String,
        /// The nearest known category, within two edits, if there is one.
        suggestion: Option<String>,
    },
    /// A purpose name is invalid.
    #[error("invalid purpose {0:?} (1 to 64 characters, no control characters)")]
    Purpose(String),
    /// An unknown legal basis.
    #[error("unknown legal basis {0:?}")]
    LegalBasis(String),
    /// The category is one the policy says is neither collected nor processed
    /// (`not_collected`).
    #[error("category `{0}` is not collected under this vault's policy (not_collected)")]
    NotCollected(String),
    /// The record's legal basis is not one the policy allows for its category (`[bases]`).
    #[error(
        "legal basis {basis} is not allowed for category `{category}` (the policy allows: {allowed})"
    )]
    BasisNotAllowed {
        /// The category.
        category: String,
        /// The basis given.
        basis: crate::model::LegalBasis,
        /// The bases the policy allows, comma-separated.
        allowed: String,
    },
    /// A payload is larger than [`crate::MAX_PAYLOAD_LEN`].
    #[error("payload of {len} bytes exceeds the limit of {max} bytes")]
    PayloadTooLarge {
        /// The payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A text field (source, actor, reason, reference) is too long or has control characters.
    #[error("invalid {field}: {why}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// A typed payload failed to serialize or deserialize.
    #[error("payload encoding: {0}")]
    Encoding(String),
    /// A date or time could not be parsed.
    #[error("invalid date or time {0:?}")]
    Time(String),
    /// A record's collection time is later than the vault clock's now: data cannot have been
    /// collected in the future, and its retention would count from a time that has not come.
    /// Nothing was written.
    #[error(
        "the collection time {collected_at} is in the future (the vault clock says {now}); nothing was written"
    )]
    CollectedInFuture {
        /// The collection time given.
        collected_at: jiff::Timestamp,
        /// The vault clock's time when it was refused.
        now: jiff::Timestamp,
    },
    /// A sweep was to be planned at a time before the vault clock's now: what a sweep would
    /// have destroyed then is not knowable from the vault as it is now.
    #[error(
        "a sweep can be planned at the vault clock's now or later, not at {at} (the vault clock says {now})"
    )]
    SweepInPast {
        /// The time asked for.
        at: jiff::Timestamp,
        /// The vault clock's time when it was refused.
        now: jiff::Timestamp,
    },
    /// A new passphrase (creating a vault, rotating its root secret) is shorter than the
    /// minimum.
    #[error("the passphrase is too short: it needs at least {min} characters")]
    PassphraseTooShort {
        /// The minimum, in characters.
        min: usize,
    },
    /// A record of category `credential` was to be written, rewritten or imported other than
    /// with [`Vault::set_credential`](crate::Vault::set_credential), which stores only an
    /// Argon2id hash of the secret. Nothing was written.
    #[error(
        "records of category `credential` are written only with set_credential (which stores an Argon2id hash); nothing was written"
    )]
    CredentialWrite,
    /// [`Vault::verify_credential`](crate::Vault::verify_credential) was asked to check a record
    /// that is not of category `credential`.
    #[error("record {0} is not a credential")]
    NotACredential(RecordId),
    /// An export document could not be imported.
    #[error("invalid export document: {0}")]
    Document(String),
    /// An entry of an export document holds what the API refuses (the error it refuses with).
    #[error("invalid export document: {entry}: {error}")]
    DocumentEntry {
        /// The entry, for example `records[2]` or `subject.consents "marketing"`.
        entry: String,
        /// What is wrong with it.
        #[source]
        error: Box<InputError>,
    },
}

fn suggest(suggestion: Option<&str>) -> String {
    match suggestion {
        Some(s) => format!(" — did you mean `{s}`?"),
        None => " (known: the built-in categories and the policy's custom_categories)".to_owned(),
    }
}

/// Errors of purpose-bound access.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// The purpose is not among the record's purposes.
    #[error("purpose {purpose:?} is not among the purposes of record {record}")]
    PurposeNotAllowed {
        /// The requested purpose.
        purpose: String,
        /// The record.
        record: RecordId,
    },
    /// The record rests on consent, and consent for the purpose is not granted (or was withdrawn).
    #[error("no consent for purpose {purpose:?} on record {record}")]
    NoConsent {
        /// The requested purpose.
        purpose: String,
        /// The record.
        record: RecordId,
    },
    /// The subject objected to processing for this purpose, and the record rests on legitimate
    /// interests or a public task.
    #[error(
        "the subject objected to purpose {purpose:?}; record {record} rests on legitimate interests or a public task"
    )]
    Objected {
        /// The requested purpose.
        purpose: String,
        /// The record.
        record: RecordId,
    },
    /// The subject is a minor, the policy requires a guardian's consent for consent-based
    /// processing, and none counts for the purpose.
    #[error("no guardian's consent for purpose {purpose:?} on record {record} of a minor")]
    NoGuardianConsent {
        /// The requested purpose.
        purpose: String,
        /// The record.
        record: RecordId,
    },
    /// Processing of the subject or category is restricted.
    #[error(
        "processing is restricted for record {record}; only storage, legal claims and the subject's own access are allowed"
    )]
    Restricted {
        /// The record.
        record: RecordId,
    },
    /// The principal's role does not grant the operation on this category or purpose.
    #[error("role {role:?} of {principal:?} is not granted {operation} {on}")]
    NotGranted {
        /// Who asked (the name the host authenticated).
        principal: String,
        /// The role they act in.
        role: String,
        /// The operation refused.
        operation: crate::policy::roles::Operation,
        /// What it was refused on, in words ("on category contact for purpose support").
        on: String,
    },
    /// The record is a credential: its value is kept only as an Argon2id hash, which no read
    /// returns; check a secret against it with
    /// [`Vault::verify_credential`](crate::Vault::verify_credential).
    #[error("record {record} is a credential: it is verified, never read")]
    CredentialNotReadable {
        /// The record.
        record: RecordId,
    },
    /// The role is not one the policy declares (or the vault has no policy).
    #[error("no role {0:?} in the vault's policy")]
    UnknownRole(String),
    /// A disclosure does not match the recipients register of the policy.
    #[error("disclosure to {recipient:?} refused: {reason}")]
    DisclosureRefused {
        /// The recipient named.
        recipient: String,
        /// Why.
        reason: DisclosureRefusal,
    },
}

/// Why a disclosure was refused ([`AccessError::DisclosureRefused`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DisclosureRefusal {
    /// The policy's register does not declare the recipient.
    #[error("the recipient is not declared in the policy's register")]
    UndeclaredRecipient,
    /// A category is not among those declared for the recipient.
    #[error("category {0:?} is not declared for this recipient")]
    CategoryNotDeclared(String),
    /// The purpose is not among those declared for the recipient.
    #[error("purpose {0:?} is not declared for this recipient")]
    PurposeNotDeclared(String),
    /// No ground was given.
    #[error("a ground is required (\"kind\" or \"kind: reference\", e.g. \"subpoena: case 17\")")]
    GroundRequired,
    /// The ground's kind is not one pdvault knows.
    #[error(
        "the ground is none of consent, contract, legal-obligation, legitimate-interests, subpoena, investigation-letter, court-order"
    )]
    UnknownGround,
    /// The ground is not among those declared for the recipient.
    #[error("ground {0} is not declared for this recipient")]
    GroundNotDeclared(crate::policy::recipients::Ground),
    /// The disclosure rests on consent, and the subject has not consented to the purpose.
    #[error("the subject has not consented to purpose {0:?}")]
    NoConsent(String),
}

/// Errors of erasure and deletion.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErasureError {
    /// Legal holds cover the record(s); nothing was destroyed.
    #[error("blocked by legal hold(s): {}", list_holds(.holds))]
    Held {
        /// The holds that block.
        holds: Vec<HoldId>,
    },
    /// Minimum retention forbids destruction before the given time; nothing was destroyed.
    #[error("retained by minimum retention until {until}")]
    Retained {
        /// When the minimum retention ends.
        until: jiff::Timestamp,
    },
}

fn list_holds(holds: &[HoldId]) -> String {
    holds
        .iter()
        .map(|h| h.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Errors of reading an erasure ledger document ([`crate::Vault::parse_ledger`]) and of
/// checking it against a backup ([`crate::Vault::restore`]). A ledger that fails any check is
/// refused as a whole: nothing is restored from it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The document is a bare JSON array of entries, as pdvault wrote before ledgers were
    /// authenticated: it cannot be checked, so it is not used.
    #[error(
        "the ledger is in the old, unauthenticated format (a bare JSON array); export it again from the live vault"
    )]
    Unauthenticated,
    /// The document names a format or version this build does not read.
    #[error("unsupported ledger format {found:?} (this build reads {supported:?})")]
    UnsupportedFormat {
        /// The format in the document.
        found: String,
        /// The format this build reads.
        supported: &'static str,
    },
    /// The document ends early: bytes were cut off.
    #[error("the ledger is truncated: the document ends early")]
    Truncated,
    /// The document holds another number of entries than it states (and its code covers):
    /// entries were cut off or added.
    #[error("the ledger states {stated} entries but holds {found}: entries were cut off or added")]
    CountMismatch {
        /// The count the document states.
        stated: u64,
        /// The entries it holds.
        found: u64,
    },
    /// The document is not JSON of the ledger's shape.
    #[error("the ledger is malformed: {0}")]
    Malformed(String),
    /// The ledger was exported from another vault than the backup.
    #[error("the ledger belongs to another vault (vault {found}, the backup is vault {expected})")]
    OtherVault {
        /// The backup's vault id (hex).
        expected: String,
        /// The ledger's vault id (hex).
        found: String,
    },
    /// The ledger fails its authentication code: an entry was removed, added, reordered or
    /// changed, or the code itself was altered.
    #[error("the ledger fails its authentication check: an entry was removed, added or changed")]
    MacMismatch,
    /// The backup already holds more ledger entries than the given ledger: the ledger is older
    /// than the backup, and erasures made between the two would be missed.
    #[error(
        "the ledger is older than the backup: the backup holds {in_backup} ledger entries, the given ledger {in_ledger}"
    )]
    OlderThanBackup {
        /// Ledger entries in the backup.
        in_backup: u64,
        /// Entries in the given ledger.
        in_ledger: u64,
    },
    /// The backup's own ledger entries are not the first entries of the given ledger: the two
    /// come from copies of the vault that went separate ways.
    #[error("the ledger does not continue the backup's own ledger (they differ at entry {seq})")]
    Diverges {
        /// The sequence number of the first entry that differs.
        seq: u64,
    },
}

/// Errors of retention policies.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy file is not valid TOML or does not have the expected shape.
    #[error("policy is not valid: {0}")]
    Parse(String),
    /// An entry of the policy is invalid; names the entry.
    #[error("policy entry {entry:?}: {why}")]
    Entry {
        /// The entry (category name or section).
        entry: String,
        /// What is wrong with it.
        why: String,
    },
}

/// Errors of data-subject requests.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// A request kind that is neither built in nor declared by the vault's policy
    /// (`custom_requests`): most often a misspelling, so the nearest known kind is suggested.
    #[error("unknown request kind `{name}`{}", suggest_kind(.suggestion.as_deref()))]
    UnknownKind {
        /// The name given.
        name: String,
        /// The nearest known kind, within two edits, if there is one.
        suggestion: Option<String>,
    },
    /// The policy requires the requester's identity to be verified before a request of this
    /// kind is answered (`[requests] verify_identity`), and it was not: closing the request, or
    /// an operation that would answer it and cannot be taken back (an export of the subject's
    /// data, an erasure of the subject), is refused, and nothing changed.
    #[error(
        "request {request} ({kind}) cannot be answered before the requester's identity is verified \
         (the policy's verify_identity); record the verification first"
    )]
    IdentityNotVerified {
        /// The request.
        request: RequestId,
        /// Its kind.
        kind: crate::policy::RequestKind,
    },
    /// The requester's identity was already verified; the first verification stands.
    #[error("the identity of request {0}'s requester was already verified")]
    AlreadyVerified(RequestId),
    /// The request is closed: there is nothing left to verify before answering it.
    #[error("request {0} is closed")]
    Closed(RequestId),
}

fn suggest_kind(suggestion: Option<&str>) -> String {
    match suggestion {
        Some(s) => format!(" — did you mean `{s}`?"),
        None => " (known: the built-in kinds and the policy's custom_requests)".to_owned(),
    }
}

/// An async call to the vault that the task running it did not carry to its end
/// (`nonblocking::AsyncVault`, feature `tokio`). The vault itself did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The blocking task that ran the call panicked: the closure given to it, or a vault call
    /// inside it. What the closure did before the panic stands: find out before repeating it.
    /// The panic's message went to the panic hook (standard error by default), not into this
    /// error: it may quote data.
    #[error(
        "the blocking task running the vault call panicked (its message went to the panic hook)"
    )]
    Panicked,
    /// The runtime shut down before the blocking task started: the call was not made.
    #[error("the runtime shut down before the vault call started: the call was not made")]
    Cancelled,
    /// The call was made outside a Tokio runtime, which has no blocking pool to run it on: the
    /// call was not made.
    #[error(
        "no Tokio runtime to run the vault call on (call it from within one): the call was not made"
    )]
    NoRuntime,
}

/// Every error pdvault returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Opening or checking the vault failed.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The storage layer failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An integrity check failed.
    #[error(transparent)]
    Integrity(#[from] IntegrityError),
    /// The input was invalid.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Access was refused.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// Erasure was refused.
    #[error(transparent)]
    Erasure(#[from] ErasureError),
    /// The retention policy is invalid.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// An erasure ledger was refused.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A data-subject request was refused.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The key source holding the epoch keys failed or could not be reached. Nothing was
    /// destroyed because of it, and nothing is to be read as erased.
    #[error(transparent)]
    KeySource(#[from] crate::keysource::KeySourceError),
    /// The subject is not in the vault (never written, or erased).
    #[error("no such subject")]
    SubjectNotFound,
    /// The record is not in the vault (never written, deleted or erased).
    #[error("no such record: {0}")]
    RecordNotFound(RecordId),
    /// The hold does not exist.
    #[error("no such hold: {0}")]
    HoldNotFound(HoldId),
    /// The request does not exist.
    #[error("no such request: {0}")]
    RequestNotFound(RequestId),
    /// An async call was not carried to its end by the task that ran it
    /// (`nonblocking::AsyncVault`, feature `tokio`).
    #[error(transparent)]
    Task(#[from] TaskError),
}

impl StorageError {
    /// An engine error with no engine error behind it.
    pub(crate) fn engine(context: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        StorageError::Engine {
            context: context.into(),
            source: None,
        }
    }

    /// An engine error: what failed, and the engine's error.
    pub(crate) fn engine_error(
        context: impl Into<std::borrow::Cow<'static, str>>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StorageError::Engine {
            context: context.into(),
            source: Some(Box::new(source)),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Storage(StorageError::from(e))
    }
}

impl Error {
    /// The same failure, for another caller that shared the failed operation (a group commit):
    /// storage errors keep their kind; any other error is reported as a store error.
    pub(crate) fn shared(&self) -> Error {
        let io = |e: &std::io::Error| std::io::Error::new(e.kind(), e.to_string());
        Error::Storage(match self {
            Error::Storage(StorageError::Io(e)) => StorageError::Io(io(e)),
            Error::Storage(StorageError::NoSpace(e)) => StorageError::NoSpace(io(e)),
            Error::Storage(e @ StorageError::Engine { .. }) => StorageError::engine(e.to_string()),
            Error::Storage(StorageError::Corrupted(s)) => StorageError::Corrupted(s.clone()),
            Error::Storage(StorageError::Halted(s)) => StorageError::Halted(s.clone()),
            Error::Storage(StorageError::Closed) => StorageError::Closed,
            Error::Storage(StorageError::Malformed(s)) => StorageError::Malformed(s),
            other => StorageError::engine(other.to_string()),
        })
    }
}

/// What kind of failure an [`Error`] is: what a service does about it, whatever the variant.
///
/// [`Error::kind`] classifies every error pdvault returns, nested ones included (an
/// [`Error::Storage`] of [`StorageError::Io`] is [`Unavailable`](ErrorKind::Unavailable), of
/// [`StorageError::Corrupted`] is [`Integrity`](ErrorKind::Integrity)). Each kind names the HTTP
/// status that suits it best for a service that answers with the vault's outcome; only
/// [`Unavailable`](ErrorKind::Unavailable) is worth retrying as it is
/// ([`Error::is_retryable`]). New kinds may be added: match with a wildcard arm, and treat an
/// unknown kind as an internal error (500, not retried).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// What the call names is not in the vault: a subject, a record, a hold or a request never
    /// written, or deleted or erased; or no vault where one was to be opened. Answer 404; do not
    /// retry.
    NotFound,
    /// A vault already exists where one was to be created. Answer 409; do not retry.
    AlreadyExists,
    /// The call conflicts with the state of what it names: a request that is closed, a
    /// requester's identity verified already, an erasure ledger that does not continue the
    /// backup's own. Answer 409; do not retry unchanged.
    Conflict,
    /// The caller's input is invalid: an identifier, a category, a purpose, a field, a document,
    /// a date, a policy or a key-derivation parameter, or input the policy does not accept (a
    /// category not collected, a basis not allowed). Nothing was written. Answer 400 (or 422);
    /// do not retry unchanged.
    InvalidInput,
    /// A secret was refused: the passphrase or raw key does not open the vault (or is of the
    /// other kind), or the key source refused its PIN or credentials. Ask for the secret again
    /// or fix the configuration (401 where a user gave the secret, otherwise 500 and alert); do
    /// not retry unchanged (a token may lock after a few wrong PINs).
    WrongSecret,
    /// The policy refuses the call: a purpose not among the record's, no consent, an objection,
    /// processing restricted, a role not granted the operation (or no such role), a disclosure
    /// not in the recipients register, a credential read, a request answered before the
    /// requester's identity was verified. Answer 403; do not retry unless what the policy asks
    /// for changed (consent given, identity verified).
    Refused,
    /// An erasure or deletion was refused because the data must be kept: a legal hold covers
    /// it, or the policy's minimum retention has not ended. Nothing was destroyed. This is a lawful
    /// answer to an erasure request, to be reported with its reason (the holds, or when the
    /// retention ends); answer 409 (or 423). Retrying succeeds once the hold is released or
    /// the retention ended, not before.
    Retained,
    /// What was to be opened was superseded for good: a backup that expired, or a copy of the
    /// vault sealed under an epoch key its key source destroyed. Answer 410; never retry.
    Gone,
    /// An integrity check failed: data altered, moved or damaged, the store lost writes its
    /// manifest records, a vault header or a stored entry damaged, an erasure ledger tampered
    /// with or cut off, a key source's sealed value that does not open. Never retry, never
    /// serve the data; alert an operator (500), and restore from a backup where the vault
    /// itself is damaged.
    Integrity,
    /// The operation is not supported for this vault or this build: a vault format written by
    /// a newer (or pre-release) pdvault, a ledger format this build does not read, an operation
    /// the store does not offer (a backup of a vault on PostgreSQL). Answer 501 (or 500); do
    /// not retry.
    Unsupported,
    /// The vault could not serve the call now: an I/O error, the embedded store or the database
    /// failed or cannot be reached, the vault's lock stayed held by another process, the key
    /// source cannot be reached or failed. Nothing may be concluded from it (in particular,
    /// nothing was erased because of it). Retryable: answer 503 and retry with backoff. Most
    /// causes pass; some need an operator (a connection string that is wrong, a disk that keeps
    /// failing), so cap the retries and alert. On a vault directory a failed write stops the
    /// store: the retry then reports [`Stopped`](ErrorKind::Stopped).
    Unavailable,
    /// The file system (or the database) has no space left: the write was not made, and nothing
    /// written before is lost. Answer 507 (or 503) and alert an operator: free space (on a vault
    /// directory, then open the vault again: its store stopped writing). Not retryable as it is.
    StorageFull,
    /// This vault handle stopped and must be opened again: its store stopped writing after a
    /// failed write (reopening recovers from what was acknowledged), it was closed
    /// ([`Vault::close`](crate::Vault::close) on it or a clone), or another process rotated
    /// the root key (open it with the new secret). Answer 503; drop the handle, open the vault
    /// again, then retry.
    Stopped,
    /// The program around the vault failed, not the vault: a task that called the vault
    /// panicked, or an async call was made where no runtime could run it
    /// (`nonblocking::AsyncVault`, feature `tokio`). After a panic, what the task did before it
    /// stands: find out before repeating the call. Answer 500; do not retry unchanged; fix the
    /// program.
    Internal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::Conflict => "conflict",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::WrongSecret => "wrong secret",
            ErrorKind::Refused => "refused",
            ErrorKind::Retained => "retained",
            ErrorKind::Gone => "gone",
            ErrorKind::Integrity => "integrity",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::StorageFull => "storage full",
            ErrorKind::Stopped => "stopped",
            ErrorKind::Internal => "internal",
        })
    }
}

// Every match below names every variant, with no wildcard arm: `#[non_exhaustive]` does not
// apply inside the crate, so a variant added to any of these enums fails to compile until it is
// classified here (and in the test at the end of this file).
impl Error {
    /// What kind of failure this is, for an HTTP status or a retry decision ([`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Open(e) => e.kind(),
            Error::Storage(e) => e.kind(),
            Error::Integrity(IntegrityError) => ErrorKind::Integrity,
            Error::Input(e) => e.kind(),
            Error::Access(e) => e.kind(),
            Error::Erasure(e) => e.kind(),
            Error::Policy(e) => e.kind(),
            Error::Ledger(e) => e.kind(),
            Error::Request(e) => e.kind(),
            Error::KeySource(e) => key_source_kind(e),
            Error::SubjectNotFound
            | Error::RecordNotFound(_)
            | Error::HoldNotFound(_)
            | Error::RequestNotFound(_) => ErrorKind::NotFound,
            Error::Task(e) => e.kind(),
        }
    }

    /// Whether the same call may succeed if made again later, unchanged: the kind is
    /// [`ErrorKind::Unavailable`]. Retry with backoff and a cap. An error of kind
    /// [`ErrorKind::Stopped`] also succeeds again, but only after the vault is opened anew.
    pub fn is_retryable(&self) -> bool {
        self.kind() == ErrorKind::Unavailable
    }
}

impl TaskError {
    fn kind(&self) -> ErrorKind {
        match self {
            TaskError::Panicked | TaskError::NoRuntime => ErrorKind::Internal,
            // Nothing was done, and the service is going down: another instance, or this one
            // once restarted, serves the same call.
            TaskError::Cancelled => ErrorKind::Unavailable,
        }
    }
}

impl OpenError {
    fn kind(&self) -> ErrorKind {
        match self {
            OpenError::WrongKey | OpenError::SecretKindMismatch { .. } => ErrorKind::WrongSecret,
            OpenError::HeaderTruncated { .. }
            | OpenError::HeaderDamaged(_)
            | OpenError::DataLoss(_) => ErrorKind::Integrity,
            OpenError::NewerFormat { .. }
            | OpenError::OlderFormat { .. }
            | OpenError::NotSupported(_) => ErrorKind::Unsupported,
            OpenError::AlreadyOpen(_) => ErrorKind::Unavailable,
            OpenError::NotFound(_) => ErrorKind::NotFound,
            OpenError::AlreadyExists(_) => ErrorKind::AlreadyExists,
            OpenError::InvalidKdfParams(_)
            | OpenError::IsBackup(_)
            | OpenError::SourceKindMismatch { .. } => ErrorKind::InvalidInput,
            OpenError::BackupExpired | OpenError::EpochDestroyed(_) => ErrorKind::Gone,
            OpenError::RootRotated => ErrorKind::Stopped,
        }
    }
}

impl StorageError {
    fn kind(&self) -> ErrorKind {
        match self {
            StorageError::Io(_) | StorageError::Engine { .. } => ErrorKind::Unavailable,
            StorageError::NoSpace(_) => ErrorKind::StorageFull,
            StorageError::Corrupted(_) | StorageError::Malformed(_) => ErrorKind::Integrity,
            StorageError::Halted(_) | StorageError::Closed => ErrorKind::Stopped,
        }
    }
}

impl InputError {
    fn kind(&self) -> ErrorKind {
        match self {
            InputError::SubjectId(_)
            | InputError::RecordId
            | InputError::HoldId
            | InputError::RequestId
            | InputError::Category(_)
            | InputError::UnknownCategory { .. }
            | InputError::Purpose(_)
            | InputError::LegalBasis(_)
            | InputError::NotCollected(_)
            | InputError::BasisNotAllowed { .. }
            | InputError::PayloadTooLarge { .. }
            | InputError::Field { .. }
            | InputError::Encoding(_)
            | InputError::Time(_)
            | InputError::CollectedInFuture { .. }
            | InputError::SweepInPast { .. }
            | InputError::PassphraseTooShort { .. }
            | InputError::CredentialWrite
            | InputError::NotACredential(_)
            | InputError::Document(_)
            | InputError::DocumentEntry { .. } => ErrorKind::InvalidInput,
        }
    }
}

impl AccessError {
    fn kind(&self) -> ErrorKind {
        match self {
            AccessError::PurposeNotAllowed { .. }
            | AccessError::NoConsent { .. }
            | AccessError::Objected { .. }
            | AccessError::NoGuardianConsent { .. }
            | AccessError::Restricted { .. }
            | AccessError::NotGranted { .. }
            | AccessError::CredentialNotReadable { .. }
            | AccessError::UnknownRole(_)
            | AccessError::DisclosureRefused { .. } => ErrorKind::Refused,
        }
    }
}

impl ErasureError {
    fn kind(&self) -> ErrorKind {
        match self {
            ErasureError::Held { .. } | ErasureError::Retained { .. } => ErrorKind::Retained,
        }
    }
}

impl PolicyError {
    fn kind(&self) -> ErrorKind {
        match self {
            PolicyError::Parse(_) | PolicyError::Entry { .. } => ErrorKind::InvalidInput,
        }
    }
}

impl LedgerError {
    fn kind(&self) -> ErrorKind {
        match self {
            LedgerError::Unauthenticated
            | LedgerError::Malformed(_)
            | LedgerError::OtherVault { .. }
            | LedgerError::OlderThanBackup { .. } => ErrorKind::InvalidInput,
            LedgerError::UnsupportedFormat { .. } => ErrorKind::Unsupported,
            LedgerError::Truncated
            | LedgerError::CountMismatch { .. }
            | LedgerError::MacMismatch => ErrorKind::Integrity,
            LedgerError::Diverges { .. } => ErrorKind::Conflict,
        }
    }
}

impl RequestError {
    fn kind(&self) -> ErrorKind {
        match self {
            RequestError::UnknownKind { .. } => ErrorKind::InvalidInput,
            RequestError::IdentityNotVerified { .. } => ErrorKind::Refused,
            RequestError::AlreadyVerified(_) | RequestError::Closed(_) => ErrorKind::Conflict,
        }
    }
}

fn key_source_kind(e: &KeySourceError) -> ErrorKind {
    match e {
        KeySourceError::Unreachable(_) | KeySourceError::Failed(_) => ErrorKind::Unavailable,
        KeySourceError::Denied(_) => ErrorKind::WrongSecret,
        KeySourceError::EpochNotFound(_) => ErrorKind::Gone,
        KeySourceError::Damaged(_) => ErrorKind::Integrity,
    }
}

/// Describes a JSON error by its kind and position only: serde_json's own messages quote the
/// offending input, which may be a payload.
pub(crate) fn json_error(e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Data => "JSON of the wrong shape or type",
        serde_json::error::Category::Eof => "JSON ends early",
    };
    if e.line() == 0 {
        kind.to_owned()
    } else {
        format!("{kind} at line {} column {}", e.line(), e.column())
    }
}

/// The result type of pdvault.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keysource::EpochId;

    /// One sample of every variant of `$enum`, each with the kind it must have. The patterns
    /// are matched exhaustively with no wildcard arm, so a variant added to `$enum` fails to
    /// compile here until it has a sample below; each sample is checked to match its pattern.
    macro_rules! samples {
        ($enum:ty: $($pat:pat = $sample:expr => $kind:ident),+ $(,)?) => {{
            fn every_variant_listed(e: &$enum) {
                match e {
                    $($pat => {})+
                }
            }
            let mut v: Vec<(Error, ErrorKind)> = Vec::new();
            $(
                let sample = $sample;
                assert!(matches!(&sample, $pat), "{sample:?} does not match its pattern");
                every_variant_listed(&sample);
                v.push((Error::from(sample), ErrorKind::$kind));
            )+
            v
        }};
    }

    fn path() -> PathBuf {
        PathBuf::from("/srv/vault")
    }

    fn io() -> std::io::Error {
        std::io::Error::other("disk")
    }

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::UNIX_EPOCH
    }

    #[test]
    fn every_error_has_its_kind() {
        let record = RecordId::random();
        let request = RequestId::random();
        let epoch = EpochId::next(None);
        let mut all = Vec::new();
        all.extend(samples!(Error:
            Error::Open(_) = Error::Open(OpenError::WrongKey) => WrongSecret,
            Error::Storage(_) = Error::Storage(StorageError::Io(io())) => Unavailable,
            Error::Integrity(_) = Error::Integrity(IntegrityError) => Integrity,
            Error::Input(_) = Error::Input(InputError::RecordId) => InvalidInput,
            Error::Access(_) = Error::Access(AccessError::UnknownRole("r".into())) => Refused,
            Error::Erasure(_) = Error::Erasure(ErasureError::Held { holds: vec![HoldId::random()] })
                => Retained,
            Error::Policy(_) = Error::Policy(PolicyError::Parse("p".into())) => InvalidInput,
            Error::Ledger(_) = Error::Ledger(LedgerError::MacMismatch) => Integrity,
            Error::Request(_) = Error::Request(RequestError::Closed(request)) => Conflict,
            Error::KeySource(_) = Error::KeySource(KeySourceError::Unreachable("t".into()))
                => Unavailable,
            Error::SubjectNotFound = Error::SubjectNotFound => NotFound,
            Error::RecordNotFound(_) = Error::RecordNotFound(record) => NotFound,
            Error::HoldNotFound(_) = Error::HoldNotFound(HoldId::random()) => NotFound,
            Error::RequestNotFound(_) = Error::RequestNotFound("0000000000000001".parse().unwrap()) => NotFound,
            Error::Task(_) = Error::Task(TaskError::Panicked) => Internal,
        ));
        all.extend(samples!(TaskError:
            TaskError::Panicked = TaskError::Panicked => Internal,
            TaskError::Cancelled = TaskError::Cancelled => Unavailable,
            TaskError::NoRuntime = TaskError::NoRuntime => Internal,
        ));
        all.extend(samples!(OpenError:
            OpenError::WrongKey = OpenError::WrongKey => WrongSecret,
            OpenError::SecretKindMismatch { .. } = OpenError::SecretKindMismatch {
                expected: "passphrase",
                given: "raw key",
            } => WrongSecret,
            OpenError::HeaderTruncated { .. } = OpenError::HeaderTruncated { found: 3 }
                => Integrity,
            OpenError::HeaderDamaged(_) = OpenError::HeaderDamaged("checksum") => Integrity,
            OpenError::NewerFormat { .. } = OpenError::NewerFormat { found: 9, supported: 2 }
                => Unsupported,
            OpenError::OlderFormat { .. } = OpenError::OlderFormat { found: 1, supported: 2 }
                => Unsupported,
            OpenError::AlreadyOpen(_) = OpenError::AlreadyOpen(path()) => Unavailable,
            OpenError::NotFound(_) = OpenError::NotFound(path()) => NotFound,
            OpenError::AlreadyExists(_) = OpenError::AlreadyExists(path()) => AlreadyExists,
            OpenError::DataLoss(_) = OpenError::DataLoss("manifest".into()) => Integrity,
            OpenError::InvalidKdfParams(_) = OpenError::InvalidKdfParams("m".into())
                => InvalidInput,
            OpenError::IsBackup(_) = OpenError::IsBackup(path()) => InvalidInput,
            OpenError::BackupExpired = OpenError::BackupExpired => Gone,
            OpenError::RootRotated = OpenError::RootRotated => Stopped,
            OpenError::NotSupported(_) = OpenError::NotSupported("backup") => Unsupported,
            OpenError::EpochDestroyed(_) = OpenError::EpochDestroyed(epoch.to_string()) => Gone,
            OpenError::SourceKindMismatch { .. } = OpenError::SourceKindMismatch {
                expected: "pkcs11".into(),
                given: "slot".into(),
            } => InvalidInput,
        ));
        all.extend(samples!(StorageError:
            StorageError::Io(_) = StorageError::Io(io()) => Unavailable,
            StorageError::NoSpace(_) = StorageError::from(std::io::Error::from(
                std::io::ErrorKind::StorageFull,
            )) => StorageFull,
            StorageError::Engine { .. } = StorageError::engine("connection refused")
                => Unavailable,
            StorageError::Corrupted(_) = StorageError::Corrupted("page".into()) => Integrity,
            StorageError::Halted(_) = StorageError::Halted("disk".into()) => Stopped,
            StorageError::Closed = StorageError::Closed => Stopped,
            StorageError::Malformed(_) = StorageError::Malformed("record") => Integrity,
        ));
        all.extend(samples!(InputError:
            InputError::SubjectId(_) = InputError::SubjectId("empty") => InvalidInput,
            InputError::RecordId = InputError::RecordId => InvalidInput,
            InputError::HoldId = InputError::HoldId => InvalidInput,
            InputError::RequestId = InputError::RequestId => InvalidInput,
            InputError::Category(_) = InputError::Category("A".into()) => InvalidInput,
            InputError::UnknownCategory { .. } = InputError::UnknownCategory {
                name: "contcat".into(),
                suggestion: Some("contact".into()),
            } => InvalidInput,
            InputError::Purpose(_) = InputError::Purpose(String::new()) => InvalidInput,
            InputError::LegalBasis(_) = InputError::LegalBasis("whim".into()) => InvalidInput,
            InputError::NotCollected(_) = InputError::NotCollected("biometric".into())
                => InvalidInput,
            InputError::BasisNotAllowed { .. } = InputError::BasisNotAllowed {
                category: "health".into(),
                basis: crate::model::LegalBasis::Consent,
                allowed: "legal-obligation".into(),
            } => InvalidInput,
            InputError::PayloadTooLarge { .. } = InputError::PayloadTooLarge { len: 2, max: 1 }
                => InvalidInput,
            InputError::Field { .. } = InputError::Field { field: "source", why: "too long" }
                => InvalidInput,
            InputError::Encoding(_) = InputError::Encoding("json".into()) => InvalidInput,
            InputError::Time(_) = InputError::Time("yesterday".into()) => InvalidInput,
            InputError::CollectedInFuture { .. } = InputError::CollectedInFuture {
                collected_at: now(),
                now: now(),
            } => InvalidInput,
            InputError::SweepInPast { .. } = InputError::SweepInPast { at: now(), now: now() }
                => InvalidInput,
            InputError::PassphraseTooShort { .. } = InputError::PassphraseTooShort { min: 12 }
                => InvalidInput,
            InputError::CredentialWrite = InputError::CredentialWrite => InvalidInput,
            InputError::NotACredential(_) = InputError::NotACredential(record) => InvalidInput,
            InputError::Document(_) = InputError::Document("shape".into()) => InvalidInput,
            InputError::DocumentEntry { .. } = InputError::DocumentEntry {
                entry: "records[2]".into(),
                error: Box::new(InputError::RecordId),
            } => InvalidInput,
        ));
        all.extend(samples!(AccessError:
            AccessError::PurposeNotAllowed { .. } = AccessError::PurposeNotAllowed {
                purpose: "ads".into(),
                record,
            } => Refused,
            AccessError::NoConsent { .. } = AccessError::NoConsent { purpose: "ads".into(), record }
                => Refused,
            AccessError::Objected { .. } = AccessError::Objected { purpose: "ads".into(), record }
                => Refused,
            AccessError::NoGuardianConsent { .. } = AccessError::NoGuardianConsent {
                purpose: "ads".into(),
                record,
            } => Refused,
            AccessError::Restricted { .. } = AccessError::Restricted { record } => Refused,
            AccessError::NotGranted { .. } = AccessError::NotGranted {
                principal: "alice".into(),
                role: "support".into(),
                operation: crate::policy::roles::Operation::Erase,
                on: "on category contact".into(),
            } => Refused,
            AccessError::CredentialNotReadable { .. } =
                AccessError::CredentialNotReadable { record } => Refused,
            AccessError::UnknownRole(_) = AccessError::UnknownRole("root".into()) => Refused,
            AccessError::DisclosureRefused { .. } = AccessError::DisclosureRefused {
                recipient: "acme".into(),
                reason: DisclosureRefusal::UndeclaredRecipient,
            } => Refused,
        ));
        all.extend(samples!(ErasureError:
            ErasureError::Held { .. } = ErasureError::Held { holds: vec![HoldId::random()] }
                => Retained,
            ErasureError::Retained { .. } = ErasureError::Retained { until: now() } => Retained,
        ));
        all.extend(samples!(PolicyError:
            PolicyError::Parse(_) = PolicyError::Parse("toml".into()) => InvalidInput,
            PolicyError::Entry { .. } = PolicyError::Entry {
                entry: "contact".into(),
                why: "no retention".into(),
            } => InvalidInput,
        ));
        all.extend(samples!(LedgerError:
            LedgerError::Unauthenticated = LedgerError::Unauthenticated => InvalidInput,
            LedgerError::UnsupportedFormat { .. } = LedgerError::UnsupportedFormat {
                found: "pdvault-ledger/9".into(),
                supported: "pdvault-ledger/1",
            } => Unsupported,
            LedgerError::Truncated = LedgerError::Truncated => Integrity,
            LedgerError::CountMismatch { .. } = LedgerError::CountMismatch { stated: 2, found: 1 }
                => Integrity,
            LedgerError::Malformed(_) = LedgerError::Malformed("json".into()) => InvalidInput,
            LedgerError::OtherVault { .. } = LedgerError::OtherVault {
                expected: "aa".into(),
                found: "bb".into(),
            } => InvalidInput,
            LedgerError::MacMismatch = LedgerError::MacMismatch => Integrity,
            LedgerError::OlderThanBackup { .. } = LedgerError::OlderThanBackup {
                in_backup: 2,
                in_ledger: 1,
            } => InvalidInput,
            LedgerError::Diverges { .. } = LedgerError::Diverges { seq: 1 } => Conflict,
        ));
        all.extend(samples!(RequestError:
            RequestError::UnknownKind { .. } = RequestError::UnknownKind {
                name: "acess".into(),
                suggestion: Some("access".into()),
            } => InvalidInput,
            RequestError::IdentityNotVerified { .. } = RequestError::IdentityNotVerified {
                request,
                kind: crate::policy::RequestKind::Erasure,
            } => Refused,
            RequestError::AlreadyVerified(_) = RequestError::AlreadyVerified(request) => Conflict,
            RequestError::Closed(_) = RequestError::Closed(request) => Conflict,
        ));
        all.extend(samples!(KeySourceError:
            KeySourceError::Unreachable(_) = KeySourceError::Unreachable("token".into())
                => Unavailable,
            KeySourceError::Denied(_) = KeySourceError::Denied("PIN incorrect".into())
                => WrongSecret,
            KeySourceError::EpochNotFound(_) = KeySourceError::EpochNotFound(epoch) => Gone,
            KeySourceError::Damaged(_) = KeySourceError::Damaged(epoch) => Integrity,
            KeySourceError::Failed(_) = KeySourceError::Failed("slots full".into()) => Unavailable,
        ));

        for (error, kind) in &all {
            assert_eq!(error.kind(), *kind, "{error:?}");
            assert_eq!(
                error.is_retryable(),
                *kind == ErrorKind::Unavailable,
                "{error:?}"
            );
            assert!(!kind.to_string().is_empty());
        }
    }

    #[test]
    fn only_unavailable_is_retryable() {
        assert!(Error::from(io()).is_retryable());
        assert!(!Error::from(StorageError::Halted("disk".into())).is_retryable());
        assert!(!Error::from(ErasureError::Retained { until: now() }).is_retryable());
        assert_eq!(
            Error::from(std::io::Error::from(std::io::ErrorKind::QuotaExceeded)).kind(),
            ErrorKind::StorageFull
        );
    }
}
