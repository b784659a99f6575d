//! Damaged store files: a copy of a vault whose sled files were truncated, garbled or zeroed
//! either fails to open (an error, never a panic or a hang), or opens and says it is not whole,
//! or still holds every record intact. Never: opens, says whole, and has lost or changed
//! records. And a store that lost its newest writes against the vault file's checkpoint is data
//! loss at open.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use pdvault::*;

const PW: &str = "pw-damage-tests";
const RECORDS: usize = 2000;
const PAYLOAD_LEN: usize = 300;
const SUBJECTS: usize = 20;

fn subject_name(s: usize) -> String {
    format!("damage-subject-{s}@example.com")
}

fn purpose() -> Purpose {
    Purpose::new("p").unwrap()
}

/// A deterministic payload of `PAYLOAD_LEN` bytes, distinct per (seed, i).
fn payload(seed: u64, i: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(i as u64 + 1);
    let mut out = format!("record-{seed}-{i}-").into_bytes();
    while out.len() < PAYLOAD_LEN {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x as u8);
    }
    out
}

/// What was acknowledged: subject index → (record id → payload).
type Expected = HashMap<usize, HashMap<RecordId, Vec<u8>>>;

fn create(dir: &Path) -> Vault {
    Vault::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::passphrase(PW))
        .unwrap()
}

fn open_once(dir: &Path) -> Result<Vault> {
    Vault::builder(dir).open(RootSecret::passphrase(PW))
}

/// Opens, waiting while the store's own file lock is still held by a previous opener's
/// background threads in this process (a known late release, see tests/core.rs).
fn open(dir: &Path) -> Result<Vault> {
    for _ in 0..100 {
        match open_once(dir) {
            Err(Error::Storage(StorageError::Io(e)))
                if e.to_string().contains("could not acquire lock") =>
            {
                std::thread::sleep(Duration::from_millis(20))
            }
            r => return r,
        }
    }
    open_once(dir)
}

/// Writes `n` records spread over the subjects, in batches of 100 (one commit each).
fn write_records(v: &Vault, seed: u64, n: usize, expected: &mut Expected) {
    let p = purpose();
    let cats = [Category::Contact, Category::Usage, Category::Payment];
    let mut i = 0;
    while i < n {
        let batch: Vec<(usize, SubjectId, RecordMeta, Vec<u8>)> = (i..(i + 100).min(n))
            .map(|k| {
                let s = k % SUBJECTS;
                (
                    s,
                    SubjectId::new(subject_name(s)).unwrap(),
                    RecordMeta::new(cats[k % cats.len()].clone()).purpose(p.clone()),
                    payload(seed, k),
                )
            })
            .collect();
        let ids = v
            .put_many(
                batch
                    .iter()
                    .map(|(_, s, m, pl)| (s, m.clone(), pl.as_slice())),
            )
            .unwrap();
        assert_eq!(ids.len(), batch.len());
        for ((s, _, _, pl), id) in batch.into_iter().zip(ids) {
            expected.entry(s).or_default().insert(id, pl);
        }
        i += 100;
    }
}

