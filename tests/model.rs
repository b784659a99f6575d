//! Model-based test: random sequences of operations applied to the vault and to a plain
//! in-memory model, compared after every step. Cases: `PDVAULT_MODEL_CASES` (default 1000);
//! failures shrink to a minimal sequence, kept by proptest in `tests/model.proptest-regressions`.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{Span, Timestamp};
use pdvault::*;
use proptest::prelude::*;

const SUBJECTS: [&str; 3] = ["ann@example.com", "ben@example.com", "cat@example.com"];
const POLICY: &str = "[retention.transaction]\nmin = \"2 years\"\nmax = \"2 years\"\n[retention.usage]\nmax = \"6 months\"\n[retention.account]\nmax = \"1 year\"\nanchor = \"account-closed\"";

#[derive(Clone, Debug)]
enum Op {
    Put {
        subject: usize,
        cat: usize,
        payload: u8,
    },
    Update {
        pick: usize,
        payload: u8,
    },
    Delete {
        pick: usize,
    },
    EraseSubject {
        subject: usize,
    },
    EraseCategory {
        subject: usize,
        cat: usize,
    },
    EraseRecord {
        pick: usize,
    },
    Hold {
        subject: usize,
        scope: u8,
        pick: usize,
    },
    Release {
        pick: usize,
    },
    Restrict {
        subject: usize,
        on: bool,
    },
    Consent {
        subject: usize,
        grant: bool,
    },
    CloseAccount {
        subject: usize,
    },
    Sweep {
        days: u16,
    },
    Rotate,
    Reopen,
    BackupRestore,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..3usize, 0..4usize, any::<u8>()).prop_map(|(subject, cat, payload)| Op::Put { subject, cat, payload }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(pick, payload)| Op::Update { pick, payload }),
        1 => any::<usize>().prop_map(|pick| Op::Delete { pick }),
        1 => (0..3usize).prop_map(|subject| Op::EraseSubject { subject }),
        1 => (0..3usize, 0..4usize).prop_map(|(subject, cat)| Op::EraseCategory { subject, cat }),
        1 => any::<usize>().prop_map(|pick| Op::EraseRecord { pick }),
        2 => (0..3usize, 0..3u8, any::<usize>()).prop_map(|(subject, scope, pick)| Op::Hold { subject, scope, pick }),
        2 => any::<usize>().prop_map(|pick| Op::Release { pick }),
        1 => (0..3usize, any::<bool>()).prop_map(|(subject, on)| Op::Restrict { subject, on }),
        1 => (0..3usize, any::<bool>()).prop_map(|(subject, grant)| Op::Consent { subject, grant }),
        1 => (0..3usize).prop_map(|subject| Op::CloseAccount { subject }),
        2 => (1..400u16).prop_map(|days| Op::Sweep { days }),
        1 => Just(Op::Rotate),
        1 => Just(Op::Reopen),
        1 => Just(Op::BackupRestore),
    ]
}

fn cat(i: usize) -> Category {
    [
        Category::Contact,
        Category::Usage,
        Category::Transaction,
        Category::Account,
    ][i % 4]
        .clone()
}

#[derive(Clone, Debug)]
struct MRecord {
    subject: usize,
    cat: Category,
    payload: Vec<u8>,
    collected: Timestamp,
    /// Retained by a subject erasure: the sweep destroys it once unprotected.
    pending: bool,
}

#[derive(Clone, Debug)]
struct MHold {
    id: HoldId,
    subject: usize,
    scope: HoldScope,
    active: bool,
}

#[derive(Default)]
struct Model {
    records: BTreeMap<RecordId, MRecord>,
    holds: Vec<MHold>,
    closed: BTreeMap<usize, Timestamp>,
    pending: BTreeSet<usize>,
}

fn add(t: Timestamp, span: Span) -> Timestamp {
    t.to_zoned(jiff::tz::TimeZone::UTC)
        .checked_add(span)
        .unwrap()
        .timestamp()
}

impl Model {
    fn held(&self, id: &RecordId, r: &MRecord) -> bool {
        self.holds.iter().any(|h| {
            h.active
                && h.subject == r.subject
                && match &h.scope {
                    HoldScope::Subject => true,
                    HoldScope::Category(c) => *c == r.cat,
                    HoldScope::Record(x) => x == id,
                }
        })
    }
    fn within_min(&self, r: &MRecord, now: Timestamp) -> bool {
        r.cat == Category::Transaction && now < add(r.collected, Span::new().years(2))
    }
    fn protected(&self, id: &RecordId, r: &MRecord, now: Timestamp) -> bool {
        self.held(id, r) || self.within_min(r, now)
    }
    fn expired(&self, r: &MRecord, now: Timestamp) -> bool {
        match r.cat {
            Category::Transaction => now >= add(r.collected, Span::new().years(2)),
            Category::Usage => now >= add(r.collected, Span::new().months(6)),
            Category::Account => self
                .closed
                .get(&r.subject)
                .is_some_and(|c| now >= add(*c, Span::new().years(1))),
            _ => false,
        }
    }
    fn of(&self, subject: usize) -> Vec<RecordId> {
        self.records
            .iter()
            .filter(|(_, r)| r.subject == subject)
            .map(|(id, _)| *id)
            .collect()
    }
    fn pick(&self, pick: usize) -> Option<RecordId> {
        (!self.records.is_empty())
            .then(|| *self.records.keys().nth(pick % self.records.len()).unwrap())
    }
}

