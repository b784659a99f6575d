//! Anonymised and aggregated output.
//!
//! - `anonymous_stats`: a count below the policy's `min_cell` is never shown (in the value, the
//!   JSON or the CLI's text), a count at it is; a withheld count cannot be had from the total and
//!   the other counts of its group.
//! - `export_for_analysis`: no subject identifier, subject reference or record id in the output;
//!   no field the policy drops; no payload that is not a JSON object; pseudonyms shared within an
//!   export and by no two exports; the usual purpose, consent and restriction rules; audited.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use jiff::Timestamp;
use pdvault::anonymised::Cell;
use pdvault::*;

const PW: &str = "anonymised-passphrase";

const POLICY: &str = r#"
[anonymisation]
min_cell = 5
drop_fields = ["email", "name"]
"#;

fn create(dir: &Path, policy: &str) -> Vault {
    Vault::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .policy(Policy::from_toml(policy).unwrap())
        .create(RootSecret::passphrase(PW))
        .unwrap()
}

fn sid(s: &str) -> SubjectId {
    SubjectId::new(s).unwrap()
}

fn purpose(p: &str) -> Purpose {
    Purpose::new(p).unwrap()
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn analytics() -> Purpose {
    purpose("analytics")
}

/// Every group of the statistics, by name.
fn groups(st: &AnonymousStats) -> [(&'static str, &BTreeMap<String, Cell>); 4] {
    [
        ("category", &st.by_category),
        ("basis", &st.by_basis),
        ("purpose", &st.by_purpose),
        ("month", &st.by_month),
    ]
}

/// No shown count is below the threshold, and no group has exactly one withheld cell while the
/// total is shown.
fn assert_protected(st: &AnonymousStats) {
    let k = st.min_cell;
    for c in [st.subjects, st.records] {
        assert!(c.count().is_none_or(|n| n >= k), "{st:?}");
    }
    for (name, g) in groups(st) {
        assert!(
            g.values().all(|c| c.count().is_none_or(|n| n >= k)),
            "{name}: {g:?}"
        );
        let withheld = g.values().filter(|c| **c == Cell::Suppressed).count();
        assert!(
            withheld != 1 || st.records == Cell::Suppressed,
            "{name}: one withheld cell could be derived from the total: {g:?}"
        );
    }
}

/// Writes `n` records of `category` for `n` subjects named `prefix-i`.
fn records(v: &Vault, prefix: &str, n: usize, meta: impl Fn(usize) -> RecordMeta) {
    for i in 0..n {
        v.put(
            &sid(&format!("{prefix}-{i}@example.com")),
            meta(i),
            format!(r#"{{"email":"{prefix}-{i}@example.com","n":{i}}}"#).as_bytes(),
        )
        .unwrap();
    }
}

#[test]
fn a_cell_of_three_is_withheld_and_a_cell_of_five_is_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let v = create(tmp.path(), POLICY);
    let jan = ts("2025-01-15T10:00:00Z");
    let feb = ts("2025-02-15T10:00:00Z");
    // usage: 5 (shown), contact: 3 and technical: 1 (withheld both; no third needed).
    records(&v, "u", 5, |_| {
        RecordMeta::new(Category::Usage)
            .purpose(analytics())
            .collected_at(jan)
    });
    records(&v, "c", 3, |_| {
        RecordMeta::new(Category::Contact)
            .purpose(purpose("support"))
            .collected_at(feb)
    });
    records(&v, "t", 1, |_| {
        RecordMeta::new(Category::Technical)
            .purpose(purpose("support"))
            .collected_at(feb)
    });
    let st = v.anonymous_stats().unwrap();
    assert_eq!(st.min_cell, 5);
    assert_eq!(st.subjects, Cell::Count(9));
    assert_eq!(st.records, Cell::Count(9));
    assert_eq!(st.by_category["usage"], Cell::Count(5));
    assert_eq!(st.by_category["contact"], Cell::Suppressed);
    assert_eq!(st.by_category["technical"], Cell::Suppressed);
    // Months: 5 and 4; the 4 is withheld, and the 5 with it (else 9 - 5 gives it).
    assert_eq!(st.by_month["2025-01"], Cell::Suppressed);
    assert_eq!(st.by_month["2025-02"], Cell::Suppressed);
    // Purposes: analytics 5, support 4.
    assert_eq!(st.by_purpose["support"], Cell::Suppressed);
    assert_eq!(st.by_basis["contract"], Cell::Count(9));
    assert_protected(&st);
    // In JSON: the withheld cells are "suppressed", never 3, 1 or 4.
    let json = serde_json::to_value(&st).unwrap();
    assert_eq!(json["by_category"]["contact"], "suppressed");
    assert_eq!(json["by_category"]["usage"], 5);
    for (_, g) in json
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("by_"))
    {
        for (name, c) in g.as_object().unwrap() {
            assert!(
                c == "suppressed" || c.as_u64().is_some_and(|n| n >= 5),
                "{name}: {c}"
            );
        }
    }
    // The full statistics still have the numbers (they are not anonymous).
    assert_eq!(v.stats().unwrap().by_category["contact"], 3);
}

#[test]
fn one_small_cell_takes_the_smallest_other_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let v = create(tmp.path(), POLICY);
    records(&v, "u", 5, |_| RecordMeta::new(Category::Usage));
    records(&v, "c", 3, |_| RecordMeta::new(Category::Contact));
    records(&v, "m", 7, |_| RecordMeta::new(Category::Communication));
    let st = v.anonymous_stats().unwrap();
    assert_eq!(st.records, Cell::Count(15));
    assert_eq!(st.by_category["contact"], Cell::Suppressed);
    assert_eq!(st.by_category["usage"], Cell::Suppressed);
    assert_eq!(st.by_category["communication"], Cell::Count(7));
    assert_protected(&st);
    // A vault of fewer records than the threshold shows no count at all.
    let small = tempfile::tempdir().unwrap();
    let s = create(small.path(), POLICY);
    records(&s, "x", 3, |_| RecordMeta::new(Category::Usage));
    let st = s.anonymous_stats().unwrap();
    assert_eq!(
        (st.subjects, st.records),
        (Cell::Suppressed, Cell::Suppressed)
    );
    assert_eq!(st.by_category["usage"], Cell::Suppressed);
    assert_protected(&st);
    // The threshold is the policy's.
    s.set_policy(Policy::from_toml("[anonymisation]\nmin_cell = 3").unwrap())
        .unwrap();
    assert_eq!(s.anonymous_stats().unwrap().records, Cell::Count(3));
    s.set_policy(Policy::from_toml("").unwrap()).unwrap();
    assert_eq!(s.anonymous_stats().unwrap().min_cell, 5);
}

