//! Epoch keys and their sources, through the public API.
//!
//! - A vault keeps exactly one live epoch key once open; every key ratchet replaces it.
//! - A host's key source that fails or cannot be reached is an error, never read as "erased",
//!   and destroys nothing; a copy of the vault whose epoch key is gone says so.
//! - A vault made with a source opens only with a source of that kind.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pdvault::*;

const PW: &str = "key-source-passphrase";

/// A key source in memory, for tests: keys in a map, and a switch that makes it unreachable.
#[derive(Debug, Default)]
struct MemorySource {
    keys: Mutex<HashMap<EpochId, [u8; 32]>>,
    down: AtomicBool,
}

impl MemorySource {
    fn up(&self) -> Result<(), KeySourceError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(KeySourceError::Unreachable(
                "the test source is down".into(),
            ));
        }
        Ok(())
    }

    /// A toy seal (XOR with the key, then the key's first byte as a tag): enough to tell keys
    /// apart; the vault authenticates what it seals itself.
    fn xor(key: &[u8; 32], ad: &[u8], data: &[u8]) -> Vec<u8> {
        data.iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 32] ^ ad.get(i).copied().unwrap_or(0))
            .collect()
    }
}

impl KeySource for MemorySource {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: "memory".into(),
            location: "test".into(),
            guarantee: ErasureGuarantee::DestroyedByService,
        }
    }
    fn create_epoch(&self, epoch: EpochId) -> Result<(), KeySourceError> {
        self.up()?;
        let key: [u8; 32] = std::array::from_fn(|i| (epoch.nonce[i % 8]).wrapping_add(i as u8));
        self.keys.lock().unwrap().insert(epoch, key);
        Ok(())
    }
    fn seal(&self, epoch: &EpochId, ad: &[u8], secret: &[u8]) -> Result<Vec<u8>, KeySourceError> {
        self.up()?;
        let keys = self.keys.lock().unwrap();
        let key = keys
            .get(epoch)
            .ok_or(KeySourceError::EpochNotFound(*epoch))?;
        Ok(Self::xor(key, ad, secret))
    }
    fn unseal(
        &self,
        epoch: &EpochId,
        ad: &[u8],
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, KeySourceError> {
        self.up()?;
        let keys = self.keys.lock().unwrap();
        let key = keys
            .get(epoch)
            .ok_or(KeySourceError::EpochNotFound(*epoch))?;
        Ok(zeroize::Zeroizing::new(Self::xor(key, ad, sealed)))
    }
    fn destroy_epoch(&self, epoch: &EpochId) -> Result<(), KeySourceError> {
        self.up()?;
        self.keys.lock().unwrap().remove(epoch);
        Ok(())
    }
    fn epochs(&self) -> Result<Vec<EpochId>, KeySourceError> {
        self.up()?;
        Ok(self.keys.lock().unwrap().keys().copied().collect())
    }
}

fn service() -> Purpose {
    Purpose::new("service").unwrap()
}

fn builder(dir: &std::path::Path, source: &Arc<MemorySource>) -> VaultBuilder {
    Vault::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .key_source({
            let source = source.clone();
            move |_| Ok(source.clone())
        })
}

#[test]
fn a_host_source_holds_one_live_epoch_and_every_ratchet_replaces_it() {
    let tmp = tempfile::tempdir().unwrap();
    let source = Arc::new(MemorySource::default());
    let v = builder(tmp.path(), &source)
        .create(RootSecret::passphrase(PW))
        .unwrap();
    let s = SubjectId::new("alice@example.com").unwrap();
    let id = v
        .put(
            &s,
            RecordMeta::new(Category::Contact).purpose(service()),
            b"kept",
        )
        .unwrap();
    let first = source.epochs().unwrap();
    assert_eq!(first.len(), 1);
    let t = SubjectId::new("tom@example.com").unwrap();
    v.put(
        &t,
        RecordMeta::new(Category::Contact).purpose(service()),
        b"erased",
    )
    .unwrap();
    v.erase_subject(&t).unwrap();
    let second = source.epochs().unwrap();
    assert_eq!(second.len(), 1, "the epoch before the erasure is destroyed");
    assert_ne!(first, second);
    let report = v.verify().unwrap();
    assert!(report.is_whole(), "{report:?}");
    assert_eq!(report.key_source.kind, "memory");
    assert_eq!(report.live_epochs, 1);
    v.close().unwrap();

    let v = builder(tmp.path(), &source)
        .open(RootSecret::passphrase(PW))
        .unwrap();
    assert_eq!(v.get(&s, id, &service()).unwrap().payload, b"kept");
    // A backup of such a vault has a backup epoch of its own in the source, and is not a vault
    // to open (it would retire the vault's own epochs).
    let dest = tmp.path().join("backup");
    v.backup(&dest).unwrap();
    assert_eq!(source.epochs().unwrap().len(), 2);
    let e = builder(&dest, &source)
        .open(RootSecret::passphrase(PW))
        .unwrap_err();
    assert!(matches!(e, Error::Open(OpenError::IsBackup(_))), "{e:?}");
    assert_eq!(v.verify().unwrap().live_epochs, 1);
    drop(v);
    // Without the source, or with another kind, the vault says where its keys are.
    let e = Vault::builder(tmp.path())
        .open(RootSecret::passphrase(PW))
        .unwrap_err();
    assert!(
        matches!(&e, Error::Open(OpenError::SourceKindMismatch { expected, .. }) if expected == "memory"),
        "{e:?}"
    );
}

