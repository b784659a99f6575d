//! Retention tables of seeds 000 and 001 enforced at the right calendar dates; legal holds
//! blocking every path to destruction; backup, erasure and restore with the ledger; rotation.

mod common;

use jiff::{Span, Timestamp, ToSpan};
use pdvault::*;

const PW: &str = "pw-passphrase";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn policy(file: &str) -> Policy {
    let text =
        std::fs::read_to_string(format!("{}/policies/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    Policy::from_toml(&text).unwrap()
}

fn vault(dir: &std::path::Path, clock: &ManualClock, policy: Option<Policy>) -> Vault {
    let mut b = common::store::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .clock(clock.clone());
    if let Some(p) = policy {
        b = b.policy(p);
    }
    b.create(RootSecret::passphrase(PW)).unwrap()
}

fn p() -> Purpose {
    Purpose::new("service").unwrap()
}

fn readable(v: &Vault, s: &SubjectId, id: RecordId) -> bool {
    v.get(s, id, &Purpose::SUBJECT_ACCESS).is_ok()
}

/// A record collected at `t0` of `cat` survives a sweep one day before `t0 + span` and is gone
/// after a sweep one day after it.
fn check_expiry(file: &str, cat: Category, span: Span) {
    check_expiry_from(file, cat, span, None)
}

/// As `check_expiry`, for a category whose span counts from a subject event, recorded `after`
/// the collection.
fn check_expiry_from(file: &str, cat: Category, span: Span, event: Option<(EventKind, Span)>) {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = ts("2024-01-31T12:00:00Z");
    let clock = ManualClock::new(t0);
    let v = vault(tmp.path(), &clock, Some(policy(file)));
    let s = SubjectId::new("subject@example.com").unwrap();
    let id = v
        .put(
            &s,
            common::seed_meta(cat.clone()).purpose(p()).collected_at(t0),
            b"data",
        )
        .unwrap();
    let keep = v
        .put(
            &s,
            common::seed_meta(Category::Preference)
                .purpose(p())
                .collected_at(t0),
            b"pref",
        )
        .unwrap();
    let add = |t: Timestamp, s: Span| {
        t.to_zoned(jiff::tz::TimeZone::UTC)
            .checked_add(s)
            .unwrap()
            .timestamp()
    };
    let start = match event {
        None => t0,
        Some((kind, after)) => {
            let at = add(t0, after);
            clock.set(at);
            v.record_event(&s, kind, at).unwrap();
            at
        }
    };
    let end = add(start, span);
    clock.set(end - Span::new().hours(24));
    v.sweep().unwrap();
    assert!(
        readable(&v, &s, id),
        "{file} {cat}: gone a day before {end}"
    );
    clock.set(end + Span::new().hours(24));
    let r = v.sweep().unwrap();
    assert!(
        !readable(&v, &s, id),
        "{file} {cat}: still there a day after {end}: {r:?}"
    );
    assert!(
        readable(&v, &s, keep),
        "{file}: a category without a rule was swept"
    );
    assert!(v.verify().unwrap().is_whole());
}

#[test]
fn seed_000_retention_table() {
    // Contracts are counted from their end ("records of contracts or withdrawal").
    check_expiry_from(
        "seed-000-cmcendpoint.toml",
        Category::Contract,
        5.years(),
        Some((EventKind::ContractEnded, 1.year())),
    );
    check_expiry("seed-000-cmcendpoint.toml", Category::Payment, 5.years());
    check_expiry(
        "seed-000-cmcendpoint.toml",
        Category::Transaction,
        5.years(),
    );
    check_expiry("seed-000-cmcendpoint.toml", Category::Complaint, 3.years());
    check_expiry("seed-000-cmcendpoint.toml", Category::AccessLog, 3.months());
}

#[test]
fn seed_001_retention_table() {
    check_expiry("seed-001-m-exe.toml", Category::Usage, 12.months());
    check_expiry("seed-001-m-exe.toml", Category::Transaction, 7.years());
    check_expiry("seed-001-m-exe.toml", Category::Payment, 7.years());
    check_expiry("seed-001-m-exe.toml", Category::Communication, 3.years());
    check_expiry("seed-001-m-exe.toml", Category::Technical, 6.months());
    check_expiry("seed-001-m-exe.toml", Category::AccessLog, 6.months());
}

#[test]
fn access_log_three_months_is_calendar_months() {
    // 30 November + 3 months = 28 February (not 30 x 3 days).
    let tmp = tempfile::tempdir().unwrap();
    let t0 = ts("2024-11-30T00:00:00Z");
    let clock = ManualClock::new(t0);
    let v = vault(
        tmp.path(),
        &clock,
        Some(policy("seed-000-cmcendpoint.toml")),
    );
    let s = SubjectId::new("s").unwrap();
    let id = v
        .put(
            &s,
            common::seed_meta(Category::AccessLog).collected_at(t0),
            b"10.0.0.1",
        )
        .unwrap();
    clock.set(ts("2025-02-27T23:59:59Z"));
    v.sweep().unwrap();
    assert!(readable(&v, &s, id));
    clock.set(ts("2025-02-28T00:00:00Z"));
    v.sweep().unwrap();
    assert!(!readable(&v, &s, id));
}

#[test]
fn seed_001_account_kept_while_open_and_two_years_after_closing() {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = ts("2020-03-01T00:00:00Z");
    let clock = ManualClock::new(t0);
    let v = vault(tmp.path(), &clock, Some(policy("seed-001-m-exe.toml")));
    let s = SubjectId::new("user-1").unwrap();
    let id = v
        .put(
            &s,
            common::seed_meta(Category::Account)
                .purpose(p())
                .collected_at(t0),
            b"account",
        )
        .unwrap();
    clock.set(ts("2026-01-01T00:00:00Z"));
    v.sweep().unwrap();
    assert!(readable(&v, &s, id), "deleted while the account is open");
    let closed = ts("2026-01-10T00:00:00Z");
    v.record_event(&s, EventKind::AccountClosed, closed)
        .unwrap();
    clock.set(ts("2028-01-09T00:00:00Z"));
    v.sweep().unwrap();
    assert!(readable(&v, &s, id), "deleted before 2 years after closing");
    clock.set(ts("2028-01-11T00:00:00Z"));
    v.sweep().unwrap();
    assert!(
        !readable(&v, &s, id),
        "kept more than 2 years after closing"
    );
}

#[test]
fn minimum_retention_defers_erasure_and_the_sweep_completes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = ts("2024-01-01T00:00:00Z");
    let clock = ManualClock::new(t0);
    let v = vault(tmp.path(), &clock, Some(policy("seed-001-m-exe.toml")));
    let s = SubjectId::new("buyer").unwrap();
    let tx = v
        .put(
            &s,
            common::seed_meta(Category::Transaction)
                .purpose(p())
                .collected_at(t0),
            b"order 1",
        )
        .unwrap();
    let usage = v
        .put(
            &s,
            common::seed_meta(Category::Usage)
                .purpose(p())
                .collected_at(t0),
            b"clicks",
        )
        .unwrap();
    clock.set(ts("2025-01-01T00:00:00Z"));
    let r = v.erase_subject(&s).unwrap();
    assert!(!r.subject_erased);
    assert_eq!(r.retained.len(), 1);
    assert_eq!(r.retained[0].record, tx);
    assert!(
        matches!(r.retained[0].reason, RetainReason::MinimumRetention { until: Some(u) } if u == ts("2031-01-01T00:00:00Z"))
    );
    assert!(!readable(&v, &s, usage));
    assert!(readable(&v, &s, tx));
    clock.set(ts("2031-01-02T00:00:00Z"));
    v.sweep().unwrap();
    assert!(
        matches!(v.list(&s), Err(Error::SubjectNotFound)),
        "pending erasure not completed"
    );
    // A new write for the same identifier starts a new subject: nothing comes back.
    v.put(&s, common::seed_meta(Category::Profile), b"new")
        .unwrap();
    assert_eq!(v.list(&s).unwrap().len(), 1);
}

#[test]
fn holds_block_every_path_and_release_lets_the_sweep_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = ts("2024-01-01T00:00:00Z");
    let clock = ManualClock::new(t0);
    let v = vault(
        tmp.path(),
        &clock,
        Some(policy("seed-000-cmcendpoint.toml")),
    );
    let s = SubjectId::new("disputed@example.com").unwrap();
    let complaint = v
        .put(
            &s,
            common::seed_meta(Category::Communication)
                .purpose(p())
                .collected_at(t0),
            b"ticket",
        )
        .unwrap();
    let log = v
        .put(
            &s,
            common::seed_meta(Category::AccessLog)
                .purpose(p())
                .collected_at(t0),
            b"ip",
        )
        .unwrap();
    let profile = v
        .put(
            &s,
            common::seed_meta(Category::Profile)
                .purpose(p())
                .collected_at(t0),
            b"bio",
        )
        .unwrap();
    let h1 = v
        .place_hold(
            &s,
            NewHold::new(
                HoldTarget::Category(Category::Communication),
                HoldReason::Dispute,
            )
            .reference("CASE-1"),
        )
        .unwrap();
    let h2 = v
        .place_hold(
            &s,
            NewHold::new(HoldTarget::Record(log), HoldReason::SecurityInvestigation),
        )
        .unwrap();

    // delete, erase of a record and of a category: refused, naming the holds.
    match v.delete(&s, complaint) {
        Err(Error::Erasure(ErasureError::Held { holds })) => assert_eq!(holds, vec![h1]),
        other => panic!("{other:?}"),
    }
    let msg = v.delete(&s, complaint).unwrap_err().to_string();
    assert!(msg.contains(&h1.to_string()), "{msg}");
    assert_eq!(
        v.erase_category(&s, &Category::Communication)
            .unwrap()
            .retained
            .len(),
        1
    );
    assert!(readable(&v, &s, complaint));
    // the sweep, past the access log's 3 months: the held log stays.
    clock.set(ts("2024-06-01T00:00:00Z"));
    v.sweep().unwrap();
    assert!(readable(&v, &s, log));
    // subject erasure: what is held stays, the rest goes; the report says why.
    let r = v.erase_subject(&s).unwrap();
    assert!(!r.subject_erased);
    assert!(!readable(&v, &s, profile));
    let reasons: Vec<_> = r
        .retained
        .iter()
        .map(|x| (x.record, x.reason.clone()))
        .collect();
    assert!(reasons.contains(&(complaint, RetainReason::Held { holds: vec![h1] })));
    assert!(reasons.contains(&(log, RetainReason::Held { holds: vec![h2] })));
    // release one: the sweep destroys what it protected, not the other.
    v.release_hold(h2).unwrap();
    v.sweep().unwrap();
    assert!(!readable(&v, &s, log));
    assert!(readable(&v, &s, complaint));
    v.release_hold(h1).unwrap();
    v.sweep().unwrap();
    assert!(matches!(v.list(&s), Err(Error::SubjectNotFound)));
    let holds = v.holds(None).unwrap();
    assert!(holds.iter().all(|h| h.released.is_some()));
    assert!(v.verify().unwrap().is_whole());
}