/// The data of the export tests: analysis records of five subjects (one with two), with
/// identifying fields and a nested one; and records the export must leave out.
struct Fixture {
    v: Vault,
    subjects: Vec<SubjectId>,
    names: Vec<String>,
    records: Vec<RecordId>,
}

fn fixture(dir: &Path) -> Fixture {
    let v = create(dir, POLICY);
    let mut subjects = Vec::new();
    let mut records = Vec::new();
    for i in 0..5 {
        let s = sid(&format!("person-{i}@example.com"));
        let payload = serde_json::json!({
            "email": format!("person-{i}@example.com"),
            "name": format!("Person Number{i}"),
            "plan": "pro",
            "clicks": 10 + i,
            "device": {"name": format!("laptop-of-person-{i}"), "os": "linux"},
        });
        records.push(
            v.put_value(
                &s,
                RecordMeta::new(Category::Usage)
                    .purpose(analytics())
                    .source("web")
                    .collected_at(ts("2025-03-04T05:06:07Z")),
                &payload,
            )
            .unwrap(),
        );
        subjects.push(s);
    }
    // A second record of person-0; a payload that is not a JSON object.
    records.push(
        v.put(
            &subjects[0],
            RecordMeta::new(Category::Usage).purpose(analytics()),
            br#"{"clicks": 99}"#,
        )
        .unwrap(),
    );
    records.push(
        v.put(
            &subjects[1],
            RecordMeta::new(Category::Usage).purpose(analytics()),
            b"free text that names person-1@example.com",
        )
        .unwrap(),
    );
    // Left out: another purpose; consent not given; a restricted subject; another category.
    let other = sid("other-purpose@example.com");
    records.push(
        v.put(
            &other,
            RecordMeta::new(Category::Usage).purpose(purpose("billing")),
            br#"{"plan":"left-out-marker"}"#,
        )
        .unwrap(),
    );
    let unconsented = sid("no-consent@example.com");
    records.push(
        v.put(
            &unconsented,
            RecordMeta::new(Category::Usage)
                .purpose(analytics())
                .basis(LegalBasis::Consent),
            br#"{"plan":"left-out-marker"}"#,
        )
        .unwrap(),
    );
    let restricted = sid("restricted@example.com");
    records.push(
        v.put(
            &restricted,
            RecordMeta::new(Category::Usage).purpose(analytics()),
            br#"{"plan":"left-out-marker"}"#,
        )
        .unwrap(),
    );
    v.restrict(&restricted, None).unwrap();
    records.push(
        v.put(
            &subjects[2],
            RecordMeta::new(Category::Contact).purpose(analytics()),
            br#"{"phone":"left-out-marker"}"#,
        )
        .unwrap(),
    );
    v.set_credential(
        &subjects[3],
        RecordMeta::new(Category::Credential).purpose(analytics()),
        b"credential-marker",
    )
    .unwrap();
    subjects.extend([other, unconsented, restricted]);
    let mut names: Vec<String> = (0..5).map(|i| format!("person-{i}@example.com")).collect();
    names.extend(["other-purpose", "no-consent", "restricted"].map(|n| format!("{n}@example.com")));
    Fixture {
        v,
        subjects,
        names,
        records,
    }
}

