//! Creating and opening a vault.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Vault;
use crate::audit::Trail;
use crate::clock::{Clock, SystemClock};
use crate::crypto::{self, KdfParams, RootSecret, SecretKey, derive_passphrase_key};
use crate::error::{OpenError, Result, StorageError};
use crate::keys::{EpochKeys, Job, Keys, Ring, RingHome, RootKeys};
use crate::keysource::{EpochId, KeySource, KeySourceError, SlotSource};
use crate::policy::Policy;
use crate::storage::engine::Engine;
use crate::storage::private_fs;
use crate::storage::sled_engine::SledEngine;
use crate::storage::vault_file::{self, KdfSpec};
use crate::storage::{Durability, Store, layout};

const LOCK_FILE: &str = "LOCK";
const STORE_DIR: &str = "store";

/// Options for creating or opening a vault, with documented defaults.
///
/// ```
/// # fn main() -> pdvault::Result<()> {
/// let dir = tempfile::tempdir()?;
/// let vault = pdvault::Vault::builder(dir.path())
///     .kdf(pdvault::KdfParams::insecure_for_tests()) // default: 19 MiB, 2 passes, 1 lane
///     .create(pdvault::RootSecret::passphrase("correct horse battery staple"))?;
/// # drop(vault);
/// # Ok(())
/// # }
/// ```
pub struct VaultBuilder {
    pub(super) dir: PathBuf,
    kdf: KdfParams,
    pub(super) durability: Durability,
    clock: Arc<dyn Clock>,
    policy: Option<Policy>,
    pub(super) cache_bytes: u64,
    min_passphrase_len: usize,
    pub(super) key_source: Option<SourceFactory>,
    reads: ReadAudit,
    /// The actor of the handles `create` and `open` return.
    actor: Option<String>,
    /// How long opening waits for a vault directory another handle or process holds.
    pub(super) lock_wait: std::time::Duration,
    /// A vault on PostgreSQL instead of the directory: the connection string and the schema.
    #[cfg(feature = "postgres")]
    pub(super) postgres: Option<(String, Option<String>)>,
}

/// How the audit entries of reads reach the disk ([`VaultBuilder::read_audit_window`],
/// [`VaultBuilder::durable_reads`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadAudit {
    pub(crate) window: std::time::Duration,
    pub(crate) durable: bool,
}

impl Default for ReadAudit {
    fn default() -> Self {
        ReadAudit {
            window: std::time::Duration::from_secs(1),
            durable: false,
        }
    }
}

/// Makes a vault's key source, given the name the vault's keys are filed under.
type SourceFactory =
    Box<dyn Fn([u8; 16]) -> std::result::Result<Arc<dyn KeySource>, KeySourceError>>;

impl VaultBuilder {
    pub(crate) fn new(dir: &Path) -> Self {
        VaultBuilder {
            dir: dir.to_path_buf(),
            kdf: KdfParams::default(),
            durability: Durability::Immediate,
            clock: Arc::new(SystemClock),
            policy: None,
            cache_bytes: crate::storage::DEFAULT_CACHE_BYTES,
            min_passphrase_len: crate::crypto::DEFAULT_MIN_PASSPHRASE_LEN,
            key_source: None,
            reads: ReadAudit::default(),
            actor: None,
            lock_wait: LOCK_PATIENCE,
            #[cfg(feature = "postgres")]
            postgres: None,
        }
    }

    /// A builder for the vault in the PostgreSQL database at `url` (a `postgres://` URL or a
    /// `key=value` connection string; feature `postgres`), which any number of processes on any
    /// hosts open at once. See [`Vault::builder_postgres`].
    #[cfg(feature = "postgres")]
    pub(crate) fn new_postgres(url: &str) -> Self {
        let mut b = VaultBuilder::new(Path::new(""));
        b.postgres = Some((url.to_owned(), None));
        b
    }

    /// Whether this builder names a PostgreSQL vault.
    pub(super) fn postgres_target(&self) -> Option<()> {
        #[cfg(feature = "postgres")]
        if self.postgres.is_some() {
            return Some(());
        }
        None
    }

