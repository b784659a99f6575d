//! The core promises of the public API: records round-trip with their metadata, the right secret
//! and only it opens a vault, damaged or newer vault files are told apart and never panic, one
//! opener at a time, concurrent writers lose nothing, nothing personal reaches the disk or a
//! `Debug`, and bad input is refused without losing what was stored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pdvault::*;

mod common;

const PW: &str = "pw-core-tests";

fn create(dir: &Path) -> Vault {
    Vault::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::passphrase(PW))
        .unwrap()
}

fn open_once(dir: &Path) -> Result<Vault> {
    Vault::builder(dir).open(RootSecret::passphrase(PW))
}

fn open(dir: &Path) -> Result<Vault> {
    open_with(dir, || RootSecret::passphrase(PW))
}

/// Opens, waiting up to 2 s while the store's own file lock is still held by the previous
/// opener's background threads (see `reopening_right_after_close_or_drop_succeeds`).
fn open_with(dir: &Path, secret: impl Fn() -> RootSecret) -> Result<Vault> {
    for _ in 0..100 {
        // The builder's costs are for creating; opening takes them from the header.
        match Vault::builder(dir)
            .kdf(KdfParams::insecure_for_tests())
            .open(secret())
        {
            Err(Error::Storage(StorageError::Io(e)))
                if e.to_string().contains("could not acquire lock") =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            r => return r,
        }
    }
    Vault::builder(dir).open(secret())
}

fn sid(s: &str) -> SubjectId {
    SubjectId::new(s).unwrap()
}

fn purpose(s: &str) -> Purpose {
    Purpose::new(s).unwrap()
}

/// 16 random bytes as hex, from the OS (no extra dependency): unique markers per run.
fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for i in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

#[test]
fn every_category_roundtrips_with_its_metadata_in_get_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let v = create(dir.path());
    let alice = sid("alice@example.com");
    let read = purpose("read-back");
    // Every built-in but the credential, which is written only as a hash (tests/credentials.rs).
    let mut cats: Vec<Category> = Category::BUILTIN
        .iter()
        .filter(|c| **c != Category::Credential)
        .cloned()
        .collect();
    cats.push(Category::custom("loyalty-points").unwrap());
    // A custom category is written once the vault's policy declares it.
    v.set_policy(Policy::from_toml("custom_categories = [\"loyalty-points\"]").unwrap())
        .unwrap();
    assert!(cats.len() >= 15, "built-ins missing: {cats:?}");
    let mut expected: HashMap<RecordId, (RecordMeta, Vec<u8>)> = HashMap::new();
    for (i, cat) in cats.iter().enumerate() {
        // Cycle the legal bases; consent-based records need consent for the purpose read with.
        let basis = LegalBasis::ALL[i % LegalBasis::ALL.len()];
        let meta = RecordMeta::new(cat.clone())
            .purpose(read.clone())
            .purpose(purpose(&format!("purpose-{i}")))
            .basis(basis)
            .source(format!("source-{i}"))
            .collected_at(ts(&format!("2024-03-04T05:06:{:02}.123456789Z", i % 60)));
        let payload = format!("payload of {} #{i} \u{1F600}", cat.name()).into_bytes();
        let id = v.put(&alice, meta.clone(), &payload).unwrap();
        assert!(expected.insert(id, (meta, payload)).is_none(), "id reused");
    }
    // A record without a source and with a binary payload.
    let bin: Vec<u8> = (0..=255u8).collect();
    let meta = RecordMeta::new(Category::Technical)
        .purpose(read.clone())
        .collected_at(ts("1999-12-31T23:59:59Z"));
    let id = v.put(&alice, meta.clone(), &bin).unwrap();
    expected.insert(id, (meta, bin));
    // An empty payload.
    let meta = RecordMeta::new(Category::Usage)
        .purpose(read.clone())
        .collected_at(ts("2025-01-01T00:00:00Z"));
    let id = v.put(&alice, meta.clone(), b"").unwrap();
    expected.insert(id, (meta, Vec::new()));
    v.grant_consent(&alice, &read, None).unwrap();

    let check = |v: &Vault| {
        for (id, (meta, payload)) in &expected {
            let r = v.get(&alice, *id, &read).unwrap();
            assert_eq!(r.info.record, *id);
            assert_eq!(&r.info.meta, meta, "metadata of {}", meta.category);
            assert_eq!(r.info.version, 1);
            assert_eq!(&r.payload, payload, "payload of {}", meta.category);
        }
        let listed = v.list(&alice).unwrap();
        assert_eq!(listed.len(), expected.len());
        for info in listed {
            let (meta, _) = &expected[&info.record];
            assert_eq!(&info.meta, meta);
            assert_eq!(info.version, 1);
        }
    };
    check(&v);
    v.close().unwrap();
    let v = open(dir.path()).unwrap();
    check(&v);
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Address {
    street: String,
    number: u32,
    city: Option<String>,
    tags: Vec<String>,
}

#[test]
fn typed_values_roundtrip_through_put_value_and_get_value() {
    let dir = tempfile::tempdir().unwrap();
    let v = create(dir.path());
    let bob = sid("bob@example.com");
    let p = purpose("shipping");
    let addr = Address {
        street: "Baker Street".into(),
        number: 221,
        city: Some("London".into()),
        tags: vec!["home".into(), "b".into()],
    };
    let id = v
        .put_value(
            &bob,
            RecordMeta::new(Category::Contact).purpose(p.clone()),
            &addr,
        )
        .unwrap();
    let back: Address = v.get_value(&bob, id, &p).unwrap();
    assert_eq!(back, addr);
    // The wrong type is an input error, not a panic or a storage error.
    let wrong = v.get_value::<Vec<u64>>(&bob, id, &p);
    assert!(
        matches!(wrong, Err(Error::Input(InputError::Encoding(_)))),
        "{wrong:?}"
    );
}

