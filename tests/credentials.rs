//! Credentials: stored only as Argon2id hashes, verified, never read.
//!
//! - The right secret verifies, a wrong one does not; the check is audited, without the value.
//! - No API path returns the secret or its hash: `get` refuses a credential whatever the
//!   purpose, scans leave it out, `export` says only that it exists; `put`, `put_many`,
//!   `update`, `rectify` and `import` refuse one, and change nothing.
//! - No file of the vault holds the clear secret (nor the clear hash).
//! - The CLI: `credential set` (secret on stdin or in a file) and `credential verify` (exit 0 or
//!   1), by the real binary.

mod common;

use std::ops::ControlFlow;
use std::path::Path;

use pdvault::rights::export::ExportPayload;
use pdvault::*;

const PW: &str = "credentials-passphrase";
/// The secret: a marker looked for in every output and file.
const SECRET: &[u8] = b"secret-marker-Tr0ub4dor&3";
/// A wrong candidate, also a marker.
const WRONG: &[u8] = b"wrong-marker-hunter2";

fn create(dir: &Path) -> Vault {
    Vault::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::passphrase(PW))
        .unwrap()
}

fn sid(s: &str) -> SubjectId {
    SubjectId::new(s).unwrap()
}

fn purpose(p: &str) -> Purpose {
    Purpose::new(p).unwrap()
}