    /// The PostgreSQL schema the vault's tables live in (created if absent; a plain lower-case
    /// identifier). Default: wherever the connection's `search_path` puts them. Several vaults
    /// can share a database, each in a schema of its own.
    #[cfg(feature = "postgres")]
    pub fn postgres_schema(mut self, schema: &str) -> Self {
        if let Some((_, s)) = &mut self.postgres {
            *s = Some(schema.to_owned());
        }
        self
    }

    /// Where the vault's epoch keys live (default: the built-in [`SlotSource`], a file in the
    /// vault directory overwritten in place, its keys sealed under the root key). `make` is
    /// given the name the vault's epoch keys are filed under (the vault's id when it is made, a
    /// new one for a restored copy; read from the vault file when opening), since a source that
    /// several vaults share must keep each one's keys apart. A vault created with a
    /// source is opened with a source of the same kind. The root secret is needed as well: it
    /// checks the caller and keeps the rest of the vault's keys.
    ///
    /// ```no_run
    /// # #[cfg(feature = "pkcs11")]
    /// # fn main() -> pdvault::Result<()> {
    /// use pdvault::keysource::{Pin, Pkcs11Source};
    /// let vault = pdvault::Vault::builder("/var/lib/app/vault")
    ///     .key_source(|vault_id| {
    ///         let pin = Pin::from_env("APP_HSM_PIN")?;
    ///         Ok(std::sync::Arc::new(Pkcs11Source::open(
    ///             "/usr/lib/softhsm/libsofthsm2.so".as_ref(),
    ///             "app-token",
    ///             pin,
    ///             vault_id,
    ///         )?))
    ///     })
    ///     .open(pdvault::RootSecret::passphrase("correct horse battery staple"))?;
    /// # drop(vault);
    /// # Ok(())
    /// # }
    /// # #[cfg(not(feature = "pkcs11"))]
    /// # fn main() {}
    /// ```
    ///
    /// [`SlotSource`]: crate::SlotSource
    pub fn key_source(
        mut self,
        make: impl Fn([u8; 16]) -> std::result::Result<Arc<dyn KeySource>, KeySourceError> + 'static,
    ) -> Self {
        self.key_source = Some(Box::new(make));
        self
    }

    /// The most memory the store may use to cache its pages (default:
    /// [`DEFAULT_CACHE_BYTES`](crate::DEFAULT_CACHE_BYTES), 64 MiB). Reads beyond it go to the
    /// files; a larger cache speeds up repeated reads of a large working set.
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Argon2id costs for a new passphrase vault (default: [`KdfParams::default`]). Opening reads
    /// the costs from the vault header.
    pub fn kdf(mut self, params: KdfParams) -> Self {
        self.kdf = params;
        self
    }

    /// When writes are durable (default: [`Durability::Immediate`]).
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// A retention policy for a new vault (default: none: nothing kept by obligation, nothing
    /// deleted by schedule).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The fewest characters a passphrase given to [`create`](Self::create) may have (default:
    /// [`DEFAULT_MIN_PASSPHRASE_LEN`](crate::DEFAULT_MIN_PASSPHRASE_LEN), 8). Opening an
    /// existing vault is not subject to it; a raw key always is 32 bytes.
    pub fn min_passphrase_len(mut self, chars: usize) -> Self {
        self.min_passphrase_len = chars;
        self
    }

    /// How long the audit entries of reads may wait in memory before they are made durable
    /// (default 1 second): a background thread writes them at least this often, so that a crash
    /// or a kill loses at most this window of read entries. Writes are unaffected: their entries
    /// are in the same atomic batch as the write.
    pub fn read_audit_window(mut self, window: std::time::Duration) -> Self {
        self.reads.window = window.max(std::time::Duration::from_millis(10));
        self
    }

    /// Makes every read return only once its audit entry is durable (a commit and a sync per
    /// read): nothing read is ever missing from the trail, at the cost of a durable write per
    /// read.
    pub fn durable_reads(mut self, on: bool) -> Self {
        self.reads.durable = on;
        self
    }