/// The pristine vault every damage case copies: 2000 records of 300 bytes, closed.
struct Base {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    expected: Expected,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vault");
        let v = create(&dir);
        let mut expected = Expected::new();
        write_records(&v, 1, RECORDS, &mut expected);
        assert_eq!(expected.values().map(|m| m.len()).sum::<usize>(), RECORDS);
        v.close().unwrap();
        // Sanity: the pristine vault opens whole with everything in it.
        let v = open(&dir).unwrap();
        let rep = v.verify().unwrap();
        assert!(rep.is_whole(), "{rep:?}");
        assert_eq!(rep.records, RECORDS as u64);
        drop(v);
        Base {
            _tmp: tmp,
            dir,
            expected,
        }
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            files_under(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}

/// The store's files, largest first, as paths relative to the vault directory.
fn store_files(vault_dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut files = Vec::new();
    files_under(&vault_dir.join("store"), &mut files);
    let mut out: Vec<(PathBuf, u64)> = files
        .into_iter()
        .map(|f| {
            let len = std::fs::metadata(&f).unwrap().len();
            (f.strip_prefix(vault_dir).unwrap().to_path_buf(), len)
        })
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// How a damaged copy turned out (the details are read through `Debug`).
#[derive(Debug)]
#[allow(dead_code)]
enum Outcome {
    /// Open refused it.
    Refused(String),
    /// It opened; `verify` failed or reported problems.
    Reported(String),
    /// It opened, says whole, and every record reads back intact.
    Intact,
    /// It opened, says whole, and records are missing or wrong: never acceptable.
    SilentLoss(String),
}

fn examine(dir: &Path, expected: &Expected) -> Outcome {
    let v = match open(dir) {
        Err(e) => return Outcome::Refused(format!("{e:?}")),
        Ok(v) => v,
    };
    let rep = match v.verify() {
        Err(e) => return Outcome::Reported(format!("verify failed: {e:?}")),
        Ok(r) => r,
    };
    if !rep.is_whole() {
        return Outcome::Reported(format!("{:?} / {:?}", rep.problems, rep.audit));
    }
    let p = purpose();
    let mut wrong = Vec::new();
    for (s, records) in expected {
        let sid = SubjectId::new(subject_name(*s)).unwrap();
        match v.list(&sid) {
            Ok(l) if l.len() == records.len() => {}
            Ok(l) => wrong.push(format!(
                "subject {s} lists {} records, expected {}",
                l.len(),
                records.len()
            )),
            Err(e) => wrong.push(format!("subject {s} does not list: {e:?}")),
        }
        for (id, pl) in records {
            match v.get(&sid, *id, &p) {
                Ok(r) if &r.payload == pl => {}
                Ok(_) => wrong.push(format!("record {id} of subject {s} has another payload")),
                Err(e) => wrong.push(format!("record {id} of subject {s}: {e:?}")),
            }
        }
    }
    if rep.records != RECORDS as u64 {
        wrong.push(format!("verify checked {} records", rep.records));
    }
    if wrong.is_empty() {
        Outcome::Intact
    } else {
        wrong.truncate(10);
        Outcome::SilentLoss(wrong.join("; "))
    }
}

/// Examines a damaged copy on another thread: a panic or a hang fails the test with `what`.
fn examine_safely(dir: &Path, expected: &'static Expected, what: &str) -> Outcome {
    let (tx, rx) = std::sync::mpsc::channel();
    let d = dir.to_path_buf();
    std::thread::spawn(move || {
        let r = catch_unwind(AssertUnwindSafe(|| examine(&d, expected)));
        let _ = tx.send(r.map_err(|p| {
            p.downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".into())
        }));
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(msg)) => panic!("{what}: opening or reading the damaged vault panicked: {msg}"),
        Err(_) => panic!("{what}: opening or reading the damaged vault hung for 60 s"),
    }
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    /// Keep the first `num/den` of the file.
    Truncate(u64, u64),
    /// Overwrite `len` bytes at `num/den` of the file with pseudo-random garbage.
    Garble(u64, u64, u64),
    /// Overwrite `len` bytes at `num/den` of the file with zeros.
    Zero(u64, u64, u64),
    /// Zeros over the whole file, same length.
    ZeroAll,
    /// The file is gone.
    Remove,
}

fn apply(path: &Path, damage: Damage) {
    let mut bytes = std::fs::read(path).unwrap();
    let n = bytes.len() as u64;
    match damage {
        Damage::Truncate(num, den) => bytes.truncate((n * num / den) as usize),
        Damage::Garble(num, den, len) | Damage::Zero(num, den, len) => {
            let start = (n * num / den).min(n);
            let end = (start + len).min(n);
            let mut x = 0x2545_F491_4F6C_DD1Du64 ^ start;
            for b in &mut bytes[start as usize..end as usize] {
                *b = if matches!(damage, Damage::Zero(..)) {
                    0
                } else {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                };
            }
        }
        Damage::ZeroAll => bytes.iter_mut().for_each(|b| *b = 0),
        Damage::Remove => {
            std::fs::remove_file(path).unwrap();
            return;
        }
    }
    std::fs::write(path, bytes).unwrap();
}

/// Damages a copy of the base vault and checks the outcome is acceptable.
fn damaged_copy_is_never_served_as_whole(file: &Path, damage: Damage) -> Outcome {
    let b = base();
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("copy");
    copy_dir(&b.dir, &copy);
    let target = copy.join(file);
    assert!(target.exists(), "{} missing in the copy", file.display());
    apply(&target, damage);
    let what = format!("{} with {damage:?}", file.display());
    let outcome = examine_safely(&copy, &b.expected, &what);
    eprintln!("{what}: {outcome:?}");
    if let Outcome::SilentLoss(details) = &outcome {
        panic!(
            "{what}: the vault opened and verified whole, but lost or changed records: {details}"
        );
    }
    outcome
}

#[test]
fn the_pristine_copy_opens_whole() {
    let b = base();
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("copy");
    copy_dir(&b.dir, &copy);
    let outcome = examine_safely(&copy, &b.expected, "an undamaged copy");
    assert!(matches!(outcome, Outcome::Intact), "{outcome:?}");
}

#[test]
fn the_store_has_the_files_the_damage_tests_aim_at() {
    let files = store_files(&base().dir);
    let names: Vec<String> = files.iter().map(|(f, _)| f.display().to_string()).collect();
    assert!(names.iter().any(|n| n == "store/db"), "{names:?}");
    assert!(names.iter().any(|n| n == "store/conf"), "{names:?}");
    // 2000 records of 300 bytes: the largest file holds at least their payloads.
    assert!(
        files[0].1 >= (RECORDS * PAYLOAD_LEN) as u64,
        "largest store file is {} bytes: {names:?}",
        files[0].1
    );
}

#[test]
fn the_largest_store_file_truncated_to_half_is_never_served_as_whole() {
    let (largest, _) = store_files(&base().dir).remove(0);
    damaged_copy_is_never_served_as_whole(&largest, Damage::Truncate(1, 2));
}

#[test]
fn the_largest_store_file_truncated_anywhere_is_never_served_as_whole() {
    let (largest, len) = store_files(&base().dir).remove(0);
    for (num, den) in [(0, 1), (1, 100), (1, 4), (3, 4), (99, 100), (len - 1, len)] {
        damaged_copy_is_never_served_as_whole(&largest, Damage::Truncate(num, den));
    }
}

#[test]
fn the_largest_store_file_garbled_in_the_middle_is_never_served_as_whole() {
    let (largest, _) = store_files(&base().dir).remove(0);
    for (num, den, len) in [
        (1, 2, 4096),
        (1, 2, 64),
        (1, 2, 1),
        (1, 4, 512),
        (9, 10, 4096),
    ] {
        damaged_copy_is_never_served_as_whole(&largest, Damage::Garble(num, den, len));
    }
    // A sweep across the whole file, so that live pages are hit wherever sled put them.
    let mut outcomes = Vec::new();
    for k in 0..24 {
        outcomes.push(damaged_copy_is_never_served_as_whole(
            &largest,
            Damage::Garble(2 * k + 1, 48, 256),
        ));
    }
    // The sweep did hit something that mattered (else it tests nothing).
    assert!(
        outcomes.iter().any(|o| !matches!(o, Outcome::Intact)),
        "{outcomes:?}"
    );
}

#[test]
fn the_largest_store_file_zeroed_is_never_served_as_whole() {
    let (largest, _) = store_files(&base().dir).remove(0);
    for d in [
        Damage::Zero(1, 2, 4096),
        Damage::Zero(1, 3, 65536),
        Damage::Zero(0, 1, 4096),
        Damage::ZeroAll,
    ] {
        damaged_copy_is_never_served_as_whole(&largest, d);
    }
}

#[test]
fn every_other_store_file_damaged_is_never_served_as_whole() {
    let files = store_files(&base().dir);
    for (f, len) in files.iter().skip(1) {
        let mut kinds = vec![Damage::Remove, Damage::ZeroAll];
        if *len > 0 {
            kinds.extend([Damage::Truncate(1, 2), Damage::Garble(1, 2, 64)]);
        }
        for d in kinds {
            damaged_copy_is_never_served_as_whole(f, d);
        }
    }
    // The largest file removed outright.
    damaged_copy_is_never_served_as_whole(&files[0].0, Damage::Remove);
}

/// A copy whose store is older than its vault file: the store dir is copied before a second
/// batch of writes, the vault file after closing. The checkpoint is newer than the store.
fn stale_store_copy(erase_in_second_batch: bool) -> (tempfile::TempDir, PathBuf, Expected) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let v = create(&dir);
    let mut expected = Expected::new();
    write_records(&v, 7, 300, &mut expected);
    v.close().unwrap();
    let stale_store = tmp.path().join("stale-store");
    copy_dir(&dir.join("store"), &stale_store);
    let v = open(&dir).unwrap();
    write_records(&v, 8, 300, &mut expected);
    if erase_in_second_batch {
        let s = SubjectId::new(subject_name(3)).unwrap();
        assert!(v.erase_subject(&s).unwrap().subject_erased);
    }
    v.close().unwrap();
    let copy = tmp.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(dir.join("vault.pdv"), copy.join("vault.pdv")).unwrap();
    std::fs::copy(dir.join("keys.slot"), copy.join("keys.slot")).unwrap();
    copy_dir(&stale_store, &copy.join("store"));
    (tmp, copy, expected)
}

#[test]
fn a_store_that_lost_its_newest_writes_is_data_loss_at_open() {
    for erase in [false, true] {
        let (_tmp, copy, _) = stale_store_copy(erase);
        let r = catch_unwind(AssertUnwindSafe(|| open(&copy)))
            .unwrap_or_else(|_| panic!("opening a stale store panicked (erase: {erase})"));
        assert!(
            matches!(r, Err(Error::Open(OpenError::DataLoss(_)))),
            "erase in the lost batch: {erase}: {r:?}"
        );
        // Refusing did not change anything: it is still refused.
        let r = open(&copy);
        assert!(
            matches!(r, Err(Error::Open(OpenError::DataLoss(_)))),
            "second open: {r:?}"
        );
    }
}

#[test]
fn a_store_newer_than_the_vault_file_opens_whole() {
    // The other way round (the vault file is older: a crash after writes, before the next
    // checkpoint) is normal and loses nothing. The crash is taken as a copy of the files of an
    // open vault after a flush: its vault file was written at the open before.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let v = create(&dir);
    let mut expected = Expected::new();
    write_records(&v, 9, 200, &mut expected);
    v.close().unwrap();
    let v = open(&dir).unwrap();
    write_records(&v, 10, 200, &mut expected);
    v.flush().unwrap();
    let copy = tmp.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    for f in ["vault.pdv", "keys.slot"] {
        std::fs::copy(dir.join(f), copy.join(f)).unwrap();
    }
    copy_dir(&dir.join("store"), &copy.join("store"));
    v.close().unwrap();
    let v = open(&copy).unwrap();
    let rep = v.verify().unwrap();
    assert!(rep.is_whole(), "{rep:?}");
    let p = purpose();
    for (s, records) in &expected {
        let sid = SubjectId::new(subject_name(*s)).unwrap();
        for (id, pl) in records {
            assert_eq!(&v.get(&sid, *id, &p).unwrap().payload, pl);
        }
    }
}
