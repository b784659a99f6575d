//! Data-subject rights: export and import, the purpose/consent/restriction matrix, the audit
//! trail after erasure and pruning, request deadlines, custom request kinds and the
//! verification of a requester's identity.

mod common;

use jiff::{Timestamp, ToSpan};
use pdvault::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn vault(dir: &std::path::Path, clock: &ManualClock, policy: Option<&str>) -> Vault {
    vault_with(dir, clock, policy.map(policy_text))
}

/// A shipped policy's text, with the custom category these tests write declared, as a vault's
/// policy must declare it.
fn policy_text(file: &str) -> String {
    let text =
        std::fs::read_to_string(format!("{}/policies/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    format!("custom_categories = [\"loyalty-points\"]\n{text}")
}

fn vault_with(dir: &std::path::Path, clock: &ManualClock, policy: Option<String>) -> Vault {
    let mut b = common::store::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .clock(clock.clone());
    if let Some(text) = policy {
        b = b.policy(Policy::from_toml(&text).unwrap());
    }
    b.create(RootSecret::passphrase("pw-passphrase")).unwrap()
}

/// Seed 001's policy with the requester's identity verified before any request (of every kind)
/// is answered.
fn verifying_policy() -> String {
    policy_text("seed-001-m-exe.toml").replace(
        "verify_identity = [\"access\", \"rectification\", \"erasure\", \"restriction\", \"portability\"]",
        "verify_identity = true",
    )
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
        NewHold::new(HoldTarget::Category(Category::Contact), HoldReason::Dispute)
            .reference("CASE-7"),
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
        let sa = Purpose::SUBJECT_ACCESS;
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
    v.withdraw_consent(&s, &purpose("marketing"), Withdrawal::KeepRecords)
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
        Purpose::STORAGE.as_str(),
        Purpose::LEGAL_CLAIMS.as_str(),
        Purpose::SUBJECT_ACCESS.as_str(),
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
        .withdraw_consent(&s, &purpose("marketing"), Withdrawal::EraseRecords)
        .unwrap()
        .unwrap();
    assert_eq!(r.erased.len(), 1);
    assert!(get(consent, Purpose::SUBJECT_ACCESS.as_str()).is_err());
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
        v.requests(RequestFilter::Overdue)
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
    // (seed 001 has the requester's identity verified first)
    for r in [&access, &restr, &rect, &erase] {
        v.verify_request_identity(r.id, "dpo", "account verification")
            .unwrap();
    }
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
        v.requests(RequestFilter::All)
            .unwrap()
            .iter()
            .filter(|r| r.closed_at.is_none())
            .count(),
        1,
        "the access request stays open"
    );
}

/// Seed 001 promises "privacy inquiries answered within 48 hours": its policy declares an
/// `inquiry` kind with a 48-hour deadline, which counts hours, not days.
#[test]
fn a_48_hour_inquiry_is_overdue_after_49_hours_and_not_after_47() {
    let tmp = tempfile::tempdir().unwrap();
    let received = ts("2025-03-01T09:30:00Z");
    let clock = ManualClock::new(received);
    let v = vault(tmp.path(), &clock, Some("seed-001-m-exe.toml"));
    let s = SubjectId::new("s").unwrap();
    v.put(&s, RecordMeta::new(Category::Contact), b"x").unwrap();
    let inquiry = RequestKind::custom("inquiry").unwrap();
    let req = v.open_request(&s, inquiry.clone(), None).unwrap();
    assert_eq!(req.kind, inquiry);
    assert_eq!(req.due_at, Some(ts("2025-03-03T09:30:00Z")));
    let overdue = |v: &Vault| {
        v.requests(RequestFilter::Overdue)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
    };
    clock.set(received + 47.hours());
    assert!(overdue(&v).is_empty());
    clock.set(received + 49.hours());
    assert_eq!(overdue(&v), vec![req.id]);
    // Listed with its kind after a reopen.
    v.close().unwrap();
    let v = common::store::builder(tmp.path())
        .kdf(KdfParams::insecure_for_tests())
        .clock(clock.clone())
        .open(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    let listed = v.requests(RequestFilter::Overdue).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].kind.name(), "inquiry");
}

