//! What a policy states and the vault enforces beyond retention: roles and their grants (a
//! matrix of roles × operations × categories × purposes, every refusal audited), the recipients
//! register, the legal bases allowed per category and the categories never collected.

mod common;

use jiff::Timestamp;
use pdvault::*;

const POLICY: &str = r#"
name = "enforcement test policy"
version = "t-1"
not_collected = ["health", "biometric"]

[bases]
account = ["contract"]
usage = ["consent", "legitimate-interests"]

[roles.support]
grants = [
  { ops = ["read", "list"], categories = ["contact"], purposes = ["support"] },
  { ops = ["write"], categories = ["communication"] },
]

[roles.analyst]
grants = [{ ops = ["read"], categories = ["usage"], purposes = ["analytics"] }]

[roles.officer]
grants = [{ ops = ["read", "list", "write", "erase", "hold", "restrict", "consent", "request", "export", "disclose", "event", "administer"] }]

[recipients.auditors]
kind = "third-party"
categories = ["contact", "usage", "communication"]
purposes = ["support", "analytics"]
retention = "5 years"
grounds = ["legal-obligation"]

[recipients.payment-processor]
kind = "processor"
categories = ["payment"]
purposes = ["billing"]
retention = "7 years"
grounds = ["contract", "consent"]

[recipients.police]
kind = "authority"
categories = ["account", "access-log"]
retention = "as long as the investigation requires"
grounds = ["subpoena", "investigation-letter"]
"#;

fn vault(dir: &std::path::Path) -> Vault {
    common::store::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .clock(ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap()))
        .policy(Policy::from_toml(POLICY).unwrap())
        .create(RootSecret::passphrase("pw-passphrase"))
        .unwrap()
}

fn purpose(s: &str) -> Purpose {
    Purpose::new(s).unwrap()
}

fn sid(s: &str) -> SubjectId {
    SubjectId::new(s).unwrap()
}

/// The operations of the matrix, each on one category and, where it has one, one purpose.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Put,
    Get,
    Update,
    List,
    EraseRecord,
    EraseCategory,
    HoldCategory,
    Restrict,
    Disclose,
    GrantConsent,
    Export,
    EraseSubject,
    OpenRequest,
    RecordEvent,
    Sweep,
}

const OPS: [Op; 15] = [
    Op::Put,
    Op::Get,
    Op::Update,
    Op::List,
    Op::EraseRecord,
    Op::EraseCategory,
    Op::HoldCategory,
    Op::Restrict,
    Op::Disclose,
    Op::GrantConsent,
    Op::Export,
    Op::EraseSubject,
    Op::OpenRequest,
    Op::RecordEvent,
    Op::Sweep,
];

/// The grants of `POLICY`, written out by hand: what each role may do.
fn expected(role: &str, op: Op, category: &Category, purpose: &str) -> bool {
    match role {
        "officer" => true,
        "support" => match op {
            Op::Get => *category == Category::Contact && purpose == "support",
            // A listing has no purpose.
            Op::List => *category == Category::Contact,
            Op::Put | Op::Update => *category == Category::Communication,
            _ => false,
        },
        "analyst" => op == Op::Get && *category == Category::Usage && purpose == "analytics",
        _ => unreachable!(),
    }
}

/// Runs `op` through `scoped` on a subject that `admin` gave one record of `category`.
fn run(
    admin: &Vault,
    scoped: &ScopedVault,
    op: Op,
    s: &SubjectId,
    category: &Category,
    p: &Purpose,
) -> Result<()> {
    let meta = || {
        RecordMeta::new(category.clone())
            .purpose(p.clone())
            .basis(LegalBasis::LegitimateInterests)
    };
    let record = admin.put(s, meta(), b"payload").unwrap();
    match op {
        Op::Put => scoped.put(s, meta(), b"more").map(drop),
        Op::Get => scoped
            .get(s, record, p)
            .map(|r| assert_eq!(r.payload, b"payload")),
        Op::Update => scoped.update(s, record, b"new"),
        // A listing is never refused as a whole: it leaves out what the role may not list.
        Op::List => scoped.list(s).and_then(|l| {
            if l.is_empty() {
                Err(AccessError::UnknownRole("(listing left everything out)".into()).into())
            } else {
                Ok(())
            }
        }),
        Op::EraseRecord => scoped.erase_record(s, record).map(drop),
        Op::EraseCategory => scoped.erase_category(s, category).map(drop),
        Op::HoldCategory => scoped
            .place_hold(
                s,
                NewHold::new(HoldTarget::Category(category.clone()), HoldReason::Dispute),
            )
            .map(drop),
        Op::Restrict => scoped.restrict(s, Some(category)),
        Op::Disclose => scoped.disclose(
            s,
            "auditors",
            p,
            std::slice::from_ref(category),
            Some("legal-obligation: audit 2026"),
        ),
        Op::GrantConsent => scoped.grant_consent(s, p, Some("t-1")),
        Op::Export => scoped.export(s, &mut Vec::new()).map(drop),
        Op::EraseSubject => scoped.erase_subject(s).map(drop),
        Op::OpenRequest => scoped.open_request(s, RequestKind::Access, None).map(drop),
        Op::RecordEvent => scoped.record_event(
            s,
            EventKind::AccountClosed,
            Timestamp::from_second(1_767_225_600).unwrap(),
        ),
        Op::Sweep => scoped.sweep().map(drop),
    }
}

