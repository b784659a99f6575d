//! Input that used to be accepted silently: short passphrases at create and rotation, subject
//! identifiers with surrounding whitespace, and a failed create leaving a directory behind.

use std::path::Path;

use pdvault::{
    Category, Error, InputError, KdfParams, OpenError, Purpose, RecordMeta, RootSecret, SubjectId,
    Vault,
};

const PW: &str = "new-secrets-passphrase";

fn builder(dir: &Path) -> pdvault::VaultBuilder {
    Vault::builder(dir).kdf(KdfParams::insecure_for_tests())
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Guards against the empty (or any short) passphrase being accepted at create.
#[test]
fn create_refuses_a_passphrase_below_the_minimum_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    for short in ["", "1234567", "ünïcöd"] {
        let r = builder(&dir).create(RootSecret::passphrase(short));
        assert!(
            matches!(
                r,
                Err(Error::Input(InputError::PassphraseTooShort { min: 8 }))
            ),
            "{short:?}: {r:?}"
        );
        assert!(!dir.exists(), "{short:?}: nothing is created");
    }
    let e = builder(&dir)
        .create(RootSecret::passphrase("short"))
        .unwrap_err();
    assert!(e.to_string().contains("at least 8 characters"), "{e}");

    // Eight characters (not bytes) are enough by default; the minimum is tunable.
    builder(&dir)
        .create(RootSecret::passphrase("ünïcödé!"))
        .unwrap()
        .close()
        .unwrap();
    let other = tmp.path().join("other");
    assert!(matches!(
        builder(&other)
            .min_passphrase_len(30)
            .create(RootSecret::passphrase(PW)),
        Err(Error::Input(InputError::PassphraseTooShort { min: 30 }))
    ));
    builder(&other)
        .min_passphrase_len(2)
        .create(RootSecret::passphrase("pw"))
        .unwrap()
        .close()
        .unwrap();
    // Opening is not subject to the minimum.
    Vault::builder(&other)
        .open(RootSecret::passphrase("pw"))
        .unwrap()
        .close()
        .unwrap();
    // A raw key is not a passphrase.
    builder(&tmp.path().join("raw"))
        .min_passphrase_len(100)
        .create(RootSecret::raw_key([9; 32]))
        .unwrap()
        .close()
        .unwrap();
}

/// Guards against an empty (or short) new passphrase being accepted at root rotation.
#[test]
fn rotation_refuses_a_short_new_passphrase_and_keeps_the_old_one() {
    let tmp = tempfile::tempdir().unwrap();
    let v = builder(tmp.path())
        .create(RootSecret::passphrase(PW))
        .unwrap();
    for short in ["", "seven77"] {
        assert!(matches!(
            v.rotate_root(RootSecret::passphrase(short), None),
            Err(Error::Input(InputError::PassphraseTooShort { min: 8 }))
        ));
    }
    assert!(matches!(
        v.rotate_root_with_min_len(RootSecret::passphrase("twelve chars"), None, 16),
        Err(Error::Input(InputError::PassphraseTooShort { min: 16 }))
    ));
    v.close().unwrap();
    let v = Vault::builder(tmp.path())
        .open(RootSecret::passphrase(PW))
        .unwrap();
    v.rotate_root_with_min_len(RootSecret::passphrase("abc"), None, 3)
        .unwrap();
    v.close().unwrap();
    Vault::builder(tmp.path())
        .open(RootSecret::passphrase("abc"))
        .unwrap()
        .close()
        .unwrap();
}