#[test]
fn a_hold_with_an_end_stops_holding() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(ts("2024-01-01T00:00:00Z"));
    let v = vault(tmp.path(), &clock, None);
    let s = SubjectId::new("s").unwrap();
    let id = v
        .put(&s, common::seed_meta(Category::Contact), b"x")
        .unwrap();
    v.place_hold(
        &s,
        NewHold::new(HoldTarget::Subject, HoldReason::AuthorityRequest)
            .reference("REQ-9")
            .until(ts("2024-02-01T00:00:00Z")),
    )
    .unwrap();
    assert!(v.delete(&s, id).is_err());
    clock.set(ts("2024-02-02T00:00:00Z"));
    v.delete(&s, id).unwrap();
    assert!(!readable(&v, &s, id));
}

#[test]
fn backup_erase_restore_with_ledger_resurrects_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(ts("2024-01-01T00:00:00Z"));
    let v = vault(&tmp.path().join("live"), &clock, None);
    let alice = SubjectId::new("alice").unwrap();
    let bob = SubjectId::new("bob").unwrap();
    let a = v
        .put(&alice, common::seed_meta(Category::Contact), b"alice")
        .unwrap();
    let b1 = v
        .put(&bob, common::seed_meta(Category::Contact), b"bob-1")
        .unwrap();
    let b2 = v
        .put(&bob, common::seed_meta(Category::Contact), b"bob-2")
        .unwrap();
    let carol = SubjectId::new("carol").unwrap();
    let c = v
        .put(&carol, common::seed_meta(Category::Contact), b"carol")
        .unwrap();
    let hold = v
        .place_hold(
            &carol,
            NewHold::new(HoldTarget::Subject, HoldReason::LegalObligation).reference("LAW-1"),
        )
        .unwrap();
    if common::store::on_postgres() {
        // Backups of a PostgreSQL vault are the database's (and `pdvault migrate`): refused by
        // name, nothing written.
        let r = v.backup(&tmp.path().join("backup"));
        assert!(
            matches!(r, Err(Error::Open(OpenError::NotSupported(_)))),
            "{r:?}"
        );
        assert!(!tmp.path().join("backup").exists());
        return;
    }
    v.backup(&tmp.path().join("backup")).unwrap();
    v.erase_subject(&alice).unwrap();
    v.erase_record(&bob, b2).unwrap();
    let mut ledger = Vec::new();
    v.export_ledger(&mut ledger).unwrap();
    let ledger = Vault::parse_ledger(&mut ledger.as_slice()).unwrap();
    assert_eq!(ledger.len(), 2);
    drop(v);

    // Without the ledger the backup is the past, erased data included (documented, and asked
    // for by name).
    let old = Vault::restore(
        &tmp.path().join("backup"),
        &tmp.path().join("r1"),
        RootSecret::passphrase(PW),
        LedgerChoice::BringErasedDataBack,
    )
    .unwrap();
    assert!(readable(&old, &alice, a));
    drop(old);
    let r = Vault::restore(
        &tmp.path().join("backup"),
        &tmp.path().join("r2"),
        RootSecret::passphrase(PW),
        LedgerChoice::Apply(&ledger),
    )
    .unwrap();
    assert!(!readable(&r, &alice, a));
    assert!(matches!(r.list(&alice), Err(Error::SubjectNotFound)));
    assert!(!readable(&r, &bob, b2));
    assert!(readable(&r, &bob, b1));
    assert!(readable(&r, &carol, c));
    assert_eq!(r.holds(Some(&carol)).unwrap()[0].id, hold);
    assert!(r.verify().unwrap().is_whole());
}

