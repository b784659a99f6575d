//! The PKCS#11 key source against SoftHSM2 (a software token, standing in for hardware here).
//!
//! SoftHSM2 reads its configuration (`SOFTHSM2_CONF`) when the module is initialised, once per
//! process, and a test may not change its own environment. So every test that needs a token
//! makes a token directory and configuration of its own, initialises a fresh token there with
//! `softhsm2-util`, and runs its body in a child process (this test binary, given the test's
//! name) with `SOFTHSM2_CONF` set. Tests run in parallel without sharing a token or a module.
//!
//! Without SoftHSM2 (`/usr/lib/softhsm/libsofthsm2.so`, or `PDVAULT_TEST_PKCS11_MODULE`, and
//! `softhsm2-util`) the tests fail when `CI` is set and are skipped otherwise.
#![cfg(feature = "pkcs11")]

#[cfg(feature = "postgres")]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use pdvault::keysource::{EpochId, ErasureGuarantee, KeySource, KeySourceError, Pin, Pkcs11Source};

const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const LABEL: &str = "pdvault-test";
const PIN: &str = "user-pin-4711";
const SO_PIN: &str = "so-pin-0815";
/// Set in a child process running one test's body.
const CHILD: &str = "PDVAULT_TEST_PKCS11_CHILD";
/// The PIN, for `Pin::from_env` in a child.
const PIN_VAR: &str = "PDVAULT_TEST_PKCS11_PIN";
const VAULT: [u8; 16] = [0xa5; 16];

fn module() -> PathBuf {
    std::env::var_os("PDVAULT_TEST_PKCS11_MODULE").map_or_else(|| DEFAULT_MODULE.into(), Into::into)
}

/// Whether SoftHSM2 is here; if not, a failure under CI and a note otherwise.
fn softhsm_present() -> bool {
    let util = Command::new("softhsm2-util").arg("--version").output();
    let missing = if !module().exists() {
        Some(format!(
            "the PKCS#11 module {} is missing",
            module().display()
        ))
    } else if !util.is_ok_and(|o| o.status.success()) {
        Some("softhsm2-util is missing".to_owned())
    } else {
        None
    };
    match missing {
        None => true,
        Some(why) if std::env::var_os("CI").is_some() => {
            panic!("{why}: install SoftHSM2 (Debian: apt-get install softhsm2)")
        }
        Some(why) => {
            eprintln!("skipped: {why} (Debian: apt-get install softhsm2)");
            false
        }
    }
}

/// In the parent: makes a fresh token for `test` and runs the test in a child process with it,
/// then returns `None` (the parent's part is done). In the child: returns `Some(())`, and the
/// test's body runs against the token.
fn token(test: &str) -> Option<()> {
    if std::env::var_os(CHILD).is_some() {
        return Some(());
    }
    if !softhsm_present() {
        return None;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("pkcs11")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let init = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", LABEL])
        .args(["--pin", PIN, "--so-pin", SO_PIN])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "softhsm2-util --init-token: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let child = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD, "1")
        .env(PIN_VAR, PIN)
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&child.stdout);
    let stderr = String::from_utf8_lossy(&child.stderr);
    assert!(
        child.status.success() && stdout.contains("1 passed"),
        "the test {test} in its child process:\n{stdout}\n{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    None
}

fn open(vault: [u8; 16]) -> Pkcs11Source {
    Pkcs11Source::open(&module(), LABEL, Pin::new(PIN.to_owned()), vault).unwrap()
}

/// A session of the test's own on the token, outside the source (the module is the one the
/// source loaded: initialising it again is refused as already done).
fn own_session() -> Session {
    let ctx = Pkcs11::new(module()).unwrap();
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("{e}"),
    }
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label() == LABEL)
        .unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    match session.login(UserType::User, Some(&AuthPin::from(PIN))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("{e}"),
    }
    session
}

fn object_id(vault: [u8; 16], epoch: &EpochId) -> Vec<u8> {
    let mut id = vault.to_vec();
    id.extend_from_slice(&epoch.to_bytes());
    id
}