#[test]
fn update_keeps_the_id_and_bumps_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let v = create(dir.path());
    let s = sid("carol@example.com");
    let p = purpose("billing");
    let meta = RecordMeta::new(Category::Payment)
        .purpose(p.clone())
        .source("form")
        .collected_at(ts("2025-01-01T00:00:00Z"));
    let id = v.put(&s, meta.clone(), b"v1").unwrap();
    let other = v.put(&s, meta.clone(), b"other").unwrap();
    v.update(&s, id, b"v2").unwrap();
    let r = v.get(&s, id, &p).unwrap();
    assert_eq!(r.info.record, id);
    assert_eq!(r.info.version, 2);
    assert_eq!(r.info.meta, meta);
    assert_eq!(r.payload, b"v2");
    v.update(&s, id, b"v3").unwrap();
    let r = v.get(&s, id, &p).unwrap();
    assert_eq!((r.info.version, r.payload.as_slice()), (3, &b"v3"[..]));
    let listed = v.list(&s).unwrap();
    assert_eq!(listed.len(), 2);
    let mine = listed.iter().find(|i| i.record == id).unwrap();
    assert_eq!(mine.version, 3);
    // The other record is untouched.
    let o = v.get(&s, other, &p).unwrap();
    assert_eq!((o.info.version, o.payload.as_slice()), (1, &b"other"[..]));
    v.close().unwrap();
    let v = open(dir.path()).unwrap();
    let r = v.get(&s, id, &p).unwrap();
    assert_eq!((r.info.version, r.payload.as_slice()), (3, &b"v3"[..]));
}

#[test]
fn delete_removes_the_record_from_get_and_list_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let v = create(dir.path());
    let s = sid("dave@example.com");
    let p = purpose("support");
    let meta = RecordMeta::new(Category::Communication).purpose(p.clone());
    let a = v.put(&s, meta.clone(), b"a").unwrap();
    let b = v.put(&s, meta.clone(), b"b").unwrap();
    let c = v
        .put(
            &s,
            RecordMeta::new(Category::Contact).purpose(p.clone()),
            b"c",
        )
        .unwrap();
    v.delete(&s, a).unwrap();
    let got = v.get(&s, a, &p);
    assert!(
        matches!(got, Err(Error::RecordNotFound(id)) if id == a),
        "{got:?}"
    );
    let ids: Vec<RecordId> = v.list(&s).unwrap().into_iter().map(|i| i.record).collect();
    assert!(!ids.contains(&a));
    assert_eq!(ids.len(), 2);
    assert_eq!(v.get(&s, b, &p).unwrap().payload, b"b");
    assert_eq!(v.get(&s, c, &p).unwrap().payload, b"c");
    // Deleting it again: it is not there.
    assert!(matches!(v.delete(&s, a), Err(Error::RecordNotFound(_))));
    v.close().unwrap();
    let v = open(dir.path()).unwrap();
    assert!(matches!(v.get(&s, a, &p), Err(Error::RecordNotFound(_))));
    assert_eq!(v.get(&s, b, &p).unwrap().payload, b"b");
    assert_eq!(v.list(&s).unwrap().len(), 2);
    assert!(v.verify().unwrap().is_whole());
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

#[test]
fn wrong_passphrase_is_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path()).close().unwrap();
    for wrong in ["", "pw", "PW-CORE-TESTS", "pw-core-tests ", "pw-core-test"] {
        let r = Vault::builder(dir.path()).open(RootSecret::passphrase(wrong));
        assert!(
            matches!(r, Err(Error::Open(OpenError::WrongKey))),
            "{wrong:?}: {r:?}"
        );
    }
    open(dir.path()).unwrap();
}

#[test]
fn wrong_raw_key_is_wrong_key_and_kinds_do_not_mix() {
    let dir = tempfile::tempdir().unwrap();
    let key = [0x5au8; 32];
    let v = Vault::builder(dir.path())
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::raw_key(key))
        .unwrap();
    let s = sid("erin@example.com");
    let p = purpose("p");
    let id = v
        .put(
            &s,
            RecordMeta::new(Category::Account).purpose(p.clone()),
            b"x",
        )
        .unwrap();
    v.close().unwrap();
    let mut wrong = key;
    wrong[31] ^= 1;
    let r = Vault::builder(dir.path()).open(RootSecret::raw_key(wrong));
    assert!(matches!(r, Err(Error::Open(OpenError::WrongKey))), "{r:?}");
    let r = Vault::builder(dir.path()).open(RootSecret::passphrase("anything"));
    assert!(
        matches!(
            r,
            Err(Error::Open(OpenError::SecretKindMismatch {
                expected: "raw key",
                given: "passphrase"
            }))
        ),
        "{r:?}"
    );
    let v = open_with(dir.path(), || RootSecret::raw_key(key)).unwrap();
    assert_eq!(v.get(&s, id, &p).unwrap().payload, b"x");
}

#[test]
fn a_passphrase_vault_refuses_a_raw_key() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path()).close().unwrap();
    let r = Vault::builder(dir.path()).open(RootSecret::raw_key([0; 32]));
    assert!(
        matches!(
            r,
            Err(Error::Open(OpenError::SecretKindMismatch {
                expected: "passphrase",
                given: "raw key"
            }))
        ),
        "{r:?}"
    );
    open(dir.path()).unwrap();
}

#[test]
fn default_kdf_params_create_and_open() {
    let dir = tempfile::tempdir().unwrap();
    let v = Vault::builder(dir.path())
        .kdf(KdfParams::default())
        .create(RootSecret::passphrase("default params"))
        .unwrap();
    let s = sid("gina@example.com");
    let p = purpose("p");
    let id = v
        .put(
            &s,
            RecordMeta::new(Category::Account).purpose(p.clone()),
            b"d",
        )
        .unwrap();
    v.close().unwrap();
    let r = Vault::builder(dir.path()).open(RootSecret::passphrase("default paramz"));
    assert!(matches!(r, Err(Error::Open(OpenError::WrongKey))), "{r:?}");
    // The costs come from the header, not from the builder.
    let v = open_with(dir.path(), || RootSecret::passphrase("default params")).unwrap();
    assert_eq!(v.get(&s, id, &p).unwrap().payload, b"d");
}

// ---------------------------------------------------------------------------------------------
// The vault file
// ---------------------------------------------------------------------------------------------

fn vault_file(dir: &Path) -> PathBuf {
    dir.join("vault.pdv")
}