    /// Creates a new vault; refuses to overwrite an existing one. The vault directory is made
    /// `0700` and every file in it `0600` (on Unix). A passphrase shorter than
    /// [`min_passphrase_len`](Self::min_passphrase_len) is refused before anything is created;
    /// if creating fails later, what it created is removed (a directory that existed before
    /// stays, with what it held).
    pub fn create(self, secret: RootSecret) -> Result<Vault> {
        let (reads, actor) = (self.reads, self.actor.clone());
        let v = self.create_vault(secret)?;
        v.start_read_audit(reads);
        with_actor(v, actor)
    }

    /// The actor the returned handle's operations are attributed to in the audit trail (default
    /// `pdvault`; [`Vault::as_actor`] gives handles for others).
    pub fn actor(mut self, actor: &str) -> Self {
        self.actor = Some(actor.to_owned());
        self
    }

    /// How long opening or creating waits for a vault directory that another handle or process
    /// holds before it reports [`OpenError::AlreadyOpen`] (default 250 ms): a rolling deploy
    /// starts the new process while the old one is still closing.
    pub fn lock_wait(mut self, wait: std::time::Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// Opens the vault if it exists, creates it otherwise. On PostgreSQL, where several
    /// replicas may start at once, one that loses the race to create gets
    /// [`OpenError::AlreadyExists`] and opens it on its next attempt.
    pub fn open_or_create(self, secret: RootSecret) -> Result<Vault> {
        if self.exists()? {
            self.open(secret)
        } else {
            self.create(secret)
        }
    }

    /// Whether the vault this builder names exists.
    fn exists(&self) -> Result<bool> {
        #[cfg(feature = "postgres")]
        if self.postgres.is_some() {
            return shared::exists(self);
        }
        Ok(self.dir.join(vault_file::FILE_NAME).exists())
    }

    fn create_vault(self, secret: RootSecret) -> Result<Vault> {
        secret.check_len(self.min_passphrase_len)?;
        #[cfg(feature = "postgres")]
        if self.postgres.is_some() {
            return shared::create(self, secret);
        }
        let dir = self.dir.clone();
        if dir.join(vault_file::FILE_NAME).exists() {
            return Err(OpenError::AlreadyExists(dir).into());
        }
        let store_dir = dir.join(STORE_DIR);
        if store_dir.exists() && fs::read_dir(&store_dir)?.next().is_some() {
            return Err(OpenError::AlreadyExists(dir).into());
        }
        let before = Existing::note(&dir)?;
        let created = self.create_inner(secret);
        if created.is_err() {
            before.remove_the_rest();
        }
        created
    }

    fn create_inner(self, secret: RootSecret) -> Result<Vault> {
        let dir = self.dir.clone();
        private_fs::create_dir_all(&dir)?;
        let store_dir = dir.join(STORE_DIR);
        let lock = take_lock(&dir, self.lock_wait)?;
        let vault_id: [u8; 16] = crypto::random_array();
        let (root, kdf) = new_root(&secret, self.kdf)?;
        let root_keys = RootKeys::derive(&root, &vault_id);
        let epochs = match self.key_source {
            Some(make) => EpochKeys::Host(make(vault_id)?),
            None => EpochKeys::Slot(Arc::new(SlotSource::create(
                &dir,
                vault_id,
                &root_keys.slot_key,
            )?)),
        };
        let mut ring = Ring::create(root_keys, vault_id, kdf, epochs);
        let engine = SledEngine::open(&store_dir, flush_period(self.durability), self.cache_bytes)?;
        let store = Store::new(
            Box::new(engine),
            ring.subkey(Job::Manifest),
            self.durability,
        )?;
        let trail = Trail::load(&store, ring.subkey(Job::Audit))?;
        if let Some(p) = &self.policy {
            let mut txn = crate::storage::Txn::new();
            txn.put(layout::meta(layout::POLICY), p.source());
            store.commit(txn)?;
        }
        let durable = store.sync_all()?;
        // The vault file is written last: a crash before it leaves no vault.
        ring.write_file(&dir, durable)?;
        let keys = Keys::new(RingHome::Dir(dir.clone()), ring, 0);
        Ok(Vault::new_inner(
            dir,
            Some(lock),
            store,
            keys,
            trail,
            self.clock,
            self.policy,
        ))
    }

    /// Restores a backup into this builder's directory (a new or empty one), as
    /// [`Vault::restore`] does, through this builder's key source: for a backup of a vault whose
    /// epoch keys are in a host's source. The restored copy files its epoch keys in the source
    /// under a name of its own, so that it and the vault it came from never destroy each other's
    /// keys. An expired backup ([`Vault::backup_expiring`]) is [`OpenError::BackupExpired`].
    /// Without a key source, this is [`Vault::restore`].
    pub fn restore(
        mut self,
        from: &Path,
        secret: RootSecret,
        ledger: crate::LedgerChoice<'_>,
    ) -> Result<Vault> {
        #[cfg(feature = "postgres")]
        if self.postgres.is_some() {
            return Err(OpenError::NotSupported(
                "restoring a backup into PostgreSQL (restore it into a directory, then `pdvault migrate` it)",
            )
            .into());
        }
        let Some(make) = self.key_source.take() else {
            return Vault::restore(from, &self.dir, secret, ledger);
        };
        let to = self.dir.clone();
        let make: std::rc::Rc<SourceFactory> = std::rc::Rc::new(make);
        let again = make.clone();
        super::backup::restore_through_source(
            from,
            &to,
            secret,
            ledger,
            &|ns| (*make)(ns),
            move |secret| {
                self.key_source = Some(Box::new(move |ns| (*again)(ns)));
                self.open(secret)
            },
        )
    }

    /// Opens an existing vault.
    pub fn open(self, secret: RootSecret) -> Result<Vault> {
        let (reads, actor) = (self.reads, self.actor.clone());
        let v = self.open_vault(secret)?;
        v.start_read_audit(reads);
        with_actor(v, actor)
    }

    fn open_vault(self, secret: RootSecret) -> Result<Vault> {
        #[cfg(feature = "postgres")]
        if self.postgres.is_some() {
            return shared::open(self, secret);
        }
        let dir = self.dir.clone();
        if !dir.join(vault_file::FILE_NAME).exists() {
            return Err(OpenError::NotFound(dir).into());
        }
        let lock = take_lock(&dir, self.lock_wait)?;
        // Vaults made before their directories were private become private at open.
        private_fs::restrict_dir(&dir)?;
        let vault_file::FileRead {
            body: header,
            damaged_copy,
        } = vault_file::read_file(&dir)?;
        let root = root_key(&header.kdf, &secret)?;
        let root_keys = RootKeys::derive(&root, &header.vault_id);
        if !constant_time_eq(&root_keys.key_check, &header.key_check) {
            return Err(OpenError::WrongKey.into());
        }
        let host = self
            .key_source
            .as_ref()
            .map(|make| make(header.key_namespace))
            .transpose()?;
        let epochs = epoch_keys(&dir, &header, &root_keys, host)?;
        // A backup's copy shares its vault's epochs in a host's source: opened as a vault it
        // would destroy them. It is restored instead (`VaultBuilder::restore`).
        if matches!(epochs, EpochKeys::Host(_))
            && EpochId::from_bytes(header.epoch).seq & crate::keys::BACKUP_EPOCH != 0
        {
            return Err(OpenError::IsBackup(dir).into());
        }
        // The current copy unreadable, the one before it sealed under an epoch key destroyed
        // since: what is wrong with the current copy is the answer (a crash in a write leaves
        // the copy before with its epoch key).
        let ring =
            Ring::unseal(root_keys, header, epochs, None).map_err(|e| match (e, damaged_copy) {
                (crate::Error::Open(OpenError::EpochDestroyed(_)), Some(copy)) => copy.into(),
                (e, _) => e,
            })?;
        let engine = SledEngine::open(
            &dir.join(STORE_DIR),
            flush_period(self.durability),
            self.cache_bytes,
        )?;
        open_with_engine(
            dir,
            lock,
            ring,
            Box::new(engine),
            self.durability,
            self.clock,
        )
    }
}

/// A new root key and how to derive it again.
fn new_root(secret: &RootSecret, kdf: KdfParams) -> Result<(SecretKey, KdfSpec)> {
    Ok(match secret {
        RootSecret::Passphrase(p) => {
            let salt: [u8; 16] = crypto::random_array();
            (
                derive_passphrase_key(p, &salt, &kdf)?,
                KdfSpec::Passphrase { salt, params: kdf },
            )
        }
        RootSecret::RawKey(k) => (SecretKey::from_bytes(**k), KdfSpec::RawKey),
    })
}

/// The policy a store holds.
pub(crate) fn stored_policy(store: &Store) -> Result<Option<Policy>> {
    match store.get::<String>(&layout::meta(layout::POLICY), "policy")? {
        Some(text) => Ok(Some(
            Policy::from_toml(&text).map_err(|_| StorageError::Malformed("stored policy"))?,
        )),
        None => Ok(None),
    }
}

/// Vaults on PostgreSQL: the vault file's contents in a row, the epoch keys in the host's source
/// or in rows of their own, and no file lock (every process opens the vault).
#[cfg(feature = "postgres")]
pub(super) mod shared {
    use super::*;
    use crate::keysource::table::TableSource;
    use crate::storage::engine::{Coordination, LockMode, SharedLock};
    use crate::storage::postgres_engine::PostgresEngine;

