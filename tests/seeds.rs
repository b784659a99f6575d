//! The five seed policies, promise by promise: each test opens a vault under the shipped policy
//! (`policies/seed-*.toml`) and walks what the seed promises through the API at the calendar
//! dates it speaks of (a manual clock). README.md's "Seed promises" table maps each promise to
//! the rule that encodes it and to the test here (or elsewhere) that shows it.

mod common;

use jiff::{Timestamp, ToSpan};
use pdvault::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn seed_vault(dir: &std::path::Path, file: &str, clock: &ManualClock) -> Vault {
    let text =
        std::fs::read_to_string(format!("{}/policies/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    common::store::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .clock(clock.clone())
        .policy(Policy::from_toml(&text).unwrap())
        .create(RootSecret::passphrase("pw-passphrase"))
        .unwrap()
}

fn purpose(s: &str) -> Purpose {
    Purpose::new(s).unwrap()
}

fn sid(s: &str) -> SubjectId {
    SubjectId::new(s).unwrap()
}

fn meta(c: Category, p: &str, basis: LegalBasis) -> RecordMeta {
    RecordMeta::new(c).purpose(purpose(p)).basis(basis)
}

fn refused_as_not_granted(r: Result<impl std::fmt::Debug>) -> bool {
    matches!(r, Err(Error::Access(AccessError::NotGranted { .. })))
}

fn disclosure_refused(r: Result<()>) -> bool {
    matches!(r, Err(Error::Access(AccessError::DisclosureRefused { .. })))
}

fn readable(v: &Vault, s: &SubjectId, id: RecordId, p: &str) -> bool {
    v.get(s, id, &purpose(p)).is_ok()
}

#[test]
fn seed_000_cmcendpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(ts("2025-01-10T09:00:00Z"));
    let v = seed_vault(tmp.path(), "seed-000-cmcendpoint.toml", &clock);
    let s = sid("member@example.com");
    use LegalBasis::{Contract, LegalObligation};

    // §2 "password (hashed)", §10 "one-way password hashing": verified, never read back.
    let password = v
        .set_credential(
            &s,
            RecordMeta::new(Category::Credential).basis(Contract),
            b"hunter2-hunter2",
        )
        .unwrap();
    assert!(
        v.verify_credential(&s, password, b"hunter2-hunter2")
            .unwrap()
    );
    assert!(!v.verify_credential(&s, password, b"hunter3").unwrap());
    assert!(v.get(&s, password, &purpose("support")).is_err());

    let account = v
        .put(&s, meta(Category::Account, "support", Contract), b"acct")
        .unwrap();
    let payment = v
        .put(&s, meta(Category::Payment, "settlement", Contract), b"card")
        .unwrap();
    let log = v
        .put(
            &s,
            meta(Category::AccessLog, "security-monitoring", LegalObligation),
            b"ip",
        )
        .unwrap();
    let contract = v
        .put(&s, meta(Category::Contract, "settlement", Contract), b"c")
        .unwrap();

    // §10 "Least-privilege access": support reads the account, not the payment records;
    // billing the payment records, for settlement.
    let support = v.scoped("sam", "support").unwrap();
    support.get(&s, account, &purpose("support")).unwrap();
    assert!(refused_as_not_granted(support.get(
        &s,
        payment,
        &purpose("settlement")
    )));
    let billing = v.scoped("bea", "billing").unwrap();
    billing.get(&s, payment, &purpose("settlement")).unwrap();
    assert!(refused_as_not_granted(billing.get(
        &s,
        log,
        &purpose("security-monitoring")
    )));

    // §6 sharing only with consent or by law, the recipient, purpose, items and retention period
    // recorded: an undeclared recipient is refused; the payment processor, on the contract, is
    // recorded with its retention period.
    assert!(disclosure_refused(v.disclose(
        &s,
        "ad-broker",
        &purpose("resale"),
        &[Category::Account],
        Some("consent")
    )));
    v.disclose(
        &s,
        "payment-processor",
        &purpose("settlement"),
        &[Category::Payment],
        Some("contract"),
    )
    .unwrap();

    // §5 "Access logs: 3 months": gone after them, not before.
    clock.set(ts("2025-04-09T09:00:00Z"));
    v.sweep().unwrap();
    assert!(readable(&v, &s, log, "security-monitoring"));
    clock.set(ts("2025-04-11T09:00:00Z"));
    v.sweep().unwrap();
    assert!(!readable(&v, &s, log, "security-monitoring"));

    // §8 "Upon account deletion, we destroy your data except where retention is legally
    // required": the account goes at the next sweep; payment records stay their 5 years.
    v.record_event(&s, EventKind::AccountClosed, clock.now())
        .unwrap();
    v.record_event(&s, EventKind::ContractEnded, clock.now())
        .unwrap();
    v.sweep().unwrap();
    assert!(!readable(&v, &s, account, "support"));
    assert!(readable(&v, &s, payment, "settlement"));
    // §5 "Records of contracts or withdrawal: 5 years", from the withdrawal; an erasure request
    // before then is deferred ("except where retention is legally required").
    let report = v.erase_subject(&s).unwrap();
    assert!(!report.retained.is_empty());
    assert!(readable(&v, &s, contract, "settlement"));
    clock.set(ts("2030-04-12T09:00:00Z"));
    v.sweep().unwrap();
    assert!(!readable(&v, &s, contract, "settlement"));
    assert!(!readable(&v, &s, payment, "settlement"));
    assert!(v.audit_verify().unwrap().is_intact());
}

#[test]
fn seed_001_m_exe() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(ts("2025-03-03T09:00:00Z"));
    let v = seed_vault(tmp.path(), "seed-001-m-exe.toml", &clock);
    let s = sid("user@example.com");
    use LegalBasis::{Consent, Contract, LegitimateInterests};

    // "The legal basis for this processing is ...": usage on legitimate interests (or consent),
    // the account on the contract; another basis is refused.
    let e = v
        .put(&s, meta(Category::Account, "support", Consent), b"x")
        .unwrap_err();
    assert!(
        matches!(e, Error::Input(InputError::BasisNotAllowed { .. })),
        "{e}"
    );
    let account = v
        .put(&s, meta(Category::Account, "support", Contract), b"acct")
        .unwrap();
    let usage = v
        .put(
            &s,
            meta(Category::Usage, "analytics", LegitimateInterests),
            b"clicks",
        )
        .unwrap();

    // "role-based permissions": the analyst reads usage for analytics, not the account.
    let analyst = v.scoped("ana", "analyst").unwrap();
    analyst.get(&s, usage, &purpose("analytics")).unwrap();
    assert!(refused_as_not_granted(analyst.get(
        &s,
        account,
        &purpose("support")
    )));
    // "audit trails of all data access": the refusal is in the trail, with the role.
    assert!(
        v.audit_entries(None, None)
            .unwrap()
            .iter()
            .any(|e| e.op == AuditOp::Refused && e.role.as_deref() == Some("analyst"))
    );

    // Rights and their deadlines: 30, 15, 30, 7, 30 days; inquiries within 48 hours.
    let inquiry = v
        .open_request(&s, RequestKind::custom("inquiry").unwrap(), None)
        .unwrap();
    assert_eq!(
        inquiry.due_at,
        Some(clock.now().checked_add(48.hours()).unwrap())
    );
    let restriction = v.open_request(&s, RequestKind::Restriction, None).unwrap();
    let in_days = |n: i64| {
        clock
            .now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .checked_add(n.days())
            .unwrap()
            .timestamp()
    };
    assert_eq!(restriction.due_at, Some(in_days(7)));
    let rectification = v
        .open_request(&s, RequestKind::Rectification, None)
        .unwrap();
    assert_eq!(rectification.due_at, Some(in_days(15)));
    // "may require government-issued identification ... to confirm your identity": an access
    // request is answered only once the requester's identity is verified, and that is recorded.
    let access = v.open_request(&s, RequestKind::Access, None).unwrap();
    assert!(v.export(&s, &mut Vec::new()).is_err());
    v.verify_request_identity(access.id, "dpo", "government-issued ID")
        .unwrap();
    v.export(&s, &mut Vec::new()).unwrap();

    // Objection: the legitimate-interests usage record is no longer read for analytics.
    v.object(&s, &purpose("analytics")).unwrap();
    assert!(!readable(&v, &s, usage, "analytics"));
    v.lift_objection(&s, &purpose("analytics")).unwrap();

    // COPPA: "Required parental consent mechanisms": a minor's consent-based records need a
    // guardian's consent too.
    let kid = sid("kid@example.com");
    let news = v
        .put(
            &kid,
            meta(Category::Preference, "newsletter", Consent),
            b"yes",
        )
        .unwrap();
    v.grant_consent(&kid, &purpose("newsletter"), None).unwrap();
    assert!(readable(&v, &kid, news, "newsletter"));
    v.set_age_status(&kid, AgeStatus::Minor).unwrap();
    assert!(!readable(&v, &kid, news, "newsletter"));
    v.grant_guardian_consent(&kid, &purpose("newsletter"), None)
        .unwrap();
    assert!(readable(&v, &kid, news, "newsletter"));

    // "Special circumstances extend retention: ... dispute resolution": a hold keeps the account
    // past its 2 years after closing; released, the sweep destroys it.
    v.record_event(&s, EventKind::AccountClosed, clock.now())
        .unwrap();
    assert!(readable(&v, &s, account, "support"));
    let hold = v
        .place_hold(
            &s,
            NewHold::new(HoldTarget::Category(Category::Account), HoldReason::Dispute)
                .reference("CASE-7"),
        )
        .unwrap();
    clock.set(ts("2027-03-05T09:00:00Z"));
    v.sweep().unwrap();
    assert!(readable(&v, &s, account, "support"));
    v.release_hold(hold).unwrap();
    v.sweep().unwrap();
    assert!(!readable(&v, &s, account, "support"));
    // "usage data: 12 months".
    assert!(!readable(&v, &s, usage, "analytics"));
}

