//! The PKCS#11 key source: epoch keys generated, used and destroyed inside a hardware token.
//!
//! Each epoch key is an AES-256 secret key made by the token (`CKM_AES_KEY_GEN`) as a token
//! object that is sensitive, never extractable, not copyable and not modifiable, usable only to
//! encrypt and decrypt. It never leaves the token: sealing and unsealing run inside it, with
//! `CKM_AES_GCM` (a fresh random 96-bit IV, the associated data as GCM's AAD, a 128-bit tag); the
//! sealed form is `IV (12) ‖ ciphertext ‖ tag (16)`. Destroying an epoch is `C_DestroyObject`.
//!
//! Objects are named so that several vaults can share a token:
//! `CKA_LABEL = "pdvault:<vault id, hex>"` (the same for every epoch of a vault, so that one
//! search finds exactly this vault's keys) and `CKA_ID = vault id (16) ‖ epoch id (16)`
//! ([`EpochId::to_bytes`]). An object with this vault's label but another id is not an epoch.
//!
//! The source keeps one logged-in read/write session, behind a mutex (every call is one or a few
//! round trips to the token, blocking). A session the token dropped (closed, logged out, device
//! reset) is opened again, once, with the PIN the source keeps in a zeroizing buffer; a token
//! that is gone is [`KeySourceError::Unreachable`]. A session that is no longer logged in (a
//! logout anywhere in the process logs out every session on the token) sees no private object:
//! its empty answer is never read as "destroyed", the source logs in again and asks once more.
//! A module is loaded and initialised once per
//! process and stays loaded; PKCS#11 shares a token's login between every session of a process,
//! so a second source on a token this process has already logged in to is checked against the
//! PIN that logged in, not sent to the token again.
//!
//! Errors: a module that does not load, a token label no slot holds, a session that cannot be
//! opened are `Unreachable`; a wrong, locked or expired PIN is `Denied`; no object for an epoch
//! is `EpochNotFound`; a sealed value whose tag fails is `Damaged`; anything else is `Failed`.
//! Some tokens (SoftHSM2 among them) report a failed GCM tag as `CKR_GENERAL_ERROR`, as they
//! would a fault: the source then seals and opens a probe under the same key, and only if that
//! works is the value `Damaged` (otherwise the token's error is `Failed`).
//!
//! **SoftHSM2 is a test token, not a guarantee.** The tests run against SoftHSM2, which keeps its
//! objects in files under its token directory (encrypted under a key derived from the PIN):
//! destroying an object there deletes a file, with the same limits as any file deletion. The
//! [`ErasureGuarantee::DestroyedInHardware`] this source states holds only for a real token or
//! HSM, which keeps its objects in its own protected storage.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use super::{EpochId, ErasureGuarantee, KeySource, KeySourceError, SourceInfo};

/// The GCM IV length in bytes.
const IV_LEN: usize = 12;
/// The GCM tag length in bytes.
const TAG_LEN: usize = 16;