    pub(in crate::vault) fn connect(b: &VaultBuilder) -> Result<PostgresEngine> {
        let (url, schema) = b
            .postgres
            .as_ref()
            .ok_or(OpenError::NotSupported("no store"))?;
        Ok(PostgresEngine::connect(url, schema.as_deref())?)
    }

    /// How errors name the vault: the schema, never the connection string (it may hold a
    /// password).
    pub(in crate::vault) fn name(b: &VaultBuilder) -> PathBuf {
        let schema = b.postgres.as_ref().and_then(|(_, s)| s.clone());
        PathBuf::from(format!(
            "postgresql:{}",
            schema.as_deref().unwrap_or("(search_path)")
        ))
    }

    pub(in crate::vault) fn epoch_keys(
        b: &VaultBuilder,
        engine: &PostgresEngine,
        namespace: [u8; 16],
        vault_id: [u8; 16],
        root_keys: &RootKeys,
    ) -> Result<EpochKeys> {
        Ok(match &b.key_source {
            Some(make) => EpochKeys::Host(make(namespace)?),
            None => EpochKeys::Table(Arc::new(TableSource::new(
                Arc::new(engine.clone()),
                vault_id,
                &root_keys.slot_key,
            ))),
        })
    }

    pub(super) fn create(b: VaultBuilder, secret: RootSecret) -> Result<Vault> {
        let engine = connect(&b)?;
        // Alone among every process until the vault exists.
        let _alone = engine.lock(SharedLock::Destruction, LockMode::Exclusive)?;
        if engine.get(&layout::meta(layout::VAULT_FILE))?.is_some() {
            return Err(OpenError::AlreadyExists(name(&b)).into());
        }
        let vault_id: [u8; 16] = crypto::random_array();
        let (root, kdf) = new_root(&secret, b.kdf)?;
        let root_keys = RootKeys::derive(&root, &vault_id);
        let epochs = epoch_keys(&b, &engine, vault_id, vault_id, &root_keys)?;
        let ring = Ring::create(root_keys, vault_id, kdf, epochs);
        let store = Store::new(Box::new(engine), ring.subkey(Job::Manifest), b.durability)?;
        let trail = Trail::load(&store, ring.subkey(Job::Audit))?;
        if let Some(p) = &b.policy {
            let mut txn = crate::storage::Txn::new();
            txn.put(layout::meta(layout::POLICY), p.source());
            store.commit(txn)?;
        }
        let keys = Keys::new(RingHome::Store, ring, 0);
        // Written last: until then there is no vault (a failed create leaves rows that a new
        // create overwrites).
        keys.write_ring_to_store(&store)?;
        Ok(Vault::new_inner(
            PathBuf::new(),
            None,
            store,
            keys,
            trail,
            b.clock,
            b.policy,
        ))
    }