/// Opens the vault in `dir` with the test passphrase; a panic fails the test with context.
fn open_no_panic(dir: &Path, what: &str) -> Result<Vault> {
    let dir = dir.to_path_buf();
    std::panic::catch_unwind(move || open(&dir))
        .unwrap_or_else(|_| panic!("opening a vault with {what} panicked"))
}

#[test]
fn a_truncated_vault_file_is_reported_truncated_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let v = create(dir.path());
    v.put(
        &sid("h@example.com"),
        RecordMeta::new(Category::Usage),
        b"h",
    )
    .unwrap();
    v.close().unwrap();
    let good = std::fs::read(vault_file(dir.path())).unwrap();
    assert!(good.len() > 100, "{}", good.len());
    // Every cut leaves the file shorter than its own length fields say.
    for cut in [
        0,
        5,
        8,
        13,
        14,
        20,
        good.len() / 2,
        good.len() - 32,
        good.len() - 1,
    ] {
        std::fs::write(vault_file(dir.path()), &good[..cut]).unwrap();
        let r = open_no_panic(dir.path(), &format!("a vault file cut to {cut} bytes"));
        match r {
            Err(Error::Open(OpenError::HeaderTruncated { found })) => {
                assert_eq!(found, cut, "cut to {cut}")
            }
            other => panic!("cut to {cut}: expected HeaderTruncated, got {other:?}"),
        }
    }
    std::fs::write(vault_file(dir.path()), &good).unwrap();
    open(dir.path()).unwrap();
}

/// The byte ranges of the vault file's two copies, from its header block (`PDVAULT2`, the copy
/// length at bytes 8..12, the copies after the first 4 KiB).
fn copies(file: &[u8]) -> [std::ops::Range<usize>; 2] {
    assert_eq!(&file[..8], b"PDVAULT2");
    let len = u32::from_le_bytes(file[8..12].try_into().unwrap()) as usize;
    [4096..4096 + len, 4096 + len..4096 + 2 * len]
}

/// The length of the record at the start of a copy (its body length at bytes 10..14).
fn record_len(copy: &[u8]) -> usize {
    14 + u32::from_le_bytes(copy[10..14].try_into().unwrap()) as usize + 32
}

/// Which copy of the closed vault's file holds the current version: a copy of the vault opens
/// with the other one blanked (and a copy, because opening and closing writes a new version).
fn current_copy(dir: &Path) -> usize {
    let probe = tempfile::tempdir().unwrap();
    common::copy_tree(dir, probe.path());
    let mut file = std::fs::read(vault_file(probe.path())).unwrap();
    let [_, second] = copies(&file);
    file[second].fill(0);
    std::fs::write(vault_file(probe.path()), &file).unwrap();
    match open(probe.path()) {
        Ok(v) => {
            v.close().unwrap();
            0
        }
        Err(_) => 1,
    }
}

#[test]
fn a_garbled_vault_file_is_reported_damaged() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path()).close().unwrap();
    let good = std::fs::read(vault_file(dir.path())).unwrap();
    let n = good.len();
    let current = copies(&good)[current_copy(dir.path())].clone();
    let stale = copies(&good)[1 - current_copy(dir.path())].clone();
    let r = record_len(&good[current.clone()]);
    // The header block (magic, copy length, its checksum) and the current copy's record (magic,
    // version, length, body at its start, middle and end, checksum) and padding: each fails a
    // checksum, a magic or a length, and the copy before, sealed under an epoch key destroyed
    // since, is not served instead.
    let mut at: Vec<usize> = vec![0, 7, 8, 9, 11, 12, 43, 44, 4095];
    at.extend(
        [
            0,
            7,
            8,
            9,
            10,
            14,
            20,
            r / 2,
            r - 33,
            r - 32,
            r - 1,
            r,
            current.len() - 1,
        ]
        .map(|i| current.start + i),
    );
    for at in at {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[at] ^= mask;
            std::fs::write(vault_file(dir.path()), &bad).unwrap();
            let r = open_no_panic(dir.path(), &format!("byte {at} ^ {mask:#x}"));
            assert!(
                matches!(r, Err(Error::Open(OpenError::HeaderDamaged(_)))),
                "byte {at} of {n} ^ {mask:#x}: {r:?}"
            );
        }
    }
    // Trailing bytes and a file of zeros.
    let mut longer = good.clone();
    longer.push(0);
    std::fs::write(vault_file(dir.path()), &longer).unwrap();
    let r = open_no_panic(dir.path(), "a trailing byte");
    assert!(
        matches!(r, Err(Error::Open(OpenError::HeaderDamaged(_)))),
        "{r:?}"
    );
    std::fs::write(vault_file(dir.path()), vec![0u8; n]).unwrap();
    let r = open_no_panic(dir.path(), "zeros");
    assert!(
        matches!(r, Err(Error::Open(OpenError::HeaderDamaged(_)))),
        "{r:?}"
    );
    // The copy before the current one is not read: damage to it changes nothing (the next
    // write goes over it).
    let mut bad = good.clone();
    bad[stale.start + 20] ^= 0xff;
    std::fs::write(vault_file(dir.path()), &bad).unwrap();
    open(dir.path()).unwrap().close().unwrap();
    let after = std::fs::read(vault_file(dir.path())).unwrap();
    assert_ne!(after[stale.start + 20], bad[stale.start + 20], "rewritten");
}

/// Rewrites the format version (bytes 8..10, LE) of the current copy's record and recomputes the
/// record's trailing BLAKE3 checksum.
fn with_version(good: &[u8], current: &std::ops::Range<usize>, version: u16) -> Vec<u8> {
    let mut out = good.to_vec();
    let record = current.start..current.start + record_len(&good[current.clone()]);
    let body_end = record.end - 32;
    out[record.start + 8..record.start + 10].copy_from_slice(&version.to_le_bytes());
    let sum = blake3::hash(&out[record.start..body_end]);
    out[body_end..record.end].copy_from_slice(sum.as_bytes());
    out
}

