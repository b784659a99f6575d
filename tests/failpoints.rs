//! sled's own failure points, fired the way SQLite's I/O-error tests fire theirs: for every
//! operation of the vault and every failure point sled 0.34 has, make the point's 1st hit fail,
//! then its 2nd, its 3rd... until the operation succeeds without reaching it. Every run starts
//! from a copy of the same vault; after each failure the vault is dropped, reopened and checked:
//!
//! - the operation failed with a storage error, and nothing panicked;
//! - the vault opens again, `verify()` finds it whole and the audit trail intact;
//! - what it holds is what it held before the operation, or what the same operation leaves when it
//!   succeeds: nothing acknowledged before is lost, nothing is half done.
//!
//! Needs the test-only feature `sled-failpoints` (on with `--all-features`). The points are
//! global to the process, so the runs of this file take turns.
#![cfg(feature = "sled-failpoints")]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use jiff::{Timestamp, ToSpan};
use pdvault::__failpoints;
use pdvault::{
    Category, Error, HoldReason, HoldTarget, KdfParams, ManualClock, NewHold, Policy, Purpose,
    RecordId, RecordMeta, RootSecret, SubjectId, Vault,
};

/// Every failure point of sled 0.34.7 (`io_fail!` in its sources).
const POINTS: &[&str] = &[
    "buffer write",
    "buffer write post",
    "blob blob write",
    "write_blob write crc",
    "write_blob write kind_byte",
    "write_blob write buf",
    "write_config bytes",
    "write_config crc",
    "write_config post",
    "zero garbage segment SA",
    "file truncation",
    "segment initial free zero",
    "snap write",
    "snap write len",
    "snap write crc",
    "snap write post",
    "snap write mv",
    "snap write mv post",
    "snap write rm old",
];

/// A failure point hit more often than this by one operation ends the run with a failure.
const MAX_HITS: u32 = 63;

const SUBJECTS: [&str; 3] = ["alice@example.com", "bob@example.com", "carol@example.com"];
const POLICY: &str = "[retention.access-log]\nmax = \"3 months\"\n";

static TURN: Mutex<()> = Mutex::new(());

fn start() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn subject(i: usize) -> SubjectId {
    SubjectId::new(SUBJECTS[i]).unwrap()
}

fn secret() -> RootSecret {
    RootSecret::passphrase("failpoints")
}

fn open(dir: &Path) -> Result<Vault, Error> {
    // The clock stands four months after the start: the access log collected at the start is due.
    let now = start().checked_add((24 * 120).hours()).unwrap();
    Vault::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .clock(ManualClock::new(now))
        .open(secret())
}

/// The vault every run starts from: three subjects with records in several categories, one of
/// them (bob's access log) past its retention.
fn base(dir: &Path) -> BTreeMap<&'static str, RecordId> {
    let v = Vault::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .clock(ManualClock::new(start()))
        .policy(Policy::from_toml(POLICY).unwrap())
        .create(secret())
        .unwrap();
    let mut ids = BTreeMap::new();
    let records: [(&str, usize, Category, &str); 7] = [
        ("alice-contact", 0, Category::Contact, "alice@example.com"),
        ("alice-usage", 0, Category::Usage, "alice clicked"),
        ("alice-usage-2", 0, Category::Usage, "alice scrolled"),
        ("bob-contact", 1, Category::Contact, "+1 555 0100"),
        (
            "bob-access-log",
            1,
            Category::AccessLog,
            "GET / 203.0.113.9",
        ),
        ("carol-contact", 2, Category::Contact, "carol@example.com"),
        ("carol-payment", 2, Category::Payment, "card ending 4242"),
    ];
    for (name, s, cat, payload) in records {
        let meta = RecordMeta::new(cat).purpose(Purpose::new("service").unwrap());
        ids.insert(name, v.put(&subject(s), meta, payload.as_bytes()).unwrap());
    }
    v.close().unwrap();
    ids
}

/// What the vault holds, without the random ids a run creates: per subject, its records'
/// categories and payloads (or `None` once the subject is gone), and its active holds.
type Contents = BTreeMap<usize, Option<(Vec<(String, Vec<u8>)>, Vec<String>)>>;

fn contents(v: &Vault) -> Result<Contents, String> {
    let access = Purpose::SUBJECT_ACCESS;
    let now = v.now();
    let mut out = Contents::new();
    for s in 0..SUBJECTS.len() {
        let infos = match v.list(&subject(s)) {
            Ok(infos) => infos,
            Err(Error::SubjectNotFound) => {
                out.insert(s, None);
                continue;
            }
            Err(e) => return Err(format!("list subject {s}: {e}")),
        };
        let mut records = Vec::new();
        for info in infos {
            let r = v
                .get(&subject(s), info.record, &access)
                .map_err(|e| format!("read record {} of subject {s}: {e}", info.record))?;
            records.push((info.meta.category.to_string(), r.payload));
        }
        records.sort();
        let mut holds: Vec<String> = v
            .holds(Some(&subject(s)))
            .map_err(|e| format!("holds of subject {s}: {e}"))?
            .into_iter()
            .filter(|h| h.is_active(now))
            .map(|h| format!("{:?}", h.scope))
            .collect();
        holds.sort();
        out.insert(s, Some((records, holds)));
    }
    Ok(out)
}

/// One operation of the vault, run against an open vault (or, for `open` and `close`, around it).
#[derive(Clone, Copy, Debug)]
enum Op {
    Open,
    Put,
    Update,
    EraseRecord,
    EraseCategory,
    EraseSubject,
    Sweep,
    PlaceHold,
    Close,
}

