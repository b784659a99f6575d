//! Data-subject rights: export and import, the purpose/consent/restriction matrix, the audit
//! trail after erasure and pruning, request deadlines.

mod common;

use jiff::{Timestamp, ToSpan};
use pdvault::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn vault(dir: &std::path::Path, clock: &ManualClock, policy: Option<&str>) -> Vault {
    let mut b = common::store::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .clock(clock.clone());
    if let Some(p) = policy {
        let text = std::fs::read_to_string(format!("{}/policies/{p}", env!("CARGO_MANIFEST_DIR")))
            .unwrap();
        // The custom category these tests write, declared as a vault's policy must declare it.
        let text = format!("custom_categories = [\"loyalty-points\"]\n{text}");
        b = b.policy(Policy::from_toml(&text).unwrap());
    }
    b.create(RootSecret::passphrase("pw-passphrase")).unwrap()
}

fn purpose(s: &str) -> Purpose {
    Purpose::new(s).unwrap()
}

#[test]
fn export_then_import_reproduces_every_record_and_its_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(ts("2025-05-01T00:00:00Z"));
    let v = vault(&tmp.path().join("a"), &clock, Some("seed-001-m-exe.toml"));
    let s = SubjectId::new("alice@example.com").unwrap();
    v.put(
        &s,
        common::seed_meta(Category::Contact)
            .purpose(purpose("billing"))
            .source("signup-form"),
        "älice ✓".as_bytes(),
    )
    .unwrap();
    v.put(
        &s,
        common::seed_meta(Category::Usage)
            .purpose(purpose("analytics"))
            .basis(LegalBasis::Consent),
        &[0u8, 255, 1, 2],
    )
    .unwrap();
    v.put(
        &s,
        common::seed_meta(Category::custom("loyalty-points").unwrap())
            .basis(LegalBasis::LegitimateInterests),
        b"",
    )
    .unwrap();
    v.grant_consent(&s, &purpose("analytics"), Some("2025-01"))
        .unwrap();
    v.disclose(
        &s,
        "tax-authority",
        &purpose("tax"),
        &[Category::Transaction],
        Some("subpoena: 42"),
    )
    .unwrap();
    v.place_hold(
        &s,
        HoldTarget::Category(Category::Contact),
        HoldReason::Dispute,
        Some("CASE-7"),
        None,
    )
    .unwrap();
    let mut doc = Vec::new();
    assert_eq!(v.export(&s, &mut doc).unwrap(), 3);
    let json: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    assert_eq!(json["format"], "pdvault-export");
    assert_eq!(json["version"], 1);
    assert_eq!(json["disclosures"][0]["ground"], "subpoena: 42");
    assert_eq!(json["holds"][0]["reason"], "dispute");
    assert_eq!(json["subject"]["consents"]["analytics"]["granted"], true);
    let records = json["records"].as_array().unwrap();
    assert!(
        records
            .iter()
            .any(|r| r["payload"]["text"] == "älice ✓" && r["fideslang"] == "user.contact")
    );
    assert!(records.iter().any(|r| r["payload"]["base64"] == "AP8BAg=="));
    assert!(
        records
            .iter()
            .any(|r| r["category"] == "usage" && r["expires_at"].is_string())
    );

    // The importing vault declares the custom category too (its policy does).
    let w = vault(
        &tmp.path().join("b"),
        &clock,
        Some("seed-000-cmcendpoint.toml"),
    );
    assert_eq!(w.import(&mut doc.as_slice()).unwrap().records, 3);
    let mut a = v.list(&s).unwrap();
    let mut b = w.list(&s).unwrap();
    a.sort_by_key(|r| r.record);
    b.sort_by_key(|r| r.record);
    assert_eq!(
        a.iter()
            .map(|r| (&r.record, &r.meta, r.version))
            .collect::<Vec<_>>(),
        b.iter()
            .map(|r| (&r.record, &r.meta, r.version))
            .collect::<Vec<_>>()
    );
    for r in &a {
        let sa = purpose(Purpose::SUBJECT_ACCESS);
        assert_eq!(
            v.get(&s, r.record, &sa).unwrap().payload,
            w.get(&s, r.record, &sa).unwrap().payload
        );
    }
    // consent came along: the consent-based record reads for its purpose.
    let usage = b
        .iter()
        .find(|r| r.meta.category == Category::Usage)
        .unwrap()
        .record;
    w.get(&s, usage, &purpose("analytics")).unwrap();
    // malformed documents: a clear error, nothing stored.
    for bad in [
        &b"{}"[..],
        b"not json",
        br#"{"format":"other","version":1}"#,
    ] {
        assert!(matches!(
            w.import(&mut &bad[..]),
            Err(Error::Input(InputError::Document(_)))
        ));
    }
    assert_eq!(w.list(&s).unwrap().len(), 3);
}