#[test]
fn rotating_the_root_secret_locks_out_the_old_one() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(ts("2024-01-01T00:00:00Z"));
    let v = vault(tmp.path(), &clock, None);
    let s = SubjectId::new("s").unwrap();
    let id = v
        .put(&s, common::seed_meta(Category::Contact), b"x")
        .unwrap();
    v.rotate_root(
        RootSecret::passphrase("new-passphrase"),
        Some(KdfParams::insecure_for_tests()),
    )
    .unwrap();
    assert!(readable(&v, &s, id));
    v.close().unwrap();
    assert!(matches!(
        common::store::builder(tmp.path()).open(RootSecret::passphrase(PW)),
        Err(Error::Open(OpenError::WrongKey))
    ));
    let v = common::store::builder(tmp.path())
        .open(RootSecret::passphrase("new-passphrase"))
        .unwrap();
    assert!(readable(&v, &s, id));
    assert!(v.verify().unwrap().is_whole());
}

#[test]
fn policy_errors_name_the_entry() {
    let err = Policy::from_toml("[retention.acces-log]\nmax = \"3 months\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("acces-log"), "{err}");
}

/// A sweep with many subjects due destroys through several key ratchets, each bounded, each
/// taking whole subjects (a subject's due entries are far apart in the due index when their
/// times differ), and destroys everything due.
#[test]
fn a_large_sweep_runs_in_bounded_ratchets_of_whole_subjects() {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = ts("2024-01-31T12:00:00Z");
    let clock = ManualClock::new(t0);
    let v = vault(
        tmp.path(),
        &clock,
        Some(policy("seed-000-cmcendpoint.toml")),
    );
    // Records are collected up to 30 days after t0: the clock stands there while they are put
    // (a collection time after the vault clock's now is refused).
    clock.set(t0 + Span::new().hours(24 * 30));
    const SUBJECTS: usize = 300;
    let mut due = Vec::new();
    let mut kept = Vec::new();
    for i in 0..SUBJECTS {
        let s = SubjectId::new(format!("subject-{i}@example.com")).unwrap();
        for days in [0, 30] {
            let at = t0 + Span::new().hours(24 * days);
            let id = v
                .put(
                    &s,
                    common::seed_meta(Category::AccessLog).collected_at(at),
                    b"GET /",
                )
                .unwrap();
            due.push((s.clone(), id));
        }
        let id = v
            .put(
                &s,
                common::seed_meta(Category::Preference).collected_at(t0),
                b"pref",
            )
            .unwrap();
        kept.push((s, id));
    }
    clock.set(ts("2025-01-01T00:00:00Z"));
    let report = v.sweep().unwrap();
    assert_eq!(report.categories_erased, SUBJECTS as u64, "{report:?}");
    assert!(due.iter().all(|(s, id)| !readable(&v, s, *id)));
    assert!(kept.iter().all(|(s, id)| readable(&v, s, *id)));
    let ratchets: Vec<usize> = v
        .audit_entries(None, None)
        .unwrap()
        .into_iter()
        .filter(|e| e.op == AuditOp::Sweep)
        .map(|e| {
            let note = e.note.unwrap();
            note.strip_suffix(" due").unwrap().parse().unwrap()
        })
        .collect();
    assert!(ratchets.len() > 1, "one ratchet for {SUBJECTS} subjects");
    assert_eq!(ratchets.iter().sum::<usize>(), 2 * SUBJECTS);
    assert!(
        ratchets.iter().all(|n| n % 2 == 0),
        "a subject's due entries split between ratchets: {ratchets:?}"
    );
    assert!(v.verify().unwrap().is_whole());
    assert!(v.audit_verify().unwrap().is_intact());
}

/// A hold on a subject keeps the subject even when it has no record left: erasing it leaves it
/// pending (new writes for the identifier stay under the hold), and the first sweep after the
/// release finishes the erasure. A second erasure of a subject erased meanwhile is "not found",
/// never a damaged store.
#[test]
fn a_hold_keeps_a_subject_without_records_until_it_is_released() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new("2025-01-01T00:00:00Z".parse().unwrap());
    let v = vault(tmp.path(), &clock, None);
    let s = SubjectId::new("held@example.com").unwrap();
    let id = v
        .put(&s, common::seed_meta(Category::Usage).purpose(p()), b"x")
        .unwrap();
    v.erase_record(&s, id).unwrap();
    let hold = v
        .place_hold(&s, NewHold::new(HoldTarget::Subject, HoldReason::Dispute))
        .unwrap();
    let report = v.erase_subject(&s).unwrap();
    assert!(!report.subject_erased, "{report:?}");
    v.sweep().unwrap();
    let later = v
        .put(&s, common::seed_meta(Category::Usage).purpose(p()), b"y")
        .unwrap();
    let covered = v.erase_subject(&s).unwrap();
    assert!(!covered.subject_erased);
    assert_eq!(
        covered.retained.len(),
        1,
        "the hold covers new records: {covered:?}"
    );
    assert_eq!(covered.retained[0].record, later);
    v.release_hold(hold).unwrap();
    v.sweep().unwrap();
    assert!(matches!(v.erase_subject(&s), Err(Error::SubjectNotFound)));
    assert!(v.audit_verify().unwrap().is_intact());
}