#[test]
fn seed_002_cmeo_max() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(ts("2025-06-01T00:00:00Z"));
    let v = seed_vault(tmp.path(), "seed-002-cmeo-max.toml", &clock);
    let s = sid("client@example.com");
    let order = v
        .put(
            &s,
            meta(Category::Transaction, "service", LegalBasis::Contract),
            b"order",
        )
        .unwrap();
    let account = v
        .put(
            &s,
            meta(Category::Account, "service", LegalBasis::Contract),
            b"acct",
        )
        .unwrap();

    // III. "we ... do not share it with any third parties": every recipient but the authority
    // is refused, and the authority only on "subpoenas or investigation letters".
    for (recipient, ground) in [
        ("partner", "contract"),
        ("regulatory-authority", "contract"),
        ("regulatory-authority", "legitimate-interests"),
    ] {
        assert!(
            disclosure_refused(v.disclose(
                &s,
                recipient,
                &purpose("inspection"),
                &[Category::Transaction],
                Some(ground)
            )),
            "{recipient} {ground}"
        );
    }
    v.disclose(
        &s,
        "regulatory-authority",
        &purpose("inspection"),
        &[Category::Transaction],
        Some("investigation-letter: 2025-114"),
    )
    .unwrap();

    // II. archives kept past the period "for the purpose of complying with legal obligations
    // ... and we cannot delete it at your request": a legal-obligation hold on the archive.
    v.place_hold(
        &s,
        NewHold::new(
            HoldTarget::Category(Category::Transaction),
            HoldReason::LegalObligation,
        )
        .reference("statute of limitations"),
    )
    .unwrap();
    let report = v.erase_subject(&s).unwrap();
    assert_eq!(report.retained.len(), 1, "{report:?}");
    assert!(readable(&v, &s, order, "service"));
    assert!(!readable(&v, &s, account, "service"));
}