fn export(v: &Vault) -> (Vec<u8>, Vec<serde_json::Value>) {
    let mut out = Vec::new();
    let n = v
        .export_for_analysis(&[Category::Usage], &analytics(), &mut out)
        .unwrap();
    let lines: Vec<serde_json::Value> = out
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(n as usize, lines.len());
    (out, lines)
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn an_analysis_export_names_no_one_and_drops_the_policys_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture(tmp.path());
    let (out, lines) = export(&f.v);
    // Five subjects' records, person-0's two, person-1's text payload as null.
    assert_eq!(lines.len(), 7, "{}", String::from_utf8_lossy(&out));
    // No identifier: subject ids, subject references, record ids.
    let refs: BTreeSet<String> =
        f.v.audit_entries(None, None)
            .unwrap()
            .into_iter()
            .filter_map(|e| e.subject.map(|s| s.to_string()))
            .collect();
    assert!(refs.len() >= f.subjects.len());
    for id in &f.names {
        assert!(!contains(&out, id), "{id}");
    }
    for r in &refs {
        assert!(!contains(&out, r), "subject reference {r}");
    }
    for r in &f.records {
        assert!(!contains(&out, &r.to_string()), "record {r}");
    }
    // No dropped field, at any depth; nothing left out leaked; no text payload.
    for needle in [
        "email",
        "\"name\"",
        "Person Number",
        "laptop-of",
        "left-out-marker",
        "credential",
        "free text",
        "person-",
    ] {
        assert!(!contains(&out, needle), "{needle}");
    }
    for l in &lines {
        let keys: BTreeSet<&str> = l.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "subject",
                "category",
                "basis",
                "purposes",
                "collected",
                "payload"
            ])
        );
        assert_eq!(l["category"], "usage");
        assert!(l["payload"].is_null() || l["payload"].is_object());
    }
    let full = lines
        .iter()
        .find(|l| l["payload"]["plan"] == "pro" && l["payload"]["clicks"] == 12)
        .expect("person-2's record");
    assert_eq!(
        full["payload"],
        serde_json::json!({"plan": "pro", "clicks": 12, "device": {"os": "linux"}})
    );
    assert_eq!(full["collected"], "2025-03");
    assert_eq!(lines.iter().filter(|l| l["payload"].is_null()).count(), 1);
    // One pseudonym per subject within the export: six lines of five subjects.
    let pseudonyms: BTreeSet<&str> = lines
        .iter()
        .map(|l| l["subject"].as_str().unwrap())
        .collect();
    assert_eq!(pseudonyms.len(), 5);
    assert!(pseudonyms.iter().all(|p| p.len() == 32));
}