/// A kind neither built in nor declared by the policy is refused, naming it (and the nearest
/// known kind), and nothing is stored.
#[test]
fn an_undeclared_request_kind_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(ts("2025-03-01T09:00:00Z"));
    let v = vault(&tmp.path().join("a"), &clock, Some("seed-001-m-exe.toml"));
    let s = SubjectId::new("s").unwrap();
    v.put(&s, RecordMeta::new(Category::Contact), b"x").unwrap();
    for (name, suggestion) in [
        ("complaint", None),
        ("inquiri", Some("inquiry")),
        ("acess", Some("access")),
    ] {
        let err = v
            .open_request(&s, RequestKind::custom(name).unwrap(), None)
            .unwrap_err();
        match &err {
            Error::Request(RequestError::UnknownKind {
                name: n,
                suggestion: sg,
            }) => {
                assert_eq!(n, name);
                assert_eq!(sg.as_deref(), suggestion, "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
        assert!(err.to_string().contains(name), "{err}");
    }
    assert!(v.requests(RequestFilter::All).unwrap().is_empty());
    // Without a policy, only the built-in kinds are known.
    let w = vault(&tmp.path().join("b"), &clock, None);
    w.put(&s, RecordMeta::new(Category::Contact), b"x").unwrap();
    assert!(matches!(
        w.open_request(&s, RequestKind::custom("inquiry").unwrap(), None),
        Err(Error::Request(RequestError::UnknownKind { .. }))
    ));
    w.open_request(&s, RequestKind::Access, None).unwrap();
}

/// Retention spans are calendar spans: hours are refused there, naming the entry, while a
/// request deadline may count them.
#[test]
fn hours_are_refused_in_retention_spans() {
    for (text, entry) in [
        ("[retention.usage]\nmax = \"48 hours\"", "usage"),
        ("[retention.usage]\nmin = \"1 day 12 hours\"", "usage"),
        ("[audit]\nretain = \"48 hours\"", "audit"),
        ("[subjects]\nkeep_state = \"24 hours\"", "subjects"),
    ] {
        match Policy::from_toml(text) {
            Err(PolicyError::Entry { entry: e, why }) => {
                assert_eq!(e, entry, "{text}");
                assert!(why.contains("days, weeks, months or years"), "{why}");
            }
            other => panic!("{text}: {other:?}"),
        }
    }
    let p = Policy::from_toml("[requests]\naccess = \"48 hours\"").unwrap();
    assert_eq!(
        p.request_due(&RequestKind::Access, ts("2025-03-01T09:00:00Z")),
        Some(ts("2025-03-03T09:00:00Z"))
    );
}

/// With verification required, an access request is not answered until the requester's identity
/// was verified: neither closed nor answered by an export; then the verification (who, how,
/// when) is on the request and in the audit trail, and closing works. The method is sealed under
/// the subject's key: after the subject's erasure it reads as erased.
#[test]
fn with_verification_required_an_access_request_is_answered_only_once_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(ts("2025-03-01T09:00:00Z"));
    let v = vault_with(tmp.path(), &clock, Some(verifying_policy()));
    let s = SubjectId::new("alice@example.com").unwrap();
    v.put(&s, RecordMeta::new(Category::Contact), b"x").unwrap();
    let req = v.open_request(&s, RequestKind::Access, None).unwrap();
    assert!(req.identity_verified.is_none());
    let refused = |r: Result<rights::Request>| match r {
        Err(Error::Request(RequestError::IdentityNotVerified { request, kind })) => {
            assert_eq!((request, kind), (req.id, RequestKind::Access));
        }
        other => panic!("{other:?}"),
    };
    refused(v.close_request(req.id));
    let err = v.close_request(req.id).unwrap_err();
    assert!(err.to_string().contains(&req.id.to_string()), "{err}");
    // An export would answer it: refused before anything is written.
    let mut out = Vec::new();
    match v.export(&s, &mut out) {
        Err(Error::Request(RequestError::IdentityNotVerified { request, .. })) => {
            assert_eq!(request, req.id)
        }
        other => panic!("{other:?}"),
    }
    assert!(out.is_empty());
    let still_open = |v: &Vault| {
        v.requests(RequestFilter::All)
            .unwrap()
            .into_iter()
            .find(|r| r.id == req.id)
            .unwrap()
    };
    assert!(still_open(&v).closed_at.is_none());
    // Bad input changes nothing.
    assert!(matches!(
        v.verify_request_identity(req.id, "Dana", ""),
        Err(Error::Input(InputError::Field { .. }))
    ));
    assert!(matches!(
        v.verify_request_identity(req.id, "Dana\n", "passport"),
        Err(Error::Input(InputError::Field { .. }))
    ));
    assert!(still_open(&v).identity_verified.is_none());

    clock.advance(2.hours());
    let at = clock.now();
    let verified = v
        .verify_request_identity(
            req.id,
            "Dana (privacy desk)",
            "passport seen at the counter",
        )
        .unwrap();
    let want = rights::IdentityVerification {
        by: "Dana (privacy desk)".into(),
        method: "passport seen at the counter".into(),
        at,
    };
    assert_eq!(verified.identity_verified.as_ref(), Some(&want));
    assert!(!format!("{:?}", verified).contains("passport"));
    assert!(matches!(
        v.verify_request_identity(req.id, "Eve", "phone call"),
        Err(Error::Request(RequestError::AlreadyVerified(id))) if id == req.id
    ));
    // Visible on the request, also after a reopen.
    v.close().unwrap();
    let v = common::store::builder(tmp.path())
        .kdf(KdfParams::insecure_for_tests())
        .clock(clock.clone())
        .open(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    assert_eq!(still_open(&v).identity_verified, Some(want.clone()));
    // In the trail: when, and who verified; never the method.
    let entries = v.audit_entries(Some(&s), None).unwrap();
    let verify: Vec<_> = entries
        .iter()
        .filter(|e| e.op == AuditOp::RequestVerify)
        .collect();
    assert_eq!(verify.len(), 1, "{entries:?}");
    assert_eq!(verify[0].at, at);
    let note = verify[0].note.as_deref().unwrap();
    assert!(
        note.contains(&req.id.to_string()) && note.contains("Dana (privacy desk)"),
        "{note}"
    );
    assert!(
        !entries
            .iter()
            .any(|e| e.note.as_deref().is_some_and(|n| n.contains("passport")))
    );
    assert!(!entries.iter().any(|e| e.op == AuditOp::RequestClose));

    clock.advance(1.hours());
    let closed = v.close_request(req.id).unwrap();
    assert_eq!(closed.closed_at, Some(clock.now()));
    assert_eq!(closed.identity_verified, Some(want));
    assert!(matches!(
        v.verify_request_identity(req.id, "Dana", "passport"),
        Err(Error::Request(RequestError::Closed(id))) if id == req.id
    ));
    v.export(&s, &mut std::io::sink()).unwrap();
    assert!(v.audit_verify().unwrap().is_intact());

    v.erase_subject(&s).unwrap();
    let gone = v.requests(RequestFilter::All).unwrap().pop().unwrap();
    let kept = gone.identity_verified.unwrap();
    assert_eq!(kept.by, "Dana (privacy desk)");
    assert_eq!(kept.method, "(erased with the subject)");
}

/// With verification required, an erasure of the subject is the answer to its erasure request:
/// refused while that request is not verified, erasing nothing; once verified it erases and
/// closes it. A restriction, which can be lifted, goes ahead but leaves an unverified
/// restriction request open.
#[test]
fn with_verification_required_an_erasure_does_not_answer_an_unverified_request() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(ts("2025-03-01T09:00:00Z"));
    let v = vault_with(tmp.path(), &clock, Some(verifying_policy()));
    let s = SubjectId::new("bob@example.com").unwrap();
    let rec = v.put(&s, RecordMeta::new(Category::Contact), b"x").unwrap();
    let restr = v.open_request(&s, RequestKind::Restriction, None).unwrap();
    v.restrict(&s, None).unwrap();
    let open = |v: &Vault, id: RequestId| {
        v.requests(RequestFilter::All)
            .unwrap()
            .into_iter()
            .find(|r| r.id == id)
            .unwrap()
            .closed_at
            .is_none()
    };
    assert!(open(&v, restr.id));
    assert!(matches!(
        v.close_request(restr.id),
        Err(Error::Request(RequestError::IdentityNotVerified { .. }))
    ));
    v.verify_request_identity(restr.id, "Dana", "video call")
        .unwrap();
    v.close_request(restr.id).unwrap();
    assert!(!open(&v, restr.id));
    v.unrestrict(&s, None).unwrap();

    let erase = v.open_request(&s, RequestKind::Erasure, None).unwrap();
    match v.erase_subject(&s) {
        Err(Error::Request(RequestError::IdentityNotVerified { request, kind })) => {
            assert_eq!((request, kind), (erase.id, RequestKind::Erasure))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(v.list(&s).unwrap().len(), 1);
    assert!(open(&v, erase.id));
    assert!(
        !v.audit_entries(Some(&s), None)
            .unwrap()
            .iter()
            .any(|e| e.op == AuditOp::Erase)
    );

    v.verify_request_identity(erase.id, "Dana", "called back on the number on file")
        .unwrap();
    let report = v.erase_subject(&s).unwrap();
    assert!(report.subject_erased, "{report:?}");
    assert!(v.get(&s, rec, &Purpose::SUBJECT_ACCESS).is_err());
    assert!(!open(&v, erase.id));
}
