//! Import checks its document as the API checks what it is given: every malformed document is
//! refused with a clear input error before anything is written — the vault's files are byte for
//! byte what they were, and `verify` finds the vault whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pdvault::*;
use serde_json::{Value, json};

const POLICY: &str = r#"
version = "2025-01"
custom_categories = ["loyalty-points"]

[recipients.tax-authority]
kind = "authority"
categories = ["payment", "transaction"]
purposes = ["tax"]
retention = "as the tax law requires"
grounds = ["legal-obligation", "subpoena"]

[retention.contact]
max = "2 years"
"#;

fn create(dir: &Path) -> Vault {
    Vault::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .policy(Policy::from_toml(POLICY).unwrap())
        .create(RootSecret::passphrase("pw-passphrase"))
        .unwrap()
}

/// Every file under the vault's directory, with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The vault's state as seen through calls that write nothing (an export would audit itself).
fn seen(v: &Vault, subjects: &[&SubjectId]) -> String {
    let mut out = format!("{:?} {:?}", v.stats().unwrap(), v.holds(None).unwrap());
    for s in subjects {
        out.push_str(&format!("{:?}", v.list(s)));
    }
    out
}

/// The paths whose bytes differ (or that exist on one side only).
fn changed(a: &BTreeMap<PathBuf, Vec<u8>>, b: &BTreeMap<PathBuf, Vec<u8>>) -> Vec<PathBuf> {
    a.keys()
        .chain(b.keys())
        .filter(|p| a.get(*p) != b.get(*p))
        .cloned()
        .collect()
}

fn set(doc: &mut Value, path: &str, value: Value) {
    *doc.pointer_mut(path)
        .unwrap_or_else(|| panic!("no {path} in the document")) = value;
}

type Mutate = Box<dyn Fn(&mut Value)>;

fn case(f: impl Fn(&mut Value) + 'static) -> Mutate {
    Box::new(f)
}