#[test]
fn two_exports_share_no_pseudonym() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture(tmp.path());
    let (_, a) = export(&f.v);
    let (_, b) = export(&f.v);
    let of = |lines: &[serde_json::Value]| -> BTreeSet<String> {
        lines
            .iter()
            .map(|l| l["subject"].as_str().unwrap().to_owned())
            .collect()
    };
    let (pa, pb) = (of(&a), of(&b));
    assert_eq!((pa.len(), pb.len()), (5, 5));
    assert!(pa.is_disjoint(&pb), "{pa:?} {pb:?}");
    // The same records, apart from the pseudonyms (the order is the pseudonyms').
    let strip = |lines: &[serde_json::Value]| -> BTreeSet<String> {
        lines
            .iter()
            .map(|l| {
                let mut l = l.clone();
                l["subject"] = serde_json::Value::Null;
                l.to_string()
            })
            .collect()
    };
    assert_eq!(strip(&a), strip(&b));
}

#[test]
fn an_analysis_export_follows_the_read_rules_and_is_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture(tmp.path());
    let v = &f.v;
    let mut out = Vec::new();
    // Refused before anything is read.
    for (cats, p) in [
        (vec![], analytics()),
        (vec![Category::Credential], analytics()),
        (vec![Category::Usage], Purpose::SUBJECT_ACCESS),
        (vec![Category::Usage], Purpose::STORAGE),
        (vec![Category::Usage], Purpose::LEGAL_CLAIMS),
        (vec![Category::custom("unknwon").unwrap()], analytics()),
    ] {
        assert!(
            matches!(
                v.export_for_analysis(&cats, &p, &mut out),
                Err(Error::Input(_))
            ),
            "{cats:?} {p:?}"
        );
    }
    assert!(out.is_empty());
    // Consent granted: that subject's record is in.
    let (_, before) = export(v);
    v.grant_consent(&sid("no-consent@example.com"), &analytics(), None)
        .unwrap();
    let (_, after) = export(v);
    assert_eq!(after.len(), before.len() + 1);
    // Restriction lifted: in too. Erasure pending: out.
    v.unrestrict(&sid("restricted@example.com"), None).unwrap();
    assert_eq!(export(v).1.len(), before.len() + 2);
    v.place_hold(
        &f.subjects[4],
        NewHold::new(HoldTarget::Subject, HoldReason::Dispute),
    )
    .unwrap();
    let report = v.erase_subject(&f.subjects[4]).unwrap();
    assert!(!report.subject_erased);
    assert_eq!(export(v).1.len(), before.len() + 1);
    // Audited: a read per subject and category, no counts, and one export entry.
    v.flush().unwrap();
    let entries = v.audit_entries(None, None).unwrap();
    let exports: Vec<_> = entries
        .iter()
        .filter(|e| e.op == AuditOp::Export && e.subject.is_none())
        .collect();
    assert_eq!(exports.len(), 4);
    assert!(
        exports[0]
            .note
            .as_deref()
            .unwrap()
            .starts_with("analysis export for purpose analytics: 7 records of 5 subjects"),
        "{:?}",
        exports[0].note
    );
    let reads = v
        .audit_entries(Some(&f.subjects[0]), None)
        .unwrap()
        .into_iter()
        .filter(|e| {
            e.op == AuditOp::Read
                && e.note.as_deref() == Some("analytics; analysis export, pseudonymised")
        })
        .count();
    assert_eq!(reads, 4, "one per export, whatever the subject's records");
}

