//! Drives the public API with arbitrary sequences of operations on a fresh vault, and checks
//! invariants that hold whatever the sequence:
//!
//! - nothing panics, and no operation fails with an integrity, storage or open error (those mean
//!   damage, which a sequence of API calls alone must never cause);
//! - a record just written reads back (for the subject's own access) with its payload;
//! - a record that an erase call reported as erased (in its scope and not retained) never reads,
//!   updates, lists or exports again, also after the vault is closed and reopened;
//! - an export is one valid JSON document;
//! - `verify` finds the vault whole at the end, before and after a reopen.
#![no_main]

use std::collections::BTreeSet;

use arbitrary::Arbitrary;
use jiff::{Span, Timestamp};
use libfuzzer_sys::fuzz_target;
use pdvault::{
    Category, Durability, Error, EventKind, HoldId, HoldReason, HoldTarget, KdfParams, LegalBasis,
    ManualClock, NewHold, Policy, Purpose, RecordId, RecordMeta, RootSecret, SubjectId, Vault,
    Withdrawal,
};

const SUBJECTS: usize = 3;
const MAX_OPS: usize = 48;
const MAX_PAYLOAD: usize = 300;

const POLICY: &str = r#"
name = "fuzz policy"
version = "fuzz-1"
custom_categories = ["loyalty-points"]

[retention.transaction]
min = "1 year"
max = "1 year"

[retention.access-log]
max = "30 days"

[retention.account]
min = "10 days"
max = "60 days"
anchor = "account-closed"

[requests]
access = "30 days"

[audit]
retain = "90 days"
"#;

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Cat {
    Contact,
    Transaction,
    AccessLog,
    Account,
    Usage,
    Loyalty,
}