    /// Whether the database holds the vault.
    pub(super) fn exists(b: &VaultBuilder) -> Result<bool> {
        let engine = connect(b)?;
        Ok(engine.get(&layout::meta(layout::VAULT_FILE))?.is_some())
    }

    pub(super) fn open(b: VaultBuilder, secret: RootSecret) -> Result<Vault> {
        let engine = connect(&b)?;
        // Alone while it destroys the epochs a crash left behind (no ratchet is half way).
        let _alone = engine.lock(SharedLock::Destruction, LockMode::Exclusive)?;
        let Some((header, chunks)) =
            crate::keys::read_stored_ring(engine.scan_prefix(&layout::meta(layout::VAULT_FILE)))?
        else {
            return Err(OpenError::NotFound(name(&b)).into());
        };
        let root = root_key(&header.kdf, &secret)?;
        let root_keys = RootKeys::derive(&root, &header.vault_id);
        if !constant_time_eq(&root_keys.key_check, &header.key_check) {
            return Err(OpenError::WrongKey.into());
        }
        let epochs = epoch_keys(
            &b,
            &engine,
            header.key_namespace,
            header.vault_id,
            &root_keys,
        )?;
        let given = epochs.source().info().kind;
        if given != header.source_kind {
            return Err(OpenError::SourceKindMismatch {
                expected: header.source_kind.clone(),
                given,
            }
            .into());
        }
        let ring = Ring::unseal(root_keys, header, epochs, Some(&chunks))?;
        let store = Store::new(Box::new(engine), ring.subkey(Job::Manifest), b.durability)?;
        let generation = crate::keys::stored_generation(&store)?;
        let trail = Trail::load(&store, ring.subkey(Job::Audit))?;
        let keys = Keys::new(RingHome::Store, ring, generation);
        keys.ring().retire_old_epochs()?;
        let policy = stored_policy(&store)?;
        Ok(Vault::new_inner(
            PathBuf::new(),
            None,
            store,
            keys,
            trail,
            b.clock,
            policy,
        ))
    }
}

/// The epoch keys of an existing vault: its slot file, or the host's source, which must be of the
/// kind the vault file names.
pub(crate) fn epoch_keys(
    dir: &Path,
    header: &vault_file::VaultFileBody,
    root_keys: &RootKeys,
    host: Option<Arc<dyn KeySource>>,
) -> Result<EpochKeys> {
    let given = host
        .as_ref()
        .map_or_else(|| "slot".to_owned(), |h| h.info().kind);
    if given != header.source_kind {
        return Err(OpenError::SourceKindMismatch {
            expected: header.source_kind.clone(),
            given,
        }
        .into());
    }
    Ok(match host {
        Some(h) => EpochKeys::Host(h),
        None => EpochKeys::Slot(Arc::new(SlotSource::open(
            dir,
            header.vault_id,
            &root_keys.slot_key,
        )?)),
    })
}

pub(crate) fn open_with_engine(
    dir: PathBuf,
    lock: File,
    ring: Ring,
    engine: Box<dyn Engine>,
    durability: Durability,
    clock: Arc<dyn Clock>,
) -> Result<Vault> {
    let checkpoint = ring.checkpoint();
    let store = Store::new(engine, ring.subkey(Job::Manifest), durability)?;
    check_against_checkpoint(&store, &checkpoint)?;
    let trail = Trail::load(&store, ring.subkey(Job::Audit))?;
    let keys = Keys::new(RingHome::Dir(dir.clone()), ring, 0);
    keys.recover(&store)?;
    // Epochs a crash left behind (made, or superseded, but not destroyed) are destroyed now.
    keys.ring().retire_old_epochs()?;
    let policy = stored_policy(&store)?;
    Ok(Vault::new_inner(
        dir,
        Some(lock),
        store,
        keys,
        trail,
        clock,
        policy,
    ))
}

/// The cheap check at open: the store must hold at least what the vault file's checkpoint says
/// was durable.
fn check_against_checkpoint(
    store: &Store,
    checkpoint: &crate::storage::entries::Manifest,
) -> Result<()> {
    let m = store.manifest();
    if m.seq < checkpoint.seq {
        return Err(OpenError::DataLoss(format!(
            "the store is at commit {} but was durable at commit {}: its newest writes are gone",
            m.seq, checkpoint.seq
        ))
        .into());
    }
    if m.seq == checkpoint.seq && (m.entries != checkpoint.entries || m.acc != checkpoint.acc) {
        return Err(OpenError::DataLoss(
            "the store's manifest does not match the vault's checkpoint".into(),
        )
        .into());
    }
    Ok(())
}

pub(super) fn flush_period(d: Durability) -> Option<u64> {
    match d {
        Durability::Immediate => None,
        Durability::Deferred { flush_every_ms } => Some(flush_every_ms.max(1)),
    }
}

pub(crate) fn root_key(kdf: &KdfSpec, secret: &RootSecret) -> Result<SecretKey> {
    match (kdf, secret) {
        (KdfSpec::Passphrase { salt, params }, RootSecret::Passphrase(p)) => {
            Ok(derive_passphrase_key(p, salt, params)?)
        }
        (KdfSpec::RawKey, RootSecret::RawKey(k)) => Ok(SecretKey::from_bytes(**k)),
        (KdfSpec::Passphrase { .. }, s) => Err(OpenError::SecretKindMismatch {
            expected: "passphrase",
            given: s.kind(),
        }
        .into()),
        (KdfSpec::RawKey, s) => Err(OpenError::SecretKindMismatch {
            expected: "raw key",
            given: s.kind(),
        }
        .into()),
    }
}

pub(crate) fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    blake3::Hash::from_bytes(*a) == blake3::Hash::from_bytes(*b)
}