#[test]
fn an_epoch_seals_until_destroyed_then_is_not_found() {
    let Some(()) = token("an_epoch_seals_until_destroyed_then_is_not_found") else {
        return;
    };
    let s = open(VAULT);
    let info = s.info();
    assert_eq!(info.kind, "pkcs11");
    assert_eq!(info.location, LABEL);
    assert_eq!(info.guarantee, ErasureGuarantee::DestroyedInHardware);
    assert!(s.epochs().unwrap().is_empty());

    let e = EpochId::next(None);
    s.create_epoch(e).unwrap();
    assert!(matches!(s.create_epoch(e), Err(KeySourceError::Failed(_))));
    assert_eq!(s.epochs().unwrap(), vec![e]);
    let sealed = s
        .seal(
            &e,
            b"vault id | generation",
            b"a 32-byte ring key, for example!",
        )
        .unwrap();
    assert_eq!(sealed.len(), 12 + 32 + 16, "iv, ciphertext, tag");
    assert_eq!(
        &*s.unseal(&e, b"vault id | generation", &sealed).unwrap(),
        b"a 32-byte ring key, for example!"
    );
    let again = s
        .seal(
            &e,
            b"vault id | generation",
            b"a 32-byte ring key, for example!",
        )
        .unwrap();
    assert_ne!(sealed, again, "a fresh IV for every seal");

    // Durable in the token: another source (the PIN from the environment) sees it.
    let f = EpochId::next(Some(&e));
    s.create_epoch(f).unwrap();
    let sealed_f = s.seal(&f, b"ad", b"k").unwrap();
    drop(s);
    let s = Pkcs11Source::open(&module(), LABEL, Pin::from_env(PIN_VAR).unwrap(), VAULT).unwrap();
    let mut both = vec![e, f];
    both.sort();
    assert_eq!(s.epochs().unwrap(), both);
    assert_eq!(&*s.unseal(&f, b"ad", &sealed_f).unwrap(), b"k");

    s.destroy_epoch(&e).unwrap();
    assert!(matches!(
        s.unseal(&e, b"vault id | generation", &sealed),
        Err(KeySourceError::EpochNotFound(x)) if x == e
    ));
    assert!(matches!(
        s.seal(&e, b"ad", b"k"),
        Err(KeySourceError::EpochNotFound(x)) if x == e
    ));
    assert_eq!(s.epochs().unwrap(), vec![f]);
    let gone = own_session()
        .find_objects(&[Attribute::Id(object_id(VAULT, &e))])
        .unwrap();
    assert!(gone.is_empty(), "the key object is gone from the token");
    s.destroy_epoch(&e).unwrap(); // destroying what does not exist is not an error
    assert_eq!(&*s.unseal(&f, b"ad", &sealed_f).unwrap(), b"k");

    let shown = format!("{s:?}");
    assert!(!shown.contains(PIN), "{shown}");
}

