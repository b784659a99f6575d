//! A full disk, for real: the vault lives on a small tmpfs and is written until the file system
//! has no space left. The write that does not fit fails with a clear storage error, nothing
//! panics, and once space is freed the vault reopens with every acknowledged record intact.
//!
//! The small file system is `PDVAULT_FULL_DISK_DIR` (an empty directory on a file system of a few
//! MiB) or, when the test runs as root, a tmpfs it mounts itself. Elsewhere it says it is skipped:
//! the storage-layer failure points of `tests/failpoints.rs` exercise the same paths.

use std::path::{Path, PathBuf};
use std::process::Command;

use pdvault::{
    Category, Error, KdfParams, Purpose, RecordId, RecordMeta, RootSecret, StorageError, SubjectId,
    Vault,
};

const FS_SIZE: &str = "16m";
const BALLAST: usize = 6 << 20;
const PAYLOAD: usize = 8 << 10;
const MAX_PUTS: usize = 20_000;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The small file system: its directory, and the mount to undo.
fn small_fs(tmp: &Path) -> Option<(PathBuf, Option<Mounted>)> {
    if let Some(dir) = std::env::var_os("PDVAULT_FULL_DISK_DIR") {
        return Some((PathBuf::from(dir), None));
    }
    let dir = tmp.join("small-fs");
    std::fs::create_dir_all(&dir).ok()?;
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={FS_SIZE}"),
            "pdvault-test",
        ])
        .arg(&dir)
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?
        .success();
    mounted.then(|| (dir.clone(), Some(Mounted(dir))))
}

fn payload(i: usize) -> Vec<u8> {
    let mut p = format!("record {i} ").into_bytes();
    p.resize(PAYLOAD, b'a' + (i % 26) as u8);
    p
}

fn subject(i: usize) -> SubjectId {
    SubjectId::new(format!("subject-{}@example.com", i % 7)).unwrap()
}

fn open(dir: &Path) -> Result<Vault, Error> {
    Vault::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .open(RootSecret::passphrase("full disk"))
}

const CHILD_ENV: &str = "PDVAULT_FULL_DISK_CHILD";
const CHILD_TEST: &str = "full_disk_child";

/// The child: fills the vault on the small file system until a write fails, journals every
/// acknowledged record (outside the small file system) and checks the error. It exits without
/// reopening: a process whose store failed a write is replaced by a new one, as a service's would
/// be (sled 0.34 may keep its lock after a failed write until the process exits).
#[test]
fn full_disk_child() {
    let Some(fs) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let fs = PathBuf::from(fs);
    let journal = fs.parent().unwrap().join("acknowledged");
    let v = Vault::builder(fs.join("vault"))
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::passphrase("full disk"))
        .unwrap();
    let service = Purpose::new("service").unwrap();
    let mut acknowledged = String::new();
    let mut error = None;
    for i in 0..MAX_PUTS {
        let meta = RecordMeta::new(Category::Communication).purpose(service.clone());
        match v.put(&subject(i), meta, &payload(i)) {
            Ok(id) => acknowledged.push_str(&format!("{i} {id}\n")),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    std::fs::write(&journal, &acknowledged).unwrap();
    let error = error.expect("the file system fills up");
    println!("full disk: then: {error}");
    assert!(
        matches!(error, Error::Storage(StorageError::NoSpace(_))),
        "a full disk is reported as such: {error:?}"
    );
    // Later writes fail at once, without touching the store again; nothing panics or hangs.
    let meta = RecordMeta::new(Category::Communication).purpose(service);
    let again = v.put(&subject(0), meta, &payload(0)).unwrap_err();
    assert!(
        matches!(again, Error::Storage(StorageError::Halted(_))),
        "{again:?}"
    );
    let _ = v.close();
    std::process::exit(0);
}

#[test]
fn a_full_disk_fails_writes_cleanly_and_loses_nothing() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some((fs, _mounted)) = small_fs(tmp.path()) else {
        println!(
            "full disk: skipped (set PDVAULT_FULL_DISK_DIR to a small file system, or run as \
             root to mount a tmpfs)"
        );
        return;
    };
    let ballast = fs.join("ballast");
    std::fs::write(&ballast, vec![0u8; BALLAST]).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &fs)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the writer: {printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let journal = std::fs::read_to_string(fs.parent().unwrap().join("acknowledged")).unwrap();
    let acknowledged: Vec<(usize, RecordId)> = journal
        .lines()
        .map(|l| {
            let (i, id) = l.split_once(' ').unwrap();
            (i.parse().unwrap(), id.parse().unwrap())
        })
        .collect();
    println!(
        "full disk: {} records acknowledged, then: {}",
        acknowledged.len(),
        printed
            .lines()
            .find_map(|l| l.split_once("full disk: then: ").map(|(_, e)| e))
            .unwrap_or("")
    );
    assert!(!acknowledged.is_empty(), "some records fit");

    std::fs::remove_file(&ballast).unwrap();
    let dir = fs.join("vault");
    let v = open(&dir).expect("the vault reopens once space is freed");
    let access = Purpose::SUBJECT_ACCESS;
    for (i, id) in &acknowledged {
        let r = v
            .get(&subject(*i), *id, &access)
            .unwrap_or_else(|e| panic!("acknowledged record {i} reads back: {e}"));
        assert_eq!(r.payload, payload(*i), "record {i}");
    }
    let report = v.verify().unwrap();
    assert!(report.is_whole(), "{:?}", report.problems);
    assert!(v.audit_verify().unwrap().is_intact());
    let meta = RecordMeta::new(Category::Communication).purpose(Purpose::new("service").unwrap());
    v.put(&subject(0), meta, b"after the disk was freed")
        .expect("writes work again");
    v.close().unwrap();
}