impl Cat {
    fn category(self) -> Category {
        match self {
            Cat::Contact => Category::Contact,
            Cat::Transaction => Category::Transaction,
            Cat::AccessLog => Category::AccessLog,
            Cat::Account => Category::Account,
            Cat::Usage => Category::Usage,
            Cat::Loyalty => Category::custom("loyalty-points").expect("kebab-case"),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Purp {
    Billing,
    Marketing,
    SubjectAccess,
    Storage,
}

impl Purp {
    fn purpose(self) -> Purpose {
        let name = match self {
            Purp::Billing => "billing",
            Purp::Marketing => "marketing",
            Purp::SubjectAccess => return Purpose::SUBJECT_ACCESS,
            Purp::Storage => return Purpose::STORAGE,
        };
        Purpose::new(name).expect("valid purpose")
    }
}

#[derive(Arbitrary, Debug)]
enum Target {
    Subject,
    Category(Cat),
    Record(u8),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Put {
        subject: u8,
        cat: Cat,
        purpose: Purp,
        consent: bool,
        days_ago: u16,
        payload: Vec<u8>,
    },
    PutMany {
        subject: u8,
        cat: Cat,
        count: u8,
    },
    Get {
        record: u8,
        purpose: Purp,
    },
    Update {
        record: u8,
        payload: Vec<u8>,
    },
    Delete {
        record: u8,
    },
    EraseSubject {
        subject: u8,
    },
    EraseCategory {
        subject: u8,
        cat: Cat,
    },
    EraseRecord {
        record: u8,
    },
    PlaceHold {
        subject: u8,
        target: Target,
        until_days: Option<u8>,
    },
    ReleaseHold {
        hold: u8,
    },
    Restrict {
        subject: u8,
        cat: Option<Cat>,
        on: bool,
    },
    GrantConsent {
        subject: u8,
        purpose: Purp,
    },
    WithdrawConsent {
        subject: u8,
        purpose: Purp,
        erase: bool,
    },
    Event {
        subject: u8,
        contract: bool,
    },
    Advance {
        days: u16,
    },
    Sweep {
        dry_run: bool,
    },
    List {
        subject: u8,
    },
    Export {
        subject: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    deferred: bool,
    with_policy: bool,
    ops: Vec<Op>,
}

struct Rec {
    subject: usize,
    id: RecordId,
    cat: Cat,
    /// Reported erased by an erase call: must never be readable again.
    dead: bool,
}

struct Model {
    subjects: Vec<SubjectId>,
    records: Vec<Rec>,
    holds: Vec<HoldId>,
}

impl Model {
    fn subject(&self, i: u8) -> (usize, &SubjectId) {
        let i = i as usize % SUBJECTS;
        (i, &self.subjects[i])
    }

    fn record(&self, i: u8) -> Option<usize> {
        if self.records.is_empty() {
            None
        } else {
            Some(i as usize % self.records.len())
        }
    }

    fn dead_ids(&self) -> BTreeSet<String> {
        self.records
            .iter()
            .filter(|r| r.dead)
            .map(|r| r.id.to_string())
            .collect()
    }

    /// Marks the records of `subject` matching `in_scope` dead, except those retained.
    fn kill(
        &mut self,
        subject: usize,
        report: &pdvault::ErasureReport,
        in_scope: impl Fn(&Rec) -> bool,
    ) {
        let retained: BTreeSet<RecordId> = report.retained.iter().map(|r| r.record).collect();
        for r in &mut self.records {
            if r.subject == subject && in_scope(r) && !retained.contains(&r.id) {
                r.dead = true;
            }
        }
    }
}

/// Errors that an API call must never return on an undamaged vault.
fn check<T>(what: &str, r: &pdvault::Result<T>) {
    if let Err(e) = r {
        assert!(
            !matches!(e, Error::Integrity(_) | Error::Storage(_) | Error::Open(_)),
            "{what}: unexpected error {e:?}"
        );
    }
}

fn assert_dead_unreadable(vault: &Vault, model: &Model, when: &str) {
    let access = Purp::SubjectAccess.purpose();
    for r in model.records.iter().filter(|r| r.dead) {
        let got = vault.get(&model.subjects[r.subject], r.id, &access);
        assert!(got.is_err(), "{when}: erased record {} reads again", r.id);
        check("get of an erased record", &got);
    }
}

fn run(input: Input) {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let t0: Timestamp = "2025-01-31T12:00:00Z".parse().expect("timestamp");
    let clock = ManualClock::new(t0);
    let durability = if input.deferred {
        Durability::Deferred {
            flush_every_ms: 60_000,
        }
    } else {
        Durability::Immediate
    };
    let mut builder = Vault::builder(dir.path())
        .kdf(KdfParams::insecure_for_tests())
        .durability(durability)
        .clock(clock.clone());
    if input.with_policy {
        builder = builder.policy(Policy::from_toml(POLICY).expect("the fuzz policy is valid"));
    }
    let vault = builder
        .create(RootSecret::passphrase("fuzz-passphrase"))
        .expect("create a vault");
    let mut m = Model {
        subjects: (0..SUBJECTS)
            .map(|i| SubjectId::new(format!("subject-{i}@example.com")).expect("subject id"))
            .collect(),
        records: Vec::new(),
        holds: Vec::new(),
    };
    let no_record: RecordId = "00000000000000000000000000000000"
        .parse()
        .expect("record id");
    let access = Purp::SubjectAccess.purpose();

    for op in input.ops.into_iter().take(MAX_OPS) {
        match op {
            Op::Put {
                subject,
                cat,
                purpose,
                consent,
                days_ago,
                mut payload,
            } => {
                payload.truncate(MAX_PAYLOAD);
                let (si, s) = m.subject(subject);
                let now = vault.now();
                let collected = now
                    .checked_sub(Span::new().hours(24 * i64::from(days_ago % 800)))
                    .unwrap_or(now);
                let meta = RecordMeta::new(cat.category())
                    .purpose(purpose.purpose())
                    .basis(if consent {
                        LegalBasis::Consent
                    } else {
                        LegalBasis::Contract
                    })
                    .collected_at(collected);
                let r = vault.put(s, meta, &payload);
                check("put", &r);
                if let Ok(id) = r {
                    let got = vault.get(s, id, &access);
                    check("get after put", &got);
                    assert_eq!(
                        got.expect("a record just written reads").payload,
                        payload,
                        "payload read back differs"
                    );
                    m.records.push(Rec {
                        subject: si,
                        id,
                        cat,
                        dead: false,
                    });
                }
            }
            Op::PutMany {
                subject,
                cat,
                count,
            } => {
                let (si, s) = m.subject(subject);
                let now = vault.now();
                let payloads: Vec<Vec<u8>> = (0..count % 8)
                    .map(|i| format!("batch payload {i}").into_bytes())
                    .collect();
                let r = vault.put_many(payloads.iter().map(|p| {
                    (
                        s,
                        RecordMeta::new(cat.category()).collected_at(now),
                        p.as_slice(),
                    )
                }));
                check("put_many", &r);
                if let Ok(ids) = r {
                    assert_eq!(ids.len(), payloads.len());
                    for id in ids {
                        m.records.push(Rec {
                            subject: si,
                            id,
                            cat,
                            dead: false,
                        });
                    }
                }
            }
            Op::Get { record, purpose } => {
                let (s, id, dead) = match m.record(record) {
                    Some(i) => {
                        let r = &m.records[i];
                        (&m.subjects[r.subject], r.id, r.dead)
                    }
                    None => (&m.subjects[0], no_record, true),
                };
                let got = vault.get(s, id, &purpose.purpose());
                check("get", &got);
                assert!(!(dead && got.is_ok()), "an erased record reads again");
            }
            Op::Update {
                record,
                mut payload,
            } => {
                payload.truncate(MAX_PAYLOAD);
                let Some(i) = m.record(record) else { continue };
                let r = &m.records[i];
                let s = &m.subjects[r.subject];
                let res = vault.update(s, r.id, &payload);
                check("update", &res);
                assert!(!(r.dead && res.is_ok()), "an erased record was updated");
                if res.is_ok() {
                    let got = vault.get(s, r.id, &access);
                    check("get after update", &got);
                    assert_eq!(
                        got.expect("an updated record reads").payload,
                        payload,
                        "updated payload read back differs"
                    );
                }
            }
            Op::Delete { record } => {
                let Some(i) = m.record(record) else { continue };
                let (si, id) = (m.records[i].subject, m.records[i].id);
                let res = vault.delete(&m.subjects[si], id);
                check("delete", &res);
                if res.is_ok() {
                    m.records[i].dead = true;
                }
            }
            Op::EraseSubject { subject } => {
                let (si, s) = m.subject(subject);
                let res = vault.erase_subject(s);
                check("erase_subject", &res);
                if let Ok(report) = res {
                    m.kill(si, &report, |_| true);
                    assert_dead_unreadable(&vault, &m, "after erase_subject");
                }
            }
            Op::EraseCategory { subject, cat } => {
                let (si, s) = m.subject(subject);
                let res = vault.erase_category(s, &cat.category());
                check("erase_category", &res);
                if let Ok(report) = res {
                    m.kill(si, &report, |r| r.cat == cat);
                    assert_dead_unreadable(&vault, &m, "after erase_category");
                }
            }
            Op::EraseRecord { record } => {
                let Some(i) = m.record(record) else { continue };
                let (si, id) = (m.records[i].subject, m.records[i].id);
                let res = vault.erase_record(&m.subjects[si], id);
                check("erase_record", &res);
                if let Ok(report) = res {
                    m.kill(si, &report, |r| r.id == id);
                    assert_dead_unreadable(&vault, &m, "after erase_record");
                }
            }
            Op::PlaceHold {
                subject,
                target,
                until_days,
            } => {
                let (_, s) = m.subject(subject);
                let target = match target {
                    Target::Subject => HoldTarget::Subject,
                    Target::Category(c) => HoldTarget::Category(c.category()),
                    Target::Record(r) => HoldTarget::Record(
                        m.record(r).map(|i| m.records[i].id).unwrap_or(no_record),
                    ),
                };
                let until = until_days.and_then(|d| {
                    vault
                        .now()
                        .checked_add(Span::new().hours(24 * i64::from(d)))
                        .ok()
                });
                let mut hold = NewHold::new(target, HoldReason::Dispute).reference("case 1");
                if let Some(u) = until {
                    hold = hold.until(u);
                }
                let res = vault.place_hold(s, hold);
                check("place_hold", &res);
                if let Ok(h) = res {
                    m.holds.push(h);
                }
            }
            Op::ReleaseHold { hold } => {
                if m.holds.is_empty() {
                    continue;
                }
                let h = m.holds[hold as usize % m.holds.len()];
                let res = vault.release_hold(h);
                check("release_hold", &res);
            }
            Op::Restrict { subject, cat, on } => {
                let (_, s) = m.subject(subject);
                let c = cat.map(Cat::category);
                let res = if on {
                    vault.restrict(s, c.as_ref())
                } else {
                    vault.unrestrict(s, c.as_ref())
                };
                check("restrict", &res);
            }
            Op::GrantConsent { subject, purpose } => {
                let (_, s) = m.subject(subject);
                let res = vault.grant_consent(s, &purpose.purpose(), None);
                check("grant_consent", &res);
            }
            Op::WithdrawConsent {
                subject,
                purpose,
                erase,
            } => {
                let (si, s) = m.subject(subject);
                let then = if erase {
                    Withdrawal::EraseRecords
                } else {
                    Withdrawal::KeepRecords
                };
                let res = vault.withdraw_consent(s, &purpose.purpose(), then);
                check("withdraw_consent", &res);
                if let Ok(Some(report)) = res {
                    let erased: BTreeSet<RecordId> =
                        report.erased.iter().filter_map(|e| e.record).collect();
                    for r in &mut m.records {
                        if r.subject == si && erased.contains(&r.id) {
                            r.dead = true;
                        }
                    }
                    assert_dead_unreadable(&vault, &m, "after withdraw_consent");
                }
            }
            Op::Event { subject, contract } => {
                let (_, s) = m.subject(subject);
                let kind = if contract {
                    EventKind::ContractEnded
                } else {
                    EventKind::AccountClosed
                };
                let res = vault.record_event(s, kind, vault.now());
                check("record_event", &res);
            }
            Op::Advance { days } => {
                clock.advance(Span::new().days(i64::from(days % 1000)));
            }
            Op::Sweep { dry_run } => {
                let res = if dry_run {
                    vault.sweep_dry_run()
                } else {
                    vault.sweep()
                };
                check("sweep", &res);
                assert_dead_unreadable(&vault, &m, "after sweep");
            }
            Op::List { subject } => {
                let (_, s) = m.subject(subject);
                let res = vault.list(s);
                check("list", &res);
                if let Ok(list) = res {
                    let dead = m.dead_ids();
                    for info in list {
                        assert!(
                            !dead.contains(&info.record.to_string()),
                            "an erased record is listed"
                        );
                    }
                }
            }
            Op::Export { subject } => {
                let (_, s) = m.subject(subject);
                let mut out = Vec::new();
                let res = vault.export(s, &mut out);
                check("export", &res);
                if let Ok(n) = res {
                    let doc: serde_json::Value =
                        serde_json::from_slice(&out).expect("an export is valid JSON");
                    let records = doc["records"].as_array().expect("a records array");
                    assert_eq!(records.len() as u64, n, "export count");
                    let dead = m.dead_ids();
                    for r in records {
                        let id = r["record"].as_str().expect("a record id");
                        assert!(!dead.contains(id), "an erased record is exported");
                    }
                }
            }
        }
    }

    assert_dead_unreadable(&vault, &m, "at the end");
    let report = vault.verify();
    check("verify", &report);
    let report = report.expect("verify runs");
    assert!(report.is_whole(), "verify: {:?}", report.problems);
    vault.close().expect("close");

    let vault = Vault::builder(dir.path())
        .kdf(KdfParams::insecure_for_tests())
        .clock(clock.clone())
        .open(RootSecret::passphrase("fuzz-passphrase"))
        .expect("reopen");
    assert_dead_unreadable(&vault, &m, "after reopening");
    let report = vault.verify().expect("verify runs after reopening");
    assert!(
        report.is_whole(),
        "verify after reopening: {:?}",
        report.problems
    );
    vault.close().expect("close after reopening");
}

fuzz_target!(|input: Input| {
    run(input);
});