fn login_meta() -> RecordMeta {
    RecordMeta::new(Category::Credential).purpose(purpose("login"))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir` that holds `needle`.
fn files_with(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if contains(&std::fs::read(&path).unwrap(), needle) {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn the_right_secret_verifies_and_a_wrong_one_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let v = create(tmp.path());
    let alice = sid("alice@example.com");
    let id = v.set_credential(&alice, login_meta(), SECRET).unwrap();
    assert!(v.verify_credential(&alice, id, SECRET).unwrap());
    assert!(!v.verify_credential(&alice, id, WRONG).unwrap());
    // One byte off, a prefix, the secret with a newline: none matches.
    let mut off = SECRET.to_vec();
    off[0] ^= 1;
    assert!(!v.verify_credential(&alice, id, &off).unwrap());
    assert!(!v.verify_credential(&alice, id, &SECRET[..5]).unwrap());
    assert!(
        !v.verify_credential(&alice, id, &[SECRET, b"\n"].concat())
            .unwrap()
    );
    // A second credential of the same secret is another record; both verify; after reopening too.
    let id2 = v.set_credential(&alice, login_meta(), SECRET).unwrap();
    assert_ne!(id, id2);
    v.close().unwrap();
    let v = Vault::builder(tmp.path())
        .open(RootSecret::passphrase(PW))
        .unwrap();
    assert!(v.verify_credential(&alice, id, SECRET).unwrap());
    assert!(v.verify_credential(&alice, id2, SECRET).unwrap());
    // Another subject's record is not found under alice; bob has no such record.
    let bob = sid("bob@example.com");
    let bobs = v.set_credential(&bob, login_meta(), WRONG).unwrap();
    assert!(matches!(
        v.verify_credential(&alice, bobs, WRONG),
        Err(Error::RecordNotFound(_))
    ));
    assert!(matches!(
        v.verify_credential(&sid("nobody"), id, SECRET),
        Err(Error::SubjectNotFound)
    ));
    // Erased: gone.
    v.erase_record(&alice, id).unwrap();
    assert!(matches!(
        v.verify_credential(&alice, id, SECRET),
        Err(Error::RecordNotFound(_))
    ));
    assert!(v.verify_credential(&alice, id2, SECRET).unwrap());
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let v = create(tmp.path());
    let alice = sid("alice@example.com");
    // Metadata of another category, an empty or overlong secret: refused, nothing written.
    assert!(matches!(
        v.set_credential(&alice, RecordMeta::new(Category::Account), SECRET),
        Err(Error::Input(InputError::Field {
            field: "category",
            ..
        }))
    ));
    assert!(matches!(
        v.set_credential(&alice, login_meta(), b""),
        Err(Error::Input(InputError::Field {
            field: "secret",
            ..
        }))
    ));
    assert!(matches!(
        v.set_credential(&alice, login_meta(), &vec![b'x'; MAX_SECRET_LEN + 1]),
        Err(Error::Input(InputError::Field {
            field: "secret",
            ..
        }))
    ));
    assert!(matches!(v.list(&alice), Err(Error::SubjectNotFound)));
    // A record that is not a credential is not verified against.
    let contact = v
        .put(
            &alice,
            RecordMeta::new(Category::Contact).purpose(purpose("login")),
            SECRET,
        )
        .unwrap();
    assert!(matches!(
        v.verify_credential(&alice, contact, SECRET),
        Err(Error::Input(InputError::NotACredential(r))) if r == contact
    ));
    // A restricted subject's credential is not processed.
    let id = v.set_credential(&alice, login_meta(), SECRET).unwrap();
    v.restrict(&alice, Some(&Category::Credential)).unwrap();
    assert!(matches!(
        v.verify_credential(&alice, id, SECRET),
        Err(Error::Access(AccessError::Restricted { .. }))
    ));
    v.unrestrict(&alice, Some(&Category::Credential)).unwrap();
    assert!(v.verify_credential(&alice, id, SECRET).unwrap());
    // The policy's bases hold for credentials too.
    v.set_policy(Policy::from_toml("[bases]\ncredential = [\"contract\"]").unwrap())
        .unwrap();
    assert!(matches!(
        v.set_credential(&alice, login_meta().basis(LegalBasis::Consent), SECRET),
        Err(Error::Input(InputError::BasisNotAllowed { .. }))
    ));
}

#[test]
fn no_api_path_returns_the_secret_or_its_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let v = create(tmp.path());
    let alice = sid("alice@example.com");
    let contact = v
        .put(
            &alice,
            RecordMeta::new(Category::Contact).purpose(purpose("login")),
            b"555-0100",
        )
        .unwrap();
    let id = v.set_credential(&alice, login_meta(), SECRET).unwrap();
    let before = v.stats().unwrap();

    // get: refused for every purpose, the subject's own access included; audited as refused.
    for p in [
        "login",
        Purpose::SUBJECT_ACCESS.as_str(),
        Purpose::STORAGE.as_str(),
        "other",
    ] {
        assert!(
            matches!(
                v.get(&alice, id, &purpose(p)),
                Err(Error::Access(AccessError::CredentialNotReadable { record })) if record == id
            ),
            "{p}"
        );
    }
    assert!(
        v.get_value::<String>(&alice, id, &purpose("login"))
            .is_err()
    );
    // Scans leave it out.
    for p in ["login", Purpose::SUBJECT_ACCESS.as_str()] {
        let all = v.read_all(&alice, &purpose(p)).unwrap();
        assert_eq!(
            all.iter().map(|r| r.info.record).collect::<Vec<_>>(),
            [contact]
        );
        let mut seen = Vec::new();
        v.read_each(&alice, &purpose(p), |r| {
            seen.push(r.info.record);
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(seen, [contact]);
    }
    // list: the credential's metadata, as for any record (nothing decrypted).
    let listed = v.list(&alice).unwrap();
    assert!(
        listed
            .iter()
            .any(|r| r.record == id && r.meta.category == Category::Credential)
    );
    // export: that it exists, no hash.
    let mut doc = Vec::new();
    v.export(&alice, &mut doc).unwrap();
    assert!(!contains(&doc, SECRET));
    assert!(!contains(&doc, b"argon2"));
    let json: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    let cred = json["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["category"] == "credential")
        .expect("the credential is listed");
    assert_eq!(cred["record"], id.to_string());
    assert_eq!(cred["payload"], "withheld");
    assert_eq!(cred["fideslang"], "user.authorization.credentials");

    // Writes by any other path: refused, nothing changed.
    let refused = |r: Result<()>| {
        assert!(
            matches!(r, Err(Error::Input(InputError::CredentialWrite))),
            "{r:?}"
        )
    };
    refused(v.put(&alice, login_meta(), SECRET).map(drop));
    refused(
        v.put_many([
            (&alice, RecordMeta::new(Category::Usage), &b"fine"[..]),
            (&alice, login_meta(), SECRET),
        ])
        .map(drop),
    );
    refused(v.put_value(&alice, login_meta(), &"x").map(drop));
    refused(v.update(&alice, id, WRONG));
    refused(v.rectify(&alice, id, None, Some(WRONG), "reset"));
    refused(v.rectify(
        &alice,
        id,
        Some(login_meta().purpose(purpose("x"))),
        None,
        "meta",
    ));
    // A record may not become a credential by rectification either.
    refused(v.rectify(
        &alice,
        contact,
        Some(login_meta()),
        Some(SECRET),
        "to a credential",
    ));
    assert_eq!(v.stats().unwrap(), before);
    assert!(v.verify_credential(&alice, id, SECRET).unwrap());
    assert_eq!(
        v.get(&alice, contact, &purpose("login")).unwrap().payload,
        b"555-0100"
    );

    // import: the export with its credential is refused whole, in another vault and this one.
    let other_dir = tempfile::tempdir().unwrap();
    let other = create(other_dir.path());
    let e = other.import(&mut doc.as_slice()).unwrap_err();
    assert!(
        matches!(&e, Error::Input(InputError::DocumentEntry { error, .. })
            if matches!(**error, InputError::CredentialWrite)),
        "{e:?}"
    );
    assert!(matches!(other.list(&alice), Err(Error::SubjectNotFound)));
    // Even a document that carries a value for it (as text).
    let mut forged = json.clone();
    for r in forged["records"].as_array_mut().unwrap() {
        if r["category"] == "credential" {
            r["payload"] = serde_json::json!({"text": "secret-marker-Tr0ub4dor&3"});
        }
    }
    let forged = serde_json::to_vec(&forged).unwrap();
    assert!(matches!(
        other.import(&mut forged.as_slice()),
        Err(Error::Input(InputError::DocumentEntry { .. }))
    ));
    assert!(matches!(other.list(&alice), Err(Error::SubjectNotFound)));
    // The document's Debug says the payload was withheld and nothing more.
    let parsed: pdvault::rights::export::ExportDocument = serde_json::from_slice(&doc).unwrap();
    assert!(
        parsed
            .records
            .iter()
            .any(|r| r.payload == ExportPayload::Withheld)
    );

    // Debug and error messages carry neither.
    let dbg = format!("{v:?} {listed:?} {parsed:?} {e} {e:?}");
    assert!(!dbg.contains("secret-marker") && !dbg.contains("argon2"));
}

#[test]
fn verification_is_audited_without_the_value() {
    let tmp = tempfile::tempdir().unwrap();
    let v = create(tmp.path());
    let alice = sid("alice@example.com");
    let id = v.set_credential(&alice, login_meta(), SECRET).unwrap();
    assert!(v.verify_credential(&alice, id, SECRET).unwrap());
    assert!(!v.verify_credential(&alice, id, WRONG).unwrap());
    assert!(v.get(&alice, id, &purpose("login")).is_err());
    v.flush().unwrap();
    let entries = v.audit_entries(Some(&alice), None).unwrap();
    let of_record: Vec<_> = entries.iter().filter(|e| e.record == Some(id)).collect();
    let ops: Vec<(AuditOp, Option<&str>)> = of_record
        .iter()
        .map(|e| (e.op, e.note.as_deref()))
        .collect();
    assert_eq!(ops[0], (AuditOp::Put, None));
    assert_eq!(ops[1], (AuditOp::Read, Some("credential verified: match")));
    assert_eq!(
        ops[2],
        (AuditOp::Read, Some("credential verified: no match"))
    );
    assert_eq!(ops[3].0, AuditOp::Refused);
    assert!(
        of_record
            .iter()
            .all(|e| e.category.as_deref() == Some("credential"))
    );
    let all = format!("{entries:?}");
    assert!(!all.contains("secret-marker") && !all.contains("wrong-marker"));
}

#[test]
fn no_file_of_the_vault_holds_the_secret_or_the_clear_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let v = create(&dir);
    let alice = sid("alice@example.com");
    let id = v.set_credential(&alice, login_meta(), SECRET).unwrap();
    for _ in 0..3 {
        assert!(v.verify_credential(&alice, id, SECRET).unwrap());
        assert!(!v.verify_credential(&alice, id, WRONG).unwrap());
    }
    // A second credential, then the first erased (its group re-sealed), then a backup.
    let id2 = v.set_credential(&alice, login_meta(), SECRET).unwrap();
    v.erase_record(&alice, id).unwrap();
    assert!(v.verify_credential(&alice, id2, SECRET).unwrap());
    v.backup(&tmp.path().join("backup")).unwrap();
    v.close().unwrap();
    for needle in [SECRET, WRONG, b"$argon2id$", b"m=19456,t=2,p=1"] {
        assert_eq!(
            files_with(tmp.path(), needle),
            Vec::<std::path::PathBuf>::new(),
            "{}",
            String::from_utf8_lossy(needle)
        );
    }
}

#[cfg(feature = "cli")]
mod cli {
    use std::path::Path;

    use super::common::binary::pdvault;

    use super::{SECRET, WRONG, contains, files_with};

    fn ok(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> String {
        let out = pdvault(dir, args, stdin);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!contains(&out.stdout, SECRET) && !contains(&out.stderr, SECRET));
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    #[test]
    fn credential_set_and_verify() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("v");
        ok(&dir, &["init"], None);
        let s = "alice@example.com";
        // From stdin; one trailing newline is not part of the secret.
        let id = ok(
            &dir,
            &["credential", "set", "--subject", s, "--purpose", "login"],
            Some(&[SECRET, b"\n"].concat()),
        )
        .trim()
        .to_owned();
        assert_eq!(id.len(), 32);
        let verify = |secret: &[u8]| {
            pdvault(
                &dir,
                &["credential", "verify", "--subject", s, "--record", &id],
                Some(secret),
            )
        };
        let right = verify(SECRET);
        assert_eq!(right.status.code(), Some(0), "{right:?}");
        assert_eq!(String::from_utf8_lossy(&right.stdout).trim(), "match");
        assert_eq!(verify(&[SECRET, b"\n"].concat()).status.code(), Some(0));
        let wrong = verify(WRONG);
        assert_eq!(wrong.status.code(), Some(1), "{wrong:?}");
        assert_eq!(String::from_utf8_lossy(&wrong.stdout).trim(), "no match");
        // From a file, with --json.
        let file = tmp.path().join("secret");
        std::fs::write(&file, SECRET).unwrap();
        let out = ok(
            &dir,
            &[
                "--json",
                "credential",
                "verify",
                "--subject",
                s,
                "--record",
                &id,
                "--secret-file",
                file.to_str().unwrap(),
            ],
            None,
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["match"], true);
        let id2 = ok(
            &dir,
            &[
                "credential",
                "set",
                "--subject",
                s,
                "--secret-file",
                file.to_str().unwrap(),
            ],
            None,
        )
        .trim()
        .to_owned();
        assert_eq!(
            pdvault(
                &dir,
                &["credential", "verify", "--subject", s, "--record", &id2],
                Some(SECRET)
            )
            .status
            .code(),
            Some(0)
        );
        // No secret: refused (never from argv: there is no such flag).
        let empty = pdvault(&dir, &["credential", "set", "--subject", s], Some(b""));
        assert!(!empty.status.success());
        let argv = pdvault(
            &dir,
            &["credential", "set", "--subject", s, "--secret", "x"],
            None,
        );
        assert!(!argv.status.success());
        // get, put and export: refused, or without the value.
        let got = pdvault(&dir, &["get", "--subject", s, "--record", &id], None);
        assert!(!got.status.success());
        assert!(String::from_utf8_lossy(&got.stderr).contains("credential"));
        let put = pdvault(
            &dir,
            &["put", "--subject", s, "--category", "credential"],
            Some(SECRET),
        );
        assert!(!put.status.success());
        let export = ok(&dir, &["export", "--subject", s], None);
        assert!(export.contains("\"withheld\"") && !export.contains("argon2"));
        let read = ok(&dir, &["read", "--subject", s], None);
        assert!(!read.contains(&id));
        // Nothing in the vault's files.
        for needle in [SECRET, WRONG, b"$argon2id$"] {
            assert!(files_with(&dir, needle).is_empty());
        }
    }
}