/// How long [`take_lock`] keeps trying before it reports the vault as open elsewhere.
///
/// A process that spawns a child shares its open files with the child from fork until exec, so
/// a lock this process has just released (a handle closed, a failed open) can look held for that
/// moment. A short retry tells that apart from a real second opener.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(250);

/// A handle for `actor`, if one was chosen.
fn with_actor(v: Vault, actor: Option<String>) -> Result<Vault> {
    match actor {
        Some(a) => v.as_actor(&a),
        None => Ok(v),
    }
}

pub(super) fn take_lock(dir: &Path, patience: std::time::Duration) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let f = private_fs::open_file(
        &path,
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
    )?;
    let deadline = std::time::Instant::now() + patience;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(50));
            }
            Err(TryLockError::WouldBlock) => return Err(OpenError::AlreadyOpen(path).into()),
            Err(TryLockError::Error(e)) => return Err(StorageError::Io(e).into()),
        }
    }
}

/// The store directory of a vault directory.
pub(crate) fn store_dir(dir: &Path) -> PathBuf {
    dir.join(STORE_DIR)
}

/// What a vault directory held before [`VaultBuilder::create`] began, so that a failed create
/// removes only what it made.
pub(super) struct Existing {
    dir: PathBuf,
    /// The topmost directory that did not exist (the vault directory or a missing parent): a
    /// failed create removes it whole.
    created_root: Option<PathBuf>,
    /// Otherwise: the names the vault directory held, and whether it held an (empty) store
    /// directory.
    names: std::collections::HashSet<std::ffi::OsString>,
    had_store: bool,
}