/// A collection time before the write (data migrated into the vault) is where retention counts
/// from; one after the vault clock's now is refused, by every call that writes one, and nothing
/// is written.
#[test]
fn a_collection_time_in_the_future_is_refused_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let now = ts("2025-03-01T00:00:00Z");
    let clock = ManualClock::new(now);
    let v = vault(tmp.path(), &clock, Some(policy("seed-001-m-exe.toml")));
    let s = SubjectId::new("migrated@example.com").unwrap();
    let later = now + Span::new().seconds(1);
    let future = |c: Category| common::seed_meta(c).purpose(p()).collected_at(later);
    let refused = |r: Result<RecordId>| match r {
        Err(Error::Input(InputError::CollectedInFuture {
            collected_at,
            now: at,
        })) => assert_eq!((collected_at, at), (later, now)),
        other => panic!("{other:?}"),
    };
    let audit = v.audit_entries(None, None).unwrap().len();
    refused(v.put(&s, future(Category::Usage), b"x"));
    let msg = v
        .put(&s, future(Category::Usage), b"x")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("in the future"), "{msg}");
    // A batch with one such record is refused whole: not even the subject is created.
    let ok = common::seed_meta(Category::Usage)
        .purpose(p())
        .collected_at(now);
    let batch = v.put_many([
        (&s, ok.clone(), b"ok".as_slice()),
        (&s, future(Category::Usage), b"x".as_slice()),
    ]);
    refused(batch.map(|ids| ids[0]));
    refused(v.put_value(&s, future(Category::Usage), &"x"));
    assert!(matches!(v.list(&s), Err(Error::SubjectNotFound)));
    assert_eq!(v.audit_entries(None, None).unwrap().len(), audit);
    // A rectification may not move a collection time into the future either.
    let id = v.put(&s, ok.clone(), b"ok").unwrap();
    let before = v.list(&s).unwrap();
    refused(
        v.rectify(&s, id, Some(future(Category::Usage)), None, "moved")
            .map(|()| id),
    );
    assert_eq!(v.list(&s).unwrap(), before);
    // Collected 13 months ago, in a category kept 12 months: the next sweep destroys it.
    let old = v
        .put(
            &s,
            common::seed_meta(Category::Usage)
                .purpose(p())
                .collected_at(ts("2024-02-01T00:00:00Z")),
            b"old",
        )
        .unwrap();
    let report = v.sweep().unwrap();
    assert_eq!(report.by_category["usage"].expired, 1, "{report:?}");
    assert!(!readable(&v, &s, old));
    assert!(readable(&v, &s, id));
    assert!(v.verify().unwrap().is_whole());
}