/// The defects an import trusted its document with. Each case mutates a valid document
/// (for a new subject) into one malformed one; `needle` is part of the error's message.
fn cases(existing_subject: &str, existing_id: &str) -> Vec<(&'static str, Mutate, &'static str)> {
    let existing_subject = existing_subject.to_owned();
    let existing_id = existing_id.to_owned();
    let long_text = "x".repeat(MAX_PAYLOAD_LEN + 1);
    vec![
        // Defect: a duplicated record id was imported twice (put_new on one key), the second
        // overwriting the first and leaving the manifest counting an entry too many.
        (
            "duplicated record id",
            case(|d| {
                let id = d["records"][0]["record"].clone();
                set(d, "/records/1/record", id);
            }),
            "appears twice",
        ),
        // Defect: an id the subject already holds in this vault.
        (
            "record id already in the vault",
            case(move |d| {
                set(d, "/subject_id", json!(existing_subject));
                set(d, "/records/1/record", json!(existing_id));
            }),
            "already exists",
        ),
        // Defect: restricted categories were filed unchecked.
        (
            "non-kebab restricted category",
            case(|d| set(d, "/subject/restricted_categories", json!(["Not Kebab"]))),
            "invalid category name",
        ),
        (
            "unknown restricted category",
            case(|d| set(d, "/subject/restricted_categories", json!(["acount"]))),
            "did you mean `account`",
        ),
        // Defect: event kinds were filed unchecked.
        (
            "unknown event kind",
            case(|d| {
                set(
                    d,
                    "/subject/events",
                    json!({"birthday": "2025-01-01T00:00:00Z"}),
                )
            }),
            "event kind",
        ),
        // Defect: consents were filed unchecked.
        (
            "NUL in a consent's policy version",
            case(|d| {
                set(
                    d,
                    "/subject/consents/marketing/policy_version",
                    json!("v\u{0}1"),
                )
            }),
            "policy version",
        ),
        (
            "empty consent policy version",
            case(|d| set(d, "/subject/consents/marketing/policy_version", json!(""))),
            "policy version",
        ),
        (
            "invalid consent purpose",
            case(|d| {
                let c = d["subject"]["consents"]["marketing"].clone();
                set(d, "/subject/consents", json!({ "": c }));
            }),
            "invalid purpose",
        ),
        // Defect: a version of u32::MAX was filed, and the record could never be updated.
        (
            "record version u32::MAX",
            case(|d| set(d, "/records/0/version", json!(u32::MAX))),
            "version",
        ),
        // Defect: version 0 was silently changed to 1.
        (
            "record version 0",
            case(|d| set(d, "/records/0/version", json!(0))),
            "version",
        ),
        // Defect: record categories were not checked against the vault's known categories.
        (
            "unknown record category",
            case(|d| {
                set(d, "/records/1/category", json!("acount"));
                set(d, "/records/1/fideslang", Value::Null);
            }),
            "did you mean `account`",
        ),
        (
            "non-kebab record category",
            case(|d| set(d, "/records/1/category", json!("Loyalty Points"))),
            "wrong shape",
        ),
        (
            "fideslang key of another category",
            case(|d| set(d, "/records/0/fideslang", json!("user.payment"))),
            "fideslang",
        ),
        (
            "a purpose listed twice",
            case(|d| set(d, "/records/0/purposes", json!(["billing", "billing"]))),
            "purpose is listed twice",
        ),
        (
            "more than 64 purposes",
            case(|d| {
                let ps: Vec<String> = (0..65).map(|i| format!("p{i}")).collect();
                set(d, "/records/0/purposes", json!(ps));
            }),
            "more than 64",
        ),
        (
            "control character in a purpose",
            case(|d| set(d, "/records/0/purposes", json!(["bill\u{7}ing"]))),
            "wrong shape",
        ),
        (
            "control character in a source",
            case(|d| set(d, "/records/0/source", json!("form\nfeed"))),
            "invalid source",
        ),
        (
            "empty source",
            case(|d| set(d, "/records/0/source", json!(""))),
            "invalid source",
        ),
        (
            "payload not base64",
            case(|d| set(d, "/records/0/payload", json!({"base64": "!!not base64!!"}))),
            "base64",
        ),
        (
            "payload over the limit",
            case(move |d| set(d, "/records/0/payload", json!({ "text": long_text }))),
            "exceeds the limit",
        ),
        (
            "unknown legal basis",
            case(|d| set(d, "/records/0/basis", json!("whim"))),
            "wrong shape",
        ),
        (
            "timestamp that is no time",
            case(|d| set(d, "/records/0/collected_at", json!("yesterday"))),
            "wrong shape",
        ),
        (
            "collected in the future",
            case(|d| set(d, "/records/0/collected_at", json!("2999-01-01T00:00:00Z"))),
            "is in the future",
        ),
        (
            "malformed record id",
            case(|d| set(d, "/records/0/record", json!("not-hex"))),
            "wrong shape",
        ),
        // Holds and disclosures are not imported, but a document carrying what placing or
        // recording them refuses is malformed.
        (
            "NUL in a hold reference",
            case(|d| set(d, "/holds/0/reference", json!("CASE\u{0}1"))),
            "invalid reference",
        ),
        (
            "hold on an unknown category",
            case(|d| set(d, "/holds/0/scope", json!({"category": "comunication"}))),
            "did you mean `communication`",
        ),
        (
            "empty disclosure recipient",
            case(|d| set(d, "/disclosures/0/recipient", json!(""))),
            "invalid recipient",
        ),
        (
            "control character in a disclosure ground",
            case(|d| set(d, "/disclosures/0/ground", json!("sub\u{1b}poena"))),
            "invalid ground",
        ),
        (
            "disclosure of an unknown category",
            case(|d| set(d, "/disclosures/0/categories", json!(["paymnet"]))),
            "did you mean `payment`",
        ),
        (
            "empty subject identifier",
            case(|d| set(d, "/subject_id", json!(""))),
            "subject identifier",
        ),
        (
            "subject identifier over 1,024 bytes",
            case(|d| set(d, "/subject_id", json!("b".repeat(1025)))),
            "subject identifier",
        ),
        (
            "document version 0",
            case(|d| set(d, "/version", json!(0))),
            "document version",
        ),
        (
            "document version from the future",
            case(|d| set(d, "/version", json!(2))),
            "document version",
        ),
        (
            "another format",
            case(|d| set(d, "/format", json!("other"))),
            "format",
        ),
    ]
}

