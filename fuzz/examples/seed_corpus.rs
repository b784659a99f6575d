//! Writes the seed corpora under fuzz/corpus/<target>/ from a real vault: its vault file, an
//! export document, the erasure ledger, encoded entries and keys of every table, and the seed
//! policies. Run from the fuzz directory: `cargo run --example seed_corpus`.
//!
//! The store's own entry types are private to pdvault; their seeds are encoded here from structs
//! of the same shape (bincode is structural), behind the same one-byte format version.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use pdvault::{
    Category, EventKind, HoldReason, HoldTarget, KdfParams, LegalBasis, ManualClock, NewHold,
    Policy, Purpose, RecordMeta, RequestFilter, RequestKind, RootSecret, SubjectId, Vault,
};
use serde::Serialize;

const ENTRY_FORMAT: u8 = 1;

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = vec![ENTRY_FORMAT];
    out.extend(
        bincode::serde::encode_to_vec(v, bincode::config::standard()).expect("bincode encodes"),
    );
    out
}

#[derive(Serialize)]
struct RecordEntry {
    meta: RecordMeta,
    version: u32,
    key_gen: u32,
    updated_at: Timestamp,
    sealed: Vec<u8>,
}

#[derive(Serialize)]
struct WrappedKey {
    shard_gen: u64,
    sealed: Vec<u8>,
}

#[derive(Serialize)]
struct IndexEntry {
    sealed_ref: Vec<u8>,
}

#[derive(Serialize)]
struct ConsentState {
    granted: bool,
    at: Timestamp,
    policy_version: String,
}

#[derive(Serialize)]
struct SubjectState {
    created_at: Option<Timestamp>,
    sealed_blind: Vec<u8>,
    pending_erasure: Option<Timestamp>,
    events: BTreeMap<String, Timestamp>,
    restricted: bool,
    restricted_categories: BTreeSet<String>,
    consents: BTreeMap<String, ConsentState>,
    next_generation: BTreeMap<String, u32>,
}

#[derive(Serialize)]
struct Manifest {
    seq: u64,
    entries: u64,
    acc: [u8; 32],
}

struct Seeds {
    root: PathBuf,
}

impl Seeds {
    fn put(&self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir).expect("create a corpus directory");
        fs::write(dir.join(name), bytes).expect("write a seed");
    }
}

fn hex16(s: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}

