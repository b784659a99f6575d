//! What a subject leaves behind once it is gone: nothing that names or describes it.
//!
//! - After an erasure, and after the sweep destroyed a subject's last record, no free text
//!   attached to the subject (disclosure recipient and ground, hold reference, how a request's
//!   requester was identified) is in any file of
//!   the vault — current rows or stale copies — and the subject is unknown (export refused).
//! - A policy may keep a subject's state for a stated span after its last record went; the
//!   subject is finished when the span has passed.

use jiff::{Timestamp, ToSpan};
use pdvault::*;

const PW: &str = "leftovers-passphrase";

/// Free text a subject carries: a disclosure ground's reference, a hold's reference and the
/// method of a request's identity verification. (A disclosure's recipient is a name of the
/// policy's register, not free text of the subject.)
const MARKERS: [&str; 3] = ["ground-marker", "reference-marker", "method-marker"];

/// The ground of the disclosure, carrying the marker.
fn ground() -> String {
    format!("legal-obligation: {}", MARKERS[0])
}

fn vault(dir: &std::path::Path, clock: &ManualClock, policy: &str) -> Vault {
    Vault::builder(dir)
        .kdf(KdfParams::insecure_for_tests())
        .clock(clock.clone())
        .policy(Policy::from_toml(policy).unwrap())
        .create(RootSecret::passphrase(PW))
        .unwrap()
}

const POLICY: &str = r#"
version = "test"
[retention.usage]
max = "30 days"

[recipients.auditors]
kind = "third-party"
categories = ["usage"]
retention = "5 years"
grounds = ["legal-obligation"]
"#;

fn service() -> Purpose {
    Purpose::new("service").unwrap()
}

/// A subject with a record, a disclosure, a released hold and a verified, closed request, each
/// carrying a marker.
fn subject_with_free_text(v: &Vault, s: &SubjectId, category: Category) {
    v.put(s, RecordMeta::new(category).purpose(service()), b"payload")
        .unwrap();
    v.disclose(
        s,
        "auditors",
        &service(),
        &[Category::Usage],
        Some(&ground()),
    )
    .unwrap();
    let hold = v
        .place_hold(
            s,
            NewHold::new(HoldTarget::Subject, HoldReason::Dispute).reference(MARKERS[1]),
        )
        .unwrap();
    v.release_hold(hold).unwrap();
    let r = v.open_request(s, RequestKind::Access, None).unwrap();
    v.verify_request_identity(r.id, "desk", MARKERS[2]).unwrap();
    v.close_request(r.id).unwrap();
}

/// Every marker found in a file under `dir`, with the file.
fn markers_in_files(dir: &std::path::Path) -> Vec<(String, std::path::PathBuf)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            for m in MARKERS {
                if bytes.windows(m.len()).any(|w| w == m.as_bytes()) {
                    found.push((m.to_owned(), path.clone()));
                }
            }
        }
    }
    found
}

fn assert_gone(v: &Vault, s: &SubjectId) {
    assert!(matches!(
        v.export(s, &mut Vec::new()),
        Err(Error::SubjectNotFound)
    ));
    // Its holds stay listed (the trail of what was held), without their reference.
    for h in v.holds(None).unwrap() {
        assert_ne!(h.reference.as_deref(), Some(MARKERS[1]));
    }
}

// Guards: disclosure recipients and grounds and hold references of an erased subject stayed in
// the store as plain text; a subject whose records all expired was never finished, and its
// disclosures still exported years later.
#[test]
fn a_gone_subject_leaves_no_free_text_in_any_file() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new("2025-01-01T00:00:00Z".parse::<Timestamp>().unwrap());
    let v = vault(tmp.path(), &clock, POLICY);
    let erased = SubjectId::new("erased@example.com").unwrap();
    let expired = SubjectId::new("expired@example.com").unwrap();
    subject_with_free_text(&v, &erased, Category::Contact);
    subject_with_free_text(&v, &expired, Category::Usage);
    // While they exist, their text reads back.
    assert_eq!(
        v.holds(Some(&erased)).unwrap()[0].reference.as_deref(),
        Some(MARKERS[1])
    );

    assert!(v.erase_subject(&erased).unwrap().subject_erased);
    clock.advance(31.days());
    let swept = v.sweep().unwrap();
    assert_eq!(swept.subjects_erased, 1, "{swept:?}");
    assert_gone(&v, &erased);
    assert_gone(&v, &expired);
    assert!(v.verify().unwrap().is_whole());
    v.close().unwrap();
    let found = markers_in_files(tmp.path());
    assert!(
        found.is_empty(),
        "free text of gone subjects on disk: {found:?}"
    );
}

// Guards the policy's say: a subject's state may be kept for a span after its last record went.
#[test]
fn a_policy_keeps_a_subject_s_state_for_its_span_then_the_sweep_finishes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new("2025-01-01T00:00:00Z".parse::<Timestamp>().unwrap());
    let policy = format!("{POLICY}\n[subjects]\nkeep_state = \"90 days\"\n");
    let v = vault(tmp.path(), &clock, &policy);
    let s = SubjectId::new("kept@example.com").unwrap();
    subject_with_free_text(&v, &s, Category::Usage);
    clock.advance(31.days());
    assert_eq!(v.sweep().unwrap().subjects_erased, 0);
    let mut doc = Vec::new();
    v.export(&s, &mut doc).unwrap();
    assert!(String::from_utf8_lossy(&doc).contains(MARKERS[0]));
    assert!(String::from_utf8_lossy(&doc).contains("auditors"));
    clock.advance(89.days());
    assert_eq!(v.sweep().unwrap().subjects_erased, 0, "kept for 90 days");
    clock.advance(2.days());
    assert_eq!(v.sweep().unwrap().subjects_erased, 1);
    assert_gone(&v, &s);
    // A subject written to again while its state is kept is not finished.
    let back = SubjectId::new("back@example.com").unwrap();
    subject_with_free_text(&v, &back, Category::Usage);
    clock.advance(31.days());
    v.sweep().unwrap();
    v.put(
        &back,
        RecordMeta::new(Category::Contact).purpose(service()),
        b"again",
    )
    .unwrap();
    clock.advance(91.days());
    v.sweep().unwrap();
    assert!(
        v.export(&back, &mut Vec::new()).is_ok(),
        "a live subject was finished"
    );
    assert!(v.verify().unwrap().is_whole());
}