/// Guards against `" alice@example.com"` and `"alice@example.com"` being two subjects.
#[test]
fn subject_ids_with_surrounding_whitespace_are_refused_everywhere() {
    for bad in [
        " alice@example.com",
        "alice@example.com ",
        "\talice@example.com",
        "alice@example.com\n",
        "\u{a0}alice@example.com",
        "alice@example.com\u{3000}",
        " ",
    ] {
        assert!(
            matches!(SubjectId::new(bad), Err(InputError::SubjectId(_))),
            "{bad:?}"
        );
        assert!(bad.parse::<SubjectId>().is_err(), "{bad:?}");
        assert!(SubjectId::from_bytes(bad.as_bytes()).is_err(), "{bad:?}");
    }
    let e = SubjectId::new(" alice@example.com").unwrap_err();
    assert!(e.to_string().contains("whitespace"), "{e}");
    assert!(!e.to_string().contains("alice"), "{e}");
    SubjectId::new("alice smith").unwrap();

    // An import document goes through the same check, and loses nothing stored.
    let tmp = tempfile::tempdir().unwrap();
    let v = builder(tmp.path())
        .create(RootSecret::passphrase(PW))
        .unwrap();
    let alice = SubjectId::new("alice@example.com").unwrap();
    let billing = Purpose::new("billing").unwrap();
    let id = v
        .put(
            &alice,
            RecordMeta::new(Category::Contact).purpose(billing.clone()),
            b"kept",
        )
        .unwrap();
    let mut doc = Vec::new();
    v.export(&alice, &mut doc).unwrap();
    let mut doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    doc["subject_id"] = " alice@example.com".into();
    let doc = serde_json::to_vec(&doc).unwrap();
    let e = v.import(&mut doc.as_slice()).unwrap_err();
    assert!(
        matches!(&e, Error::Input(InputError::DocumentEntry { error, .. })
            if matches!(**error, InputError::SubjectId(_))),
        "{e:?}"
    );
    assert_eq!(v.get(&alice, id, &billing).unwrap().payload, b"kept");
    assert_eq!(v.list(&alice).unwrap().len(), 1);
    v.close().unwrap();
}

/// Guards against a failed create leaving its directory (and `LOCK`, `store/`) behind.
#[test]
fn a_failed_create_removes_what_it_made_and_only_that() {
    let bad_kdf = KdfParams {
        memory_kib: 1,
        iterations: 1,
        parallelism: 1,
    };
    let tmp = tempfile::tempdir().unwrap();

    // A directory that did not exist, with parents that did not either.
    let deep = tmp.path().join("a").join("b").join("vault");
    let r = Vault::builder(&deep)
        .kdf(bad_kdf)
        .create(RootSecret::passphrase(PW));
    assert!(
        matches!(r, Err(Error::Open(OpenError::InvalidKdfParams(_)))),
        "{r:?}"
    );
    assert!(!tmp.path().join("a").exists(), "nothing is left behind");

    // A directory that existed: it stays, with exactly what it held.
    let existing = tmp.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    std::fs::write(existing.join("notes.txt"), b"mine").unwrap();
    std::fs::create_dir(existing.join("store")).unwrap();
    assert!(
        Vault::builder(&existing)
            .kdf(bad_kdf)
            .create(RootSecret::passphrase(PW))
            .is_err()
    );
    assert_eq!(entries(&existing), ["notes.txt", "store"]);
    assert!(entries(&existing.join("store")).is_empty());
    assert_eq!(std::fs::read(existing.join("notes.txt")).unwrap(), b"mine");

    // A create refused because a vault is there touches nothing of it.
    let vault = tmp.path().join("vault");
    builder(&vault)
        .create(RootSecret::passphrase(PW))
        .unwrap()
        .close()
        .unwrap();
    let before = entries(&vault);
    assert!(matches!(
        builder(&vault).create(RootSecret::passphrase(PW)),
        Err(Error::Open(OpenError::AlreadyExists(_)))
    ));
    assert_eq!(entries(&vault), before);
    Vault::builder(&vault)
        .open(RootSecret::passphrase(PW))
        .unwrap()
        .close()
        .unwrap();

    // And the directory is usable afterwards.
    builder(&deep)
        .create(RootSecret::passphrase(PW))
        .unwrap()
        .close()
        .unwrap();
}

#[cfg(feature = "cli")]
mod cli {
    use super::*;
    use std::process::{Command, Output, Stdio};