fn main() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seeds = Seeds {
        root: here.join("corpus"),
    };
    let t0: Timestamp = "2025-01-31T12:00:00Z".parse().expect("timestamp");
    let clock = ManualClock::new(t0);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let policy_text =
        fs::read_to_string(here.join("../policies/seed-001-m-exe.toml")).expect("seed policy 001");
    let vault = Vault::builder(tmp.path())
        .kdf(KdfParams::insecure_for_tests())
        .clock(clock.clone())
        .policy(Policy::from_toml(&policy_text).expect("seed policy 001 parses"))
        .create(RootSecret::passphrase("seed-passphrase"))
        .expect("create a vault");

    // Vault header: the real file, fresh and after a key-ring rewrite (an erasure).
    seeds.put(
        "vault_header",
        "fresh.pdv",
        &fs::read(tmp.path().join("vault.pdv")).expect("vault.pdv"),
    );

    // The ledger of a vault that has erased nothing yet.
    let mut empty_ledger = Vec::new();
    vault
        .export_ledger(&mut empty_ledger)
        .expect("export the empty ledger");
    seeds.put("ledger_parse", "empty.json", &empty_ledger);

    let alice = SubjectId::new("alice@example.com").expect("subject");
    let bob = SubjectId::new("bob@example.com").expect("subject");
    let billing = Purpose::new("billing").expect("purpose");
    let marketing = Purpose::new("marketing").expect("purpose");
    let a1 = vault
        .put(
            &alice,
            RecordMeta::new(Category::Contact)
                .purpose(billing.clone())
                .source("signup-form")
                .collected_at(t0),
            b"+44 20 7946 0000",
        )
        .expect("put");
    vault
        .put(
            &alice,
            RecordMeta::new(Category::Transaction)
                .purpose(billing.clone())
                .basis(LegalBasis::LegalObligation)
                .collected_at(t0),
            b"order 1234: 3 items",
        )
        .expect("put");
    vault
        .put(
            &alice,
            RecordMeta::new(Category::Preference)
                .purpose(marketing.clone())
                .basis(LegalBasis::Consent)
                .collected_at(t0),
            &[0xff, 0xfe, 0x00, 0x01],
        )
        .expect("put");
    vault
        .grant_consent(&alice, &marketing, Some("seed-001"))
        .expect("consent");
    vault
        .record_event(&alice, EventKind::AccountClosed, t0)
        .expect("event");
    vault
        .place_hold(
            &alice,
            NewHold::new(
                HoldTarget::Category(Category::Transaction),
                HoldReason::Dispute,
            )
            .reference("case 7"),
        )
        .expect("hold");
    vault
        .restrict(&alice, Some(&Category::Usage))
        .expect("restrict");
    vault
        .disclose(
            &alice,
            "tax-office",
            &billing,
            &[Category::Transaction],
            Some("statutory request"),
        )
        .expect("disclose");
    vault
        .open_request(&alice, RequestKind::Access, None)
        .expect("request");

    let b1 = vault
        .put(
            &bob,
            RecordMeta::new(Category::Usage).collected_at(t0),
            b"viewed /pricing",
        )
        .expect("put");
    vault
        .put(
            &bob,
            RecordMeta::new(Category::Account).collected_at(t0),
            b"bob",
        )
        .expect("put");
    vault.erase_record(&bob, b1).expect("erase a record");
    vault
        .erase_category(&bob, &Category::Account)
        .expect("erase a category");

    // Export documents: a full subject, and a minimal one.
    let mut doc = Vec::new();
    vault.export(&alice, &mut doc).expect("export");
    seeds.put("import_export", "alice.json", &doc);
    let mut doc = Vec::new();
    vault.export(&bob, &mut doc).expect("export");
    seeds.put("import_export", "bob.json", &doc);
    seeds.put(
        "import_export",
        "minimal.json",
        br#"{"format":"pdvault-export","version":1,"exported_at":"2025-01-31T12:00:00Z","subject_id":"carol@example.com","subject":{"created_at":null,"pending_erasure":null,"events":{},"restricted":false,"restricted_categories":[],"consents":{}},"holds":[],"disclosures":[],"records":[{"record":"0123456789abcdef0123456789abcdef","category":"contact","fideslang":"user.contact","purposes":["billing"],"basis":"contract","source":null,"collected_at":"2025-01-31T12:00:00Z","version":2,"updated_at":"2025-01-31T12:00:00Z","expires_at":null,"retained_until":null,"payload":{"base64":"AAEC"}}]}"#,
    );

    vault.erase_subject(&alice).expect("erase a subject");
    seeds.put(
        "vault_header",
        "after-erasure.pdv",
        &fs::read(tmp.path().join("vault.pdv")).expect("vault.pdv"),
    );

    // The erasure ledger, as JSON and as stored entries.
    let mut ledger_json = Vec::new();
    vault
        .export_ledger(&mut ledger_json)
        .expect("export ledger");
    seeds.put("ledger_parse", "ledger.json", &ledger_json);
    // The ledger format before it was authenticated, which the parser refuses.
    seeds.put("ledger_parse", "old-array.json", b"[]\n");
    let ledger = vault.ledger().expect("ledger");
    for (i, e) in ledger.iter().enumerate() {
        seeds.put("ledger_entry", &format!("entry-{i}"), &encode(e));
    }

    // Audit entries.
    let audit = vault.audit_entries(None, None).expect("audit entries");
    for (i, e) in audit.iter().step_by(3).take(6).enumerate() {
        seeds.put("audit_entry", &format!("entry-{i}"), &encode(e));
    }

    // Subject state, holds, requests, the manifest.
    let sref = ledger
        .first()
        .map(|e| e.subject)
        .expect("a ledger entry names a subject");
    let sref_bytes = hex16(&sref.to_string());
    let state = SubjectState {
        created_at: Some(t0),
        sealed_blind: vec![7; 72],
        pending_erasure: Some(t0),
        events: [("account-closed".to_owned(), t0)].into(),
        restricted: true,
        restricted_categories: ["usage".to_owned()].into(),
        consents: [(
            "marketing".to_owned(),
            ConsentState {
                granted: true,
                at: t0,
                policy_version: "seed-001".to_owned(),
            },
        )]
        .into(),
        next_generation: [("contact".to_owned(), 2), ("transaction".to_owned(), 1)].into(),
    };
    seeds.put("subject_state", "state", &encode(&state));
    for (i, h) in vault.holds(None).expect("holds").iter().enumerate() {
        seeds.put("subject_state", &format!("hold-{i}"), &encode(h));
    }
    for (i, r) in vault
        .requests(RequestFilter::All)
        .expect("requests")
        .iter()
        .enumerate()
    {
        seeds.put("subject_state", &format!("request-{i}"), &encode(r));
    }
    seeds.put(
        "subject_state",
        "manifest",
        &encode(&Manifest {
            seq: 42,
            entries: 17,
            acc: [9; 32],
        }),
    );

    // Records, wrapped keys (and journal entries, of the same shape), index entries.
    let meta = RecordMeta::new(Category::Contact)
        .purpose(billing.clone())
        .source("signup-form")
        .collected_at(t0);
    seeds.put(
        "record_entry",
        "record",
        &encode(&RecordEntry {
            meta,
            version: 3,
            key_gen: 1,
            updated_at: t0,
            sealed: vec![0xa5; 16 + 24 + 16],
        }),
    );
    seeds.put(
        "record_entry",
        "record-custom",
        &encode(&RecordEntry {
            meta: RecordMeta::new(Category::custom("loyalty-points").expect("kebab"))
                .basis(LegalBasis::Consent)
                .collected_at(t0),
            version: 1,
            key_gen: 0,
            updated_at: t0,
            sealed: vec![1; 60],
        }),
    );
    seeds.put(
        "wrapped_key",
        "key",
        &encode(&WrappedKey {
            shard_gen: 3,
            sealed: vec![0x5a; 24 + 32 + 16],
        }),
    );
    seeds.put(
        "index_entry",
        "index",
        &encode(&IndexEntry {
            sealed_ref: vec![0x3c; 24 + 16 + 16],
        }),
    );

    // Keys of every table the parsers read.
    let rid = hex16(&a1.to_string());
    let mut k = vec![3u8];
    k.extend(sref_bytes);
    k.extend(rid);
    seeds.put("key_layout", "record", &k);
    let mut k = vec![4u8];
    k.extend((u16::from_be_bytes([sref_bytes[0], sref_bytes[1]]) % 4096).to_be_bytes());
    k.push(1);
    k.extend(sref_bytes);
    k.push(7);
    k.extend(b"contact");
    k.extend(2u32.to_be_bytes());
    seeds.put("key_layout", "data-key", &k);
    let mut k = vec![5u8];
    k.extend(((t0.as_microsecond() as u64) ^ (1 << 63)).to_be_bytes());
    k.extend(sref_bytes);
    k.extend(rid);
    seeds.put("key_layout", "due", &k);
    let mut k = vec![10u8];
    k.extend(sref_bytes);
    k.push(11);
    k.extend(b"transaction");
    k.extend(1u32.to_be_bytes());
    seeds.put("key_layout", "reclaim", &k);
    let mut k = vec![8u8];
    k.extend(5u64.to_be_bytes());
    seeds.put("key_layout", "seq", &k);
    let mut k = vec![7u8];
    k.extend(sref_bytes);
    k.extend([1, 2, 3, 4, 5, 6, 7, 8]);
    seeds.put("key_layout", "subject-hold", &k);

    // Policies: the seed policies and the documented example.
    for entry in fs::read_dir(here.join("../policies")).expect("policies/") {
        let p = entry.expect("a policy file").path();
        if p.extension().is_some_and(|e| e == "toml") {
            let name = p
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            seeds.put("policy_toml", &name, &fs::read(&p).expect("a policy"));
        }
    }
    seeds.put(
        "policy_toml",
        "example.toml",
        br#"name = "m-exe.com privacy policy"
version = "2025-01"
custom_categories = ["loyalty-points"]

[retention.transaction]
min = "7 years"
max = "7 years"

[retention.account]
max = "2 years"
anchor = "account-closed"

[retention.loyalty-points]
max = "18 months"
anchor = "contract-ended"

[requests]
access = "30 days"
erasure = "1 month"

[audit]
retain = "1 year"
"#,
    );

    // Operation sequences: arbitrary bytes decode to some sequence; a few of varied lengths.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for (i, len) in [16usize, 64, 256, 1024].into_iter().enumerate() {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        seeds.put("api_ops", &format!("ops-{i}"), &bytes);
    }

    vault.close().expect("close");
    println!("seed corpora written to {}", seeds.root.display());
}