impl Existing {
    pub(super) fn note(dir: &Path) -> Result<Self> {
        let created_root = private_fs::topmost_missing(dir);
        let mut names = std::collections::HashSet::new();
        if created_root.is_none() {
            for entry in fs::read_dir(dir)? {
                names.insert(entry?.file_name());
            }
        }
        Ok(Existing {
            dir: dir.to_path_buf(),
            created_root,
            had_store: store_dir(dir).is_dir(),
            names,
        })
    }

    /// Removes what was not there before. Best effort: the create's own error is what the
    /// caller hears about.
    pub(super) fn remove_the_rest(self) {
        if let Some(root) = self.created_root {
            let _ = fs::remove_dir_all(root);
            return;
        }
        let mut keep = self.names;
        if self.had_store {
            // It was empty (`create` refuses a store directory with anything in it).
            remove_entries_but(&store_dir(&self.dir), &Default::default());
            keep.insert(STORE_DIR.into());
        }
        remove_entries_but(&self.dir, &keep);
    }
}

/// Removes every entry of `dir` not named in `keep`, ignoring failures.
fn remove_entries_but(dir: &Path, keep: &std::collections::HashSet<std::ffi::OsString>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if keep.contains(&entry.file_name()) {
            continue;
        }
        let path = entry.path();
        let _ = match entry.file_type() {
            Ok(t) if t.is_dir() => fs::remove_dir_all(&path),
            _ => fs::remove_file(&path),
        };
    }
}
