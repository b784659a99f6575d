//! Every call that names a category refuses one the vault does not know — neither built in nor
//! declared by its policy's `custom_categories` — with the nearest known name, and changes
//! nothing; it accepts a built-in and a declared custom category.
//!
//! Guards the defect where a misspelt category (`acount`) was taken for a new custom one: stored
//! outside every retention rule, held or erased to no effect, with success reported.

use pdvault::*;
use serde_json::json;

const POLICY: &str = r#"
version = "2025-01"
custom_categories = ["loyalty-points"]

[retention.account]
max = "2 years"

[recipients.tax-office]
kind = "authority"
categories = ["payment", "account", "loyalty-points"]
purposes = ["tax"]
retention = "10 years"
grounds = ["legal-obligation"]
"#;

fn vault(dir: &std::path::Path, policy: Option<&str>) -> Vault {
    let mut b = Vault::builder(dir).kdf(KdfParams::insecure_for_tests());
    if let Some(p) = policy {
        b = b.policy(Policy::from_toml(p).unwrap());
    }
    b.create(RootSecret::passphrase("pw-passphrase")).unwrap()
}

fn cat(name: &str) -> Category {
    Category::custom(name).unwrap()
}

fn meta(c: &Category) -> RecordMeta {
    RecordMeta::new(c.clone()).purpose(Purpose::new("service").unwrap())
}

/// A call, given the vault, the subject (by identifier), its record and the category.
type Call = fn(&Vault, &str, RecordId, &Category) -> Result<()>;

/// A record id new to the test process.
fn next_id() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    format!(
        "{:032x}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

fn sid(s: &str) -> SubjectId {
    SubjectId::new(s).unwrap()
}

/// Every library entry point that takes a category. Each gets a subject holding one contact
/// record (`existing`).
fn entry_points() -> Vec<(&'static str, Call)> {
    vec![
        ("put", |v, s, _, c| v.put(&sid(s), meta(c), b"x").map(drop)),
        ("put_many", |v, s, _, c| {
            let s = sid(s);
            v.put_many([
                (&s, meta(&Category::Contact), &b"a"[..]),
                (&s, meta(c), b"b"),
            ])
            .map(drop)
        }),
        ("put_value", |v, s, _, c| {
            v.put_value(&sid(s), meta(c), &json!({"tier": "gold"}))
                .map(drop)
        }),
        ("rectify with new metadata", |v, s, r, c| {
            v.rectify(&sid(s), r, Some(meta(c)), None, "wrong category")
        }),
        ("place_hold on a category", |v, s, _, c| {
            v.place_hold(
                &sid(s),
                NewHold::new(HoldTarget::Category(c.clone()), HoldReason::Dispute),
            )
            .map(drop)
        }),
        ("restrict a category", |v, s, _, c| {
            v.restrict(&sid(s), Some(c))
        }),
        ("unrestrict a category", |v, s, _, c| {
            v.unrestrict(&sid(s), Some(c))
        }),
        ("erase_category", |v, s, _, c| {
            v.erase_category(&sid(s), c).map(drop)
        }),
        ("disclose", |v, s, _, c| {
            v.disclose(
                &sid(s),
                "tax-office",
                &Purpose::new("tax").unwrap(),
                &[Category::Payment, c.clone()],
                Some("legal-obligation"),
            )
        }),
        ("import", |v, s, _, c| {
            let doc = json!({
                "format": "pdvault-export", "version": 1,
                "exported_at": "2025-01-01T00:00:00Z",
                "subject_id": s,
                "subject": {"created_at": null, "pending_erasure": null, "events": {},
                            "restricted": false, "restricted_categories": [], "consents": {}},
                "holds": [], "disclosures": [],
                "records": [{"record": next_id(), "category": c.name(),
                             "fideslang": null, "purposes": [], "basis": "contract",
                             "source": null, "collected_at": "2025-01-01T00:00:00Z",
                             "version": 1, "updated_at": "2025-01-01T00:00:00Z",
                             "expires_at": null, "retained_until": null,
                             "payload": {"text": "x"}}]
            });
            let bytes = serde_json::to_vec(&doc).unwrap();
            v.import(&mut bytes.as_slice()).map(drop)
        }),
        ("import a restricted category", |v, s, _, c| {
            let doc = json!({
                "format": "pdvault-export", "version": 1,
                "exported_at": "2025-01-01T00:00:00Z",
                "subject_id": s,
                "subject": {"created_at": null, "pending_erasure": null, "events": {},
                            "restricted": false, "restricted_categories": [c.name()],
                            "consents": {}},
                "holds": [], "disclosures": [], "records": []
            });
            let bytes = serde_json::to_vec(&doc).unwrap();
            v.import(&mut bytes.as_slice()).map(drop)
        }),
    ]
}

/// What the vault holds, as calls that write nothing see it.
fn seen(v: &Vault, s: &SubjectId) -> String {
    format!("{:?} {:?} {:?}", v.stats(), v.list(s), v.holds(Some(s)))
}

#[test]
fn every_entry_point_refuses_an_unknown_category_and_accepts_known_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let with_policy = vault(&tmp.path().join("p"), Some(POLICY));
    let without = vault(&tmp.path().join("n"), None);
    // A new subject per (call, category, vault), holding one contact record.
    let mut n = 0;
    let mut subject = |v: &Vault| {
        n += 1;
        let s = format!("subject-{n}@example.com");
        let r = v.put(&sid(&s), meta(&Category::Contact), b"phone").unwrap();
        (s, r)
    };
    for (name, call) in entry_points() {
        // Refused: a misspelling of a built-in, with or without a policy; a misspelling of a
        // declared custom category; a custom category the vault does not declare.
        let refused: [(&Vault, &str, Option<&str>); 4] = [
            (&with_policy, "acount", Some("account")),
            (&without, "acount", Some("account")),
            (&with_policy, "loyalty-ponits", Some("loyalty-points")),
            (&without, "loyalty-points", None),
        ];
        for (v, bad, suggestion) in refused {
            let (s, r) = subject(v);
            let before = seen(v, &sid(&s));
            match call(v, &s, r, &cat(bad)) {
                Err(Error::Input(e)) => {
                    let unknown = match &e {
                        InputError::UnknownCategory { .. } => &e,
                        InputError::DocumentEntry { error, .. } => error,
                        other => panic!("{name} {bad}: {other:?}"),
                    };
                    match unknown {
                        InputError::UnknownCategory {
                            name: got,
                            suggestion: s,
                        } => {
                            assert_eq!(got, bad, "{name}");
                            assert_eq!(s.as_deref(), suggestion, "{name} {bad}");
                        }
                        other => panic!("{name} {bad}: {other:?}"),
                    }
                    if let Some(want) = suggestion {
                        let msg = e.to_string();
                        assert!(
                            msg.contains(&format!(
                                "unknown category `{bad}` — did you mean `{want}`?"
                            )),
                            "{name}: {msg}"
                        );
                    }
                }
                other => panic!("{name} {bad}: {other:?}"),
            }
            assert_eq!(seen(v, &sid(&s)), before, "{name} {bad}: the vault changed");
        }
        // Accepted: a built-in (which the subject may not hold), a declared custom category.
        for (v, good) in [
            (&with_policy, Category::Account),
            (&without, Category::Account),
            (&with_policy, cat("loyalty-points")),
        ] {
            let (s, r) = subject(v);
            call(v, &s, r, &good).unwrap_or_else(|e| panic!("{name} {good}: {e}"));
        }
    }
    for v in [&with_policy, &without] {
        let report = v.verify().unwrap();
        assert!(report.is_whole(), "{:?}", report.problems);
    }
}