/// A token's user PIN, held in a zeroizing buffer. It has no `Display`, its `Debug` shows
/// nothing of it, and it cannot be cloned. Take it from a file or the environment, never from the
/// command line (other users of the machine can read a process's arguments).
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// A PIN from a string the host already holds (it moves in; no copy is left behind here).
    pub fn new(pin: String) -> Self {
        Pin(Zeroizing::new(pin))
    }

    /// Reads a PIN from a file: its whole contents, less one trailing newline (`\n` or `\r\n`).
    /// An unreadable file, a file that is not UTF-8 and an empty PIN are
    /// [`KeySourceError::Failed`]; the error never holds the file's contents.
    pub fn from_file(path: &Path) -> Result<Self, KeySourceError> {
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
            KeySourceError::Failed(format!("the PIN file {}: {e}", path.display()))
        })?);
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            KeySourceError::Failed(format!("the PIN file {} is not UTF-8", path.display()))
        })?;
        let text = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(text);
        Self::non_empty(Zeroizing::new(text.to_owned()), || {
            format!("the PIN file {} is empty", path.display())
        })
    }

    /// Reads a PIN from an environment variable. An unset or non-UTF-8 variable and an empty PIN
    /// are [`KeySourceError::Failed`]. The variable stays set: the host should clear it (or run
    /// pdvault in a process of its own) if nothing else may read it.
    pub fn from_env(var: &str) -> Result<Self, KeySourceError> {
        let value = Zeroizing::new(
            std::env::var(var)
                .map_err(|e| KeySourceError::Failed(format!("the PIN variable {var}: {e}")))?,
        );
        Self::non_empty(value, || format!("the PIN variable {var} is empty"))
    }

    fn non_empty(
        pin: Zeroizing<String>,
        what: impl FnOnce() -> String,
    ) -> Result<Self, KeySourceError> {
        if pin.is_empty() {
            return Err(KeySourceError::Failed(what()));
        }
        Ok(Pin(pin))
    }

    /// The PIN in cryptoki's own secret type (zeroized on drop).
    fn auth(&self) -> AuthPin {
        AuthPin::from(self.0.as_str())
    }

    /// A digest of the PIN under a key random to this process, to compare two PINs without
    /// keeping a second copy of either.
    fn digest(&self) -> [u8; 32] {
        static KEY: OnceLock<[u8; 32]> = OnceLock::new();
        let key = KEY.get_or_init(crate::crypto::random_array);
        *blake3::keyed_hash(key, self.0.as_bytes()).as_bytes()
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// A loaded, initialised PKCS#11 module, and the PIN digest of each slot this process logged in
/// to through a source.
struct Module {
    ctx: Pkcs11,
    logins: HashMap<u64, [u8; 32]>,
}

/// Modules by path. A module is initialised once per process and never finalised: `C_Finalize`
/// would end every session of every other source (and of the host) that uses it.
fn modules() -> MutexGuard<'static, HashMap<PathBuf, Module>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Module>>> = OnceLock::new();
    MODULES
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

fn load(module: &Path) -> Result<Pkcs11, KeySourceError> {
    let mut modules = modules();
    if let Some(m) = modules.get(module) {
        return Ok(m.ctx.clone());
    }
    let unreachable = |e: CkError| {
        KeySourceError::Unreachable(format!(
            "the PKCS#11 module {} cannot be loaded: {}",
            module.display(),
            describe(&e)
        ))
    };
    let ctx = Pkcs11::new(module).map_err(unreachable)?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // Already initialised by the host, through another handle on the same library.
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(unreachable(e)),
    }
    modules.insert(
        module.to_path_buf(),
        Module {
            ctx: ctx.clone(),
            logins: HashMap::new(),
        },
    );
    Ok(ctx)
}

/// A cryptoki error, for a message (never holds a PIN: cryptoki's errors carry none).
fn describe(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, function) => format!("{function:?}: {rv:?}"),
        other => other.to_string(),
    }
}

/// The error a cryptoki failure is, when nothing more specific applies.
fn map(e: CkError) -> KeySourceError {
    let what = describe(&e);
    match e {
        CkError::LibraryLoading(_) | CkError::MissingSymbol(_) | CkError::NullFunctionPointer => {
            KeySourceError::Unreachable(what)
        }
        CkError::Pkcs11(rv, function) => match rv {
            RvError::PinIncorrect
            | RvError::PinLocked
            | RvError::PinExpired
            | RvError::PinInvalid
            | RvError::PinLenRange
            | RvError::UserPinNotInitialized
            | RvError::UserNotLoggedIn
            | RvError::UserAnotherAlreadyLoggedIn => KeySourceError::Denied(what),
            RvError::TokenNotPresent
            | RvError::TokenNotRecognized
            | RvError::DeviceRemoved
            | RvError::DeviceError
            | RvError::SlotIdInvalid
            | RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::SessionCount
            | RvError::CryptokiNotInitialized => KeySourceError::Unreachable(what),
            _ if matches!(function, Function::Login) => KeySourceError::Denied(what),
            _ => KeySourceError::Failed(what),
        },
        _ => KeySourceError::Failed(what),
    }
}

/// Whether a failure means the session is gone (worth opening a new one once).
fn session_lost(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::UserNotLoggedIn
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::CryptokiNotInitialized,
            _
        )
    )
}

/// How an operation on the session failed: in the token (mapped by [`map`], and perhaps a lost
/// session), or with an answer of the source's own.
enum Fail {
    Token(CkError),
    Source(KeySourceError),
}

impl From<CkError> for Fail {
    fn from(e: CkError) -> Self {
        Fail::Token(e)
    }
}