#[test]
fn purpose_consent_and_restriction_matrix() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(ts("2025-01-01T00:00:00Z"));
    let v = vault(tmp.path(), &clock, None);
    let s = SubjectId::new("s").unwrap();
    let contract = v
        .put(
            &s,
            common::seed_meta(Category::Contact).purpose(purpose("billing")),
            b"c",
        )
        .unwrap();
    let consent = v
        .put(
            &s,
            common::seed_meta(Category::Usage)
                .purpose(purpose("marketing"))
                .basis(LegalBasis::Consent),
            b"u",
        )
        .unwrap();
    let get = |id, p: &str| v.get(&s, id, &purpose(p));
    // purpose must be among the record's purposes
    assert!(get(contract, "billing").is_ok());
    assert!(matches!(
        get(contract, "marketing"),
        Err(Error::Access(AccessError::PurposeNotAllowed { .. }))
    ));
    // consent basis: refused until granted, allowed while granted, refused after withdrawal
    assert!(matches!(
        get(consent, "marketing"),
        Err(Error::Access(AccessError::NoConsent { .. }))
    ));
    v.grant_consent(&s, &purpose("marketing"), None).unwrap();
    assert!(get(consent, "marketing").is_ok());
    v.withdraw_consent(&s, &purpose("marketing"), false)
        .unwrap();
    assert!(matches!(
        get(consent, "marketing"),
        Err(Error::Access(AccessError::NoConsent { .. }))
    ));
    v.grant_consent(&s, &purpose("marketing"), None).unwrap();
    // restriction of a category, then of the subject
    v.restrict(&s, Some(&Category::Usage)).unwrap();
    assert!(matches!(
        get(consent, "marketing"),
        Err(Error::Access(AccessError::Restricted { .. }))
    ));
    assert!(get(contract, "billing").is_ok());
    v.restrict(&s, None).unwrap();
    assert!(matches!(
        get(contract, "billing"),
        Err(Error::Access(AccessError::Restricted { .. }))
    ));
    for allowed in [
        Purpose::STORAGE,
        Purpose::LEGAL_CLAIMS,
        Purpose::SUBJECT_ACCESS,
    ] {
        assert!(get(contract, allowed).is_ok(), "{allowed}");
        assert!(get(consent, allowed).is_ok(), "{allowed}");
    }
    let mut sink = Vec::new();
    assert_eq!(
        v.export(&s, &mut sink).unwrap(),
        2,
        "export works while restricted"
    );
    v.unrestrict(&s, None).unwrap();
    v.unrestrict(&s, Some(&Category::Usage)).unwrap();
    assert!(get(contract, "billing").is_ok());
    assert!(get(consent, "marketing").is_ok());
    // withdrawal with erasure destroys what rests on that consent alone, through the guarded path
    let r = v
        .withdraw_consent(&s, &purpose("marketing"), true)
        .unwrap()
        .unwrap();
    assert_eq!(r.erased.len(), 1);
    assert!(get(consent, Purpose::SUBJECT_ACCESS).is_err());
    assert!(get(contract, "billing").is_ok());
}

#[test]
fn audit_trail_after_erasure_names_nobody_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(ts("2025-01-01T00:00:00Z"));
    let v = vault(tmp.path(), &clock, None)
        .as_actor("officer-7")
        .unwrap();
    let id_text = "very-unique-subject-7f3a@example.com";
    let s = SubjectId::new(id_text).unwrap();
    let r = v
        .put(
            &s,
            common::seed_meta(Category::Contact).purpose(purpose("x")),
            b"payload-marker-9c1",
        )
        .unwrap();
    v.get(&s, r, &purpose("x")).unwrap();
    v.rectify(
        &s,
        r,
        None,
        Some(b"payload-marker-new"),
        "typo in phone number",
    )
    .unwrap();
    v.erase_subject(&s).unwrap();
    assert!(v.audit_verify().unwrap().is_intact());
    let entries = v.audit_entries(None, None).unwrap();
    let ops: Vec<AuditOp> = entries.iter().map(|e| e.op).collect();
    for op in [
        AuditOp::Put,
        AuditOp::Read,
        AuditOp::Rectify,
        AuditOp::Erase,
        AuditOp::KeyDestruction,
    ] {
        assert!(ops.contains(&op), "{op:?} missing from {ops:?}");
    }
    assert!(entries.iter().all(|e| e.actor == "officer-7"));
    let all = serde_json::to_string(&entries).unwrap();
    assert!(
        !all.contains(id_text) && !all.contains("payload-marker"),
        "the trail leaks"
    );
    v.close().unwrap();
}

