//! Damaged store files: sled 0.34 opens damaged files silently with rows missing. The vault must
//! report the damage (at open, or by `verify`), never serve a partial vault as whole, and never
//! panic.

use std::path::{Path, PathBuf};

use pdvault::*;

mod common;

fn sa() -> Purpose {
    Purpose::SUBJECT_ACCESS
}

fn largest_file(dir: &Path) -> PathBuf {
    let mut best: Option<(u64, PathBuf)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let len = std::fs::metadata(&p).unwrap().len();
                if best.as_ref().is_none_or(|(l, _)| len > *l) {
                    best = Some((len, p));
                }
            }
        }
    }
    best.unwrap().1
}

/// A vault with 1,500 records, closed; returns the records written.
fn populated(dir: &Path) -> Vec<(SubjectId, RecordId, Vec<u8>)> {
    let v = Vault::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .durability(Durability::Deferred {
            flush_every_ms: 1000,
        })
        .create(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    let mut out = Vec::new();
    for i in 0..30 {
        let s = SubjectId::new(format!("subject-{i}")).unwrap();
        let items: Vec<(RecordMeta, Vec<u8>)> = (0..50)
            .map(|j| {
                (
                    RecordMeta::new(Category::Usage),
                    format!("{i}-{j}-{}", "x".repeat(300)).into_bytes(),
                )
            })
            .collect();
        let ids = v
            .put_many(items.iter().map(|(m, p)| (&s, m.clone(), p.as_slice())))
            .unwrap();
        for (id, (_, p)) in ids.into_iter().zip(items) {
            out.push((s.clone(), id, p));
        }
    }
    v.close().unwrap();
    out
}

/// Opens a damaged copy; the outcome must be an error, a verify that reports damage, or a vault
/// that serves every record correctly. Never a panic, never a silent loss.
fn judge(dir: &Path, records: &[(SubjectId, RecordId, Vec<u8>)], what: &str) -> &'static str {
    let outcome = std::panic::catch_unwind(|| {
        let v = match Vault::builder(dir).open(RootSecret::passphrase("pw-passphrase")) {
            Err(_) => return "refused at open",
            Ok(v) => v,
        };
        let whole = v.verify().map(|r| r.is_whole()).unwrap_or(false);
        let intact = records.iter().all(|(s, id, p)| {
            v.get(s, *id, &sa())
                .map(|r| &r.payload == p)
                .unwrap_or(false)
        });
        match (whole, intact) {
            (false, _) => "reported by verify",
            (true, true) => "intact",
            (true, false) => "SERVED AS WHOLE WITH DATA MISSING",
        }
    });
    let outcome = outcome.unwrap_or_else(|_| panic!("{what}: the vault panicked"));
    assert_ne!(outcome, "SERVED AS WHOLE WITH DATA MISSING", "{what}");
    outcome
}

#[test]
fn truncated_garbled_and_zeroed_store_files_are_never_served_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let records = populated(&base);
    type Damage = fn(&mut Vec<u8>);
    let damages: [(&str, Damage); 4] = [
        ("truncated to half", |b| b.truncate(b.len() / 2)),
        ("truncated to a tenth", |b| b.truncate(b.len() / 10)),
        ("garbled in the middle", |b| {
            let mid = b.len() / 2;
            let end = (mid + 4096).min(b.len());
            for (i, x) in b[mid..end].iter_mut().enumerate() {
                *x ^= 0x5a ^ (i as u8);
            }
        }),
        ("zero-filled", |b| b.iter_mut().for_each(|x| *x = 0)),
    ];
    for (i, (what, damage)) in damages.iter().enumerate() {
        let copy = tmp.path().join(format!("copy-{i}"));
        common::copy_tree(&base, &copy);
        let victim = largest_file(&copy.join("store"));
        let mut bytes = std::fs::read(&victim).unwrap();
        damage(&mut bytes);
        std::fs::write(&victim, &bytes).unwrap();
        let outcome = judge(&copy, &records, what);
        println!("{what}: {outcome}");
    }
}

#[test]
fn a_store_older_than_the_vault_file_is_data_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let v = Vault::builder(&dir)
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    let s = SubjectId::new("s").unwrap();
    v.put(&s, RecordMeta::new(Category::Contact), b"first")
        .unwrap();
    v.close().unwrap();
    let old_store = tmp.path().join("old-store");
    common::copy_tree(&dir.join("store"), &old_store);
    let v = Vault::builder(&dir)
        .open(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    v.put(&s, RecordMeta::new(Category::Contact), b"second")
        .unwrap();
    v.close().unwrap();
    // The newest writes are gone: the store is the old copy, the vault file the new one.
    std::fs::remove_dir_all(dir.join("store")).unwrap();
    common::copy_tree(&old_store, &dir.join("store"));
    match Vault::builder(&dir).open(RootSecret::passphrase("pw-passphrase")) {
        Err(Error::Open(OpenError::DataLoss(msg))) => {
            assert!(msg.contains("newest writes"), "{msg}")
        }
        other => panic!("expected data loss, got {other:?}"),
    }
    // An empty store behind a used vault file is data loss too.
    std::fs::remove_dir_all(dir.join("store")).unwrap();
    assert!(matches!(
        Vault::builder(&dir).open(RootSecret::passphrase("pw-passphrase")),
        Err(Error::Open(OpenError::DataLoss(_)))
    ));
}

#[test]
fn foreign_files_in_the_vault_directory_do_not_break_it() {
    let tmp = tempfile::tempdir().unwrap();
    let v = Vault::builder(tmp.path())
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    let s = SubjectId::new("s").unwrap();
    let id = v.put(&s, RecordMeta::new(Category::Contact), b"x").unwrap();
    v.close().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), b"hello").unwrap();
    std::fs::write(tmp.path().join("vault.pdv.tmp"), b"half-written junk").unwrap();
    let v = Vault::builder(tmp.path())
        .open(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    assert_eq!(v.get(&s, id, &sa()).unwrap().payload, b"x");
    drop(v);
    // A foreign file in place of the vault file.
    std::fs::write(tmp.path().join("vault.pdv"), b"<html>not a vault</html>").unwrap();
    assert!(matches!(
        Vault::builder(tmp.path()).open(RootSecret::passphrase("pw-passphrase")),
        Err(Error::Open(OpenError::HeaderDamaged(_)))
    ));
}