#[test]
fn every_malformed_document_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let v = create(tmp.path());
    let alice = SubjectId::new("alice@example.com").unwrap();
    let bob = SubjectId::new("bob@example.com").unwrap();
    let billing = Purpose::new("billing").unwrap();
    let contact = v
        .put(
            &alice,
            RecordMeta::new(Category::Contact)
                .purpose(billing.clone())
                .source("signup-form"),
            b"+44 20 7946 0000",
        )
        .unwrap();
    v.put(
        &alice,
        RecordMeta::new(Category::custom("loyalty-points").unwrap()),
        &[0, 255, 7],
    )
    .unwrap();
    v.grant_consent(&alice, &Purpose::new("marketing").unwrap(), Some("v1"))
        .unwrap();
    v.record_event(
        &alice,
        EventKind::AccountClosed,
        "2025-01-01T00:00:00Z".parse().unwrap(),
    )
    .unwrap();
    v.restrict(&alice, Some(&Category::Usage)).unwrap();
    v.place_hold(
        &alice,
        NewHold::new(HoldTarget::Category(Category::Contact), HoldReason::Dispute)
            .reference("CASE-1"),
    )
    .unwrap();
    v.disclose(
        &alice,
        "tax-authority",
        &Purpose::new("tax").unwrap(),
        &[Category::Payment],
        Some("subpoena: 42"),
    )
    .unwrap();

    // A valid document for a new subject: alice's export, under bob's name and new ids.
    let mut out = Vec::new();
    v.export(&alice, &mut out).unwrap();
    let mut base: Value = serde_json::from_slice(&out).unwrap();
    set(&mut base, "/subject_id", json!("bob@example.com"));
    for (i, r) in base["records"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        r["record"] = json!(format!("{:032x}", 0xb0b0 + i));
    }
    assert_eq!(base["records"].as_array().unwrap().len(), 2);
    let existing = contact.to_string();

    let seen_before = seen(&v, &[&alice, &bob]);
    v.flush().unwrap();
    let mut files_before = files(tmp.path());
    for (name, mutate, needle) in cases("alice@example.com", &existing) {
        let mut doc = base.clone();
        mutate(&mut doc);
        let bytes = serde_json::to_vec(&doc).unwrap();
        let err = match v.import(&mut bytes.as_slice()) {
            Ok(r) => panic!("{name}: imported {} records", r.records),
            Err(e) => e,
        };
        assert!(matches!(err, Error::Input(_)), "{name}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains(needle), "{name}: {msg:?} lacks {needle:?}");
        assert!(
            msg.len() < 400,
            "{name}: a message that long quotes input: {msg}"
        );
        v.flush().unwrap();
        let changed = changed(&files(tmp.path()), &files_before);
        assert!(changed.is_empty(), "{name}: files changed: {changed:?}");
        assert_eq!(seen(&v, &[&alice, &bob]), seen_before, "{name}");
        let report = v.verify().unwrap();
        assert!(report.is_whole(), "{name}: {:?}", report.problems);
        // What the checks above wrote (the audit entries of their listings) is not the import's.
        v.flush().unwrap();
        files_before = files(tmp.path());
    }

    // The base document itself imports, whole; imported twice, its ids exist and it is refused.
    let bytes = serde_json::to_vec(&base).unwrap();
    assert_eq!(v.import(&mut bytes.as_slice()).unwrap().records, 2);
    assert_eq!(v.list(&bob).unwrap().len(), 2);
    let err = v.import(&mut bytes.as_slice()).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(v.list(&bob).unwrap().len(), 2);
    let report = v.verify().unwrap();
    assert!(report.is_whole(), "{:?}", report.problems);
    // An imported record can be updated (its version leaves room).
    let id = v.list(&bob).unwrap()[0].record;
    v.update(&bob, id, b"new").unwrap();
}

// Guards the defect where an entry's error lost its type: the import error names the entry and
// carries the API's own error.
#[test]
fn an_entry_error_names_the_entry_and_carries_the_api_error() {
    let tmp = tempfile::tempdir().unwrap();
    let v = create(tmp.path());
    let doc = json!({
        "format": "pdvault-export", "version": 1, "exported_at": "2025-01-01T00:00:00Z",
        "subject_id": "carol@example.com",
        "subject": {"created_at": null, "pending_erasure": null, "events": {},
                    "restricted": false, "restricted_categories": [], "consents": {}},
        "holds": [], "disclosures": [],
        "records": [{"record": "000000000000000000000000000000aa", "category": "acount",
                     "fideslang": null, "purposes": [], "basis": "contract", "source": null,
                     "collected_at": "2025-01-01T00:00:00Z", "version": 1,
                     "updated_at": "2025-01-01T00:00:00Z", "expires_at": null,
                     "retained_until": null, "payload": {"text": "x"}}]
    });
    let bytes = serde_json::to_vec(&doc).unwrap();
    match v.import(&mut bytes.as_slice()) {
        Err(Error::Input(InputError::DocumentEntry { entry, error })) => {
            assert!(entry.starts_with("records[0]"), "{entry}");
            assert!(
                matches!(&*error, InputError::UnknownCategory { suggestion: Some(s), .. } if s == "account"),
                "{error:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Nothing of carol was created.
    assert!(matches!(
        v.list(&SubjectId::new("carol@example.com").unwrap()),
        Err(Error::SubjectNotFound)
    ));
}