fn entries_of(admin: &Vault, principal: &str) -> Vec<AuditEntry> {
    admin
        .audit_entries(None, None)
        .unwrap()
        .into_iter()
        .filter(|e| e.actor == principal)
        .collect()
}

#[test]
fn every_role_may_do_what_it_is_granted_and_nothing_else_and_every_refusal_is_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let admin = vault(&tmp.path().join("v"));
    let categories = [Category::Contact, Category::Usage, Category::Communication];
    let purposes = [purpose("support"), purpose("analytics")];
    let mut n = 0;
    for role in ["support", "analyst", "officer"] {
        let principal = format!("staff-{role}");
        let scoped = admin.scoped(&principal, role).unwrap();
        assert_eq!((scoped.principal(), scoped.role()), (&*principal, role));
        for op in OPS {
            for c in &categories {
                for p in &purposes {
                    n += 1;
                    let s = sid(&format!("subject-{n}"));
                    let before = entries_of(&admin, &principal);
                    let result = run(&admin, &scoped, op, &s, c, p);
                    let after = entries_of(&admin, &principal);
                    let new = &after[before.len()..];
                    let case = format!("{role} {op:?} {c} {p}");
                    assert!(
                        new.iter().all(|e| e.role.as_deref() == Some(role)),
                        "{case}: {new:?}"
                    );
                    let refusals = new.iter().filter(|e| e.op == AuditOp::Refused).count();
                    if expected(role, op, c, p.as_str()) {
                        result.unwrap_or_else(|e| panic!("{case}: refused: {e}"));
                        assert_eq!(refusals, 0, "{case}: {new:?}");
                        assert!(!new.is_empty(), "{case}: not audited");
                    } else {
                        let e = result.expect_err(&case);
                        if op != Op::List {
                            assert!(
                                matches!(e, Error::Access(AccessError::NotGranted { .. })),
                                "{case}: {e}"
                            );
                        }
                        assert!(refusals >= 1, "{case}: refusal not audited: {new:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn scans_leave_out_what_the_role_may_not_see_and_audit_it() {
    let tmp = tempfile::tempdir().unwrap();
    let admin = vault(&tmp.path().join("v"));
    let s = sid("alice");
    let support = purpose("support");
    for c in [Category::Contact, Category::Communication] {
        admin
            .put(&s, RecordMeta::new(c).purpose(support.clone()), b"x")
            .unwrap();
    }
    let bob = admin.scoped("bob", "support").unwrap();
    let read = bob.read_all(&s, &support).unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].info.meta.category, Category::Contact);
    let listed = bob.list(&s).unwrap();
    assert_eq!(listed.len(), 1);
    let refused: Vec<_> = entries_of(&admin, "bob")
        .into_iter()
        .filter(|e| e.op == AuditOp::Refused)
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused.iter().all(|e| e.role.as_deref() == Some("support")));
}

#[test]
fn an_unknown_or_withdrawn_role_is_refused_and_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let admin = vault(&tmp.path().join("v"));
    let e = admin.scoped("eve", "root").unwrap_err();
    assert!(matches!(e, Error::Access(AccessError::UnknownRole(ref r)) if r == "root"));
    let bob = admin.scoped("bob", "support").unwrap();
    let s = sid("alice");
    let id = admin
        .put(
            &s,
            RecordMeta::new(Category::Contact).purpose(purpose("support")),
            b"x",
        )
        .unwrap();
    bob.get(&s, id, &purpose("support")).unwrap();
    // A new policy without the role: the handle made before stops at once.
    let without = POLICY.replace("[roles.support]", "[roles.former-support]");
    admin
        .set_policy(Policy::from_toml(&without).unwrap())
        .unwrap();
    let e = bob.get(&s, id, &purpose("support")).unwrap_err();
    assert!(
        matches!(e, Error::Access(AccessError::UnknownRole(_))),
        "{e}"
    );
    let refused = |who: &str| {
        entries_of(&admin, who)
            .into_iter()
            .filter(|e| e.op == AuditOp::Refused)
            .count()
    };
    assert_eq!((refused("eve"), refused("bob")), (1, 1));
}

#[test]
fn refused_reads_and_listings_of_the_administrative_handle_are_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let v = vault(&tmp.path().join("v"));
    let s = sid("alice");
    let id = v
        .put(
            &s,
            RecordMeta::new(Category::Contact).purpose(purpose("support")),
            b"x",
        )
        .unwrap();
    let e = v.get(&s, id, &purpose("marketing")).unwrap_err();
    assert!(matches!(
        e,
        Error::Access(AccessError::PurposeNotAllowed { .. })
    ));
    v.restrict(&s, None).unwrap();
    assert!(v.get(&s, id, &purpose("support")).is_err());
    assert!(v.read_all(&s, &purpose("support")).unwrap().is_empty());
    v.list(&s).unwrap();
    let entries = v.audit_entries(None, None).unwrap();
    let ops: Vec<_> = entries
        .iter()
        .filter(|e| matches!(e.op, AuditOp::Refused | AuditOp::List))
        .map(|e| (e.op, e.record.is_some()))
        .collect();
    assert_eq!(
        ops,
        [
            (AuditOp::Refused, true),
            (AuditOp::Refused, true),
            (AuditOp::Refused, false),
            (AuditOp::List, false)
        ]
    );
    // The trail has the reasons, never the payload or the subject identifier.
    let notes: Vec<_> = entries.iter().filter_map(|e| e.note.clone()).collect();
    assert!(
        notes.iter().any(|n| n.contains("not the record's")),
        "{notes:?}"
    );
    assert!(notes.iter().any(|n| n.contains("restricted")), "{notes:?}");
    assert!(!notes.iter().any(|n| n.contains("alice")));
}