/// A dry run at a later date says what a sweep then would destroy and keep, per category and
/// why, and writes nothing at all; the sweep at that date then does exactly that.
#[test]
fn a_dry_run_at_a_later_date_predicts_the_sweep_then_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = ts("2024-01-01T00:00:00Z");
    let clock = ManualClock::new(t0);
    let v = vault(tmp.path(), &clock, Some(policy("seed-001-m-exe.toml")));
    let put = |s: &SubjectId, c: Category, at: &str| {
        v.put(
            s,
            common::seed_meta(c).purpose(p()).collected_at(ts(at)),
            b"x",
        )
        .unwrap()
    };
    // alice: usage (12 months) collected at two times, communication (3 years).
    let alice = SubjectId::new("alice").unwrap();
    let usage_old = put(&alice, Category::Usage, "2023-06-01T00:00:00Z");
    let usage_new = put(&alice, Category::Usage, "2024-01-01T00:00:00Z");
    let talk = put(&alice, Category::Communication, "2024-01-01T00:00:00Z");
    // bob: usage past its 12 months, under a hold.
    let bob = SubjectId::new("bob").unwrap();
    let held = put(&bob, Category::Usage, "2022-12-01T00:00:00Z");
    v.place_hold(
        &bob,
        NewHold::new(HoldTarget::Record(held), HoldReason::Dispute),
    )
    .unwrap();
    // carol: a transaction (7 years minimum) and dave: a contact (no rule), both erased under a
    // hold that ends a month later: pending, and due at every sweep.
    let carol = SubjectId::new("carol").unwrap();
    let tx = put(&carol, Category::Transaction, "2024-01-01T00:00:00Z");
    let dave = SubjectId::new("dave").unwrap();
    let contact = put(&dave, Category::Contact, "2024-01-01T00:00:00Z");
    for s in [&carol, &dave] {
        v.place_hold(
            s,
            NewHold::new(HoldTarget::Subject, HoldReason::LegalObligation)
                .until(ts("2024-02-01T00:00:00Z")),
        )
        .unwrap();
        assert_eq!(v.erase_subject(s).unwrap().retained.len(), 1);
    }
    let all = [
        (&alice, usage_old),
        (&alice, usage_new),
        (&alice, talk),
        (&bob, held),
        (&carol, tx),
        (&dave, contact),
    ];

    // Now, before the sweep has run: bob's usage is due and held.
    let now = v.sweep_dry_run().unwrap();
    assert_eq!(now.at, Some(t0));
    assert_eq!(now.by_category.len(), 3, "{now:?}");
    assert_eq!(now.by_category["usage"].held, 1);

    let at = ts("2025-06-01T00:00:00Z");
    v.flush().unwrap();
    let audit = v.audit_entries(None, None).unwrap();
    let ledger = v.ledger().unwrap();
    let stats = v.stats().unwrap();
    let files = (!common::store::on_postgres()).then(|| files(tmp.path()));
    let planned = v.sweep_dry_run_at(at).unwrap();
    assert!(planned.dry_run);
    assert_eq!(planned.at, Some(at));
    let usage = planned.by_category["usage"];
    assert_eq!(
        (usage.expired, usage.erasure_completed),
        (2, 0),
        "{planned:?}"
    );
    assert_eq!((usage.held, usage.minimum_retention), (1, 0), "{planned:?}");
    let transaction = planned.by_category["transaction"];
    assert_eq!(transaction.minimum_retention, 1, "{planned:?}");
    assert_eq!(planned.by_category["contact"].erasure_completed, 1);
    assert!(!planned.by_category.contains_key("communication"));
    assert_eq!(planned.retained, 2);
    assert_eq!(planned.subjects_erased, 1, "dave has nothing left");

    // Nothing was written: every record reads, the trail, the ledger and the files are as
    // they were.
    v.flush().unwrap();
    assert_eq!(v.audit_entries(None, None).unwrap(), audit);
    assert_eq!(v.ledger().unwrap(), ledger);
    assert_eq!(v.stats().unwrap(), stats);
    if let Some(files) = files {
        let changed = changed(&files, &self::files(tmp.path()));
        assert!(changed.is_empty(), "the dry run wrote {changed:?}");
    }
    assert!(all.iter().all(|(s, id)| readable(&v, s, *id)));

    // A time before the vault clock's now is refused.
    match v.sweep_dry_run_at(t0 - Span::new().seconds(1)) {
        Err(Error::Input(InputError::SweepInPast { at: a, now: n })) => {
            assert_eq!((a, n), (t0 - Span::new().seconds(1), t0));
        }
        other => panic!("{other:?}"),
    }

    // The sweep at that date destroys exactly what was planned.
    clock.set(at);
    let swept = v.sweep().unwrap();
    assert_eq!(swept.by_category, planned.by_category);
    assert_eq!(
        (
            swept.erased,
            swept.categories_erased,
            swept.retained,
            swept.subjects_erased
        ),
        (
            planned.erased,
            planned.categories_erased,
            planned.retained,
            planned.subjects_erased
        )
    );
    for (s, id) in [(&alice, usage_old), (&alice, usage_new), (&dave, contact)] {
        assert!(!readable(&v, s, id), "{id} survived");
    }
    for (s, id) in [(&alice, talk), (&bob, held), (&carol, tx)] {
        assert!(readable(&v, s, id), "{id} destroyed");
    }
    assert!(matches!(v.list(&dave), Err(Error::SubjectNotFound)));
    assert!(v.verify().unwrap().is_whole());
}

/// Every file under a vault's directory, with its bytes.
fn files(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(p.strip_prefix(dir).unwrap().to_owned(), bytes);
            }
        }
    }
    out
}

/// The paths whose bytes differ (or that exist on one side only).
fn changed(
    a: &std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>,
    b: &std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>,
) -> Vec<std::path::PathBuf> {
    a.keys()
        .chain(b.keys())
        .filter(|p| a.get(*p) != b.get(*p))
        .cloned()
        .collect()
}