#[test]
fn seed_003_communication_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(ts("2025-09-01T00:00:00Z"));
    let v = seed_vault(tmp.path(), "seed-003-communication-platform.toml", &clock);

    // 8. "If we discover that we have accidentally collected data from a minor, we will
    // immediately delete it."
    let kid = sid("kid@example.com");
    let chat = v
        .put(
            &kid,
            meta(Category::Communication, "support", LegalBasis::Contract),
            b"hi",
        )
        .unwrap();
    assert!(readable(&v, &kid, chat, "support"));
    let report = v.set_age_status(&kid, AgeStatus::Minor).unwrap().unwrap();
    assert!(report.subject_erased, "{report:?}");
    assert!(!readable(&v, &kid, chat, "support"));

    // 7. "suspend the processing of their data".
    let s = sid("user@example.com");
    let mut contact = None;
    for i in 0..6 {
        let u = sid(&format!("user-{i}@example.com"));
        let id = v
            .put(
                &u,
                meta(Category::Contact, "support", LegalBasis::Contract),
                b"mail",
            )
            .unwrap();
        if i == 0 {
            v.put(
                &s,
                meta(Category::Contact, "support", LegalBasis::Contract),
                b"mail",
            )
            .unwrap();
            contact = Some((u, id));
        }
    }
    let (u0, id0) = contact.unwrap();
    v.restrict(&u0, None).unwrap();
    assert!(!readable(&v, &u0, id0, "support"));
    v.unrestrict(&u0, None).unwrap();

    // 5. transfer "with user consent": the partners only on consent, given.
    let offers = purpose("partner-offers");
    assert!(disclosure_refused(v.disclose(
        &s,
        "partners",
        &offers,
        &[Category::Contact],
        Some("consent")
    )));
    v.grant_consent(&s, &offers, None).unwrap();
    v.disclose(
        &s,
        "partners",
        &offers,
        &[Category::Contact],
        Some("consent"),
    )
    .unwrap();

    // 5. "anonymized or aggregated data for statistical purposes, which does not allow
    // individual identification": counts below the threshold are withheld.
    v.put(
        &s,
        meta(Category::Communication, "support", LegalBasis::Contract),
        b"one",
    )
    .unwrap();
    let stats = v.anonymous_stats().unwrap();
    assert_eq!(stats.by_category["communication"].count(), None);
    assert_eq!(stats.records.count(), Some(8));
}