/// A disclosure (recipient, purpose, categories, ground) and why it is refused.
type DisclosureCase<'a> = (
    &'a str,
    &'a Purpose,
    &'a [Category],
    Option<&'a str>,
    DisclosureRefusal,
);

#[test]
fn every_disclosure_outside_the_register_is_refused_and_an_allowed_one_records_the_five_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let v = vault(&tmp.path().join("v"));
    let s = sid("alice");
    v.put(
        &s,
        RecordMeta::new(Category::Payment).purpose(purpose("billing")),
        b"card",
    )
    .unwrap();
    let billing = purpose("billing");
    let pay = [Category::Payment];
    let cases: [DisclosureCase; 7] = [
        (
            "ad-broker",
            &billing,
            &pay,
            Some("contract"),
            DisclosureRefusal::UndeclaredRecipient,
        ),
        (
            "payment-processor",
            &billing,
            &[Category::Payment, Category::Usage],
            Some("contract"),
            DisclosureRefusal::CategoryNotDeclared("usage".into()),
        ),
        (
            "payment-processor",
            &purpose("resale"),
            &pay,
            Some("contract"),
            DisclosureRefusal::PurposeNotDeclared("resale".into()),
        ),
        (
            "payment-processor",
            &billing,
            &pay,
            None,
            DisclosureRefusal::GroundRequired,
        ),
        (
            "payment-processor",
            &billing,
            &pay,
            Some("they asked nicely"),
            DisclosureRefusal::UnknownGround,
        ),
        (
            "payment-processor",
            &billing,
            &pay,
            Some("subpoena: case 17"),
            DisclosureRefusal::GroundNotDeclared(pdvault::policy::recipients::Ground::Subpoena),
        ),
        (
            "payment-processor",
            &billing,
            &pay,
            Some("consent"),
            DisclosureRefusal::NoConsent("billing".into()),
        ),
    ];
    for (recipient, p, categories, ground, want) in cases {
        match v.disclose(&s, recipient, p, categories, ground) {
            Err(Error::Access(AccessError::DisclosureRefused {
                recipient: r,
                reason,
            })) => {
                assert_eq!((r.as_str(), &reason), (recipient, &want));
            }
            other => panic!("{recipient} {ground:?}: {other:?}"),
        }
    }
    let refused = v
        .audit_entries(None, None)
        .unwrap()
        .into_iter()
        .filter(|e| e.op == AuditOp::Refused)
        .count();
    assert_eq!(refused, 7);
    // Consent makes the consent ground good; an allowed disclosure keeps the five fields.
    v.grant_consent(&s, &billing, Some("t-1")).unwrap();
    v.disclose(&s, "payment-processor", &billing, &pay, Some("consent"))
        .unwrap();
    v.disclose(
        &s,
        "payment-processor",
        &billing,
        &pay,
        Some("contract: order 9"),
    )
    .unwrap();
    let mut out = Vec::new();
    v.export(&s, &mut out).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let d = &doc["disclosures"];
    assert_eq!(d.as_array().unwrap().len(), 2, "{d}");
    for (d, ground) in d
        .as_array()
        .unwrap()
        .iter()
        .zip(["consent", "contract: order 9"])
    {
        assert_eq!(d["recipient"], "payment-processor");
        assert_eq!(d["purpose"], "billing");
        assert_eq!(d["categories"], serde_json::json!(["payment"]));
        assert_eq!(d["retention"], "7 years");
        assert_eq!(d["ground"], ground);
    }
}