#[test]
fn pruning_old_audit_entries_keeps_a_verifying_chain() {
    let (tmp, clock, v, s) = pruning_vault();
    for _ in 0..20 {
        v.put(&s, common::seed_meta(Category::Contact), b"x")
            .unwrap();
    }
    clock.advance(4.months());
    v.put(&s, common::seed_meta(Category::Contact), b"y")
        .unwrap();
    let before = v.audit_entries(None, None).unwrap().len();
    let r = v.sweep().unwrap();
    assert!(r.audit_pruned >= 20, "{r:?}");
    assert!(v.audit_entries(None, None).unwrap().len() < before);
    assert_whole_after_reopen(v, tmp.path(), clock);
}

/// Checks the trail, closes, reopens and checks the whole vault.
fn assert_whole_after_reopen(v: Vault, dir: &std::path::Path, clock: ManualClock) {
    assert!(v.audit_verify().unwrap().is_intact());
    v.close().unwrap();
    let v = common::store::builder(dir)
        .clock(clock)
        .open(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    assert!(v.verify().unwrap().is_whole());
}

/// A vault under the seed-000 policy (audit entries kept 3 months), its clock and one subject.
fn pruning_vault() -> (tempfile::TempDir, ManualClock, Vault, SubjectId) {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(ts("2025-01-01T00:00:00Z"));
    let v = vault(tmp.path(), &clock, Some("seed-000-cmcendpoint.toml"));
    (tmp, clock, v, SubjectId::new("s").unwrap())
}

/// A read is written with the next commit, in the same stored block: pruning that cuts such a
/// block removes the old entries and keeps the new ones.
#[test]
fn pruning_cuts_a_block_that_straddles_the_cutoff() {
    let (tmp, clock, v, s) = pruning_vault();
    let p = purpose("support");
    let id = v
        .put(
            &s,
            common::seed_meta(Category::Contact).purpose(p.clone()),
            b"x",
        )
        .unwrap();
    for _ in 0..5 {
        v.get(&s, id, &p).unwrap();
    }
    clock.advance(4.months());
    // The five buffered reads (old) and this put (new) are committed together.
    v.put(&s, common::seed_meta(Category::Usage), b"y").unwrap();
    let cutoff = ts("2025-02-01T00:00:00Z");
    let old = |e: &AuditEntry| e.at < cutoff;
    let before = v.audit_entries(None, None).unwrap();
    assert_eq!(before.iter().filter(|e| old(e)).count(), 6);
    let r = v.sweep().unwrap();
    assert_eq!(r.audit_pruned, 6, "{r:?}");
    let after = v.audit_entries(None, None).unwrap();
    assert!(after.iter().all(|e| !old(e)), "{after:?}");
    assert_eq!(after.first().map(|e| e.op), Some(AuditOp::Put));
    assert_eq!(after.first().map(|e| e.seq), Some(7));
    assert!(v.audit_verify().unwrap().is_intact());
    // Writing on after the cut block keeps the chain whole.
    v.put(&s, common::seed_meta(Category::Usage), b"z").unwrap();
    assert_whole_after_reopen(v, tmp.path(), clock);
}

#[test]
fn request_due_dates_follow_the_policy_and_overdue_lists_are_right() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(ts("2025-03-01T09:00:00Z"));
    let v = vault(tmp.path(), &clock, Some("seed-001-m-exe.toml"));
    let s = SubjectId::new("s").unwrap();
    v.put(&s, common::seed_meta(Category::Contact), b"x")
        .unwrap();
    let access = v.open_request(&s, RequestKind::Access, None).unwrap();
    let rect = v
        .open_request(&s, RequestKind::Rectification, None)
        .unwrap();
    let restr = v.open_request(&s, RequestKind::Restriction, None).unwrap();
    let erase = v.open_request(&s, RequestKind::Erasure, None).unwrap();
    assert_eq!(access.due_at, Some(ts("2025-03-31T09:00:00Z")));
    assert_eq!(rect.due_at, Some(ts("2025-03-16T09:00:00Z")));
    assert_eq!(restr.due_at, Some(ts("2025-03-08T09:00:00Z")));
    let overdue_ids = |v: &Vault| {
        v.requests(true)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
    };
    let mut seen = Vec::new();
    for day in 1..=31 {
        clock.set(ts("2025-03-01T09:00:00Z") + jiff::Span::new().hours(24 * day));
        seen.push((day, overdue_ids(&v).len()));
    }
    // restriction overdue from day 8, rectification from day 16, access and erasure from day 31
    let at = |d: i64| seen.iter().find(|(x, _)| *x == d).unwrap().1;
    assert_eq!(
        (at(7), at(8), at(15), at(16), at(30), at(31)),
        (0, 1, 1, 2, 2, 4)
    );
    // answering closes: an export closes the access request, a restriction the restriction one
    v.export(&s, &mut std::io::sink()).unwrap();
    v.restrict(&s, None).unwrap();
    v.close_request(rect.id).unwrap();
    assert_eq!(overdue_ids(&v), vec![erase.id]);
    v.erase_subject(&s).unwrap();
    assert!(overdue_ids(&v).is_empty());
}