/// The session and what it takes to open it again.
struct Conn {
    session: Option<Session>,
    pin: Pin,
}

/// Epoch keys in a PKCS#11 token, for one vault. Every method blocks for one or a few round trips
/// to the token (a local token: well under a millisecond for SoftHSM2, a few milliseconds for a
/// USB token; a network HSM: its network latency); call it from a blocking context.
pub struct Pkcs11Source {
    module: PathBuf,
    token_label: String,
    vault_id: [u8; 16],
    ctx: Pkcs11,
    conn: Mutex<Conn>,
}

impl fmt::Debug for Pkcs11Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Source")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("vault_id", &hex(&self.vault_id))
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Pkcs11Source {
    /// Loads the PKCS#11 `module` (a shared library: `/usr/lib/softhsm/libsofthsm2.so`, a
    /// vendor's), finds the token labelled `token_label`, opens a read/write session and logs in
    /// as the user with `pin`. The source serves the vault `vault_id`.
    ///
    /// A module that does not load, no token with that label and a session that cannot be opened
    /// are [`KeySourceError::Unreachable`]; a wrong, locked or expired PIN is
    /// [`KeySourceError::Denied`]. Two tokens with the same label are refused
    /// ([`KeySourceError::Failed`]): which one holds the keys would be left to chance.
    ///
    /// Loading a module runs its code in this process: the path must come from the host's
    /// configuration, never from untrusted input.
    pub fn open(
        module: &Path,
        token_label: &str,
        pin: Pin,
        vault_id: [u8; 16],
    ) -> Result<Self, KeySourceError> {
        // One entry per library, however it is named (a symbolic link, a relative path).
        let module = std::fs::canonicalize(module).unwrap_or_else(|_| module.to_path_buf());
        let ctx = load(&module)?;
        let source = Pkcs11Source {
            module,
            token_label: token_label.to_owned(),
            vault_id,
            ctx,
            conn: Mutex::new(Conn { session: None, pin }),
        };
        {
            let mut conn = source.lock();
            let session = source.connect(&conn.pin)?;
            conn.session = Some(session);
        }
        Ok(source)
    }

    fn lock(&self) -> MutexGuard<'_, Conn> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The slot holding the token labelled `token_label`.
    fn slot(&self) -> Result<Slot, KeySourceError> {
        let mut found = Vec::new();
        for slot in self.ctx.get_slots_with_token().map_err(|e| {
            KeySourceError::Unreachable(format!("listing the token slots: {}", describe(&e)))
        })? {
            let info = self.ctx.get_token_info(slot).map_err(|e| {
                KeySourceError::Unreachable(format!("reading a token's label: {}", describe(&e)))
            })?;
            if info.label().trim_end() == self.token_label {
                found.push(slot);
            }
        }
        match found.as_slice() {
            [slot] => Ok(*slot),
            [] => Err(KeySourceError::Unreachable(format!(
                "no token labelled {:?} in {}",
                self.token_label,
                self.module.display()
            ))),
            _ => Err(KeySourceError::Failed(format!(
                "{} tokens are labelled {:?}",
                found.len(),
                self.token_label
            ))),
        }
    }

    /// Opens a read/write session on the token and logs in.
    fn connect(&self, pin: &Pin) -> Result<Session, KeySourceError> {
        let slot = self.slot()?;
        let session = self.ctx.open_rw_session(slot).map_err(|e| {
            KeySourceError::Unreachable(format!(
                "opening a session on the token {:?}: {}",
                self.token_label,
                describe(&e)
            ))
        })?;
        let digest = pin.digest();
        match session.login(UserType::User, Some(&pin.auth())) {
            Ok(()) => {}
            // The token's login is shared by every session of the process: this PIN was not
            // checked by the token, so check it against the one that logged in, if it was ours.
            Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
                let known = modules()
                    .get(&self.module)
                    .and_then(|m| m.logins.get(&slot.id()).copied());
                if known.is_some_and(|d| d != digest) {
                    return Err(KeySourceError::Denied(format!(
                        "the PIN differs from the one this process logged in to the token {:?} with",
                        self.token_label
                    )));
                }
            }
            Err(e) => {
                return Err(match map(e) {
                    KeySourceError::Denied(m) => KeySourceError::Denied(format!(
                        "logging in to the token {:?}: {m}",
                        self.token_label
                    )),
                    other => other,
                });
            }
        }
        if let Some(m) = modules().get_mut(&self.module) {
            m.logins.insert(slot.id(), digest);
        }
        Ok(session)
    }

    /// Runs `op` on the logged-in session, opening a new session once if the token dropped it.
    fn with_session<T>(
        &self,
        op: impl Fn(&Session) -> Result<T, Fail>,
    ) -> Result<T, KeySourceError> {
        let mut conn = self.lock();
        let mut retried = false;
        loop {
            let session = match conn.session.take() {
                Some(s) => s,
                None => self.connect(&conn.pin)?,
            };
            let result = op(&session);
            match result {
                Err(Fail::Token(e)) if session_lost(&e) && !retried => {
                    // Dropping the session closes it; the next turn opens a new one.
                    drop(session);
                    retried = true;
                }
                other => {
                    conn.session = Some(session);
                    return other.map_err(|f| match f {
                        Fail::Token(e) => map(e),
                        Fail::Source(e) => e,
                    });
                }
            }
        }
    }

    /// The label every epoch key of this vault carries.
    fn label(&self) -> Vec<u8> {
        format!("pdvault:{}", hex(&self.vault_id)).into_bytes()
    }

    /// The `CKA_ID` of an epoch key.
    fn object_id(&self, epoch: &EpochId) -> Vec<u8> {
        let mut id = self.vault_id.to_vec();
        id.extend_from_slice(&epoch.to_bytes());
        id
    }

    /// A template that matches this vault's epoch keys (all of them, or one).
    fn template(&self, epoch: Option<&EpochId>) -> Vec<Attribute> {
        let mut t = vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Label(self.label()),
        ];
        if let Some(e) = epoch {
            t.push(Attribute::Id(self.object_id(e)));
        }
        t
    }

    /// The objects matching `template`. A session that is not logged in sees no private object,
    /// so its empty answer would read as "destroyed": it is a lost session instead.
    fn find_all(
        &self,
        session: &Session,
        template: &[Attribute],
    ) -> Result<Vec<ObjectHandle>, Fail> {
        let found = session.find_objects(template)?;
        if session.get_session_info()?.session_state() != SessionState::RwUser {
            return Err(Fail::Token(CkError::Pkcs11(
                RvError::UserNotLoggedIn,
                Function::FindObjects,
            )));
        }
        Ok(found)
    }

    /// The one key object of `epoch`.
    fn find(&self, session: &Session, epoch: &EpochId) -> Result<ObjectHandle, Fail> {
        match self
            .find_all(session, &self.template(Some(epoch)))?
            .as_slice()
        {
            [key] => Ok(*key),
            [] => Err(Fail::Source(KeySourceError::EpochNotFound(*epoch))),
            many => Err(Fail::Source(KeySourceError::Failed(format!(
                "{} key objects in the token for {epoch}",
                many.len()
            )))),
        }
    }
}

