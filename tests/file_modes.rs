//! File modes: every directory a vault creates is 0700 and every file 0600, whatever the umask
//! of the process — after create, writes, an erasure, a backup, a restore, and for the CLI's
//! `export --out`.
//!
//! Guards against vault files readable by every user: `vault.pdv`, `LOCK` and sled's files were
//! created 0644 and the directories 0755, and `export --out` wrote plaintext personal data to a
//! 0644 file, overwriting any file already there.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use pdvault::{
    Category, KdfParams, LedgerChoice, Purpose, RecordMeta, RootSecret, SubjectId, Vault,
};

const PW: &str = "file-modes-passphrase";

/// Every entry of the tree at `root` (itself included) whose mode is not 0700 (directories) or
/// 0600 (files), with its mode.
fn not_private(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut bad = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            if mode != 0o700 {
                bad.push((p.clone(), mode));
            }
            for e in std::fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
        } else if mode != 0o600 {
            bad.push((p, mode));
        }
    }
    bad
}

/// [`assert_private`] for a vault that is open: sled writes blob files from its own I/O threads
/// at any moment, and they are made private at its next flush or open. Until then they lie in a
/// 0700 directory that keeps everyone else out, which is what is checked for them here; every
/// other file, and every directory, must be private already.
fn assert_private_while_open(root: &Path, when: &str) {
    let bad: Vec<_> = not_private(root)
        .into_iter()
        .filter(|(p, _)| !p.parent().is_some_and(|d| d.ends_with("store/blobs")))
        .collect();
    assert!(bad.is_empty(), "{when}: not private: {bad:?}");
}

fn assert_private(root: &Path, when: &str) {
    let bad = not_private(root);
    assert!(
        bad.is_empty(),
        "{when}: not private: {:?}",
        bad.iter()
            .map(|(p, m)| format!("{} {m:o}", p.display()))
            .collect::<Vec<_>>()
    );
}

fn count_files(root: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(root).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            n += count_files(&e.path());
        } else {
            n += 1;
        }
    }
    n
}

#[test]
fn every_file_and_directory_of_a_vault_is_private_through_its_life() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let builder = || Vault::builder(&dir).kdf(KdfParams::insecure_for_tests());
    let v = builder().create(RootSecret::passphrase(PW)).unwrap();
    assert_private(&dir, "after create");

    let alice = SubjectId::new("alice@example.com").unwrap();
    let bob = SubjectId::new("bob@example.com").unwrap();
    let billing = Purpose::new("billing").unwrap();
    let meta = || RecordMeta::new(Category::Contact).purpose(billing.clone());
    for i in 0..20u8 {
        v.put(&alice, meta(), &[i; 300]).unwrap();
    }
    // Large enough for sled to write it to a file of its own under `blobs/`.
    v.put(&bob, meta(), &vec![7u8; 1 << 20]).unwrap();
    v.flush().unwrap();
    assert!(
        count_files(&dir.join("store").join("blobs")) > 0,
        "the large value makes sled write a blob file"
    );
    assert_private_while_open(&dir, "after writes");

    v.erase_subject(&alice).unwrap();
    assert_private_while_open(&dir, "after an erasure");

    let backup = tmp.path().join("backup");
    v.backup(&backup).unwrap();
    assert_private(&backup, "the backup");
    assert_private_while_open(&dir, "after a backup");
    let ledger = v.ledger_document().unwrap();
    v.close().unwrap();
    assert_private(&dir, "after close");

    let restored = tmp.path().join("restored");
    let r = Vault::restore(
        &backup,
        &restored,
        RootSecret::passphrase(PW),
        LedgerChoice::Apply(&ledger),
    )
    .unwrap();
    assert_private_while_open(&restored, "the restored vault, open");
    r.close().unwrap();
    assert_private(&restored, "the restored vault, closed");

    let v = builder().open(RootSecret::passphrase(PW)).unwrap();
    v.put(&bob, meta(), b"more").unwrap();
    v.close().unwrap();
    assert_private(&dir, "after a reopen and a write");
}

/// The modes are set explicitly, not left to the umask: files and directories made wider than
/// the vault wants (as an umask of 000 would, or a vault made by an older pdvault) are narrowed
/// at the next create, open or write.
#[test]
fn modes_are_set_explicitly_not_left_to_the_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let v = Vault::builder(&dir)
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::passphrase(PW))
        .unwrap();
    assert_private(&dir, "a pre-existing 0777 directory after create");
    v.close().unwrap();

    // Widen everything, as an older pdvault under umask 000 would have left it.
    let mut todo = vec![dir.clone()];
    while let Some(p) = todo.pop() {
        let is_dir = p.is_dir();
        let mode = if is_dir { 0o777 } else { 0o666 };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        if is_dir {
            for e in std::fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
        }
    }
    let v = Vault::builder(&dir)
        .open(RootSecret::passphrase(PW))
        .unwrap();
    let alice = SubjectId::new("alice@example.com").unwrap();
    v.put(
        &alice,
        RecordMeta::new(Category::Contact).purpose(Purpose::new("billing").unwrap()),
        b"x",
    )
    .unwrap();
    v.close().unwrap();
    assert_private(&dir, "a widened vault after open, a write and close");
}