#[test]
fn a_category_the_policy_does_not_collect_is_refused_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let v = vault(&tmp.path().join("v"));
    let s = sid("alice");
    let health = Category::custom("health").unwrap();
    let e = v
        .put(&s, RecordMeta::new(health.clone()), b"x")
        .unwrap_err();
    assert!(
        matches!(e, Error::Input(InputError::NotCollected(ref c)) if c == "health"),
        "{e}"
    );
    assert!(e.to_string().contains("not collected"), "{e}");
    let e = v
        .put_many([
            (&s, RecordMeta::new(Category::Contact), &b"ok"[..]),
            (&s, RecordMeta::new(health.clone()), &b"x"[..]),
        ])
        .unwrap_err();
    assert!(matches!(e, Error::Input(InputError::NotCollected(_))));
    assert_eq!(v.stats().unwrap().records, 0);
    assert!(matches!(v.list(&s), Err(Error::SubjectNotFound)));
}

#[test]
fn a_basis_the_policy_does_not_allow_for_the_category_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let v = vault(&tmp.path().join("v"));
    let s = sid("alice");
    let e = v
        .put(
            &s,
            RecordMeta::new(Category::Account).basis(LegalBasis::Consent),
            b"x",
        )
        .unwrap_err();
    match e {
        Error::Input(InputError::BasisNotAllowed {
            category,
            basis,
            allowed,
        }) => {
            assert_eq!(
                (category.as_str(), basis, allowed.as_str()),
                ("account", LegalBasis::Consent, "contract")
            );
        }
        other => panic!("{other}"),
    }
    let id = v
        .put(
            &s,
            RecordMeta::new(Category::Usage).basis(LegalBasis::Consent),
            b"x",
        )
        .unwrap();
    // Rectifying into a basis the category does not allow is refused too.
    let e = v
        .rectify(
            &s,
            id,
            Some(RecordMeta::new(Category::Usage).basis(LegalBasis::Contract)),
            None,
            "typo",
        )
        .unwrap_err();
    assert!(
        matches!(e, Error::Input(InputError::BasisNotAllowed { .. })),
        "{e}"
    );
    // A category the policy does not name may rest on any basis.
    v.put(
        &s,
        RecordMeta::new(Category::Contact).basis(LegalBasis::VitalInterests),
        b"x",
    )
    .unwrap();
}

#[test]
fn malformed_roles_recipients_bases_and_not_collected_entries_are_refused_by_name() {
    for (text, needle) in [
        ("[roles.x]\ngrants = [{ ops = [\"reed\"] }]", "roles.x"),
        (
            "[roles.Bad_Name]\ngrants = [{ ops = [\"read\"] }]",
            "roles.Bad_Name",
        ),
        (
            "[recipients.r]\nkind = \"friend\"\ncategories = [\"account\"]\nretention = \"1 year\"\ngrounds = [\"contract\"]",
            "recipients.r",
        ),
        ("[bases]\naccount = [\"whim\"]", "bases.account"),
        ("[bases]\nacount = [\"contract\"]", "bases.acount"),
        ("not_collected = [\"Health\"]", "Health"),
        (
            "not_collected = [\"health\"]\ncustom_categories = [\"health\"]",
            "health",
        ),
    ] {
        let e = Policy::from_toml(text).unwrap_err().to_string();
        assert!(e.contains(needle), "{text}: {e}");
    }
}

