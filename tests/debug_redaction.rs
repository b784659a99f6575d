//! `Debug` of every public type that holds a payload, a subject identifier or free text about a
//! person prints none of them, in `{:?}` or `{:#?}`.
//!
//! Guards the defect that the export types derived `Debug`: `ExportPayload` printed
//! `Text("IBAN DE89 3704")`, `ExportDocument` the subject identifier, `Disclosure` its
//! recipient.

use std::fmt::Debug;

use pdvault::rights::Disclosure;
use pdvault::rights::export::{ExportDocument, ExportPayload, ExportRecord, ExportSubject};
use pdvault::*;

const MARKERS: [&str; 6] = [
    "IBAN DE89 3704",
    "marker-subject@example.com",
    "TUFSS0VSLWJ5dGVz",
    "Marker Recipient GmbH",
    "marker-ground-ref",
    "marker-consent-text",
];

/// An export document with every marker in it, as `Vault::import` reads one.
fn document() -> ExportDocument {
    let json = r#"{
        "format": "pdvault-export", "version": 1, "exported_at": "2025-01-31T12:00:00Z",
        "subject_id": "marker-subject@example.com",
        "subject": {"created_at": null, "pending_erasure": null, "events": {},
                    "restricted": false, "restricted_categories": [],
                    "consents": {"marketing": {"granted": true, "at": "2025-01-31T12:00:00Z",
                                               "policy_version": "marker-consent-text"}}},
        "holds": [],
        "disclosures": [{"recipient": "Marker Recipient GmbH", "purpose": "billing",
                         "categories": ["contact"], "ground": "marker-ground-ref",
                         "at": "2025-01-31T12:00:00Z"}],
        "records": [
          {"record": "0123456789abcdef0123456789abcdef", "category": "contact",
           "fideslang": "user.contact", "purposes": ["billing"], "basis": "contract",
           "source": null, "collected_at": "2025-01-31T12:00:00Z", "version": 1,
           "updated_at": "2025-01-31T12:00:00Z", "expires_at": null, "retained_until": null,
           "payload": {"text": "IBAN DE89 3704"}},
          {"record": "0123456789abcdef0123456789abcdee", "category": "contact",
           "fideslang": "user.contact", "purposes": ["billing"], "basis": "contract",
           "source": null, "collected_at": "2025-01-31T12:00:00Z", "version": 1,
           "updated_at": "2025-01-31T12:00:00Z", "expires_at": null, "retained_until": null,
           "payload": {"base64": "TUFSS0VSLWJ5dGVz"}}
        ]
    }"#;
    serde_json::from_str(json).unwrap()
}

/// A decrypted record from a real vault.
fn record() -> Record {
    let tmp = tempfile::tempdir().unwrap();
    let v = Vault::builder(tmp.path())
        .kdf(KdfParams::insecure_for_tests())
        .create(RootSecret::passphrase("pw-passphrase"))
        .unwrap();
    let s = SubjectId::new("marker-subject@example.com").unwrap();
    let id = v
        .put(&s, RecordMeta::new(Category::Contact), b"IBAN DE89 3704")
        .unwrap();
    v.get(&s, id, &Purpose::SUBJECT_ACCESS).unwrap()
}

#[test]
fn debug_of_public_types_prints_no_payload_identifier_or_free_text() {
    let doc = document();
    let text: &ExportRecord = &doc.records[0];
    let bytes: &ExportRecord = &doc.records[1];
    let subject: &ExportSubject = &doc.subject;
    let disclosure: &Disclosure = &doc.disclosures[0];
    let cases: Vec<(&str, Box<dyn Debug>)> = vec![
        (
            "ExportPayload::Text",
            Box::new(ExportPayload::Text(MARKERS[0].into())),
        ),
        (
            "ExportPayload::Base64",
            Box::new(ExportPayload::Base64(MARKERS[2].into())),
        ),
        ("ExportRecord (text)", Box::new(text.clone())),
        ("ExportRecord (bytes)", Box::new(bytes.clone())),
        ("ExportSubject", Box::new(subject.clone())),
        ("Disclosure", Box::new(disclosure.clone())),
        ("ExportDocument", Box::new(doc.clone())),
        ("SubjectId", Box::new(SubjectId::new(MARKERS[1]).unwrap())),
        ("Record", Box::new(record())),
    ];
    for (name, value) in &cases {
        for shown in [format!("{value:?}"), format!("{value:#?}")] {
            for m in MARKERS {
                assert!(!shown.contains(m), "{name} shows {m:?}: {shown}");
            }
        }
    }
}