#[test]
fn seed_004_generic_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(ts("2025-11-01T00:00:00Z"));
    let v = seed_vault(tmp.path(), "seed-004-generic-platform.toml", &clock);
    let s = sid("customer@example.com");

    // "Sensitive personal data is neither collected nor processed".
    let e = v
        .put(
            &s,
            RecordMeta::new(Category::custom("health").unwrap()),
            b"x",
        )
        .unwrap_err();
    assert!(
        matches!(e, Error::Input(InputError::NotCollected(_))),
        "{e}"
    );

    // "Consent is obtained for marketing activities": preferences rest on consent only.
    assert!(
        v.put(
            &s,
            meta(
                Category::Preference,
                "marketing",
                LegalBasis::LegitimateInterests
            ),
            b"x"
        )
        .is_err()
    );
    let usage = v
        .put(
            &s,
            RecordMeta::new(Category::Usage)
                .purpose(purpose("analytics"))
                .basis(LegalBasis::LegitimateInterests),
            br#"{"page": "/pricing", "email": "customer@example.com"}"#,
        )
        .unwrap();

    // "We do not sell personal data to advertisers or data brokers"; processors for their
    // purposes only.
    assert!(disclosure_refused(v.disclose(
        &s,
        "data-broker",
        &purpose("resale"),
        &[Category::Usage],
        Some("consent")
    )));
    assert!(disclosure_refused(v.disclose(
        &s,
        "analytics-partner",
        &purpose("resale"),
        &[Category::Usage],
        Some("legitimate-interests")
    )));
    v.disclose(
        &s,
        "analytics-partner",
        &purpose("analytics"),
        &[Category::Usage],
        Some("legitimate-interests"),
    )
    .unwrap();

    // "Staff access is limited by role and necessity".
    let analyst = v.scoped("ana", "analyst").unwrap();
    analyst.get(&s, usage, &purpose("analytics")).unwrap();
    assert!(refused_as_not_granted(analyst.export(&s, &mut Vec::new())));

    // "Aggregated and anonymized data may be used for strategic decisions and research": the
    // analysis export carries no identifier.
    let mut out = Vec::new();
    v.export_for_analysis(&[Category::Usage], &purpose("analytics"), &mut out)
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("/pricing"), "{text}");
    assert!(!text.contains("customer@example.com"), "{text}");
    assert!(!text.contains(&usage.to_string()), "{text}");

    // "securely deleted, destroyed, or anonymized": the account goes when the account closes.
    let account = v
        .put(
            &s,
            meta(Category::Account, "support", LegalBasis::Contract),
            b"acct",
        )
        .unwrap();
    assert!(readable(&v, &s, account, "support"));
    v.record_event(&s, EventKind::AccountClosed, clock.now())
        .unwrap();
    clock.set(ts("2025-11-02T00:00:00Z"));
    v.sweep().unwrap();
    assert!(!readable(&v, &s, account, "support"));
}