/// AES-GCM encryption in the token under a fresh random IV: the IV and `ciphertext ‖ tag`.
fn gcm_encrypt(
    session: &Session,
    key: ObjectHandle,
    ad: &[u8],
    plain: &[u8],
) -> Result<([u8; IV_LEN], Vec<u8>), CkError> {
    let mut iv: [u8; IV_LEN] = crate::crypto::random_array();
    let sealed = {
        let params = GcmParams::new(&mut iv, ad, ((TAG_LEN * 8) as u64).into())?;
        session.encrypt(&Mechanism::AesGcm(params), key, plain)?
    };
    // `iv` is read after the call: a token that makes its own IV writes it back there.
    Ok((iv, sealed))
}

/// AES-GCM decryption in the token (the plaintext zeroized on drop).
fn gcm_decrypt(
    session: &Session,
    key: ObjectHandle,
    mut iv: [u8; IV_LEN],
    ad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CkError> {
    let params = GcmParams::new(&mut iv, ad, ((TAG_LEN * 8) as u64).into())?;
    session
        .decrypt(&Mechanism::AesGcm(params), key, sealed)
        .map(Zeroizing::new)
}

/// Whether the key seals and opens a probe: the token and the key work.
fn key_works(session: &Session, key: ObjectHandle) -> bool {
    const PROBE: &[u8] = b"pdvault probe";
    gcm_encrypt(session, key, b"probe", PROBE)
        .and_then(|(iv, sealed)| gcm_decrypt(session, key, iv, b"probe", &sealed))
        .is_ok_and(|plain| plain.as_slice() == PROBE)
}

/// A key handle that went away between finding it and using it: the key was destroyed.
fn vanished(e: CkError, epoch: &EpochId) -> Fail {
    match e {
        CkError::Pkcs11(RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid, _) => {
            Fail::Source(KeySourceError::EpochNotFound(*epoch))
        }
        e => Fail::Token(e),
    }
}

impl KeySource for Pkcs11Source {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: "pkcs11".into(),
            location: self.token_label.clone(),
            guarantee: ErasureGuarantee::DestroyedInHardware,
        }
    }

    fn create_epoch(&self, epoch: EpochId) -> Result<(), KeySourceError> {
        self.with_session(|session| {
            if !self
                .find_all(session, &self.template(Some(&epoch)))?
                .is_empty()
            {
                return Err(Fail::Source(KeySourceError::Failed(format!(
                    "the token already holds a key for {epoch}"
                ))));
            }
            let mut template = self.template(Some(&epoch));
            template.extend([
                Attribute::ValueLen(32.into()),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Copyable(false),
                Attribute::Modifiable(false),
                Attribute::Destroyable(true),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Wrap(false),
                Attribute::Unwrap(false),
                Attribute::Sign(false),
                Attribute::Verify(false),
                Attribute::Derive(false),
            ]);
            session.generate_key(&Mechanism::AesKeyGen, &template)?;
            Ok(())
        })
    }

    fn seal(&self, epoch: &EpochId, ad: &[u8], secret: &[u8]) -> Result<Vec<u8>, KeySourceError> {
        self.with_session(|session| {
            let key = self.find(session, epoch)?;
            let (iv, sealed) =
                gcm_encrypt(session, key, ad, secret).map_err(|e| vanished(e, epoch))?;
            let mut out = Vec::with_capacity(IV_LEN + sealed.len());
            out.extend_from_slice(&iv);
            out.extend_from_slice(&sealed);
            Ok(out)
        })
    }

    fn unseal(
        &self,
        epoch: &EpochId,
        ad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeySourceError> {
        self.with_session(|session| {
            let key = self.find(session, epoch)?;
            if sealed.len() < IV_LEN + TAG_LEN {
                return Err(Fail::Source(KeySourceError::Damaged(*epoch)));
            }
            let mut iv = [0u8; IV_LEN];
            iv.copy_from_slice(&sealed[..IV_LEN]);
            match gcm_decrypt(session, key, iv, ad, &sealed[IV_LEN..]) {
                Ok(plain) => Ok(plain),
                Err(CkError::Pkcs11(
                    RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange,
                    _,
                )) => Err(Fail::Source(KeySourceError::Damaged(*epoch))),
                // SoftHSM2 reports a failed tag as a general error, as a broken token would:
                // a round trip through the same key tells the two apart.
                Err(e @ CkError::Pkcs11(RvError::GeneralError | RvError::FunctionFailed, _)) => {
                    if key_works(session, key) {
                        Err(Fail::Source(KeySourceError::Damaged(*epoch)))
                    } else {
                        Err(Fail::Token(e))
                    }
                }
                Err(e) => Err(vanished(e, epoch)),
            }
        })
    }

    fn destroy_epoch(&self, epoch: &EpochId) -> Result<(), KeySourceError> {
        self.with_session(|session| {
            // Every object for the epoch, should a fault have left two.
            for key in self.find_all(session, &self.template(Some(epoch)))? {
                match session.destroy_object(key) {
                    Ok(()) | Err(CkError::Pkcs11(RvError::ObjectHandleInvalid, _)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        })
    }

    fn epochs(&self) -> Result<Vec<EpochId>, KeySourceError> {
        self.with_session(|session| {
            let mut epochs = Vec::new();
            for key in self.find_all(session, &self.template(None))? {
                for attr in session.get_attributes(key, &[AttributeType::Id])? {
                    if let Attribute::Id(id) = attr
                        && let Some(epoch) = id
                            .strip_prefix(&self.vault_id[..])
                            .and_then(|e| <[u8; 16]>::try_from(e).ok())
                    {
                        epochs.push(EpochId::from_bytes(epoch));
                    }
                }
            }
            epochs.sort();
            epochs.dedup();
            Ok(epochs)
        })
    }
}