#[test]
fn an_epoch_key_cannot_be_read_wrapped_copied_or_made_extractable() {
    let Some(()) = token("an_epoch_key_cannot_be_read_wrapped_copied_or_made_extractable") else {
        return;
    };
    let s = open(VAULT);
    let e = EpochId::next(None);
    s.create_epoch(e).unwrap();
    let session = own_session();
    let found = session
        .find_objects(&[Attribute::Id(object_id(VAULT, &e))])
        .unwrap();
    let [key] = found.as_slice() else {
        panic!("one key object, found {}", found.len())
    };
    let key = *key;

    let info = session
        .get_attribute_info(key, &[AttributeType::Value])
        .unwrap();
    assert!(
        matches!(info.as_slice(), [AttributeInfo::Sensitive]),
        "CKA_VALUE is refused: {info:?}"
    );
    let read = session
        .get_attributes(key, &[AttributeType::Value])
        .unwrap();
    assert!(read.is_empty(), "no value read: {read:?}");

    let attrs = session
        .get_attributes(
            key,
            &[
                AttributeType::Class,
                AttributeType::Token,
                AttributeType::Sensitive,
                AttributeType::AlwaysSensitive,
                AttributeType::Extractable,
                AttributeType::NeverExtractable,
                AttributeType::Local,
                AttributeType::Copyable,
                AttributeType::ValueLen,
            ],
        )
        .unwrap();
    for expected in [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Token(true),
        Attribute::Sensitive(true),
        Attribute::AlwaysSensitive(true),
        Attribute::Extractable(false),
        Attribute::NeverExtractable(true),
        Attribute::Local(true),
        Attribute::Copyable(false),
        Attribute::ValueLen(32.into()),
    ] {
        assert!(attrs.contains(&expected), "{expected:?} in {attrs:?}");
    }

    // Wrapping it under a key the test made is refused.
    let wrapping = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::ValueLen(32.into()),
                Attribute::Token(false),
                Attribute::Wrap(true),
            ],
        )
        .unwrap();
    assert!(
        session
            .wrap_key(&Mechanism::AesKeyWrapPad, wrapping, key)
            .is_err()
    );
    // So is copying it (a copy would survive its destruction) and making it extractable.
    assert!(session.copy_object(key, &[Attribute::Token(true)]).is_err());
    assert!(
        session
            .update_attributes(key, &[Attribute::Extractable(true)])
            .is_err()
    );
    assert_eq!(s.epochs().unwrap(), vec![e]);
}

#[test]
fn a_wrong_pin_is_denied_and_destroys_nothing() {
    let Some(()) = token("a_wrong_pin_is_denied_and_destroys_nothing") else {
        return;
    };
    let s = open(VAULT);
    let e = EpochId::next(None);
    s.create_epoch(e).unwrap();
    let sealed = s.seal(&e, b"ad", b"ring key").unwrap();
    let wrong = || Pkcs11Source::open(&module(), LABEL, Pin::new("not-the-pin".into()), VAULT);

    // While this process is logged in to the token (the token itself would not check it).
    assert!(matches!(wrong(), Err(KeySourceError::Denied(_))));
    drop(s);
    // And with no session open: the token refuses the login.
    let refused = wrong().unwrap_err();
    assert!(matches!(refused, KeySourceError::Denied(_)), "{refused:?}");
    assert!(!refused.to_string().contains("not-the-pin"));

    let dir = tempfile::tempdir().unwrap();
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    let s =
        Pkcs11Source::open(&module(), LABEL, Pin::from_file(&pin_file).unwrap(), VAULT).unwrap();
    assert_eq!(s.epochs().unwrap(), vec![e]);
    assert_eq!(&*s.unseal(&e, b"ad", &sealed).unwrap(), b"ring key");
}

#[test]
fn a_missing_token_label_is_unreachable() {
    let Some(()) = token("a_missing_token_label_is_unreachable") else {
        return;
    };
    let r = Pkcs11Source::open(&module(), "no-such-token", Pin::new(PIN.into()), VAULT);
    assert!(matches!(r, Err(KeySourceError::Unreachable(_))), "{r:?}");
}

#[test]
fn an_unloadable_module_is_unreachable() {
    // Needs no token: neither path loads.
    for path in [
        Path::new("/nonexistent/libno-such-pkcs11.so"),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("Cargo.toml")
            .as_path(),
    ] {
        let r = Pkcs11Source::open(path, LABEL, Pin::new(PIN.into()), VAULT);
        assert!(
            matches!(r, Err(KeySourceError::Unreachable(_))),
            "{path:?}: {r:?}"
        );
    }
}

#[test]
fn two_vaults_on_one_token_see_only_their_own_epochs() {
    let Some(()) = token("two_vaults_on_one_token_see_only_their_own_epochs") else {
        return;
    };
    let a = open([1; 16]);
    let b = open([2; 16]);
    let ea = EpochId::next(None);
    let eb = EpochId::next(None);
    a.create_epoch(ea).unwrap();
    b.create_epoch(eb).unwrap();
    assert_eq!(a.epochs().unwrap(), vec![ea]);
    assert_eq!(b.epochs().unwrap(), vec![eb]);
    let sealed = a.seal(&ea, b"ad", b"a's ring key").unwrap();
    assert!(matches!(
        b.unseal(&ea, b"ad", &sealed),
        Err(KeySourceError::EpochNotFound(_))
    ));
    b.destroy_epoch(&ea).unwrap(); // not b's: nothing happens
    assert_eq!(&*a.unseal(&ea, b"ad", &sealed).unwrap(), b"a's ring key");
    a.destroy_epoch(&ea).unwrap();
    assert!(a.epochs().unwrap().is_empty());
    assert_eq!(b.epochs().unwrap(), vec![eb]);
}