fn vault_with(dir: &std::path::Path, policy: &str) -> Vault {
    common::store::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .clock(ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap()))
        .policy(Policy::from_toml(policy).unwrap())
        .create(RootSecret::passphrase("pw-passphrase"))
        .unwrap()
}

#[test]
fn an_objection_stops_reads_of_legitimate_interest_records_for_that_purpose_until_lifted() {
    let tmp = tempfile::tempdir().unwrap();
    let v = vault_with(&tmp.path().join("v"), "[requests]\nobjection = \"30 days\"");
    let s = sid("alice");
    let analytics = purpose("analytics");
    let on = |basis| {
        RecordMeta::new(Category::Usage)
            .purpose(analytics.clone())
            .basis(basis)
    };
    let li = v
        .put(&s, on(LegalBasis::LegitimateInterests), b"li")
        .unwrap();
    let consented = v.put(&s, on(LegalBasis::Consent), b"c").unwrap();
    v.grant_consent(&s, &analytics, None).unwrap();
    let request = v.open_request(&s, RequestKind::Objection, None).unwrap();
    v.get(&s, li, &analytics).unwrap();

    v.object(&s, &analytics).unwrap();
    let e = v.get(&s, li, &analytics).unwrap_err();
    assert!(
        matches!(e, Error::Access(AccessError::Objected { .. })),
        "{e}"
    );
    // Consent is the subject's own choice: an objection does not touch it.
    v.get(&s, consented, &analytics).unwrap();
    let read: Vec<_> = v
        .read_all(&s, &analytics)
        .unwrap()
        .into_iter()
        .map(|r| r.info.record)
        .collect();
    assert_eq!(read, [consented]);
    // The objection answered the subject's open objection request.
    let closed = v.requests(RequestFilter::All).unwrap();
    assert!(
        closed
            .iter()
            .any(|r| r.id == request.id && r.closed_at.is_some())
    );

    v.lift_objection(&s, &analytics).unwrap();
    v.get(&s, li, &analytics).unwrap();
    let ops: Vec<_> = v
        .audit_entries(None, None)
        .unwrap()
        .into_iter()
        .map(|e| e.op)
        .filter(|op| {
            matches!(
                op,
                AuditOp::Object | AuditOp::LiftObjection | AuditOp::Refused
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            AuditOp::Object,
            AuditOp::Refused,
            AuditOp::Refused,
            AuditOp::LiftObjection
        ]
    );
}

#[test]
fn consent_given_under_a_policy_version_older_than_the_purpose_requires_does_not_count() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = r#"
version = "2026-01"
version_history = ["2024-06", "2025-01"]
[consent.marketing]
min_version = "2025-01"
[consent.profiling]
min_version = "current"
"#;
    let v = vault_with(&tmp.path().join("v"), policy);
    let s = sid("alice");
    let id_for = |p: &Purpose| {
        v.put(
            &s,
            RecordMeta::new(Category::Preference)
                .purpose(p.clone())
                .basis(LegalBasis::Consent),
            b"x",
        )
        .unwrap()
    };
    let (marketing, profiling) = (purpose("marketing"), purpose("profiling"));
    let (m, p) = (id_for(&marketing), id_for(&profiling));
    let no_consent =
        |r: Result<Record>| matches!(r, Err(Error::Access(AccessError::NoConsent { .. })));
    v.grant_consent(&s, &marketing, Some("2024-06")).unwrap();
    v.grant_consent(&s, &profiling, Some("2025-01")).unwrap();
    assert!(no_consent(v.get(&s, m, &marketing)));
    assert!(no_consent(v.get(&s, p, &profiling)));
    // An unknown version does not count either.
    v.grant_consent(&s, &marketing, Some("someday")).unwrap();
    assert!(no_consent(v.get(&s, m, &marketing)));
    v.grant_consent(&s, &marketing, Some("2025-01")).unwrap();
    v.get(&s, m, &marketing).unwrap();
    assert!(no_consent(v.get(&s, p, &profiling)));
    // Given now, consent is under the policy's current version.
    v.grant_consent(&s, &profiling, None).unwrap();
    v.get(&s, p, &profiling).unwrap();
    // A minimum naming no version the policy knows is refused by name.
    let e = Policy::from_toml("version = \"2\"\n[consent.marketing]\nmin_version = \"1\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("consent.marketing"), "{e}");
}

#[test]
fn marking_a_minor_under_an_erase_policy_erases_the_subject_at_once_except_what_a_hold_covers() {
    let tmp = tempfile::tempdir().unwrap();
    let v = vault_with(&tmp.path().join("v"), "[minors]\non_marked = \"erase\"");
    let s = sid("kid");
    let service = purpose("service");
    let put = |c: Category| {
        v.put(&s, RecordMeta::new(c).purpose(service.clone()), b"x")
            .unwrap()
    };
    let (held, gone) = (put(Category::Communication), put(Category::Usage));
    v.place_hold(
        &s,
        NewHold::new(
            HoldTarget::Category(Category::Communication),
            HoldReason::Dispute,
        ),
    )
    .unwrap();
    let report = v.set_age_status(&s, AgeStatus::Minor).unwrap().unwrap();
    assert_eq!(report.retained.len(), 1, "{report:?}");
    v.get(&s, held, &service).unwrap();
    assert!(v.get(&s, gone, &service).is_err());
    // Not a minor: nothing is erased.
    let adult = sid("grown-up");
    v.put(
        &adult,
        RecordMeta::new(Category::Usage).purpose(service.clone()),
        b"x",
    )
    .unwrap();
    assert!(
        v.set_age_status(&adult, AgeStatus::Adult)
            .unwrap()
            .is_none()
    );
    assert_eq!(v.list(&adult).unwrap().len(), 1);
}

#[test]
fn under_a_guardian_consent_policy_a_minor_s_consent_based_reads_need_a_guardian_s_consent() {
    let tmp = tempfile::tempdir().unwrap();
    let v = vault_with(
        &tmp.path().join("v"),
        "[minors]\non_marked = \"require-guardian-consent\"",
    );
    let s = sid("kid");
    let (newsletter, service) = (purpose("newsletter"), purpose("service"));
    let on_consent = v
        .put(
            &s,
            RecordMeta::new(Category::Contact)
                .purpose(newsletter.clone())
                .basis(LegalBasis::Consent),
            b"x",
        )
        .unwrap();
    let on_contract = v
        .put(
            &s,
            RecordMeta::new(Category::Account).purpose(service.clone()),
            b"x",
        )
        .unwrap();
    v.grant_consent(&s, &newsletter, None).unwrap();
    v.get(&s, on_consent, &newsletter).unwrap();
    assert!(v.set_age_status(&s, AgeStatus::Minor).unwrap().is_none());
    let e = v.get(&s, on_consent, &newsletter).unwrap_err();
    assert!(
        matches!(e, Error::Access(AccessError::NoGuardianConsent { .. })),
        "{e}"
    );
    v.get(&s, on_contract, &service).unwrap();
    v.grant_guardian_consent(&s, &newsletter, None).unwrap();
    v.get(&s, on_consent, &newsletter).unwrap();
    v.withdraw_guardian_consent(&s, &newsletter).unwrap();
    assert!(v.get(&s, on_consent, &newsletter).is_err());
    // The export shows the age status and the guardian's consent.
    let mut out = Vec::new();
    v.export(&s, &mut out).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(doc["subject"]["age"], "minor");
    assert_eq!(
        doc["subject"]["guardian_consents"]["newsletter"]["granted"],
        false
    );
}

#[test]
fn every_call_of_a_scoped_handle_leaves_an_entry_queries_included() {
    let tmp = tempfile::tempdir().unwrap();
    let admin = vault(&tmp.path().join("v"));
    let officer = admin.scoped("olga", "officer").unwrap();
    officer.stats().unwrap();
    officer.holds(None).unwrap();
    officer.requests(RequestFilter::All).unwrap();
    officer.audit_verify().unwrap();
    let queries: Vec<_> = entries_of(&admin, "olga")
        .into_iter()
        .map(|e| (e.op, e.role, e.note))
        .collect();
    let want = ["stats", "holds", "requests", "audit verify"].map(|n| {
        (
            AuditOp::Query,
            Some("officer".to_owned()),
            Some(n.to_owned()),
        )
    });
    assert_eq!(queries, want);
}