#[test]
fn a_vault_file_of_a_newer_format_is_reported_newer() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path()).close().unwrap();
    let good = std::fs::read(vault_file(dir.path())).unwrap();
    let at = copies(&good)[current_copy(dir.path())].clone();
    assert_eq!(&good[at.start..at.start + 8], b"PDVAULT1");
    let current = u16::from_le_bytes([good[at.start + 8], good[at.start + 9]]);
    // Sanity: re-encoding the current version gives the same file.
    assert_eq!(with_version(&good, &at, current), good);
    for newer in [current + 1, current + 7, u16::MAX] {
        std::fs::write(vault_file(dir.path()), with_version(&good, &at, newer)).unwrap();
        let r = open_no_panic(dir.path(), "a newer format");
        match r {
            Err(Error::Open(OpenError::NewerFormat { found, supported })) => {
                assert_eq!((found, supported), (newer, current))
            }
            other => panic!("version {newer}: expected NewerFormat, got {other:?}"),
        }
    }
    // Version 1 was a pre-release encoding: refused by name, never misread.
    std::fs::write(vault_file(dir.path()), with_version(&good, &at, 1)).unwrap();
    let r = open_no_panic(dir.path(), "version 1");
    assert!(
        matches!(
            r,
            Err(Error::Open(OpenError::OlderFormat { found: 1, supported })) if supported == current
        ),
        "{r:?}"
    );
    // Version 0 never existed: damaged, not newer.
    std::fs::write(vault_file(dir.path()), with_version(&good, &at, 0)).unwrap();
    let r = open_no_panic(dir.path(), "version 0");
    assert!(
        matches!(r, Err(Error::Open(OpenError::HeaderDamaged(_)))),
        "{r:?}"
    );
    std::fs::write(vault_file(dir.path()), &good).unwrap();
    open(dir.path()).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Openers
// ---------------------------------------------------------------------------------------------

#[test]
fn a_second_opener_in_the_same_process_is_refused_until_the_first_drops() {
    let dir = tempfile::tempdir().unwrap();
    let v = create(dir.path());
    let r = open(dir.path());
    assert!(
        matches!(r, Err(Error::Open(OpenError::AlreadyOpen(_)))),
        "{r:?}"
    );
    // A clone keeps it open.
    let clone = v.clone();
    drop(v);
    let r = open(dir.path());
    assert!(
        matches!(r, Err(Error::Open(OpenError::AlreadyOpen(_)))),
        "{r:?}"
    );
    // Creating over it is refused too (it exists).
    let r = Vault::builder(dir.path())
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::passphrase(PW));
    assert!(
        matches!(r, Err(Error::Open(OpenError::AlreadyExists(_)))),
        "{r:?}"
    );
    drop(clone);
    let v = open(dir.path()).unwrap();
    let r = open(dir.path());
    assert!(
        matches!(r, Err(Error::Open(OpenError::AlreadyOpen(_)))),
        "{r:?}"
    );
    v.close().unwrap();
    open(dir.path()).unwrap();
}

/// A child process being spawned shares the parent's open files until it execs, so a lock the
/// parent has just released can look held for a moment; opening waits that out.
#[test]
fn a_lock_released_moments_later_is_waited_for_not_reported_as_open() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path()).close().unwrap();
    let holder = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.path().join("LOCK"))
        .unwrap();
    holder.lock().unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(40));
        drop(holder);
    });
    let v = open(dir.path());
    release.join().unwrap();
    assert!(v.is_ok(), "{:?}", v.err());
}

const CHILD_ENV: &str = "PDVAULT_CORE_TEST_CHILD_OPEN_DIR";
const CHILD_TEST: &str = "a_second_opener_in_another_process_is_refused";

/// Runs this test binary again as a child running only `test` with `env` set to `value`, and
/// returns what it printed after `CHILD-RESULT: `.
fn run_child(test: &str, env: &str, value: &std::ffi::OsStr) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(env, value)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| {
            l.split_once("CHILD-RESULT: ")
                .map(|(_, r)| r.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("the child printed no result:\n{stdout}"))
}

/// Runs this test binary again as a child that opens `dir` and prints what happened.
fn child_open(dir: &Path) -> String {
    run_child(CHILD_TEST, CHILD_ENV, dir.as_os_str())
}

#[test]
fn a_second_opener_in_another_process_is_refused() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        // The child: open, report, exit (dropping the vault).
        let kind = match open(Path::new(&dir)) {
            Ok(_) => "Opened".to_string(),
            Err(Error::Open(OpenError::AlreadyOpen(_))) => "AlreadyOpen".to_string(),
            Err(e) => format!("Other({e:?})"),
        };
        println!("\nCHILD-RESULT: {kind}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let v = create(dir.path());
    let s = sid("ivan@example.com");
    let id = v
        .put(
            &s,
            RecordMeta::new(Category::Usage).purpose(purpose("p")),
            b"i",
        )
        .unwrap();
    assert_eq!(child_open(dir.path()), "AlreadyOpen");
    // Still usable here while the child was refused.
    assert_eq!(v.get(&s, id, &purpose("p")).unwrap().payload, b"i");
    drop(v);
    assert_eq!(child_open(dir.path()), "Opened");
    // And the child's open and close left it whole.
    let v = open(dir.path()).unwrap();
    assert_eq!(v.get(&s, id, &purpose("p")).unwrap().payload, b"i");
    assert!(v.verify().unwrap().is_whole());
}

#[test]
fn create_refuses_to_overwrite_and_open_of_an_empty_dir_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    assert!(
        matches!(r, Err(Error::Open(OpenError::NotFound(_)))),
        "{r:?}"
    );
    let missing = dir.path().join("does-not-exist");
    let r = open(&missing);
    assert!(
        matches!(r, Err(Error::Open(OpenError::NotFound(_)))),
        "{r:?}"
    );
    let v = create(dir.path());
    let s = sid("judy@example.com");
    let p = purpose("p");
    let id = v
        .put(
            &s,
            RecordMeta::new(Category::Account).purpose(p.clone()),
            b"j",
        )
        .unwrap();
    v.close().unwrap();
    let before = std::fs::read(vault_file(dir.path())).unwrap();
    for secret in [
        RootSecret::passphrase(PW),
        RootSecret::passphrase("other-passphrase"),
        RootSecret::raw_key([1; 32]),
    ] {
        let r = Vault::builder(dir.path())
            .kdf(KdfParams::insecure_for_tests())
            .create(secret);
        assert!(
            matches!(r, Err(Error::Open(OpenError::AlreadyExists(_)))),
            "{r:?}"
        );
    }
    assert_eq!(std::fs::read(vault_file(dir.path())).unwrap(), before);
    let v = open(dir.path()).unwrap();
    assert_eq!(v.get(&s, id, &p).unwrap().payload, b"j");
}

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

