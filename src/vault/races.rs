//! Races between destruction and everything that must be ordered with it.
//!
//! - A legal hold acknowledged before an erasure returned protects what it covers: the erasure
//!   either committed before the hold was placed (and the hold then finds no subject) or sees the
//!   hold when it plans. Shown deterministically (the erasure paused between its plan and its
//!   commit) and by a stress of a thousand unpaused races.
//! - A key or identity that a reader loaded before an erasure never enters the key cache after
//!   the erasure returned: nothing erased is readable again, and no later write is filed under
//!   an erased subject or sealed under a destroyed key.

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use super::Vault;
use crate::NewHold;
use crate::audit::AuditOp;
use crate::crypto::{KdfParams, RootSecret};
use crate::ids::{RecordId, SubjectId, SubjectRef};
use crate::model::{Category, Purpose, RecordMeta};
use crate::pause;
use crate::policy::holds::{HoldReason, HoldTarget};
use crate::{ErasureReport, Error, Result};

const PASSPHRASE: &str = "race-test-passphrase";

fn vault_in(dir: &std::path::Path) -> Vault {
    Vault::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::passphrase(PASSPHRASE))
        .unwrap()
}

fn reopen(dir: &std::path::Path) -> Vault {
    Vault::builder(dir)
        .open(RootSecret::passphrase(PASSPHRASE))
        .unwrap()
}

fn service() -> Purpose {
    Purpose::new("service").unwrap()
}

fn put(v: &Vault, s: &SubjectId, c: Category, payload: &[u8]) -> RecordId {
    v.put(s, RecordMeta::new(c).purpose(service()), payload)
        .unwrap()
}

/// How a race is run: the hold's target and the erasure racing it.
#[derive(Clone, Copy, Debug)]
#[allow(clippy::enum_variant_names)] // each names the hold and the erasure racing it
enum Race {
    SubjectHoldSubjectErasure,
    CategoryHoldCategoryErasure,
    CategoryHoldSubjectErasure,
}

impl Race {
    const ALL: [Race; 3] = [
        Race::SubjectHoldSubjectErasure,
        Race::CategoryHoldCategoryErasure,
        Race::CategoryHoldSubjectErasure,
    ];

    fn hold(self, v: &Vault, s: &SubjectId) -> Result<crate::ids::HoldId> {
        let target = match self {
            Race::SubjectHoldSubjectErasure => HoldTarget::Subject,
            _ => HoldTarget::Category(Category::Contact),
        };
        v.place_hold(
            s,
            NewHold::new(target, HoldReason::Dispute).reference("CASE-1"),
        )
    }

    fn erase(self, v: &Vault, s: &SubjectId) -> Result<ErasureReport> {
        match self {
            Race::CategoryHoldCategoryErasure => v.erase_category(s, &Category::Contact),
            _ => v.erase_subject(s),
        }
    }
}

/// The promise of a hold: acknowledged before a destruction committed, it protects what it
/// covers from that destruction; placed after (the audit trail orders commits), it cannot bring
/// back what was already destroyed; refused, only because the subject was already gone.
/// Returns a description of a violation.
fn check_hold_kept(
    v: &Vault,
    trail: &[crate::audit::AuditEntry],
    (s, sref, held): (&SubjectId, SubjectRef, RecordId),
    hold: &Result<crate::ids::HoldId>,
) -> Option<String> {
    let id = match hold {
        Ok(id) => id,
        Err(Error::SubjectNotFound) => return None,
        Err(e) => return Some(format!("hold refused with an unexpected error: {e}")),
    };
    let err = v.get(s, held, &service()).err()?;
    let seq_of =
        |f: &dyn Fn(&crate::audit::AuditEntry) -> bool| trail.iter().find(|e| f(e)).map(|e| e.seq);
    let placed = seq_of(&|e| {
        e.op == AuditOp::HoldPlace
            && e.note
                .as_deref()
                .is_some_and(|n| n.contains(&id.to_string()))
    });
    let destroyed = seq_of(&|e| e.op == AuditOp::Erase && e.subject == Some(sref));
    match (placed, destroyed) {
        (Some(p), Some(d)) if p > d => None,
        _ => Some(format!(
            "hold {id} committed at {placed:?}, before the destruction at {destroyed:?}, and its \
             record is gone: {err}"
        )),
    }
}