struct Harness {
    dir: tempfile::TempDir,
    clock: ManualClock,
    secret: String,
    vault: Option<Vault>,
    generation: u32,
}

impl Harness {
    fn v(&self) -> &Vault {
        self.vault.as_ref().unwrap()
    }
    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join(format!("v{}", self.generation))
    }
    fn open(&mut self) {
        self.vault = Some(
            Vault::builder(self.path())
                .clock(self.clock.clone())
                .durability(Durability::Deferred {
                    flush_every_ms: 10_000,
                })
                .open(RootSecret::passphrase(self.secret.clone()))
                .unwrap(),
        );
    }
}

fn sid(i: usize) -> SubjectId {
    SubjectId::new(SUBJECTS[i]).unwrap()
}

/// Applies an erasure report to the model, checking it against the guard's rules.
fn apply_report(
    m: &mut Model,
    report: &ErasureReport,
    scope: &[RecordId],
    now: Timestamp,
) -> Result<(), TestCaseError> {
    let retained: BTreeSet<RecordId> = report.retained.iter().map(|r| r.record).collect();
    for id in scope {
        let r = m.records[id].clone();
        if retained.contains(id) {
            prop_assert!(
                m.protected(id, &r, now),
                "retained an unprotected record {id}"
            );
        } else {
            prop_assert!(
                !m.protected(id, &r, now),
                "erased a protected record {id}: {report:?}"
            );
            m.records.remove(id);
        }
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let start: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
    let mut h = Harness {
        dir: tempfile::tempdir().unwrap(),
        clock: ManualClock::new(start),
        secret: "pw-passphrase-0".into(),
        vault: None,
        generation: 0,
    };
    h.vault = Some(
        Vault::builder(h.path())
            .kdf(KdfParams::insecure_for_tests())
            .clock(h.clock.clone())
            .durability(Durability::Deferred {
                flush_every_ms: 10_000,
            })
            .policy(Policy::from_toml(POLICY).unwrap())
            .create(RootSecret::passphrase("pw-passphrase-0"))
            .unwrap(),
    );
    let mut m = Model::default();
    let sa = Purpose::SUBJECT_ACCESS;
    let mut rotations = 0;
    for op in ops {
        let now = h.clock.now();
        match op {
            Op::Put {
                subject,
                cat: c,
                payload,
            } => {
                let id = h
                    .v()
                    .put(
                        &sid(subject),
                        RecordMeta::new(cat(c)).collected_at(now),
                        &[payload; 3],
                    )
                    .unwrap();
                m.records.insert(
                    id,
                    MRecord {
                        subject,
                        cat: cat(c),
                        payload: vec![payload; 3],
                        collected: now,
                        pending: false,
                    },
                );
            }
            Op::Update { pick, payload } => {
                if let Some(id) = m.pick(pick) {
                    let r = m.records.get_mut(&id).unwrap();
                    h.v().update(&sid(r.subject), id, &[payload; 5]).unwrap();
                    r.payload = vec![payload; 5];
                }
            }
            Op::Delete { pick } | Op::EraseRecord { pick } => {
                if let Some(id) = m.pick(pick) {
                    let r = m.records[&id].clone();
                    let report = h.v().erase_record(&sid(r.subject), id).unwrap();
                    apply_report(&mut m, &report, &[id], now)?;
                }
            }
            Op::EraseSubject { subject } => {
                let scope = m.of(subject);
                match h.v().erase_subject(&sid(subject)) {
                    Ok(report) => {
                        apply_report(&mut m, &report, &scope, now)?;
                        // The subject itself goes only when nothing is retained and no hold on
                        // the whole subject stands (which keeps it even with no record left).
                        let held = m.holds.iter().any(|x| {
                            x.active
                                && x.subject == subject
                                && matches!(x.scope, HoldScope::Subject)
                        });
                        prop_assert_eq!(report.subject_erased, report.retained.is_empty() && !held);
                        if !report.subject_erased {
                            m.pending.insert(subject);
                            for r in &report.retained {
                                m.records.get_mut(&r.record).unwrap().pending = true;
                            }
                        } else {
                            m.holds.retain(|x| x.subject != subject);
                            m.closed.remove(&subject);
                            m.pending.remove(&subject);
                        }
                    }
                    Err(Error::SubjectNotFound) => prop_assert!(scope.is_empty()),
                    Err(e) => return Err(TestCaseError::fail(format!("erase_subject: {e}"))),
                }
            }
            Op::EraseCategory { subject, cat: c } => {
                let scope: Vec<RecordId> = m
                    .of(subject)
                    .into_iter()
                    .filter(|id| m.records[id].cat == cat(c))
                    .collect();
                match h.v().erase_category(&sid(subject), &cat(c)) {
                    Ok(report) => apply_report(&mut m, &report, &scope, now)?,
                    Err(Error::SubjectNotFound) => prop_assert!(scope.is_empty()),
                    Err(e) => return Err(TestCaseError::fail(format!("erase_category: {e}"))),
                }
            }
            Op::Hold {
                subject,
                scope,
                pick,
            } => {
                let target = match scope {
                    0 => HoldTarget::Subject,
                    1 => HoldTarget::Category(cat(pick)),
                    _ => match m.of(subject).get(pick % m.of(subject).len().max(1)) {
                        Some(id) => HoldTarget::Record(*id),
                        None => HoldTarget::Subject,
                    },
                };
                if let Ok(id) = h.v().place_hold(
                    &sid(subject),
                    NewHold::new(target.clone(), HoldReason::Dispute),
                ) {
                    let scope = match target {
                        HoldTarget::Subject => HoldScope::Subject,
                        HoldTarget::Category(c) => HoldScope::Category(c),
                        HoldTarget::Record(r) => HoldScope::Record(r),
                    };
                    m.holds.push(MHold {
                        id,
                        subject,
                        scope,
                        active: true,
                    });
                }
            }
            Op::Release { pick } => {
                let active: Vec<usize> =
                    (0..m.holds.len()).filter(|i| m.holds[*i].active).collect();
                if !active.is_empty() {
                    let i = active[pick % active.len()];
                    h.v().release_hold(m.holds[i].id).unwrap();
                    m.holds[i].active = false;
                }
            }
            Op::Restrict { subject, on } => {
                let r = if on {
                    h.v().restrict(&sid(subject), None)
                } else {
                    h.v().unrestrict(&sid(subject), None)
                };
                prop_assert!(r.is_ok() || m.of(subject).is_empty());
            }
            Op::Consent { subject, grant } => {
                let p = Purpose::new("marketing").unwrap();
                let _ = if grant {
                    h.v().grant_consent(&sid(subject), &p, None)
                } else {
                    h.v()
                        .withdraw_consent(&sid(subject), &p, Withdrawal::KeepRecords)
                        .map(|_| ())
                };
            }
            Op::CloseAccount { subject } => {
                if h.v()
                    .record_event(&sid(subject), EventKind::AccountClosed, now)
                    .is_ok()
                {
                    m.closed.insert(subject, now);
                }
            }
            Op::Sweep { days } => {
                h.clock.advance(Span::new().days(days as i64));
                let now = h.clock.now();
                h.v().sweep().unwrap();
                let gone: Vec<RecordId> = m
                    .records
                    .iter()
                    .filter(|(id, r)| (m.expired(r, now) || r.pending) && !m.protected(id, r, now))
                    .map(|(id, _)| *id)
                    .collect();
                for id in gone {
                    m.records.remove(&id);
                }
                // A subject the sweep finished (its last record destroyed, by expiry or a pending
                // erasure) is gone with its events: a later put starts a new subject.
                for s in 0..3 {
                    let gone = matches!(h.v().list(&sid(s)), Err(Error::SubjectNotFound));
                    if m.of(s).is_empty() && gone {
                        m.pending.remove(&s);
                        m.holds.retain(|x| x.subject != s);
                        m.closed.remove(&s);
                    }
                }
            }
            Op::Rotate => {
                rotations += 1;
                let new = format!("pw-passphrase-{rotations}");
                h.v()
                    .rotate_root(RootSecret::passphrase(new.clone()), None)
                    .unwrap();
                h.secret = new;
            }
            Op::Reopen => {
                h.vault.take().unwrap().close().unwrap();
                h.open();
            }
            Op::BackupRestore => {
                let backup = h.dir.path().join(format!("b{}", h.generation));
                h.v().backup(&backup).unwrap();
                let mut ledger = Vec::new();
                h.v().export_ledger(&mut ledger).unwrap();
                let ledger = Vault::parse_ledger(&mut ledger.as_slice()).unwrap();
                h.vault.take().unwrap().close().unwrap();
                h.generation += 1;
                let restored = Vault::restore(
                    &backup,
                    &h.path(),
                    RootSecret::passphrase(h.secret.clone()),
                    LedgerChoice::Apply(&ledger),
                )
                .unwrap();
                drop(restored);
                h.open();
            }
        }
        // After every step: the vault agrees with the model.
        for (id, r) in &m.records {
            let got = h.v().get(&sid(r.subject), *id, &sa);
            prop_assert!(got.is_ok(), "record {id} ({}) lost: {got:?}", r.cat);
            prop_assert_eq!(&got.unwrap().payload, &r.payload);
        }
        for s in 0..3 {
            let listed: BTreeSet<RecordId> = h
                .v()
                .list(&sid(s))
                .map(|l| l.into_iter().map(|r| r.record).collect())
                .unwrap_or_default();
            let expected: BTreeSet<RecordId> = m.of(s).into_iter().collect();
            prop_assert_eq!(listed, expected, "subject {}", s);
        }
    }
    let report = h.v().verify().unwrap();
    prop_assert!(report.is_whole(), "{report:?}");
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PDVAULT_MODEL_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 2000, ..ProptestConfig::default() })]
    #[test]
    fn vault_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..24)) {
        run(ops)?;
    }
}