// Records written under a custom category that the policy later stops declaring can still be
// erased, and their restriction lifted; nothing new can be written or held under it.
#[test]
fn a_held_category_no_longer_declared_can_still_be_erased_and_unrestricted() {
    let tmp = tempfile::tempdir().unwrap();
    let v = vault(tmp.path(), Some(POLICY));
    let s = SubjectId::new("dana@example.com").unwrap();
    let loyalty = cat("loyalty-points");
    v.put(&s, meta(&loyalty), b"gold").unwrap();
    v.restrict(&s, Some(&loyalty)).unwrap();
    v.set_policy(Policy::from_toml("version = \"2\"").unwrap())
        .unwrap();
    assert!(matches!(
        v.put(&s, meta(&loyalty), b"silver"),
        Err(Error::Input(InputError::UnknownCategory { .. }))
    ));
    assert!(matches!(
        v.restrict(&s, Some(&loyalty)),
        Err(Error::Input(InputError::UnknownCategory { .. }))
    ));
    v.unrestrict(&s, Some(&loyalty)).unwrap();
    let report = v.erase_category(&s, &loyalty).unwrap();
    assert_eq!(report.erased.len(), 1);
    assert!(v.list(&s).unwrap().is_empty());
}

// Guards a deadlock: rectifying a record into a category the subject had no key for took the
// subject's lock twice (the rewrite's, then the new key's) and never returned.
#[test]
fn rectify_into_a_category_new_to_the_subject_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let v = vault(tmp.path(), Some(POLICY));
    let s = sid("erin@example.com");
    let r = v.put(&s, meta(&Category::Contact), b"phone").unwrap();
    let (done, wait) = std::sync::mpsc::channel();
    let w = v.clone();
    let t = std::thread::spawn(move || {
        let s = sid("erin@example.com");
        let res = w.rectify(&s, r, Some(meta(&Category::Account)), None, "misfiled");
        done.send(res.map_err(|e| e.to_string())).unwrap();
    });
    let res = wait
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("rectify into a new category did not return");
    res.unwrap();
    t.join().unwrap();
    assert_eq!(v.list(&s).unwrap()[0].meta.category, Category::Account);
    assert_eq!(v.list(&s).unwrap()[0].version, 2);
}

#[test]
fn policy_check_accepts_declared_custom_categories_and_names_wrong_ones() {
    let p = Policy::from_toml(
        "custom_categories = [\"loyalty-points\"]\n[retention.loyalty-points]\nmax = \"1 year\"",
    )
    .unwrap();
    assert_eq!(p.custom_categories(), ["loyalty-points"]);
    for (text, needle) in [
        ("custom_categories = [\"Loyalty\"]", "kebab-case"),
        ("custom_categories = [\"account\"]", "built-in"),
        (
            "[retention.loyalty-points]\nmax = \"1 year\"",
            "custom_categories",
        ),
    ] {
        let err = Policy::from_toml(text).unwrap_err().to_string();
        assert!(err.contains(needle), "{text}: {err}");
    }
}