// Guards: `place_hold` took no part in the lock that orders destruction, so a hold committed
// between an erasure's plan and its commit was acknowledged and then ignored.
#[test]
fn a_hold_placed_while_an_erasure_is_planned_protects_what_it_covers() {
    for race in Race::ALL {
        let tmp = tempfile::tempdir().unwrap();
        let v = vault_in(tmp.path());
        let s = SubjectId::new("held@example.com").unwrap();
        let held = put(&v, &s, Category::Contact, b"held payload");
        put(&v, &s, Category::Usage, b"other payload");
        let sref = v.find(&s).unwrap().subject;

        let (planned_tx, planned_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let eraser = {
            let (v, s) = (v.clone(), s.clone());
            std::thread::spawn(move || {
                pause::arm(pause::DESTRUCTION_PLANNED, move || {
                    planned_tx.send(()).unwrap();
                    let _ = go_rx.recv();
                });
                race.erase(&v, &s)
            })
        };
        planned_rx.recv().unwrap();
        let (hold_tx, hold_rx) = mpsc::channel();
        let holder = {
            let (v, s) = (v.clone(), s.clone());
            std::thread::spawn(move || hold_tx.send(race.hold(&v, &s)).unwrap())
        };
        // Give the hold every chance to be acknowledged while the erasure is paused; then let
        // the erasure commit.
        let early = hold_rx.recv_timeout(Duration::from_millis(300)).ok();
        go_tx.send(()).unwrap();
        eraser.join().unwrap().unwrap();
        holder.join().unwrap();
        let hold = early.unwrap_or_else(|| hold_rx.recv().unwrap());
        let trail = v.audit_entries(None, None).unwrap();
        if let Some(violation) = check_hold_kept(&v, &trail, (&s, sref, held), &hold) {
            panic!("{race:?}: {violation}");
        }
        assert!(v.verify().unwrap().is_whole());
    }
}

// Guards the same defect without an injected pause: holds racing erasures of the same subject.
#[test]
fn a_thousand_holds_racing_erasures_lose_no_acknowledged_hold() {
    const RACES: usize = 1020;
    let tmp = tempfile::tempdir().unwrap();
    let v = vault_in(tmp.path());
    let subjects: Vec<SubjectId> = (0..RACES)
        .map(|i| SubjectId::new(format!("racer-{i}@example.com")).unwrap())
        .collect();
    let mut items = Vec::new();
    for s in &subjects {
        items.push((
            s,
            RecordMeta::new(Category::Contact).purpose(service()),
            &b"c"[..],
        ));
        items.push((
            s,
            RecordMeta::new(Category::Usage).purpose(service()),
            &b"u"[..],
        ));
    }
    let ids = v.put_many(items).unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let mut outcomes = Vec::new();
    for (i, s) in subjects.iter().enumerate() {
        let race = Race::ALL[i % Race::ALL.len()];
        let sref = v.find(s).unwrap().subject;
        let eraser = {
            let (v, s, b) = (v.clone(), s.clone(), barrier.clone());
            std::thread::spawn(move || {
                b.wait();
                race.erase(&v, &s)
            })
        };
        barrier.wait();
        let hold = race.hold(&v, s);
        eraser.join().unwrap().unwrap();
        outcomes.push((race, sref, hold));
    }
    let trail = v.audit_entries(None, None).unwrap();
    let mut violations = Vec::new();
    let mut acknowledged = 0;
    for (i, (race, sref, hold)) in outcomes.iter().enumerate() {
        acknowledged += usize::from(hold.is_ok());
        let race_of = (&subjects[i], *sref, ids[2 * i]);
        if let Some(violation) = check_hold_kept(&v, &trail, race_of, hold) {
            violations.push(format!("race {i} ({race:?}): {violation}"));
        }
    }
    assert!(
        violations.is_empty(),
        "{} of {RACES} races broke an acknowledged hold ({acknowledged} holds acknowledged): {:?}",
        violations.len(),
        &violations[..violations.len().min(5)]
    );
    let report = v.verify().unwrap();
    assert!(
        report.is_whole(),
        "{:?} {:?}",
        report.problems,
        report.audit
    );
}

/// Which load a reader is paused after: the subject's identity (the first key a read loads) or
/// the record's data key (the second).
#[derive(Clone, Copy, Debug)]
enum Load {
    Identity,
    DataKey,
}

// Guards: a reader that loaded a data key or an identity before an erasure's purge put it into
// the cache after the erasure returned, so the erased key was served again and a later put was
// acknowledged under an erased subject.
#[test]
fn a_key_loaded_before_an_erasure_does_not_come_back_into_the_cache() {
    for load in [Load::Identity, Load::DataKey] {
        let tmp = tempfile::tempdir().unwrap();
        let s = SubjectId::new("erased@example.com").unwrap();
        let record = {
            let v = vault_in(tmp.path());
            let id = put(&v, &s, Category::Contact, b"erased payload");
            v.close().unwrap();
            id
        };
        // Reopened: nothing is cached, so the read below loads both keys from the store.
        let v = reopen(tmp.path());
        let sref = v.find(&s).unwrap().subject;
        v.keys().purge(&crate::keys::Purge {
            identities: vec![v.keys().blind(&s)],
            ..Default::default()
        });

        let (loaded_tx, loaded_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let reader = {
            let (v, s) = (v.clone(), s.clone());
            std::thread::spawn(move || {
                if matches!(load, Load::DataKey) {
                    pause::arm(pause::KEY_LOADED, || {});
                }
                pause::arm(pause::KEY_LOADED, move || {
                    loaded_tx.send(()).unwrap();
                    let _ = go_rx.recv();
                });
                v.get(&s, record, &service()).map(|r| r.payload)
            })
        };
        loaded_rx.recv().unwrap();
        let (erased_tx, erased_rx) = mpsc::channel();
        let eraser = {
            let (v, s) = (v.clone(), s.clone());
            std::thread::spawn(move || erased_tx.send(v.erase_subject(&s)).unwrap())
        };
        let early = erased_rx.recv_timeout(Duration::from_millis(300)).ok();
        let erased_first = early.is_some();
        go_tx.send(()).unwrap();
        let read = reader.join().unwrap();
        eraser.join().unwrap();
        let erased = early.unwrap_or_else(|| erased_rx.recv().unwrap());
        assert!(erased.unwrap().subject_erased, "{load:?}");
        if erased_first {
            assert!(
                read.is_err(),
                "{load:?}: a read answered after the erasure returned"
            );
        }

        // After the erasure returned: nothing erased is readable, nothing of it is cached.
        assert!(
            matches!(
                v.get(&s, record, &service()),
                Err(Error::SubjectNotFound | Error::RecordNotFound(_))
            ),
            "{load:?}: erased record readable"
        );
        assert_eq!(
            v.keys().cached_keys_of(&sref),
            0,
            "{load:?}: a destroyed key came back into the cache"
        );
        // A put for the same identifier is a new subject under new keys, and survives a reopen.
        let fresh = put(&v, &s, Category::Contact, b"fresh payload");
        assert_ne!(
            v.find(&s).unwrap().subject,
            sref,
            "{load:?}: a put was filed under the erased subject"
        );
        assert!(v.verify().unwrap().is_whole(), "{load:?}");
        v.close().unwrap();
        let v = reopen(tmp.path());
        assert_eq!(
            v.get(&s, fresh, &service()).unwrap().payload,
            b"fresh payload",
            "{load:?}: an acknowledged put is lost after reopening"
        );
        assert!(v.verify().unwrap().is_whole(), "{load:?}");
    }
}
