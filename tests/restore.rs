//! Restoring a backup against the erasure ledger: the ledger is required, authenticated and
//! checked against the backup, and a ledger that fails any check restores nothing.
//!
//! These guard one defect: `Vault::restore` took `Option<&[LedgerEntry]>`, so a restore with no
//! ledger, an empty one, another vault's, a cut or an edited one succeeded and brought erased
//! data back readable.

use std::path::{Path, PathBuf};

use pdvault::*;
use serde_json::Value;

const PW: &str = "pw-passphrase";

fn vault(dir: &Path) -> Vault {
    Vault::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .clock(ManualClock::new("2024-01-01T00:00:00Z".parse().unwrap()))
        .create(RootSecret::passphrase(PW))
        .unwrap()
}

fn sid(s: &str) -> SubjectId {
    SubjectId::new(s).unwrap()
}

fn readable(v: &Vault, s: &str, id: RecordId) -> bool {
    v.get(&sid(s), id, &Purpose::SUBJECT_ACCESS).is_ok()
}

fn export(v: &Vault) -> Vec<u8> {
    let mut out = Vec::new();
    v.export_ledger(&mut out).unwrap();
    out
}

fn parse(bytes: &[u8]) -> Result<LedgerDocument> {
    Vault::parse_ledger(&mut &bytes[..])
}

/// A live vault, a backup of it, and erasures on both sides of the backup.
struct Fixture {
    tmp: tempfile::TempDir,
    live: Vault,
    backup: PathBuf,
    /// The ledger before anything was erased (older than the backup).
    before: Vec<u8>,
    /// The current ledger (three entries: carol's record before the backup, alice and bob's
    /// second record after it).
    current: Vec<u8>,
    alice: RecordId,
    bob1: RecordId,
    bob2: RecordId,
    carol: RecordId,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let live = vault(&tmp.path().join("live"));
    let put = |s: &str, p: &[u8]| {
        live.put(&sid(s), RecordMeta::new(Category::Contact), p)
            .unwrap()
    };
    let alice = put("alice@example.com", b"IBAN DE89 3704");
    let bob1 = put("bob@example.com", b"bob-1");
    let bob2 = put("bob@example.com", b"bob-2");
    let carol = put("carol@example.com", b"carol");
    let before = export(&live);
    live.erase_record(&sid("carol@example.com"), carol).unwrap();
    let backup = tmp.path().join("backup");
    live.backup(&backup).unwrap();
    live.erase_subject(&sid("alice@example.com")).unwrap();
    live.erase_record(&sid("bob@example.com"), bob2).unwrap();
    let current = export(&live);
    assert_eq!(parse(&current).unwrap().len(), 3);
    Fixture {
        tmp,
        live,
        backup,
        before,
        current,
        alice,
        bob1,
        bob2,
        carol,
    }
}