#[test]
fn a_private_file_is_new_unless_replacing_is_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("out.json");
    std::fs::write(&path, b"already here").unwrap();
    let e = pdvault::create_private_file(&path, false).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&path).unwrap(), b"already here");

    // A symbolic link is replaced, never written through.
    let target = tmp.path().join("target");
    std::fs::write(&target, b"target").unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert!(pdvault::create_private_file(&link, false).is_err());
    drop(pdvault::create_private_file(&link, true).unwrap());
    assert_eq!(std::fs::read(&target).unwrap(), b"target");
    assert!(!std::fs::symlink_metadata(&link).unwrap().is_symlink());

    drop(pdvault::create_private_file(&path, true).unwrap());
    assert_eq!(std::fs::read(&path).unwrap(), b"");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        0o600
    );
}

#[cfg(feature = "cli")]
mod cli {
    use super::*;
    use std::process::{Command, Output, Stdio};

    /// Runs the binary under umask 000, so that only modes the binary sets itself are private.
    fn pdvault(dir: &Path, args: &[&str]) -> Output {
        Command::new("sh")
            .arg("-c")
            .arg(r#"umask 000; exec "$0" "$@""#)
            .arg(env!("CARGO_BIN_EXE_pdvault"))
            .args(args)
            .env("PDVAULT_DIR", dir)
            .env("PDVAULT_PASSPHRASE", PW)
            .env("PDVAULT_TEST_FAST_KDF", "1")
            .env_remove("PDVAULT_NEW_PASSPHRASE")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(dir: &Path, args: &[&str]) -> String {
        let out = pdvault(dir, args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn the_cli_under_umask_000_keeps_the_vault_and_its_exports_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vault");
        ok(&dir, &["init"]);
        assert_private(&dir, "after init");
        let id = {
            let out = Command::new("sh")
                .arg("-c")
                .arg(r#"umask 000; echo '+44 20 7946 0000' | "$0" "$@""#)
                .arg(env!("CARGO_BIN_EXE_pdvault"))
                .args([
                    "put",
                    "--subject",
                    "alice@example.com",
                    "--category",
                    "contact",
                    "--purpose",
                    "billing",
                ])
                .env("PDVAULT_DIR", &dir)
                .env("PDVAULT_PASSPHRASE", PW)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        assert!(!id.trim().is_empty());
        assert_private(&dir, "after put");

        let export = tmp.path().join("alice.json");
        let out = export.to_str().unwrap();
        ok(
            &dir,
            &["export", "--subject", "alice@example.com", "--out", out],
        );
        let mode = std::fs::metadata(&export).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600, "the export file");
        let first = std::fs::read(&export).unwrap();
        assert!(String::from_utf8_lossy(&first).contains("pdvault-export"));

        // A second export to the same file is refused, and the file is left as it was.
        std::fs::write(&export, b"the operator's own file").unwrap();
        let again = pdvault(
            &dir,
            &["export", "--subject", "alice@example.com", "--out", out],
        );
        assert!(!again.status.success());
        let stderr = String::from_utf8_lossy(&again.stderr);
        assert!(stderr.contains("--force"), "{stderr}");
        assert_eq!(std::fs::read(&export).unwrap(), b"the operator's own file");

        // Asked for, it is replaced by a private file.
        std::fs::set_permissions(&export, std::fs::Permissions::from_mode(0o644)).unwrap();
        ok(
            &dir,
            &[
                "export",
                "--subject",
                "alice@example.com",
                "--out",
                out,
                "--force",
            ],
        );
        let mode = std::fs::metadata(&export).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600, "the replaced export file");
        assert!(
            String::from_utf8_lossy(&std::fs::read(&export).unwrap()).contains("pdvault-export")
        );

        ok(&dir, &["erase", "--subject", "alice@example.com"]);
        assert_private(&dir, "after erase");
        let backup = tmp.path().join("backup");
        ok(&dir, &["backup", "--out", backup.to_str().unwrap()]);
        assert_private(&backup, "the backup");
        let ledger = tmp.path().join("ledger.json");
        ok(
            &dir,
            &["ledger", "export", "--out", ledger.to_str().unwrap()],
        );
        let mode = std::fs::metadata(&ledger).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600, "the ledger file");
        let restored = tmp.path().join("restored");
        ok(
            &dir,
            &[
                "restore",
                "--from",
                backup.to_str().unwrap(),
                "--to",
                restored.to_str().unwrap(),
                "--ledger",
                ledger.to_str().unwrap(),
            ],
        );
        assert_private(&restored, "the restored vault");
        assert_private(&dir, "at the end");
    }
}