#[test]
fn a_sealed_value_with_other_ad_or_flipped_bytes_is_damaged() {
    let Some(()) = token("a_sealed_value_with_other_ad_or_flipped_bytes_is_damaged") else {
        return;
    };
    let s = open(VAULT);
    let e = EpochId::next(None);
    s.create_epoch(e).unwrap();
    let sealed = s.seal(&e, b"ad", b"ring key").unwrap();
    let damaged = |ad: &[u8], bytes: &[u8]| matches!(s.unseal(&e, ad, bytes), Err(KeySourceError::Damaged(x)) if x == e);
    assert!(damaged(b"other ad", &sealed));
    assert!(damaged(b"", &sealed));
    for i in [0, 11, 12, sealed.len() - 17, sealed.len() - 1] {
        let mut flipped = sealed.clone();
        flipped[i] ^= 0x01;
        assert!(damaged(b"ad", &flipped), "byte {i} flipped");
    }
    assert!(damaged(b"ad", &sealed[..sealed.len() - 1]));
    assert!(damaged(b"ad", &sealed[..27]));
    assert!(damaged(b"ad", &[]));
    assert_eq!(&*s.unseal(&e, b"ad", &sealed).unwrap(), b"ring key");
}

#[test]
fn a_logout_elsewhere_in_the_process_is_not_read_as_erased() {
    let Some(()) = token("a_logout_elsewhere_in_the_process_is_not_read_as_erased") else {
        return;
    };
    let s = open(VAULT);
    let e = EpochId::next(None);
    s.create_epoch(e).unwrap();
    let sealed = s.seal(&e, b"ad", b"ring key").unwrap();
    // The login is the process's: a logout on any session logs the source's session out too,
    // and private objects become invisible to it. The source logs in again.
    own_session().logout().unwrap();
    assert_eq!(s.epochs().unwrap(), vec![e]);
    own_session().logout().unwrap();
    assert_eq!(&*s.unseal(&e, b"ad", &sealed).unwrap(), b"ring key");
    own_session().logout().unwrap();
    s.destroy_epoch(&e).unwrap();
    assert!(matches!(
        s.unseal(&e, b"ad", &sealed),
        Err(KeySourceError::EpochNotFound(_))
    ));
}