    fn pdvault(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pdvault"));
        cmd.args(args)
            .env("PDVAULT_DIR", dir)
            .env("PDVAULT_TEST_FAST_KDF", "1")
            .env_remove("PDVAULT_PASSPHRASE")
            .env_remove("PDVAULT_NEW_PASSPHRASE")
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn stderr(out: &Output) -> String {
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Guards against `init` and `rotate-key` accepting an empty or short passphrase.
    #[test]
    fn init_and_rotate_key_refuse_short_passphrases() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vault");
        for short in ["", "short"] {
            let out = pdvault(&dir, &[("PDVAULT_PASSPHRASE", short)], &["init"]);
            assert!(!out.status.success(), "{short:?}");
            assert!(
                stderr(&out).contains("at least 8 characters"),
                "{}",
                stderr(&out)
            );
            assert!(!dir.exists(), "{short:?}: nothing is created");
        }
        let out = pdvault(
            &dir,
            &[("PDVAULT_PASSPHRASE", "short")],
            &["init", "--min-passphrase-len", "5"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        // Opening is not subject to the minimum.
        let out = pdvault(&dir, &[("PDVAULT_PASSPHRASE", "short")], &["verify"]);
        assert!(out.status.success(), "{}", stderr(&out));

        let env = [
            ("PDVAULT_PASSPHRASE", "short"),
            ("PDVAULT_NEW_PASSPHRASE", ""),
        ];
        let out = pdvault(&dir, &env, &["rotate-key"]);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("at least 8 characters"),
            "{}",
            stderr(&out)
        );
        let env = [
            ("PDVAULT_PASSPHRASE", "short"),
            ("PDVAULT_NEW_PASSPHRASE", "tiny"),
        ];
        let out = pdvault(&dir, &env, &["rotate-key"]);
        assert!(!out.status.success());
        let out = pdvault(&dir, &env, &["rotate-key", "--min-passphrase-len", "4"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = pdvault(&dir, &[("PDVAULT_PASSPHRASE", "tiny")], &["verify"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }

    /// Guards against `" alice@example.com"` becoming a second subject through the CLI.
    #[test]
    fn the_cli_refuses_subject_ids_with_surrounding_whitespace() {
        let tmp = tempfile::tempdir().unwrap();
        let env = [("PDVAULT_PASSPHRASE", PW)];
        assert!(pdvault(tmp.path(), &env, &["init"]).status.success());
        let out = pdvault(
            tmp.path(),
            &env,
            &[
                "put",
                "--subject",
                " alice@example.com",
                "--category",
                "contact",
                "--purpose",
                "billing",
            ],
        );
        assert!(!out.status.success());
        assert!(stderr(&out).contains("whitespace"), "{}", stderr(&out));
        assert!(!stderr(&out).contains("alice"), "{}", stderr(&out));
    }

    /// Guards against a failed `init` leaving a directory behind.
    #[test]
    fn a_failed_init_leaves_no_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vault");
        let out = pdvault(
            &dir,
            &[("PDVAULT_PASSPHRASE", PW)],
            &["init", "--kdf-memory-kib", "1"],
        );
        assert!(!out.status.success());
        assert!(!dir.exists(), "{:?}", entries(&dir));
    }

    /// Runs `pdvault init` on a pseudo-terminal (through `script`), typing `lines`.
    fn init_on_a_terminal(dir: &Path, lines: &str) -> Option<Output> {
        if Command::new("script").arg("--version").output().is_err() {
            // A missing component fails under CI, which installs it; elsewhere it is said.
            assert!(
                std::env::var_os("CI").is_none(),
                "`script` (util-linux) is needed for the terminal test"
            );
            eprintln!("skipped: `script` (util-linux) is not installed");
            return None;
        }
        let cmd = format!(
            "{} --vault {} init",
            env!("CARGO_BIN_EXE_pdvault"),
            dir.display()
        );
        let mut child = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("PDVAULT_TEST_FAST_KDF", "1")
            .env_remove("PDVAULT_PASSPHRASE")
            .env_remove("PDVAULT_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut input = child.stdin.take().unwrap();
            for line in lines.lines() {
                // One line at a time, once the prompt has had time to turn echo off.
                std::thread::sleep(std::time::Duration::from_millis(300));
                input.write_all(format!("{line}\n").as_bytes()).unwrap();
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        Some(child.wait_with_output().unwrap())
    }

    /// Guards against `init` on a terminal taking a mistyped passphrase without asking again.
    #[test]
    fn init_on_a_terminal_asks_twice_and_a_mismatch_creates_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vault");
        let Some(out) = init_on_a_terminal(&dir, "first passphrase\nsecond passphrase\n") else {
            return;
        };
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(shown.contains("Repeat the passphrase:"), "{shown}");
        assert!(shown.contains("do not match"), "{shown}");
        assert!(!dir.exists(), "a mismatch creates nothing");

        let out = init_on_a_terminal(&dir, "same passphrase\nsame passphrase\n").unwrap();
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(shown.contains("created a vault"), "{shown}");
        let out = pdvault(
            &dir,
            &[("PDVAULT_PASSPHRASE", "same passphrase")],
            &["verify"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
}
