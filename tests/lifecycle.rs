//! A vault's lifecycle in a service: audit entries of reads reach the disk within a bounded
//! window even if the process is killed (or before the read returns, with durable reads), and
//! closing one handle closes every clone without losing what they buffered.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use pdvault::*;

const CHILD_ENV: &str = "PDVAULT_LIFECYCLE_CHILD";
const READS: usize = 50;

fn builder(dir: &std::path::Path) -> VaultBuilder {
    Vault::builder(dir).kdf(KdfParams::insecure_for_tests())
}

fn reads_in_trail(dir: &std::path::Path) -> usize {
    let v = builder(dir)
        .open(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    assert!(v.audit_verify().unwrap().is_intact());
    v.audit_entries(None, None)
        .unwrap()
        .iter()
        .filter(|e| e.op == AuditOp::Read)
        .count()
}

/// The child: writes a record, reads it `READS` times, says so, and waits to be killed.
#[test]
fn child_reads_then_waits_to_be_killed() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (dir, mode) = spec.split_once('|').unwrap();
    let mut b = builder(std::path::Path::new(dir));
    match mode {
        "durable" => b = b.durable_reads(true),
        "window" => b = b.read_audit_window(Duration::from_millis(200)),
        _ => {}
    }
    let v = b.create(RootSecret::passphrase("pw-passphrase")).unwrap();
    let s = SubjectId::new("reader@example.com").unwrap();
    let p = Purpose::new("service").unwrap();
    let id = v
        .put(
            &s,
            RecordMeta::new(Category::Contact).purpose(p.clone()),
            b"x",
        )
        .unwrap();
    for _ in 0..READS {
        v.get(&s, id, &p).unwrap();
    }
    println!("READY");
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Runs the child in `mode`, kills it `wait` after its reads returned; returns the reads the
/// trail holds then.
fn killed_after(mode: &str, wait: Duration) -> usize {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_reads_then_waits_to_be_killed",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{}|{mode}", dir.display()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("READY") => break,
            Some(Ok(_)) => continue,
            other => panic!("the child ended before its reads: {other:?}"),
        }
    }
    std::thread::sleep(wait);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reads_in_trail(&dir)
}

#[test]
fn a_killed_process_loses_no_read_older_than_the_default_window() {
    // The default window is one second; three leave room for a loaded machine.
    assert_eq!(killed_after("default", Duration::from_secs(3)), READS);
}

#[test]
fn a_killed_process_loses_no_read_older_than_a_chosen_window() {
    assert_eq!(killed_after("window", Duration::from_millis(1500)), READS);
}

#[test]
fn with_durable_reads_a_killed_process_loses_no_read_that_returned() {
    assert_eq!(killed_after("durable", Duration::ZERO), READS);
}

#[test]
fn closing_one_handle_closes_every_clone_and_loses_nothing_they_buffered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    // A window longer than the test: only the close writes the buffered reads.
    let a = builder(&dir)
        .read_audit_window(Duration::from_secs(3600))
        .create(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    let b = a.as_actor("clone").unwrap();
    let s = SubjectId::new("reader@example.com").unwrap();
    let p = Purpose::new("service").unwrap();
    let id = b
        .put(
            &s,
            RecordMeta::new(Category::Contact).purpose(p.clone()),
            b"x",
        )
        .unwrap();
    for _ in 0..3 {
        b.get(&s, id, &p).unwrap();
    }
    a.close().unwrap();
    let closed = |r: Result<()>| matches!(r, Err(Error::Storage(StorageError::Closed)));
    assert!(closed(b.get(&s, id, &p).map(drop)));
    assert!(closed(
        b.put(&s, RecordMeta::new(Category::Contact), b"y")
            .map(drop)
    ));
    assert!(closed(b.list(&s).map(drop)));
    assert!(closed(b.erase_subject(&s).map(drop)));
    drop(b);
    assert_eq!(reads_in_trail(&dir), 3);
}

#[test]
fn open_or_create_creates_once_then_opens_with_the_default_actor() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let s = SubjectId::new("kept@example.com").unwrap();
    let p = Purpose::new("service").unwrap();
    let first = builder(&dir)
        .actor("signup-service")
        .open_or_create(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    assert_eq!(first.actor(), "signup-service");
    let id = first
        .put(
            &s,
            RecordMeta::new(Category::Contact).purpose(p.clone()),
            b"x",
        )
        .unwrap();
    first.close().unwrap();
    let again = builder(&dir)
        .open_or_create(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    assert_eq!(again.get(&s, id, &p).unwrap().payload, b"x");
    let puts: Vec<_> = again
        .audit_entries(None, None)
        .unwrap()
        .into_iter()
        .filter(|e| e.op == AuditOp::Put)
        .map(|e| e.actor)
        .collect();
    assert_eq!(puts, ["signup-service"]);
}

#[test]
fn opening_waits_as_long_as_the_lock_wait_for_a_handle_being_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let held = builder(&dir)
        .create(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    // Held: the default wait gives up.
    let e = builder(&dir)
        .open(RootSecret::passphrase("pw-passphrase"))
        .unwrap_err();
    assert!(matches!(e, Error::Open(OpenError::AlreadyOpen(_))), "{e}");
    // Released while a patient opener waits: it opens.
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        held.close().unwrap();
    });
    let v = builder(&dir)
        .lock_wait(Duration::from_secs(30))
        .open(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    closer.join().unwrap();
    assert!(v.verify().unwrap().is_whole());
}