#[test]
fn a_pin_is_never_shown_and_is_read_without_its_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pin");
    std::fs::write(&path, "s3cret-pin\r\n").unwrap();
    let pin = Pin::from_file(&path).unwrap();
    assert_eq!(format!("{pin:?}"), "Pin(<redacted>)");
    std::fs::write(&path, "\n").unwrap();
    assert!(matches!(
        Pin::from_file(&path),
        Err(KeySourceError::Failed(_))
    ));
    assert!(matches!(
        Pin::from_file(&dir.path().join("missing")),
        Err(KeySourceError::Failed(_))
    ));
    assert!(matches!(
        Pin::from_env("PDVAULT_TEST_PKCS11_NO_SUCH_VARIABLE"),
        Err(KeySourceError::Failed(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// A vault whose epoch keys are on the token
// ---------------------------------------------------------------------------------------------

const VAULT_PASSPHRASE: &str = "token-vault-passphrase";

fn token_vault(dir: &Path, label: &'static str, pin: &'static str) -> pdvault::VaultBuilder {
    on_token(pdvault::Vault::builder(dir), label, pin)
}

/// `b` with its epoch keys on the token.
fn on_token(
    b: pdvault::VaultBuilder,
    label: &'static str,
    pin: &'static str,
) -> pdvault::VaultBuilder {
    b.kdf(pdvault::KdfParams::insecure_for_tests())
        .key_source(move |vault_id| {
            Ok(std::sync::Arc::new(Pkcs11Source::open(
                &module(),
                label,
                Pin::new(pin.to_owned()),
                vault_id,
            )?))
        })
}

fn service() -> pdvault::Purpose {
    pdvault::Purpose::new("service").unwrap()
}

// Guards erasure against someone with every copy of the files, the root secret and the token's
// PIN: a copy of the vault from before an erasure is sealed under an epoch key the token has
// destroyed, so it opens nothing.
#[test]
fn a_copy_from_before_an_erasure_opens_nothing_even_with_the_pin() {
    let Some(()) = token("a_copy_from_before_an_erasure_opens_nothing_even_with_the_pin") else {
        return;
    };
    use pdvault::{Category, RecordMeta, RootSecret, SubjectId};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let v = token_vault(&dir, LABEL, PIN)
        .create(RootSecret::passphrase(VAULT_PASSPHRASE))
        .unwrap();
    let erased = SubjectId::new("erased@example.com").unwrap();
    let kept = SubjectId::new("kept@example.com").unwrap();
    let gone = v
        .put(
            &erased,
            RecordMeta::new(Category::Contact).purpose(service()),
            b"erased-marker",
        )
        .unwrap();
    let stays = v
        .put(
            &kept,
            RecordMeta::new(Category::Contact).purpose(service()),
            b"kept-marker",
        )
        .unwrap();
    v.flush().unwrap();
    let before = tmp.path().join("before");
    common::copy_tree(&dir, &before);
    assert!(v.erase_subject(&erased).unwrap().subject_erased);
    let report = v.verify().unwrap();
    assert!(report.is_whole(), "{report:?}");
    assert_eq!(report.key_source.kind, "pkcs11");
    assert_eq!(
        report.key_source.guarantee,
        ErasureGuarantee::DestroyedInHardware
    );
    assert_eq!(report.live_epochs, 1);
    v.close().unwrap();

    // The stale copy, with the token, the PIN and the passphrase: its epoch is gone.
    let e = token_vault(&before, LABEL, PIN)
        .open(RootSecret::passphrase(VAULT_PASSPHRASE))
        .unwrap_err();
    assert!(
        matches!(
            e,
            pdvault::Error::Open(pdvault::OpenError::EpochDestroyed(_))
        ),
        "{e:?}"
    );
    // The vault itself: the kept record reads, the erased one is gone.
    let v = token_vault(&dir, LABEL, PIN)
        .open(RootSecret::passphrase(VAULT_PASSPHRASE))
        .unwrap();
    assert_eq!(
        v.get(&kept, stays, &service()).unwrap().payload,
        b"kept-marker"
    );
    assert!(v.get(&erased, gone, &service()).is_err());
}

// Guards: a wrong PIN or an absent token must be an error that destroys nothing, never an
// erasure.
#[test]
fn a_wrong_pin_or_an_absent_token_opens_nothing_and_destroys_nothing() {
    let Some(()) = token("a_wrong_pin_or_an_absent_token_opens_nothing_and_destroys_nothing")
    else {
        return;
    };
    use pdvault::{Category, RecordMeta, RootSecret, SubjectId};
    let tmp = tempfile::tempdir().unwrap();
    let v = token_vault(tmp.path(), LABEL, PIN)
        .create(RootSecret::passphrase(VAULT_PASSPHRASE))
        .unwrap();
    let s = SubjectId::new("bob@example.com").unwrap();
    let id = v
        .put(
            &s,
            RecordMeta::new(Category::Contact).purpose(service()),
            b"still here",
        )
        .unwrap();
    v.close().unwrap();
    let e = token_vault(tmp.path(), LABEL, "wrong-pin-1234")
        .open(RootSecret::passphrase(VAULT_PASSPHRASE))
        .unwrap_err();
    assert!(
        matches!(e, pdvault::Error::KeySource(KeySourceError::Denied(_))),
        "{e:?}"
    );
    let e = token_vault(tmp.path(), "no-such-token", PIN)
        .open(RootSecret::passphrase(VAULT_PASSPHRASE))
        .unwrap_err();
    assert!(
        matches!(e, pdvault::Error::KeySource(KeySourceError::Unreachable(_))),
        "{e:?}"
    );
    let v = token_vault(tmp.path(), LABEL, PIN)
        .open(RootSecret::passphrase(VAULT_PASSPHRASE))
        .unwrap();
    assert_eq!(v.get(&s, id, &service()).unwrap().payload, b"still here");
    assert!(v.verify().unwrap().is_whole());
}

// The CLI opens a vault whose epoch keys are on the token (module and label by option, PIN from
// the environment) and `verify` says where they are and what erasure gives.
#[test]
fn the_cli_keeps_a_vault_s_epoch_keys_on_the_token() {
    let Some(()) = token("the_cli_keeps_a_vault_s_epoch_keys_on_the_token") else {
        return;
    };
    let Some(bin) = option_env!("CARGO_BIN_EXE_pdvault") else {
        assert!(std::env::var_os("CI").is_none(), "the CLI is not built");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str], pin: &str| {
        Command::new(bin)
            .args(args)
            .args([
                "--pkcs11-module",
                module().to_str().unwrap(),
                "--pkcs11-token",
                LABEL,
            ])
            .env("PDVAULT_DIR", tmp.path().join("v"))
            .env("PDVAULT_PASSPHRASE", VAULT_PASSPHRASE)
            .env("PDVAULT_PKCS11_PIN", pin)
            .env("PDVAULT_TEST_FAST_KDF", "1")
            .output()
            .unwrap()
    };
    assert!(run(&["init"], PIN).status.success());
    let out = run(&["verify"], PIN);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("pkcs11 source") && text.contains("hardware"),
        "{text}"
    );
    let out = run(&["verify"], "wrong-pin-1234");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refused") && !err.contains("wrong-pin-1234"),
        "{err}"
    );
    // Without the token options the vault says where its keys are.
    let out = Command::new(bin)
        .arg("verify")
        .env("PDVAULT_DIR", tmp.path().join("v"))
        .env("PDVAULT_PASSPHRASE", VAULT_PASSPHRASE)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pkcs11"));
}

// Guards backups that expire: a backup sealed under an epoch key of its own on the token, which
// the sweep destroys when the backup expires; before that it restores (with the ledger: nothing
// erased comes back) into a copy that never touches the vault's own keys; after, it cannot be
// restored, not even with the root secret and the PIN.
#[test]
fn an_expired_backup_cannot_be_restored_and_an_unexpired_one_restores_with_the_ledger() {
    let Some(()) =
        token("an_expired_backup_cannot_be_restored_and_an_unexpired_one_restores_with_the_ledger")
    else {
        return;
    };
    use pdvault::{Category, LedgerChoice, ManualClock, RecordMeta, RootSecret, SubjectId};
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
    let dir = tmp.path().join("vault");
    let v = token_vault(&dir, LABEL, PIN)
        .clock(clock.clone())
        .create(RootSecret::passphrase(VAULT_PASSPHRASE))
        .unwrap();
    let kept = SubjectId::new("kept@example.com").unwrap();
    let erased = SubjectId::new("erased@example.com").unwrap();
    let k = v
        .put(
            &kept,
            RecordMeta::new(Category::Contact).purpose(service()),
            b"kept-marker",
        )
        .unwrap();
    let e = v
        .put(
            &erased,
            RecordMeta::new(Category::Contact).purpose(service()),
            b"erased-marker",
        )
        .unwrap();
    let backup = tmp.path().join("backup");
    let expires = "2026-01-02T00:00:00Z".parse().unwrap();
    v.backup_expiring(&backup, expires).unwrap();
    v.erase_subject(&erased).unwrap();
    let ledger = v.ledger_document().unwrap();

    // The backup is not a vault to open: opened as one it would retire the vault's epochs.
    let opened = token_vault(&backup, LABEL, PIN).open(RootSecret::passphrase(VAULT_PASSPHRASE));
    assert!(
        matches!(
            opened,
            Err(pdvault::Error::Open(pdvault::OpenError::IsBackup(_)))
        ),
        "{opened:?}"
    );
    // Unexpired, it restores with the ledger: the erased record stays erased.
    let restored_dir = tmp.path().join("restored");
    let r = token_vault(&restored_dir, LABEL, PIN)
        .restore(
            &backup,
            RootSecret::passphrase(VAULT_PASSPHRASE),
            LedgerChoice::Apply(&ledger),
        )
        .unwrap();
    assert_eq!(r.get(&kept, k, &service()).unwrap().payload, b"kept-marker");
    assert!(r.get(&erased, e, &service()).is_err());
    let report = r.verify().unwrap();
    assert!(report.is_whole(), "{report:?}");
    assert_eq!(report.live_epochs, 1);
    r.erase_subject(&kept).unwrap();
    r.close().unwrap();
    // The vault itself is untouched by its restored copy's epochs.
    assert_eq!(v.get(&kept, k, &service()).unwrap().payload, b"kept-marker");
    assert!(v.verify().unwrap().is_whole());

    // Expired: the sweep destroys its key; restoring it fails with its own error.
    clock.set("2026-01-03T00:00:00Z".parse().unwrap());
    assert_eq!(v.sweep().unwrap().backups_expired, 1);
    let again = tmp.path().join("again");
    let e = token_vault(&again, LABEL, PIN)
        .restore(
            &backup,
            RootSecret::passphrase(VAULT_PASSPHRASE),
            LedgerChoice::BringErasedDataBack,
        )
        .unwrap_err();
    assert!(
        matches!(e, pdvault::Error::Open(pdvault::OpenError::BackupExpired)),
        "{e:?}"
    );
    assert!(!again.exists(), "a refused restore leaves nothing");
    assert!(v.verify().unwrap().is_whole());
    v.close().unwrap();
    let v = token_vault(&dir, LABEL, PIN)
        .open(RootSecret::passphrase(VAULT_PASSPHRASE))
        .unwrap();
    assert_eq!(v.get(&kept, k, &service()).unwrap().payload, b"kept-marker");
}

// With the built-in slot source a backup's key travels with the backup: an expiring backup is
// refused, not promised.
#[test]
fn an_expiring_backup_needs_a_source_that_destroys_keys() {
    use pdvault::{KdfParams, RootSecret, Vault};
    let tmp = tempfile::tempdir().unwrap();
    let v = Vault::builder(tmp.path().join("v"))
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::passphrase(VAULT_PASSPHRASE))
        .unwrap();
    let e = v
        .backup_expiring(
            &tmp.path().join("b"),
            "2030-01-01T00:00:00Z".parse().unwrap(),
        )
        .unwrap_err();
    assert!(
        matches!(e, pdvault::Error::Open(pdvault::OpenError::NotSupported(_))),
        "{e:?}"
    );
    assert!(!tmp.path().join("b").exists());
}

// Guards erasure on PostgreSQL against someone with the database's history, the passphrase and
// the token's PIN: PostgreSQL keeps the row versions an erasure replaced (here read back through
// a snapshot taken before it, as `pg_dump` or a base backup would keep them), and the key ring in
// every one of them is sealed under an epoch key the token has destroyed. The server's files (data
// directory and WAL) hold no payload either.
#[cfg(feature = "postgres")]
#[test]
fn on_postgres_the_database_s_history_opens_nothing_after_an_erasure() {
    let Some(()) = token("on_postgres_the_database_s_history_opens_nothing_after_an_erasure")
    else {
        return;
    };
    use pdvault::{Category, RecordMeta, RootSecret, SubjectId};
    let Some(pg) = common::postgres::Schema::new() else {
        return;
    };
    let on_token = |schema: &str| {
        on_token(
            pdvault::Vault::builder_postgres(&pg.url).postgres_schema(schema),
            LABEL,
            PIN,
        )
    };
    let v = on_token(&pg.name)
        .create(RootSecret::passphrase(VAULT_PASSPHRASE))
        .unwrap();
    let erased = SubjectId::new("erased@example.com").unwrap();
    let kept = SubjectId::new("kept@example.com").unwrap();
    let meta = || RecordMeta::new(Category::Contact).purpose(service());
    let gone = v.put(&erased, meta(), b"erased-pg-marker").unwrap();
    let stays = v.put(&kept, meta(), b"kept-pg-marker").unwrap();

    // The database's history: a snapshot from before the erasure keeps every old row version.
    let before = common::postgres::rows_kept_by_a_snapshot(&pg.url, &pg.name, || {
        assert!(v.erase_subject(&erased).unwrap().subject_erased);
        let report = v.verify().unwrap();
        assert!(report.is_whole(), "{report:?}");
        assert_eq!(
            report.key_source.guarantee,
            ErasureGuarantee::DestroyedInHardware
        );
    });
    v.close().unwrap();

    // `rows` in a schema of their own, opened with the passphrase, token and PIN: the error.
    let open_copy = |rows: &[(Vec<u8>, Vec<u8>)]| {
        let copy = common::postgres::schema_with_rows(&pg.url, rows, |s| {
            drop(
                on_token(&s.name)
                    .create(RootSecret::passphrase("a vault to make the tables"))
                    .unwrap(),
            )
        });
        on_token(&copy.name)
            .open(RootSecret::passphrase(VAULT_PASSPHRASE))
            .unwrap_err()
    };

    // Every row as it was.
    let e = open_copy(&before);
    assert!(
        matches!(
            e,
            pdvault::Error::Open(pdvault::OpenError::EpochDestroyed(_))
        ),
        "{e:?}"
    );

    // The current ring row (its epoch key is on the token) beside the ring's chunks from
    // before: the chunk of the erased subject's shards was sealed under a chunk key that only
    // rows under destroyed epochs held, so the ring does not open.
    let file_key = b"\0vault-file".to_vec();
    let current: Vec<u8> = postgres::Client::connect(&pg.url, postgres::NoTls)
        .unwrap()
        .query_one(
            &format!(
                "SELECT value FROM \"{}\".pdvault_kv WHERE key = $1",
                pg.name
            ),
            &[&file_key],
        )
        .unwrap()
        .get(0);
    let mixed: Vec<(Vec<u8>, Vec<u8>)> = before
        .iter()
        .map(|(k, v)| match *k == file_key {
            true => (k.clone(), current.clone()),
            false => (k.clone(), v.clone()),
        })
        .collect();
    let e = open_copy(&mixed);
    assert!(
        matches!(
            e,
            pdvault::Error::Open(pdvault::OpenError::HeaderDamaged(_))
        ),
        "{e:?}"
    );

    // The vault itself: the kept record reads, the erased one is gone.
    let v = on_token(&pg.name)
        .open(RootSecret::passphrase(VAULT_PASSPHRASE))
        .unwrap();
    assert_eq!(
        v.get(&kept, stays, &service()).unwrap().payload,
        b"kept-pg-marker"
    );
    assert!(v.get(&erased, gone, &service()).is_err());
    v.close().unwrap();

    // The server's files: data directory and WAL (where .ci/run's cluster lives).
    match std::env::var_os("PDVAULT_TEST_PGDATA") {
        Some(data) => {
            postgres::Client::connect(&pg.url, postgres::NoTls)
                .unwrap()
                .execute("CHECKPOINT", &[])
                .unwrap();
            for marker in [&b"erased-pg-marker"[..], b"kept-pg-marker"] {
                let found = files_holding(Path::new(&data), marker);
                assert!(
                    found.is_empty(),
                    "a payload in the server's files: {found:?}"
                );
            }
        }
        None if std::env::var_os("CI").is_some() => {
            panic!("PDVAULT_TEST_PGDATA is not set, and CI must check the server's files")
        }
        None => eprintln!("the server's files not checked: PDVAULT_TEST_PGDATA is not set"),
    }
}

/// Every file under `dir` whose bytes contain `needle`.
#[cfg(feature = "postgres")]
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(files_holding(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            out.push(path);
        }
    }
    out
}