// Guards: a source that cannot be reached must never be read as "erased", and must not let a
// destruction half happen.
#[test]
fn an_unreachable_source_is_an_error_and_destroys_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let source = Arc::new(MemorySource::default());
    let v = builder(tmp.path(), &source)
        .create(RootSecret::passphrase(PW))
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

    source.down.store(true, Ordering::SeqCst);
    let e = builder(tmp.path(), &source)
        .open(RootSecret::passphrase(PW))
        .unwrap_err();
    assert!(
        matches!(e, Error::KeySource(KeySourceError::Unreachable(_))),
        "{e:?}"
    );
    source.down.store(false, Ordering::SeqCst);
    let v = builder(tmp.path(), &source)
        .open(RootSecret::passphrase(PW))
        .unwrap();
    // The source fails in the middle of an erasure: an error, and the record is still there.
    source.down.store(true, Ordering::SeqCst);
    let e = v.erase_subject(&s).unwrap_err();
    assert!(matches!(e, Error::KeySource(_)), "{e:?}");
    source.down.store(false, Ordering::SeqCst);
    drop(v);
    let v = builder(tmp.path(), &source)
        .open(RootSecret::passphrase(PW))
        .unwrap();
    // The store may have committed the erasure's batch before the source failed: then the
    // erasure is complete after the reopen, never half done.
    match v.get(&s, id, &service()) {
        Ok(r) => assert_eq!(r.payload, b"still here"),
        Err(Error::SubjectNotFound) => {}
        Err(e) => panic!("half an erasure: {e}"),
    }
    assert!(v.verify().unwrap().is_whole());
}

// Guards: an old copy of the vault (a stale vault file, an old backup) whose epoch key was
// destroyed is reported as such, never as an erasure or as damage.
#[test]
fn a_copy_whose_epoch_key_is_gone_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let source = Arc::new(MemorySource::default());
    let dir = tmp.path().join("vault");
    let v = builder(&dir, &source)
        .create(RootSecret::passphrase(PW))
        .unwrap();
    v.close().unwrap();
    let old = std::fs::read(dir.join("vault.pdv")).unwrap();
    let v = builder(&dir, &source)
        .open(RootSecret::passphrase(PW))
        .unwrap();
    v.close().unwrap();
    std::fs::write(dir.join("vault.pdv"), old).unwrap();
    let e = builder(&dir, &source)
        .open(RootSecret::passphrase(PW))
        .unwrap_err();
    assert!(
        matches!(e, Error::Open(OpenError::EpochDestroyed(_))),
        "{e:?}"
    );
}

#[test]
fn the_built_in_slot_source_keeps_one_live_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let v = Vault::builder(tmp.path())
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::passphrase(PW))
        .unwrap();
    let s = SubjectId::new("carol@example.com").unwrap();
    v.put(
        &s,
        RecordMeta::new(Category::Contact).purpose(service()),
        b"x",
    )
    .unwrap();
    v.erase_subject(&s).unwrap();
    let r = v.verify().unwrap();
    assert!(r.is_whole(), "{r:?}");
    assert_eq!((r.key_source.kind.as_str(), r.live_epochs), ("slot", 1));
    assert_eq!(r.key_source.guarantee, ErasureGuarantee::OverwrittenInPlace);
}