/// An acknowledged write: subject, record id, payload.
type Acked = (String, RecordId, Vec<u8>);

#[test]
fn eight_threads_lose_no_acknowledged_record_before_or_after_reopen() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let v = create(dir.path());
    let p = purpose("p");
    let shared = "shared@example.com".to_string();
    // Acknowledged: (subject, id, payload), in the order they were acknowledged.
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (v, p, acked, shared) = (v.clone(), p.clone(), acked.clone(), shared.clone());
            std::thread::spawn(move || {
                let own = format!("thread-{t}@example.com");
                let mut reads = 0usize;
                for i in 0..PER_THREAD {
                    let name = if i % 2 == 0 { &own } else { &shared };
                    let s = SubjectId::new(name.clone()).unwrap();
                    let cat = if i % 3 == 0 {
                        Category::Contact
                    } else {
                        Category::Usage
                    };
                    let payload = format!("t{t}-i{i}-{name}").into_bytes();
                    let id = v
                        .put(&s, RecordMeta::new(cat).purpose(p.clone()), &payload)
                        .unwrap();
                    // What we just wrote reads back at once.
                    assert_eq!(v.get(&s, id, &p).unwrap().payload, payload);
                    acked.lock().unwrap().push((name.clone(), id, payload));
                    // Read back one of another thread's records.
                    let pick = {
                        let a = acked.lock().unwrap();
                        let n = a.len();
                        (0..n)
                            .map(|k| &a[(i * 7919 + k) % n])
                            .find(|(_, _, pl)| !pl.starts_with(format!("t{t}-").as_bytes()))
                            .cloned()
                    };
                    if let Some((name, id, payload)) = pick {
                        let s = SubjectId::new(name).unwrap();
                        assert_eq!(v.get(&s, id, &p).unwrap().payload, payload);
                        reads += 1;
                    }
                }
                reads
            })
        })
        .collect();
    let reads: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(reads > THREADS * PER_THREAD / 2, "few cross reads: {reads}");
    let acked = Arc::try_unwrap(acked).unwrap().into_inner().unwrap();
    assert_eq!(acked.len(), THREADS * PER_THREAD);
    let check = |v: &Vault| {
        let mut by_subject: HashMap<&str, usize> = HashMap::new();
        for (name, id, payload) in &acked {
            let s = SubjectId::new(name.clone()).unwrap();
            let r = v.get(&s, *id, &p).unwrap();
            assert_eq!(&r.payload, payload);
            *by_subject.entry(name).or_default() += 1;
        }
        // One subject for the shared identifier (no duplicate created by racing first writes),
        // holding exactly the records written to it.
        for (name, n) in by_subject {
            let s = SubjectId::new(name).unwrap();
            assert_eq!(v.list(&s).unwrap().len(), n, "{name}");
        }
        let stats = v.stats().unwrap();
        assert_eq!(stats.subjects, THREADS as u64 + 1);
        assert_eq!(stats.records, (THREADS * PER_THREAD) as u64);
    };
    check(&v);
    v.close().unwrap();
    let v = open(dir.path()).unwrap();
    check(&v);
    let rep = v.verify().unwrap();
    assert!(rep.is_whole(), "{rep:?}");
}

// ---------------------------------------------------------------------------------------------
// Nothing personal on disk or in Debug
// ---------------------------------------------------------------------------------------------

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            all_files(&e.path(), out);
        } else if t.is_file() {
            out.push(e.path());
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_marker_payload_subject_id_or_passphrase_reaches_any_file() {
    let dir = tempfile::tempdir().unwrap();
    let hex = random_hex();
    let passphrase = format!("MARKER-PASSPHRASE-{hex}");
    let v = Vault::builder(dir.path())
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::passphrase(passphrase.clone()))
        .unwrap();
    let p = purpose("p");
    let mut markers: Vec<String> = vec![passphrase.clone()];
    let mut subjects = Vec::new();
    for s in 0..4 {
        let subject = format!("marker-subject-{s}-{hex}@example.com");
        let id = SubjectId::new(subject.clone()).unwrap();
        for r in 0..5 {
            let payload = format!("MARKER-PAYLOAD-{s}-{r}-{hex}");
            let cat = if r % 2 == 0 {
                Category::Contact
            } else {
                Category::Payment
            };
            let rid = v
                .put(
                    &id,
                    RecordMeta::new(cat).purpose(p.clone()),
                    payload.as_bytes(),
                )
                .unwrap();
            assert_eq!(v.get(&id, rid, &p).unwrap().payload, payload.as_bytes());
            markers.push(payload);
            if r == 0 {
                let updated = format!("MARKER-UPDATED-{s}-{hex}");
                v.update(&id, rid, updated.as_bytes()).unwrap();
                markers.push(updated);
            }
        }
        let typed = format!("MARKER-TYPED-{s}-{hex}");
        v.put_value(&id, RecordMeta::new(Category::Profile), &typed)
            .unwrap();
        markers.push(typed);
        markers.push(subject);
        subjects.push(id);
    }
    // A big payload (spills into sled's blob files), with a marker inside.
    let big_marker = format!("MARKER-BIG-{hex}");
    let mut big = vec![b'x'; 200_000];
    big[100_000..100_000 + big_marker.len()].copy_from_slice(big_marker.as_bytes());
    v.put(&subjects[1], RecordMeta::new(Category::Communication), &big)
        .unwrap();
    markers.push(big_marker);
    let report = v.erase_subject(&subjects[0]).unwrap();
    assert!(report.subject_erased);
    v.close().unwrap();

    let mut files = Vec::new();
    all_files(dir.path(), &mut files);
    assert!(files.len() >= 3, "{files:?}");
    let mut total = 0;
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        total += bytes.len();
        for m in &markers {
            assert!(
                !contains(&bytes, m.as_bytes()),
                "{} holds the marker {m:?}",
                f.display()
            );
            // Also not as the hex of its bytes nor in UTF-16.
            let utf16: Vec<u8> = m.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
            assert!(
                !contains(&bytes, &utf16),
                "{} holds {m:?} in UTF-16",
                f.display()
            );
        }
        // The random part alone never appears either.
        assert!(
            !contains(&bytes, hex.as_bytes()),
            "{} holds the run's random marker",
            f.display()
        );
    }
    assert!(
        total > 200_000,
        "the files hold less than the big payload: {total}"
    );
    // And the vault still works after being scanned.
    let v = open_with(dir.path(), || RootSecret::passphrase(passphrase.clone())).unwrap();
    assert!(matches!(v.list(&subjects[0]), Err(Error::SubjectNotFound)));
    assert_eq!(v.list(&subjects[1]).unwrap().len(), 7);
}

