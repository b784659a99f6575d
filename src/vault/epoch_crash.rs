//! Crashes inside every step of an epoch change.
//!
//! The test runs its own binary as a child that opens the vault, arms a pause point of the epoch
//! change (a new epoch key made; the vault file switched to it, the old key not yet destroyed) to
//! abort the process on its n-th hit, and runs an operation that changes epochs: a subject or a
//! category erasure, a sweep, a root rotation, a close. After each crash the vault must open,
//! hold exactly one live epoch key, verify whole, have the operation done or not started (never
//! half), and keep everything that was not its to destroy.

use std::path::Path;
use std::process::Command;

use super::Vault;
use crate::crypto::{KdfParams, RootSecret};
use crate::ids::SubjectId;
use crate::model::{Category, Purpose, RecordMeta};
use crate::pause;
use crate::policy::Policy;

const ENV: &str = "PDVAULT_EPOCH_CRASH";
const PASSPHRASES: [&str; 2] = ["epoch-crash-passphrase-a", "epoch-crash-passphrase-b"];
const POLICY: &str = "version = \"t\"\n[retention.usage]\nmax = \"30 days\"\n";

#[derive(Clone, Copy, Debug)]
enum Op {
    EraseSubject,
    EraseCategory,
    Sweep,
    Rotate,
    Close,
}

const OPS: [Op; 5] = [
    Op::EraseSubject,
    Op::EraseCategory,
    Op::Sweep,
    Op::Rotate,
    Op::Close,
];
const POINTS: [&str; 2] = [pause::EPOCH_CREATED, pause::EPOCH_SWITCHED];

fn service() -> Purpose {
    Purpose::new("service").unwrap()
}

fn subject(i: usize) -> SubjectId {
    SubjectId::new(format!("crash-{i}@example.com")).unwrap()
}

/// Opens the vault with whichever of the two passphrases it has (a rotation may have switched).
fn open(dir: &Path) -> (Vault, usize) {
    for (i, p) in PASSPHRASES.iter().enumerate() {
        match Vault::builder(dir).open(RootSecret::passphrase(*p)) {
            Ok(v) => return (v, i),
            Err(crate::Error::Open(crate::OpenError::WrongKey)) => continue,
            Err(e) => panic!("the vault does not open after a crash: {e}"),
        }
    }
    panic!("neither passphrase opens the vault")
}

/// The child: one operation, aborted at the n-th hit of a pause point.
#[test]
fn child() {
    let Ok(spec) = std::env::var(ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let (dir, op, point, nth, target) = (
        Path::new(parts[0]),
        OPS[parts[1].parse::<usize>().unwrap()],
        POINTS[parts[2].parse::<usize>().unwrap()],
        parts[3].parse::<usize>().unwrap(),
        parts[4].parse::<usize>().unwrap(),
    );
    let (v, pass) = open(dir);
    for _ in 1..nth {
        pause::arm(point, || {});
    }
    pause::arm(point, || std::process::abort());
    let s = subject(target);
    match op {
        Op::EraseSubject => drop(v.erase_subject(&s).unwrap()),
        Op::EraseCategory => drop(v.erase_category(&s, &Category::Contact).unwrap()),
        Op::Sweep => drop(v.sweep().unwrap()),
        Op::Rotate => v
            .rotate_root(
                RootSecret::passphrase(PASSPHRASES[1 - pass]),
                Some(KdfParams::insecure_for_tests()),
            )
            .unwrap(),
        Op::Close => v.close().unwrap(),
    }
    // The point was not reached n times: say so, the parent counts it as no crash.
    println!("finished without crashing");
}

// Guards: a crash at any step of an epoch change must leave one live epoch key, a vault that
// opens whole, and every destruction complete or not started.
#[test]
fn crashes_inside_every_step_of_an_epoch_change_leave_one_live_epoch() {
    let kills: usize = std::env::var("PDVAULT_EPOCH_CRASH_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let v = Vault::builder(&dir)
        .kdf(KdfParams::insecure_for_tests())
        .policy(Policy::from_toml(POLICY).unwrap())
        .create(RootSecret::passphrase(PASSPHRASES[0]))
        .unwrap();
    let kept = SubjectId::new("kept@example.com").unwrap();
    let kept_id = v
        .put(
            &kept,
            RecordMeta::new(Category::Contact).purpose(service()),
            b"kept",
        )
        .unwrap();
    v.close().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut crashed = 0;
    for i in 0..kills {
        let (op_i, point_i) = (i % OPS.len(), (i / OPS.len()) % POINTS.len());
        // The subject this run works on: a record it keeps, one it may lose, and (for the sweep)
        // one long past its retention.
        let (v, _) = open(&dir);
        let s = subject(i);
        let contact = v
            .put(
                &s,
                RecordMeta::new(Category::Contact).purpose(service()),
                b"contact",
            )
            .unwrap();
        let old = crate::policy::sub_span(v.now(), jiff::Span::new().days(400));
        let usage = v
            .put(
                &s,
                RecordMeta::new(Category::Usage)
                    .purpose(service())
                    .collected_at(old),
                b"usage",
            )
            .unwrap();
        v.close().unwrap();

        let out = Command::new(&exe)
            .args([
                "vault::epoch_crash::child",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(ENV, format!("{}|{op_i}|{point_i}|1|{i}", dir.display()))
            .output()
            .unwrap();
        let finished = String::from_utf8_lossy(&out.stdout).contains("finished without crashing");
        crashed += usize::from(!out.status.success() && !finished);
        assert!(
            finished || !out.status.success(),
            "run {i}: the child neither crashed nor finished: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let (v, _) = open(&dir);
        let report = v.verify().unwrap();
        assert!(report.is_whole(), "run {i} ({:?}): {report:?}", OPS[op_i]);
        assert_eq!(report.live_epochs, 1, "run {i}: live epochs after open");
        assert_eq!(v.get(&kept, kept_id, &service()).unwrap().payload, b"kept");
        let read = |id| v.get(&s, id, &service()).map(|r| r.payload);
        match OPS[op_i] {
            Op::EraseSubject => {
                // Done or not started: both records, or none.
                assert_eq!(
                    read(contact).is_ok(),
                    read(usage).is_ok(),
                    "run {i}: half an erasure"
                );
            }
            Op::EraseCategory => {
                assert!(read(usage).is_ok(), "run {i}: erased another category");
            }
            Op::Sweep => {
                assert!(
                    read(contact).is_ok(),
                    "run {i}: the sweep took a kept record"
                );
            }
            Op::Rotate | Op::Close => {
                assert!(read(contact).is_ok() && read(usage).is_ok(), "run {i}");
            }
        }
        v.close().unwrap();
    }
    println!("{crashed} of {kills} runs crashed inside an epoch change; every one reopened whole");
    assert!(
        crashed * 2 >= kills,
        "only {crashed} of {kills} runs crashed inside an epoch change"
    );
}