#[test]
fn the_anonymisation_section_is_checked() {
    for bad in [
        "[anonymisation]\nmin_cell = 0",
        "[anonymisation]\nmin_cell = 1",
        "[anonymisation]\ndrop_fields = [\"x\", \"x\"]",
        "[anonymisation]\nkeep = true",
    ] {
        let e = Policy::from_toml(bad).unwrap_err().to_string();
        assert!(
            e.contains("anonymisation") || e.contains("keep"),
            "{bad}: {e}"
        );
    }
}

#[cfg(feature = "cli")]
mod cli {
    use super::common::binary::{ok, pdvault};

    #[test]
    fn stats_anonymous_and_export_analysis() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("v");
        let policy = tmp.path().join("policy.toml");
        std::fs::write(&policy, super::POLICY).unwrap();
        ok(&dir, &["init", "--policy", policy.to_str().unwrap()], None);
        let put = |subject: &str, category: &str, payload: &str| {
            ok(
                &dir,
                &[
                    "put",
                    "--subject",
                    subject,
                    "--category",
                    category,
                    "--purpose",
                    "analytics",
                    "--collected-at",
                    "2025-03-04",
                ],
                Some(payload.as_bytes()),
            )
            .trim()
            .to_owned()
        };
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(put(
                &format!("cli-person-{i}@example.com"),
                "usage",
                &format!(r#"{{"email":"cli-person-{i}@example.com","clicks":{i}}}"#),
            ));
        }
        for i in 0..3 {
            ids.push(put(
                &format!("cli-contact-{i}@example.com"),
                "contact",
                r#"{"phone":"555"}"#,
            ));
        }
        for i in 0..2 {
            ids.push(put(&format!("cli-tech-{i}@example.com"), "technical", "{}"));
        }
        // Text: the cell of 3 is never printed, the cell of 5 is.
        let text = ok(&dir, &["stats", "--anonymous"], None);
        let line = |what: &str, name: &str| -> String {
            text.lines()
                .find(|l| {
                    let w: Vec<&str> = l.split_whitespace().collect();
                    w.first() == Some(&what) && w.get(1) == Some(&name)
                })
                .unwrap_or_else(|| panic!("no {what} {name} in {text}"))
                .split_whitespace()
                .nth(2)
                .unwrap()
                .to_owned()
        };
        assert_eq!(line("category", "usage"), "5");
        assert_eq!(line("category", "contact"), "suppressed");
        assert_eq!(line("category", "technical"), "suppressed");
        assert!(
            !text
                .lines()
                .any(|l| l.split_whitespace().any(|w| w == "3" || w == "2")),
            "{text}"
        );
        // JSON likewise.
        let json: serde_json::Value =
            serde_json::from_str(&ok(&dir, &["--json", "stats", "--anonymous"], None)).unwrap();
        assert_eq!(json["by_category"]["contact"], "suppressed");
        assert_eq!(json["by_category"]["usage"], 5);
        assert_eq!(json["records"], 10);
        // The export.
        let out = tmp.path().join("analysis.jsonl");
        let args = [
            "export-analysis",
            "--category",
            "usage",
            "--category",
            "contact",
            "--purpose",
            "analytics",
            "--out",
            out.to_str().unwrap(),
        ];
        ok(&dir, &args, None);
        let written = std::fs::read_to_string(&out).unwrap();
        assert_eq!(written.lines().count(), 8);
        assert!(!written.contains("email") && !written.contains("cli-"));
        for id in &ids {
            assert!(!written.contains(id.as_str()));
        }
        // An existing file is refused; --force replaces it with fresh pseudonyms.
        assert!(!pdvault(&dir, &args, None).status.success());
        let mut forced = args.to_vec();
        forced.push("--force");
        ok(&dir, &forced, None);
        let again = std::fs::read_to_string(&out).unwrap();
        let subjects = |s: &str| -> std::collections::BTreeSet<String> {
            s.lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["subject"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect()
        };
        assert!(subjects(&written).is_disjoint(&subjects(&again)));
        // The subject's own access purpose is refused.
        let refused = pdvault(
            &dir,
            &[
                "export-analysis",
                "--category",
                "usage",
                "--purpose",
                "subject-access",
            ],
            None,
        );
        assert!(!refused.status.success());
        assert!(refused.stdout.is_empty());
    }
}