#[test]
fn debug_and_display_print_no_marker_passphrase_key_or_payload() {
    let dir = tempfile::tempdir().unwrap();
    let hex = random_hex();
    let passphrase = format!("MARKER-PASSPHRASE-{hex}");
    let subject = format!("marker-subject-{hex}@example.com");
    let payload = format!("MARKER-PAYLOAD-{hex}");
    let v = Vault::builder(dir.path())
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::passphrase(passphrase.clone()))
        .unwrap();
    let s = SubjectId::new(subject.clone()).unwrap();
    let p = purpose("p");
    let id = v
        .put(
            &s,
            RecordMeta::new(Category::Contact).purpose(p.clone()),
            payload.as_bytes(),
        )
        .unwrap();
    let json_id = v
        .put_value(
            &s,
            RecordMeta::new(Category::Contact).purpose(p.clone()),
            &payload,
        )
        .unwrap();
    let record = v.get(&s, id, &p).unwrap();
    let raw = [0xabu8; 32];
    let mut texts: Vec<(String, String)> = vec![
        ("Vault".into(), format!("{v:?}")),
        ("Vault alternate".into(), format!("{v:#?}")),
        (
            "RootSecret passphrase".into(),
            format!("{:?}", RootSecret::passphrase(passphrase.clone())),
        ),
        (
            "RootSecret raw".into(),
            format!("{:?}", RootSecret::raw_key(raw)),
        ),
        ("Record".into(), format!("{record:?}")),
        ("Record alternate".into(), format!("{record:#?}")),
        ("SubjectId".into(), format!("{s:?}")),
        ("list".into(), format!("{:?}", v.list(&s).unwrap())),
        ("stats".into(), format!("{:?}", v.stats().unwrap())),
        ("verify".into(), format!("{:?}", v.verify().unwrap())),
    ];
    // Errors, Debug and Display, from operations that handled the secrets.
    let mut errors: Vec<(String, Error)> = Vec::new();
    errors.push((
        "wrong purpose".into(),
        v.get(&s, id, &purpose("other")).unwrap_err(),
    ));
    errors.push((
        "payload too large".into(),
        v.update(&s, id, &vec![b'M'; MAX_PAYLOAD_LEN + 1])
            .unwrap_err(),
    ));
    // A JSON payload read as the wrong type: the error must not quote the payload.
    errors.push((
        "get_value of the wrong type".into(),
        v.get_value::<u32>(&s, json_id, &p).unwrap_err(),
    ));
    errors.push((
        "unknown subject".into(),
        v.list(&SubjectId::new(format!("{subject}.unknown")).unwrap())
            .unwrap_err(),
    ));
    errors.push((
        "too long id".into(),
        SubjectId::new(format!("{subject}{}", "x".repeat(MAX_SUBJECT_ID_LEN)))
            .unwrap_err()
            .into(),
    ));
    v.close().unwrap();
    errors.push((
        "wrong passphrase".into(),
        Vault::builder(dir.path())
            .open(RootSecret::passphrase(format!("{passphrase}-wrong")))
            .unwrap_err(),
    ));
    let held = open_with(dir.path(), || RootSecret::passphrase(passphrase.clone())).unwrap();
    errors.push((
        "already open".into(),
        Vault::builder(dir.path())
            .open(RootSecret::passphrase(passphrase.clone()))
            .unwrap_err(),
    ));
    drop(held);
    for (what, e) in &errors {
        texts.push((format!("{what} (Debug)"), format!("{e:?}")));
        texts.push((format!("{what} (Display)"), e.to_string()));
    }
    let raw_hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let mut leaks = Vec::new();
    for (what, text) in &texts {
        if let Some(needle) = [
            hex.as_str(),
            passphrase.as_str(),
            subject.as_str(),
            payload.as_str(),
            "MARKER",
            "marker-subject",
            raw_hex.as_str(),
            "171, 171, 171",
        ]
        .into_iter()
        .find(|n| text.contains(n))
        {
            leaks.push(format!("{what} prints {needle:?}: {text}"));
        }
    }
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Input errors
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_input_is_an_input_error_and_loses_nothing_stored() {
    let dir = tempfile::tempdir().unwrap();
    let v = create(dir.path());
    let s = sid("kim@example.com");
    let p = purpose("p");
    let meta = RecordMeta::new(Category::Contact).purpose(p.clone());
    let keep = v.put(&s, meta.clone(), b"keep me").unwrap();

    // Subject identifiers.
    let e = SubjectId::new("").unwrap_err();
    assert!(matches!(
        Error::from(e),
        Error::Input(InputError::SubjectId(_))
    ));
    let e = SubjectId::new("a".repeat(MAX_SUBJECT_ID_LEN + 1)).unwrap_err();
    assert!(matches!(
        Error::from(e),
        Error::Input(InputError::SubjectId(_))
    ));
    assert_eq!(MAX_SUBJECT_ID_LEN, 1024);
    assert!(SubjectId::new("a".repeat(MAX_SUBJECT_ID_LEN)).is_ok());
    // 1025 bytes of multi-byte characters (fewer characters than bytes).
    let e = SubjectId::new("é".repeat(512) + "a").unwrap_err();
    assert!(matches!(e, InputError::SubjectId(_)));
    for bytes in [&[0xffu8, 0xfe][..], b"abc\xc3", b"\xed\xa0\x80", b""] {
        let e = SubjectId::from_bytes(bytes).unwrap_err();
        assert!(
            matches!(Error::from(e), Error::Input(InputError::SubjectId(_))),
            "{bytes:?}"
        );
    }
    assert!(SubjectId::from_bytes("ok@example.com".as_bytes()).is_ok());

    // Payloads over the limit: put, put_many, update, rectify.
    let huge = vec![0u8; MAX_PAYLOAD_LEN + 1];
    let r = v.put(&s, meta.clone(), &huge);
    assert!(
        matches!(
            r,
            Err(Error::Input(InputError::PayloadTooLarge { len, max }))
                if len == MAX_PAYLOAD_LEN + 1 && max == MAX_PAYLOAD_LEN
        ),
        "{r:?}"
    );
    let newcomer = sid("newcomer@example.com");
    let r = v.put(&newcomer, meta.clone(), &huge);
    assert!(
        matches!(r, Err(Error::Input(InputError::PayloadTooLarge { .. }))),
        "{r:?}"
    );
    let r = v.put_many([
        (&s, meta.clone(), &b"first of a failing batch"[..]),
        (&s, meta.clone(), &huge[..]),
    ]);
    assert!(
        matches!(r, Err(Error::Input(InputError::PayloadTooLarge { .. }))),
        "{r:?}"
    );
    let r = v.update(&s, keep, &huge);
    assert!(
        matches!(r, Err(Error::Input(InputError::PayloadTooLarge { .. }))),
        "{r:?}"
    );
    let r = v.rectify(&s, keep, None, Some(&huge), "fix");
    assert!(
        matches!(r, Err(Error::Input(InputError::PayloadTooLarge { .. }))),
        "{r:?}"
    );
    drop(huge);

    // Bad metadata and names.
    let r = v.put(&s, meta.clone().source("bad\nsource"), b"x");
    assert!(
        matches!(r, Err(Error::Input(InputError::Field { .. }))),
        "{r:?}"
    );
    let r = v.put(&s, meta.clone().source(""), b"x");
    assert!(
        matches!(r, Err(Error::Input(InputError::Field { .. }))),
        "{r:?}"
    );
    assert!(matches!(
        Category::custom("Not-Kebab"),
        Err(InputError::Category(_))
    ));
    assert!(matches!(Purpose::new(""), Err(InputError::Purpose(_))));
    assert!(matches!(
        Purpose::new("x".repeat(65)),
        Err(InputError::Purpose(_))
    ));
    assert!(matches!(
        "nope".parse::<RecordId>(),
        Err(InputError::RecordId)
    ));

    // A payload of exactly the limit is accepted.
    let max = vec![7u8; MAX_PAYLOAD_LEN];
    let at_max = v.put(&s, meta.clone(), &max).unwrap();
    assert_eq!(
        v.get(&s, at_max, &p).unwrap().payload.len(),
        MAX_PAYLOAD_LEN
    );
    drop(max);
    v.delete(&s, at_max).unwrap();

    // Nothing stored was lost or added by the failures.
    let check = |v: &Vault| {
        let r = v.get(&s, keep, &p).unwrap();
        assert_eq!(r.payload, b"keep me");
        assert_eq!(r.info.version, 1);
        let listed = v.list(&s).unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert!(v.list(&newcomer).map(|l| l.is_empty()).unwrap_or(true));
        assert!(v.verify().unwrap().is_whole());
    };
    check(&v);
    v.close().unwrap();
    let v = open(dir.path()).unwrap();
    check(&v);
}