impl Fixture {
    fn to(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Restores into `<tmp>/NAME` with no ledger, by name.
    fn restore_without_ledger(&self, name: &str) -> Vault {
        Vault::restore(
            &self.backup,
            &self.to(name),
            RootSecret::passphrase(PW),
            LedgerChoice::BringErasedDataBack,
        )
        .unwrap()
    }

    fn restore(&self, to: &Path, doc: &LedgerDocument) -> Result<Vault> {
        Vault::restore(
            &self.backup,
            to,
            RootSecret::passphrase(PW),
            LedgerChoice::Apply(doc),
        )
    }

    /// Restores with `doc`, expects the refusal `check` accepts, and that nothing was left.
    fn refused(&self, name: &str, doc: &LedgerDocument, check: impl Fn(&LedgerError) -> bool) {
        let to = self.to(name);
        match self.restore(&to, doc) {
            Err(Error::Ledger(e)) if check(&e) => {}
            Err(e) => panic!("{name}: refused with the wrong error: {e:?}"),
            Ok(_) => panic!("{name}: restored"),
        }
        assert!(!to.exists(), "{name}: a refused restore left {to:?}");
    }

    /// The current ledger's JSON, changed by `f`, parsed.
    fn edited(&self, f: impl FnOnce(&mut Value)) -> Result<LedgerDocument> {
        let mut v: Value = serde_json::from_slice(&self.current).unwrap();
        f(&mut v);
        parse(&serde_json::to_vec(&v).unwrap())
    }
}

/// The normal path: backup, erase, export the ledger, restore with it. Nothing erased comes
/// back (before or after the backup); what was not erased is there.
#[test]
fn restore_with_the_current_ledger_brings_nothing_erased_back() {
    let f = fixture();
    let doc = parse(&f.current).unwrap();
    let r = f.restore(&f.to("r"), &doc).unwrap();
    assert!(!readable(&r, "alice@example.com", f.alice));
    assert!(matches!(
        r.list(&sid("alice@example.com")),
        Err(Error::SubjectNotFound)
    ));
    assert!(!readable(&r, "bob@example.com", f.bob2));
    assert!(!readable(&r, "carol@example.com", f.carol));
    assert!(readable(&r, "bob@example.com", f.bob1));
    assert!(r.verify().unwrap().is_whole());
}

/// The ledger key derives from the key ring's master secret, which root rotation keeps: a
/// ledger exported after a rotation checks against a backup taken before it.
#[test]
fn a_ledger_exported_after_root_rotation_checks_against_an_older_backup() {
    let f = fixture();
    f.live
        .rotate_root(
            RootSecret::passphrase("new-passphrase"),
            Some(KdfParams::insecure_for_tests()),
        )
        .unwrap();
    let doc = parse(&export(&f.live)).unwrap();
    let r = f.restore(&f.to("r"), &doc).unwrap();
    assert!(!readable(&r, "alice@example.com", f.alice));
    assert!(readable(&r, "bob@example.com", f.bob1));
}

/// Restoring without a ledger is asked for by name, and does what the name says: the erased
/// data is back (documented on `LedgerChoice::BringErasedDataBack`).
#[test]
fn restore_without_a_ledger_brings_erased_data_back_when_asked_by_name() {
    let f = fixture();
    let r = f.restore_without_ledger("r");
    // Erased after the backup: readable again.
    let back = r
        .get(&sid("alice@example.com"), f.alice, &Purpose::SUBJECT_ACCESS)
        .unwrap();
    assert_eq!(back.payload, b"IBAN DE89 3704");
    assert!(readable(&r, "bob@example.com", f.bob2));
    // Erased before the backup: the backup does not hold it.
    assert!(!readable(&r, "carol@example.com", f.carol));
}

/// An empty ledger, and any ledger exported before the backup, are older than the backup
/// (which already holds an entry): refused.
#[test]
fn a_ledger_older_than_the_backup_is_refused() {
    let f = fixture();
    let doc = parse(&f.before).unwrap();
    assert!(doc.is_empty());
    f.refused("r", &doc, |e| {
        matches!(
            e,
            LedgerError::OlderThanBackup {
                in_backup: 1,
                in_ledger: 0
            }
        )
    });
    // A directory that was there, empty, stays (empty).
    let to = f.to("empty");
    std::fs::create_dir(&to).unwrap();
    assert!(matches!(
        f.restore(&to, &doc),
        Err(Error::Ledger(LedgerError::OlderThanBackup { .. }))
    ));
    assert_eq!(std::fs::read_dir(&to).unwrap().count(), 0);
}

/// A ledger of a copy that went its own way (a restored vault keeps the vault id and the
/// master secret, so its ledger authenticates) does not continue the backup's ledger.
#[test]
fn a_ledger_that_diverges_from_the_backup_is_refused() {
    let f = fixture();
    let copy = f.restore_without_ledger("copy");
    copy.erase_record(&sid("bob@example.com"), f.bob1).unwrap();
    let backup2 = f.to("backup2");
    copy.backup(&backup2).unwrap();
    let doc = parse(&f.current).unwrap();
    let to = f.to("r");
    let r = Vault::restore(
        &backup2,
        &to,
        RootSecret::passphrase(PW),
        LedgerChoice::Apply(&doc),
    );
    assert!(
        matches!(r, Err(Error::Ledger(LedgerError::Diverges { seq: 2 }))),
        "{r:?}"
    );
    assert!(!to.exists());
}

/// Another vault's ledger is refused, also when its vault id is edited to this vault's (its
/// code was made under another key).
#[test]
fn another_vaults_ledger_is_refused() {
    let f = fixture();
    let other = vault(&f.to("other"));
    let o = other
        .put(
            &sid("dave@example.com"),
            RecordMeta::new(Category::Contact),
            b"d",
        )
        .unwrap();
    other.erase_record(&sid("dave@example.com"), o).unwrap();
    let theirs = export(&other);
    f.refused("r1", &parse(&theirs).unwrap(), |e| {
        matches!(e, LedgerError::OtherVault { .. })
    });
    let ours: Value = serde_json::from_slice(&f.current).unwrap();
    let mut v: Value = serde_json::from_slice(&theirs).unwrap();
    v["vault"] = ours["vault"].clone();
    let doc = parse(&serde_json::to_vec(&v).unwrap()).unwrap();
    f.refused("r2", &doc, |e| matches!(e, LedgerError::MacMismatch));
}

/// A ledger cut short anywhere is refused by the parser, as truncated.
#[test]
fn a_truncated_ledger_is_refused() {
    let f = fixture();
    let whole = f.current.trim_ascii_end();
    for cut in 0..whole.len() {
        match parse(&whole[..cut]) {
            Err(Error::Ledger(LedgerError::Truncated)) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    assert!(parse(whole).is_ok());
}

/// Entries removed or changed: refused, whether the stated count was left (count mismatch) or
/// fixed (code mismatch).
#[test]
fn an_edited_ledger_is_refused() {
    let f = fixture();
    let drop_last = |v: &mut Value| {
        v["entries"].as_array_mut().unwrap().pop();
    };
    assert!(matches!(
        f.edited(drop_last),
        Err(Error::Ledger(LedgerError::CountMismatch {
            stated: 3,
            found: 2
        }))
    ));
    type Edit = fn(&mut Value);
    let edits: [(&str, Edit); 6] = [
        ("last entry removed", |v| {
            v["entries"].as_array_mut().unwrap().pop();
            v["count"] = 2.into();
        }),
        ("first entry removed", |v| {
            v["entries"].as_array_mut().unwrap().remove(0);
            v["count"] = 2.into();
        }),
        ("subject erasure turned off", |v| {
            v["entries"][1]["subject_erased"] = false.into();
        }),
        ("record list emptied", |v| {
            v["entries"][2]["records"] = Value::Array(vec![]);
        }),
        ("entries swapped", |v| {
            v["entries"].as_array_mut().unwrap().swap(1, 2);
        }),
        ("code altered", |v| {
            let mac = v["mac"].as_str().unwrap();
            let flipped = if mac.starts_with('0') { "1" } else { "0" };
            v["mac"] = format!("{flipped}{}", &mac[1..]).into();
        }),
    ];
    for (what, edit) in edits {
        let doc = f.edited(edit).unwrap();
        f.refused(what, &doc, |e| matches!(e, LedgerError::MacMismatch));
    }
    // Nothing of the backup was lost to the refusals: the current ledger still restores it.
    let r = f.restore(&f.to("ok"), &parse(&f.current).unwrap()).unwrap();
    assert!(readable(&r, "bob@example.com", f.bob1));
}

/// The bare JSON array of earlier versions, and a document of another format or version, are
/// refused by the parser with their own errors.
#[test]
fn the_old_bare_array_and_unknown_formats_are_refused() {
    let f = fixture();
    let entries = serde_json::to_vec(f.live.ledger().unwrap().as_slice()).unwrap();
    for old in [&b"[]\n"[..], b"  [", &entries] {
        assert!(
            matches!(parse(old), Err(Error::Ledger(LedgerError::Unauthenticated))),
            "{:?}",
            String::from_utf8_lossy(old)
        );
    }
    let newer = f.edited(|v| v["version"] = 2.into());
    assert!(matches!(
        newer,
        Err(Error::Ledger(LedgerError::UnsupportedFormat { .. }))
    ));
    let other = f.edited(|v| v["format"] = "pdvault-export".into());
    assert!(matches!(
        other,
        Err(Error::Ledger(LedgerError::UnsupportedFormat { .. }))
    ));
    let extra = f.edited(|v| v["note"] = "x".into());
    assert!(matches!(
        extra,
        Err(Error::Ledger(LedgerError::Malformed(_)))
    ));
    assert!(matches!(
        parse(b"{\"format\": 1}"),
        Err(Error::Ledger(LedgerError::Malformed(_)))
    ));
}