#[test]
fn statistics_hold_no_personal_data() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(ts("2025-01-01T00:00:00Z"));
    let v = vault(tmp.path(), &clock, Some("seed-001-m-exe.toml"));
    let s = SubjectId::new("stats-subject-marker").unwrap();
    v.put(
        &s,
        common::seed_meta(Category::Usage)
            .purpose(purpose("analytics"))
            .basis(LegalBasis::Consent),
        b"x",
    )
    .unwrap();
    v.put(
        &s,
        common::seed_meta(Category::Contact).purpose(purpose("billing")),
        b"y",
    )
    .unwrap();
    let st = v.stats().unwrap();
    assert_eq!((st.subjects, st.records), (1, 2));
    assert_eq!(st.by_category["usage"], 1);
    assert_eq!(st.by_basis["consent"], 1);
    assert_eq!(st.by_purpose["billing"], 1);
    assert_eq!(st.by_retention["scheduled"], 1);
    assert_eq!(st.by_retention["unscheduled"], 1);
    assert!(!serde_json::to_string(&st).unwrap().contains("marker"));
}

/// A writer that accepts `left` bytes, then fails.
struct FailingAfter {
    left: usize,
}

impl std::io::Write for FailingAfter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::other("the disk is full"));
        }
        let n = buf.len().min(self.left);
        self.left -= n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An export whose writer fails half-way returns the error, keeps the subject's access request
/// open, and the audit trail still records that part of the subject's data left the vault.
#[test]
fn an_export_cut_short_is_an_error_and_is_still_in_the_audit_trail() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(ts("2025-05-01T00:00:00Z"));
    let v = vault(tmp.path(), &clock, None);
    let s = SubjectId::new("alice@example.com").unwrap();
    for i in 0..50u8 {
        v.put(&s, common::seed_meta(Category::Contact), &[i; 100])
            .unwrap();
    }
    v.open_request(&s, RequestKind::Access, None).unwrap();
    let whole = v.export(&s, &mut std::io::sink()).unwrap();
    assert_eq!(whole, 50);
    v.open_request(&s, RequestKind::Access, None).unwrap();
    let exports = |v: &Vault| -> Vec<String> {
        v.audit_entries(Some(&s), None)
            .unwrap()
            .into_iter()
            .filter(|e| e.op == AuditOp::Export)
            .map(|e| e.note.unwrap())
            .collect()
    };
    assert_eq!(exports(&v), vec!["50 records".to_owned()]);

    let err = v.export(&s, &mut FailingAfter { left: 4000 }).unwrap_err();
    assert!(
        matches!(err, Error::Storage(StorageError::Io(_))),
        "{err:?}"
    );
    v.close().unwrap();
    let v = common::store::builder(tmp.path())
        .kdf(KdfParams::insecure_for_tests())
        .open(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    let notes = exports(&v);
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[1].ends_with("records; interrupted"), "{notes:?}");
    assert!(
        !notes[1].starts_with("0 ") && !notes[1].starts_with("50 "),
        "{notes:?}"
    );
    assert_eq!(
        v.requests(false)
            .unwrap()
            .iter()
            .filter(|r| r.closed_at.is_none())
            .count(),
        1,
        "the access request stays open"
    );
}