/// Closing or dropping the last handle releases the vault: an open right after it succeeds.
/// (Every other test opens through `open`, which tolerates the store's lock being released late;
/// this one does not.)
const REOPEN_ENV: &str = "PDVAULT_CORE_TEST_CHILD_REOPEN";
const REOPEN_TEST: &str = "reopening_right_after_close_or_drop_succeeds";

#[test]
fn reopening_right_after_close_or_drop_succeeds() {
    if std::env::var_os(REOPEN_ENV).is_some() {
        // The child: a fresh process creates, closes and at once reopens a vault (the first
        // close of a process is where a late release shows most often).
        let dir = tempfile::tempdir().unwrap();
        create(dir.path()).close().unwrap();
        match open_once(dir.path()) {
            Ok(_) => println!("\nCHILD-RESULT: Opened"),
            Err(e) => println!("\nCHILD-RESULT: {e:?}"),
        }
        return;
    }
    let mut failures = Vec::new();
    for k in 0..60 {
        let r = run_child(REOPEN_TEST, REOPEN_ENV, "1".as_ref());
        if r != "Opened" {
            failures.push(format!("fresh process {k}: {r}"));
        }
    }
    assert!(
        failures.is_empty(),
        "an open right after close failed:\n{}",
        failures.join("\n")
    );
    let dir = tempfile::tempdir().unwrap();
    create(dir.path()).close().unwrap();
    let s = sid("loop@example.com");
    let p = purpose("p");
    let mut ids = Vec::new();
    for i in 0..150 {
        let v = match open_once(dir.path()) {
            Ok(v) => v,
            Err(e) => panic!("open number {i} right after the last handle went: {e:?}"),
        };
        ids.push(
            v.put(
                &s,
                RecordMeta::new(Category::Usage).purpose(p.clone()),
                b"x",
            )
            .unwrap(),
        );
        if i % 2 == 0 {
            drop(v)
        } else {
            v.close().unwrap()
        }
    }
    let v = open(dir.path()).unwrap();
    assert_eq!(v.list(&s).unwrap().len(), ids.len());
}