const OPS: [Op; 9] = [
    Op::Open,
    Op::Put,
    Op::Update,
    Op::EraseRecord,
    Op::EraseCategory,
    Op::EraseSubject,
    Op::Sweep,
    Op::PlaceHold,
    Op::Close,
];

fn run_op(v: &Vault, op: Op, ids: &BTreeMap<&'static str, RecordId>) -> Result<(), Error> {
    match op {
        Op::Open | Op::Close => Ok(()),
        Op::Put => {
            let meta = RecordMeta::new(Category::Contact).purpose(Purpose::new("service")?);
            v.put(&subject(0), meta, b"alice@example.org").map(drop)
        }
        Op::Update => v.update(&subject(1), ids["bob-contact"], b"+1 555 0199"),
        Op::EraseRecord => v.erase_record(&subject(0), ids["alice-usage"]).map(drop),
        Op::EraseCategory => v.erase_category(&subject(0), &Category::Usage).map(drop),
        Op::EraseSubject => v.erase_subject(&subject(2)).map(drop),
        Op::Sweep => v.sweep().map(drop),
        Op::PlaceHold => v
            .place_hold(
                &subject(1),
                NewHold::new(HoldTarget::Subject, HoldReason::Dispute),
            )
            .map(drop),
    }
}

/// Runs `op` on a fresh copy of `base_dir` with `point` armed to fail at its `hit`-th hit (none:
/// unarmed). `Ok(true)` if the operation failed.
fn attempt(
    base_dir: &Path,
    work: &Path,
    ids: &BTreeMap<&'static str, RecordId>,
    op: Op,
    armed: Option<(&'static str, u32)>,
) -> Result<(bool, Contents), String> {
    if work.exists() {
        std::fs::remove_dir_all(work).unwrap();
    }
    copy_dir(base_dir, work);
    let arm = || {
        if let Some((point, hit)) = armed {
            __failpoints::fail_at(point, hit);
        }
    };
    let failed = match op {
        Op::Open => {
            arm();
            let r = open(work);
            __failpoints::reset();
            match r {
                Ok(v) => {
                    v.close().map_err(|e| format!("close: {e}"))?;
                    false
                }
                Err(e) => {
                    expect_storage_error(&e)?;
                    true
                }
            }
        }
        _ => {
            let v = open(work).map_err(|e| format!("open before the operation: {e}"))?;
            arm();
            let r = run_op(&v, op, ids);
            let r = if matches!(op, Op::Close) {
                r.and_then(|()| v.close())
            } else {
                r.map(|()| {
                    // Dropped rather than closed: the failure point may have fired in a
                    // background flush, and an unfailed run is compared after a reopen anyway.
                    drop(v);
                })
            };
            __failpoints::reset();
            match r {
                Ok(()) => false,
                Err(e) => {
                    expect_storage_error(&e)?;
                    true
                }
            }
        }
    };
    let v = open(work).map_err(|e| format!("reopen: {e}"))?;
    let report = v.verify().map_err(|e| format!("verify: {e}"))?;
    if !report.is_whole() {
        return Err(format!("verify after reopening: {:?}", report.problems));
    }
    let audit = v.audit_verify().map_err(|e| format!("audit_verify: {e}"))?;
    if !audit.is_intact() {
        return Err(format!("audit trail after reopening: {audit:?}"));
    }
    let held = contents(&v)?;
    v.close()
        .map_err(|e| format!("close after the check: {e}"))?;
    Ok((failed, held))
}

fn expect_storage_error(e: &Error) -> Result<(), String> {
    match e {
        Error::Storage(_) => Ok(()),
        other => Err(format!("expected a storage error, got {other:?} ({other})")),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every failure point, at every hit, for `op`.
fn fire_every_point(op: Op) {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let base_dir = tmp.path().join("base");
    let work = tmp.path().join("work");
    let ids = base(&base_dir);
    let before = {
        let v = open(&base_dir).unwrap();
        let c = contents(&v).unwrap();
        v.close().unwrap();
        c
    };
    let (failed, after) = attempt(&base_dir, &work, &ids, op, None).unwrap();
    assert!(!failed, "{op:?} fails with no failure point armed");
    if !matches!(op, Op::Open | Op::Close) {
        assert_ne!(before, after, "{op:?} changes what the vault holds");
    }
    let mut failures = 0u32;
    let mut problems = Vec::new();
    let mut first_error = None;
    for point in POINTS {
        let mut hit = 0;
        loop {
            if hit > MAX_HITS {
                problems.push(format!("{point}: still failing after {MAX_HITS} hits"));
                break;
            }
            match attempt(&base_dir, &work, &ids, op, Some((point, hit))) {
                Ok((false, held)) => {
                    if held != after {
                        problems.push(format!(
                            "{point} armed at hit {hit}, not reached: the result differs"
                        ));
                    }
                    break;
                }
                Ok((true, held)) => {
                    failures += 1;
                    first_error.get_or_insert_with(|| format!("{point} at hit {hit}"));
                    if held != before && held != after {
                        problems.push(format!(
                            "{point} at hit {hit}: half done:\n  before {before:?}\n  \
                             after {after:?}\n  held {held:?}"
                        ));
                    }
                }
                Err(e) => problems.push(format!("{point} at hit {hit}: {e}")),
            }
            hit += 1;
        }
    }
    println!(
        "failpoints: {op:?}: {} points, {failures} injected failures, {} problems",
        POINTS.len(),
        problems.len()
    );
    assert!(problems.is_empty(), "{op:?}:\n{}", problems.join("\n"));
}

#[test]
fn failure_points_fire_during_every_operation() {
    for op in OPS {
        fire_every_point(op);
    }
}
