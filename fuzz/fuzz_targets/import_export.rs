//! Imports arbitrary bytes as an export document into one vault per process: it must never
//! panic nor fail with an integrity or storage error; a refused document stores nothing; a
//! document that imports exports again as valid JSON holding at least the records imported, and
//! is refused if imported again (its record ids exist).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pdvault::{Durability, Error, KdfParams, RootSecret, SubjectId, Vault};

#[derive(serde::Deserialize)]
struct Head {
    subject_id: String,
}

struct Fixture {
    // Held for the process's life: the vault's directory.
    _dir: tempfile::TempDir,
    vault: Vault,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let vault = Vault::builder(dir.path())
            .kdf(KdfParams::insecure_for_tests())
            // Imports commit without a sync each: the fuzzer runs thousands of them.
            .durability(Durability::Deferred {
                flush_every_ms: 60_000,
            })
            .create(RootSecret::passphrase("fuzz-passphrase"))
            .expect("create a vault");
        Fixture { _dir: dir, vault }
    })
}

fuzz_target!(|data: &[u8]| {
    let vault = &fixture().vault;
    let before = vault.stats().expect("stats");
    let mut input = data;
    let report = match vault.import(&mut input) {
        Ok(r) => r,
        Err(e) => {
            assert!(
                !matches!(e, Error::Integrity(_) | Error::Storage(_) | Error::Open(_)),
                "import: unexpected error {e:?}"
            );
            // A refused document stores nothing: no record, no subject.
            assert_eq!(
                vault.stats().expect("stats"),
                before,
                "a refused import wrote"
            );
            return;
        }
    };
    // Find the subject again from the document (read as import reads it: fields it ignores are
    // skipped unchecked, invalid UTF-8 included), and export it.
    let head: Head = serde_json::from_reader(data).expect("an imported document names its subject");
    let subject = SubjectId::new(head.subject_id).expect("an imported subject id is valid");
    let mut out = Vec::new();
    let n = vault
        .export(&subject, &mut out)
        .expect("an imported subject exports");
    assert!(
        n as usize >= report.records,
        "export holds fewer records than imported"
    );
    let _: serde_json::Value = serde_json::from_slice(&out).expect("an export is valid JSON");
    // The same document again is refused: its record ids now exist for the subject.
    if report.records > 0 {
        let mut again = data;
        assert!(
            vault.import(&mut again).is_err(),
            "a document imported twice"
        );
    }
});