#[test]
fn collection_time_defaults_to_the_vault_clock_and_survives_rectification() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = ts("2021-06-01T10:00:00Z");
    let clock = ManualClock::new(t0);
    let v = Vault::builder(dir.path())
        .kdf(KdfParams::insecure_for_tests())
        .clock(clock.clone())
        .create(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    let s = sid("dora@example.com");
    let access = Purpose::SUBJECT_ACCESS;
    let id = v
        .put(&s, RecordMeta::new(Category::Contact), b"dora@example.com")
        .unwrap();
    assert_eq!(v.get(&s, id, &access).unwrap().info.meta.collected_at, t0);
    // Rectified metadata that does not name a collection time keeps the record's.
    clock.advance(jiff::Span::new().hours(48));
    v.rectify(
        &s,
        id,
        Some(RecordMeta::new(Category::Contact).source("support-call")),
        None,
        "the source was missing",
    )
    .unwrap();
    let info = v.get(&s, id, &access).unwrap().info;
    assert_eq!(info.meta.collected_at, t0);
    assert_eq!(info.meta.source.as_deref(), Some("support-call"));
}

/// The audit trail's read entries for `subject` after the first `skip`: (category, note).
fn reads_noted(v: &Vault, subject: &SubjectId, skip: usize) -> Vec<(String, String)> {
    v.audit_entries(Some(subject), None).unwrap()[skip..]
        .iter()
        .filter(|e| e.op == AuditOp::Read)
        .map(|e| (e.category.clone().unwrap(), e.note.clone().unwrap()))
        .collect()
}

/// `read_each` hands over what `read_all` returns, in the same order; and the audit trail notes
/// exactly what it handed over, whether the scan ends, is stopped by the caller, or the caller
/// panics (the entry then survives a reopen).
#[test]
fn read_each_streams_what_read_all_returns_and_notes_what_it_handed_over() {
    use std::ops::ControlFlow;
    let dir = tempfile::tempdir().unwrap();
    let v = create(dir.path());
    let alice = sid("alice@example.com");
    let billing = purpose("billing");
    let contact = RecordMeta::new(Category::Contact).purpose(billing.clone());
    for i in 0..4u8 {
        v.put(&alice, contact.clone(), &[i; 30]).unwrap();
    }
    v.put(
        &alice,
        RecordMeta::new(Category::Payment).purpose(billing.clone()),
        b"card",
    )
    .unwrap();
    let all: Vec<(RecordId, Vec<u8>)> = v
        .read_all(&alice, &billing)
        .unwrap()
        .into_iter()
        .map(|r| (r.info.record, r.payload))
        .collect();

    let before = v.audit_entries(Some(&alice), None).unwrap().len();
    let mut streamed = Vec::new();
    let n = v
        .read_each(&alice, &billing, |r| {
            streamed.push((r.info.record, r.payload));
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!((n, &streamed), (5, &all));
    assert_eq!(
        reads_noted(&v, &alice, before),
        vec![
            ("contact".to_owned(), "billing; 4 records".to_owned()),
            ("payment".to_owned(), "billing; 1 records".to_owned()),
        ]
    );

    let before = v.audit_entries(Some(&alice), None).unwrap().len();
    let mut first = None;
    let n = v
        .read_each(&alice, &billing, |r| {
            first = Some(r.info.record);
            ControlFlow::Break(())
        })
        .unwrap();
    assert_eq!((n, first), (1, Some(all[0].0)));
    let category = v.list(&alice).unwrap()[0].meta.category.name().to_owned();
    let one = vec![(category, "billing; 1 records".to_owned())];
    assert_eq!(reads_noted(&v, &alice, before), one);

    let before = v.audit_entries(Some(&alice), None).unwrap().len();
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        v.read_each(&alice, &billing, |_| panic!("the caller fails"))
    }));
    assert!(unwound.is_err());
    v.close().unwrap();
    let v = open(dir.path()).unwrap();
    assert_eq!(reads_noted(&v, &alice, before), one);
    assert!(v.verify().unwrap().is_whole());
    assert!(matches!(
        v.read_each(&sid("nobody@example.com"), &billing, |_| {
            ControlFlow::Continue(())
        }),
        Err(Error::SubjectNotFound)
    ));
}

/// `read_all` returns, decrypted, exactly the records the purpose may read: not those of other
/// purposes, not a restricted category's, not an erased one's; and it notes one audit entry per
/// category read.
#[test]
fn read_all_returns_what_the_purpose_may_read() {
    let dir = tempfile::tempdir().unwrap();
    let v = create(dir.path());
    let alice = sid("alice@example.com");
    let billing = purpose("billing");
    let contact = RecordMeta::new(Category::Contact).purpose(billing.clone());
    let mut want: Vec<(RecordId, Vec<u8>)> = (0..5u8)
        .map(|i| {
            let payload = vec![i; 40];
            (v.put(&alice, contact.clone(), &payload).unwrap(), payload)
        })
        .collect();
    let pay = v
        .put(
            &alice,
            RecordMeta::new(Category::Payment).purpose(billing.clone()),
            b"card",
        )
        .unwrap();
    want.push((pay, b"card".to_vec()));
    v.put(
        &alice,
        RecordMeta::new(Category::Usage).purpose(purpose("analytics")),
        b"clicks",
    )
    .unwrap();
    v.put(&sid("bob@example.com"), contact.clone(), b"bob's")
        .unwrap();
    want.sort_by_key(|(id, _)| id.to_string());

    let before = v.audit_entries(Some(&alice), None).unwrap().len();
    let got = v.read_all(&alice, &billing).unwrap();
    let mut got: Vec<(RecordId, Vec<u8>)> = got
        .into_iter()
        .map(|r| (r.info.record, r.payload))
        .collect();
    got.sort_by_key(|(id, _)| id.to_string());
    assert_eq!(got, want);
    assert_eq!(
        reads_noted(&v, &alice, before),
        vec![
            ("contact".to_owned(), "billing; 5 records".to_owned()),
            ("payment".to_owned(), "billing; 1 records".to_owned()),
        ]
    );

    v.restrict(&alice, Some(&Category::Payment)).unwrap();
    assert_eq!(v.read_all(&alice, &billing).unwrap().len(), 5);
    v.erase_category(&alice, &Category::Contact).unwrap();
    assert!(v.read_all(&alice, &billing).unwrap().is_empty());
    assert_eq!(
        v.read_all(&alice, &purpose("subject-access"))
            .unwrap()
            .len(),
        2,
        "the subject's own access reads what restriction keeps"
    );
    assert!(matches!(
        v.read_all(&sid("nobody@example.com"), &billing),
        Err(Error::SubjectNotFound)
    ));
}
